//! Configuration from environment variables, named as the seed names them where it has a name
//! (TOSS_SECRET_KEY, WEBHOOK_SECRET, DATABASE_URL, JWT_SECRET / SUPABASE_JWT_SECRET, ...).
//!
//! Development needs no configuration at all: SQLite, the built-in sandbox, a development JWT
//! secret. `COURSEPAY_ENV=production` turns every such default into a refusal to start, so a
//! forgotten variable can never put a sandbox or a known secret into production.

use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

/// Publicly known development secrets. Refused in production.
pub const DEV_JWT_SECRET: &str = "coursepay-development-jwt-secret-do-not-use-in-production";
pub const DEV_WEBHOOK_SECRET: &str = "coursepay-development-webhook-secret-32-bytes-min";
pub const DEV_TOSS_SECRET_KEY: &str = "test_sk_coursepay_sandbox";
pub const DEV_TOSS_CLIENT_KEY: &str = "test_ck_coursepay_sandbox";

/// How unsigned webhooks are treated (docs/api.md, "Webhooks").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookVerify {
    /// Only deliveries with a valid X-Signature / Toss signature are accepted.
    Signature,
    /// Unsigned deliveries are accepted too; their content is verified by re-reading the
    /// payment from Toss (Toss posting payment webhooks directly).
    Lookup,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub env: Environment,
    pub listen_addr: String,
    /// `postgres://…` or `sqlite://path`. None = embedded SQLite file `coursepay.db`.
    pub database_url: Option<String>,
    /// None = mount the sandbox and point the client at it.
    pub toss_api_base: Option<String>,
    pub toss_secret_key: SecretString,
    pub toss_client_key: String,
    pub webhook_secret: SecretString,
    pub webhook_secret_previous: Option<SecretString>,
    /// When WEBHOOK_SECRET was last rotated, if the operator records it
    /// (WEBHOOK_SECRET_ROTATED_AT): the preflight warns when it is over a quarter old.
    pub webhook_secret_rotated_at: Option<time::OffsetDateTime>,
    pub webhook_verify: WebhookVerify,
    pub jwt_secret: SecretString,
    pub cors_allowed_origins: Vec<String>,
    pub public_base_url: Option<String>,
    /// The Supabase project URL (`SUPABASE_URL`): the storefront's sign-in talks to it, so the
    /// page's Content-Security-Policy allows it.
    pub supabase_url: Option<String>,
    /// How long an order can wait for its confirm (the Toss payment window lives 30 minutes).
    pub order_ttl: Duration,
    pub toss_timeout: Duration,
    pub reconcile_interval: Duration,
    /// `SERVER_CONFIRM_GRACE_SECONDS`: how long after checkout only the buyer (a confirm, or the
    /// buyer's own order read) may charge an order; the reconciler and webhooks confirm at Toss
    /// after that.
    pub server_confirm_grace: Duration,
    /// Exam attempts a buyer may start per course (enrollment).
    pub exam_max_attempts: u32,
    /// Slack-compatible incoming webhook for alert transitions. A credential (the URL carries
    /// the token), so it is kept secret.
    pub alert_webhook_url: Option<SecretString>,
    /// Toss's security key for its signed payout/seller webhooks (None: such deliveries are
    /// refused).
    pub toss_webhook_security_key: Option<SecretString>,
    /// More invalid webhook signatures than this from one IP within the window → 429.
    pub webhook_invalid_sig_limit: u32,
    pub webhook_invalid_sig_window: Duration,
    /// Peers whose `X-Forwarded-For` is believed (IPs or CIDRs). Empty: none.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Redis for the webhook replay guard when several instances run (None: the database).
    /// A secret because the URL may carry a password.
    pub redis_url: Option<SecretString>,
    /// How long the Toss circuit stays open before one probe is let through.
    pub circuit_cooldown: Duration,
    /// Requests per second and burst per (client IP, user) on most routes; None = no limit.
    pub rate_limit: Option<RateLimit>,
    /// The stricter limit of checkout and confirm; None = no limit.
    pub rate_limit_confirm: Option<RateLimit>,
    /// `ALERT_TIME_SCALE`: divides the in-process alert rules' windows and evaluation interval
    /// (1 = the real rules; a divisor of 60; development only), so a test or a demo can watch
    /// an alert fire and resolve in seconds.
    pub alert_time_scale: u32,
    /// Supabase signing keys, secret API key, previous JWT secret (crate::auth).
    pub auth: crate::auth::AuthSettings,
    /// Schema, pool, statement timeout, AUTO_MIGRATE (crate::database).
    pub database: crate::database::DatabaseSettings,
    /// Connection and request limits, shutdown, abuse caps and retention ([`EdgeLimits`]).
    pub edge: EdgeLimits,
}

/// A GCRA limit: `per_second` sustained, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

fn env_u32(
    get: &dyn Fn(&str) -> Option<String>,
    name: &str,
    default: u32,
) -> Result<u32, ConfigError> {
    match env_opt(get, name) {
        None => Ok(default),
        Some(v) => v
            .parse::<u32>()
            .map_err(|_| ConfigError(format!("{name} must be a whole number"))),
    }
}

/// A limit from `<prefix>_PER_SECOND` / `<prefix>_BURST`; 0 per second disables it.
fn env_limit(
    get: &dyn Fn(&str) -> Option<String>,
    per_second: &str,
    burst: &str,
    defaults: (u32, u32),
) -> Result<Option<RateLimit>, ConfigError> {
    let per_second = env_u32(get, per_second, defaults.0)?;
    let burst = env_u32(get, burst, defaults.1.max(per_second))?;
    Ok((per_second > 0).then_some(RateLimit {
        per_second,
        burst: burst.max(1),
    }))
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

fn env_opt(get: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    get(name)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn env_secs(
    get: &dyn Fn(&str) -> Option<String>,
    name: &str,
    default: u64,
) -> Result<Duration, ConfigError> {
    match env_opt(get, name) {
        None => Ok(Duration::from_secs(default)),
        Some(v) => v
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| ConfigError(format!("{name} must be a whole number of seconds"))),
    }
}

/// `2026-01-31` (midnight UTC) or an RFC 3339 time.
fn parse_date(v: &str) -> Option<time::OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::parse(v, &Rfc3339).ok().or_else(|| {
        let fmt = time::macros::format_description!("[year]-[month]-[day]");
        time::Date::parse(v, &fmt)
            .ok()
            .map(|d| d.midnight().assume_utc())
    })
}

/// `COURSEPAY_ENV`: development unless it says production.
fn environment(get: &dyn Fn(&str) -> Option<String>) -> Result<Environment, ConfigError> {
    match env_opt(get, "COURSEPAY_ENV").as_deref() {
        None | Some("development") | Some("dev") => Ok(Environment::Development),
        Some("production") | Some("prod") => Ok(Environment::Production),
        Some(_) => Err(ConfigError(
            "COURSEPAY_ENV must be development or production".into(),
        )),
    }
}

fn check_webhook_secrets(
    current: &Option<String>,
    previous: &Option<String>,
    problems: &mut Vec<String>,
) {
    for (name, value) in [
        ("WEBHOOK_SECRET", current),
        ("WEBHOOK_SECRET_PREVIOUS", previous),
    ] {
        if value.as_ref().is_some_and(|s| s.len() < MIN_SECRET_BYTES) {
            problems.push(format!("{name} must be at least {MIN_SECRET_BYTES} bytes"));
        }
    }
}

fn server_confirm_grace(
    get: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) -> Result<Duration, ConfigError> {
    let grace = env_secs(get, "SERVER_CONFIRM_GRACE_SECONDS", 120)?;
    // Toss keeps an authenticated payment confirmable for 10 minutes: a longer grace would
    // leave a tab-closed buyer's payment to expire uncharged.
    if grace >= crate::settle::CONFIRM_WINDOW {
        problems.push("SERVER_CONFIRM_GRACE_SECONDS must be under 600".to_owned());
    }
    Ok(grace)
}

impl Config {
    /// Read from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&|k| std::env::var(k).ok())
    }

    /// Read through `get` (tests pass a map). In production every missing or development
    /// value is an error; the message names the variable, never its value.
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = environment(get)?;
        let prod = env == Environment::Production;
        let mut problems = Vec::new();

        if prod {
            problems.extend(production_problems(get));
        }
        let database_url = env_opt(get, "DATABASE_URL");
        let toss_api_base = env_opt(get, "TOSS_API_BASE");
        let toss_secret_key = env_opt(get, "TOSS_SECRET_KEY");
        let toss_client_key = env_opt(get, "TOSS_CLIENT_KEY");
        check_live_keys(prod, &toss_secret_key, &toss_client_key, &mut problems);
        let webhook_secret = env_opt(get, "WEBHOOK_SECRET");
        let webhook_secret_previous = env_opt(get, "WEBHOOK_SECRET_PREVIOUS");
        let webhook_secret_rotated_at = rotated_at(get, &mut problems);
        check_webhook_secrets(&webhook_secret, &webhook_secret_previous, &mut problems);
        let webhook_verify = webhook_verify(get, &mut problems);
        let jwt_secret = env_opt(get, "JWT_SECRET").or_else(|| env_opt(get, "SUPABASE_JWT_SECRET"));
        let mut auth = crate::auth::AuthSettings::from_lookup(get, prod, &mut problems);
        let database = crate::database::DatabaseSettings::from_lookup(get, &mut problems);
        // With the project's signing keys (JWKS) the legacy secret is optional; without it no
        // HS256 token is accepted (never the public development secret).
        auth.hs256_disabled = prod && jwt_secret.is_none();
        let cors_allowed_origins = cors_origins(get, prod, &mut problems);
        let order_ttl = env_secs(get, "ORDER_TTL_SECONDS", 30 * 60)?;
        let toss_timeout = env_secs(get, "TOSS_TIMEOUT_SECONDS", 10)?;
        let reconcile_interval = env_secs(get, "RECONCILE_INTERVAL_SECONDS", 30)?;
        let server_confirm_grace = server_confirm_grace(get, &mut problems)?;
        let exam_max_attempts = exam_max_attempts(get)?;
        let (webhook_invalid_sig_limit, webhook_invalid_sig_window) =
            invalid_sig_limit(get, &mut problems)?;
        let trusted_proxies = trusted_proxies(get, &mut problems);
        let redis_url = redis_url(get, &mut problems);
        let circuit_cooldown = env_secs(get, "CIRCUIT_COOLDOWN_SECONDS", 30)?;
        let rate_limit = env_limit(get, "RATE_LIMIT_PER_SECOND", "RATE_LIMIT_BURST", (20, 40))?;
        let rate_limit_confirm = env_limit(
            get,
            "RATE_LIMIT_CONFIRM_PER_SECOND",
            "RATE_LIMIT_CONFIRM_BURST",
            (5, 10),
        )?;

        let alert_time_scale = alert_time_scale(get, prod, &mut problems)?;
        let edge = EdgeLimits::from_lookup(get, &mut problems)?;

        if !problems.is_empty() {
            return Err(ConfigError(problems.join("; ")));
        }
        Ok(Config {
            env,
            listen_addr: env_opt(get, "LISTEN_ADDR").unwrap_or_else(|| "127.0.0.1:8080".into()),
            database_url,
            toss_api_base,
            toss_secret_key: SecretString::from(
                toss_secret_key.unwrap_or_else(|| DEV_TOSS_SECRET_KEY.into()),
            ),
            toss_client_key: toss_client_key.unwrap_or_else(|| DEV_TOSS_CLIENT_KEY.into()),
            webhook_secret: SecretString::from(
                webhook_secret.unwrap_or_else(|| DEV_WEBHOOK_SECRET.into()),
            ),
            webhook_secret_previous: webhook_secret_previous.map(SecretString::from),
            webhook_secret_rotated_at,
            webhook_verify,
            jwt_secret: SecretString::from(jwt_secret.unwrap_or_else(|| DEV_JWT_SECRET.into())),
            cors_allowed_origins,
            public_base_url: env_opt(get, "PUBLIC_BASE_URL"),
            supabase_url: env_opt(get, "SUPABASE_URL"),
            order_ttl,
            toss_timeout,
            reconcile_interval,
            server_confirm_grace,
            exam_max_attempts,
            alert_webhook_url: env_opt(get, "ALERT_WEBHOOK_URL").map(SecretString::from),
            toss_webhook_security_key: env_opt(get, "TOSS_WEBHOOK_SECURITY_KEY")
                .map(SecretString::from),
            webhook_invalid_sig_limit,
            webhook_invalid_sig_window,
            trusted_proxies,
            redis_url: redis_url.map(SecretString::from),
            circuit_cooldown,
            rate_limit,
            rate_limit_confirm,
            alert_time_scale,
            auth,
            database,
            edge,
        })
    }

    /// A development configuration for tests and tools: the empty environment, except that
    /// rate limits are off (test harnesses send many requests from 127.0.0.1; a test that
    /// wants limits sets them). `coursepay serve` reads the environment and keeps the limits.
    pub fn development() -> Self {
        // The empty environment is always a valid development configuration.
        #[allow(clippy::expect_used)]
        let mut c =
            Self::from_lookup(&|_| None).expect("empty environment is valid in development");
        c.rate_limit = None;
        c.rate_limit_confirm = None;
        c
    }

    pub fn uses_sandbox(&self) -> bool {
        self.toss_api_base.is_none()
    }

    /// Every secret this configuration holds, for tests that assert none reaches a log.
    pub fn secrets(&self) -> Vec<String> {
        let mut v = vec![
            self.toss_secret_key.expose_secret().to_owned(),
            self.webhook_secret.expose_secret().to_owned(),
            self.jwt_secret.expose_secret().to_owned(),
        ];
        if let Some(p) = &self.webhook_secret_previous {
            v.push(p.expose_secret().to_owned());
        }
        if let Some(u) = &self.alert_webhook_url {
            v.push(u.expose_secret().to_owned());
        }
        if let Some(r) = &self.redis_url {
            v.push(r.expose_secret().to_owned());
        }
        if let Some(k) = &self.toss_webhook_security_key {
            v.push(k.expose_secret().to_owned());
        }
        v.extend(self.auth.secrets());
        v
    }
}

// --- Production requirements, edge limits, shutdown, abuse caps, retention -------------------

/// The shortest secret accepted for HMAC keys (webhooks, HS256 tokens): 256 bits, so offline
/// brute force of a captured signature or token is out of reach.
pub const MIN_SECRET_BYTES: usize = 32;

/// How configuration is read: a variable's value, if set.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// One thing production insists on: the variable, what it must hold, and the check.
pub struct ProductionRequirement {
    pub variable: &'static str,
    /// Completes "`variable` …": what the operator must set.
    pub requirement: &'static str,
    check: fn(Lookup<'_>) -> bool,
}

/// Every refusal of `COURSEPAY_ENV=production`, in one table: [`Config::from_lookup`] checks
/// exactly these, and the README's production list is this table.
pub fn production_requirements() -> &'static [ProductionRequirement] {
    PRODUCTION_REQUIREMENTS
}

const PRODUCTION_REQUIREMENTS: &[ProductionRequirement] = &[
    ProductionRequirement {
        variable: "DATABASE_URL",
        requirement: "must point to PostgreSQL (postgres://…)",
        check: |get| env_opt(get, "DATABASE_URL").is_some_and(|u| u.starts_with("postgres")),
    },
    ProductionRequirement {
        variable: "TOSS_API_BASE",
        requirement: "must be set to Toss's https:// API base (the built-in sandbox is refused)",
        check: |get| {
            env_opt(get, "TOSS_API_BASE").is_some_and(|b| {
                b.strip_prefix("https://")
                    .is_some_and(|rest| !rest.is_empty())
                    && !b.contains("sandbox")
            })
        },
    },
    ProductionRequirement {
        variable: "TOSS_SECRET_KEY",
        requirement: "must be a live_sk_ key",
        check: |get| env_opt(get, "TOSS_SECRET_KEY").is_some_and(|k| k.starts_with("live_sk_")),
    },
    ProductionRequirement {
        variable: "TOSS_CLIENT_KEY",
        requirement: "must be a live_ck_ key (the storefront's half of the live key pair)",
        check: |get| env_opt(get, "TOSS_CLIENT_KEY").is_some_and(|k| k.starts_with("live_ck_")),
    },
    ProductionRequirement {
        variable: "WEBHOOK_SECRET",
        requirement: "must be set, at least 32 bytes, and not the built-in development secret",
        check: |get| env_opt(get, "WEBHOOK_SECRET").is_some_and(|s| strong_secret(&s)),
    },
    ProductionRequirement {
        variable: "WEBHOOK_SECRET_PREVIOUS",
        requirement: "when set, at least 32 bytes and not a built-in development secret",
        check: |get| env_opt(get, "WEBHOOK_SECRET_PREVIOUS").is_none_or(|s| strong_secret(&s)),
    },
    ProductionRequirement {
        variable: "JWT_SECRET",
        requirement: "(or SUPABASE_JWT_SECRET) must be at least 32 bytes and not the built-in development secret; it may be unset only when SUPABASE_URL or SUPABASE_JWKS_URL names the project's signing keys (then no HS256 token is accepted)",
        check: |get| match env_opt(get, "JWT_SECRET")
            .or_else(|| env_opt(get, "SUPABASE_JWT_SECRET"))
        {
            Some(s) => strong_secret(&s),
            None => {
                env_opt(get, "SUPABASE_URL").is_some()
                    || env_opt(get, "SUPABASE_JWKS_URL").is_some()
            }
        },
    },
    ProductionRequirement {
        variable: "JWT_SECRET_PREVIOUS",
        requirement: "when set, at least 32 bytes and not a built-in development secret",
        check: |get| env_opt(get, "JWT_SECRET_PREVIOUS").is_none_or(|s| strong_secret(&s)),
    },
    ProductionRequirement {
        variable: "CORS_ALLOWED_ORIGINS",
        requirement: "must list the storefront's origins, each scheme://host[:port] (no *, no path)",
        check: |get| {
            env_opt(get, "CORS_ALLOWED_ORIGINS").is_some_and(|v| {
                let origins = split_origins(&v);
                !origins.is_empty() && origins.iter().all(|o| valid_origin(o))
            })
        },
    },
];

/// The refusals of production for this environment, each naming its variable and never its
/// value.
fn production_problems(get: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    PRODUCTION_REQUIREMENTS
        .iter()
        .filter(|r| !(r.check)(get))
        .map(|r| format!("{} {} in production", r.variable, r.requirement))
        .collect()
}

/// Long enough and none of the secrets published in this repository.
fn strong_secret(s: &str) -> bool {
    s.len() >= MIN_SECRET_BYTES
        && ![DEV_JWT_SECRET, DEV_WEBHOOK_SECRET, DEV_TOSS_SECRET_KEY].contains(&s)
}

fn split_origins(v: &str) -> Vec<String> {
    v.split(',')
        .map(|o| o.trim().trim_end_matches('/').to_owned())
        .filter(|o| !o.is_empty())
        .collect()
}

/// A browser origin: `http(s)://host[:port]`, nothing before or after (a path, a wildcard or a
/// missing scheme never matches what a browser sends, so it is a typo).
pub fn valid_origin(o: &str) -> bool {
    let Some(rest) = o
        .strip_prefix("https://")
        .or_else(|| o.strip_prefix("http://"))
    else {
        return false;
    };
    // The port is after the last ':' unless that ':' is inside an [IPv6] literal.
    let (host, port) = match rest.rfind(':') {
        Some(i) if !rest[i..].contains(']') => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    };
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => {
            !host.is_empty()
                && host.split('.').all(|label| {
                    !label.is_empty()
                        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                })
        }
    };
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    host_ok && port_ok
}

/// Limits at the edge (connections, requests), the shutdown grace, abuse caps and retention:
/// the settings that make the service safe to expose. All have safe defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgeLimits {
    /// A client must send a request's headers within this; a half-open connection is closed.
    pub header_read_timeout: Duration,
    /// A request that takes longer is answered 503 `E_REQUEST_TIMEOUT` (a confirm's work goes on
    /// in its own task and settles the order anyway).
    pub request_timeout: Duration,
    /// An idle keep-alive connection (no request in flight) is closed after this.
    pub keepalive_timeout: Duration,
    /// Connections served at once; further ones wait in the kernel's accept queue.
    pub max_connections: usize,
    /// After SIGTERM/SIGINT, how long in-flight requests may take before the process exits.
    pub shutdown_grace: Duration,
    /// After SIGTERM/SIGINT, how long new connections are still accepted while `/readyz` says
    /// 503, so a load balancer notices before the port closes (0: stop accepting at once).
    pub drain_delay: Duration,
    /// Unpaid (PENDING, not expired) orders one user may hold; 0 = no limit.
    pub max_open_orders_per_user: u32,
    /// Orders one reconciler pass looks up at Toss at most.
    pub reconcile_budget: u32,
    /// How often expired idempotency keys and one-time tokens are purged.
    pub purge_interval: Duration,
}

impl Default for EdgeLimits {
    fn default() -> Self {
        EdgeLimits {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(60),
            max_connections: 1024,
            shutdown_grace: Duration::from_secs(30),
            drain_delay: Duration::ZERO,
            max_open_orders_per_user: 10,
            reconcile_budget: 50,
            purge_interval: Duration::from_secs(300),
        }
    }
}

impl EdgeLimits {
    fn from_lookup(
        get: &dyn Fn(&str) -> Option<String>,
        problems: &mut Vec<String>,
    ) -> Result<Self, ConfigError> {
        let d = EdgeLimits::default();
        let mut positive_secs = |name: &str, default: Duration| -> Result<Duration, ConfigError> {
            let v = env_secs(get, name, default.as_secs())?;
            if v.is_zero() {
                problems.push(format!("{name} must be at least 1"));
            }
            Ok(v)
        };
        let header_read_timeout =
            positive_secs("HTTP_HEADER_READ_TIMEOUT_SECONDS", d.header_read_timeout)?;
        let request_timeout = positive_secs("HTTP_REQUEST_TIMEOUT_SECONDS", d.request_timeout)?;
        let keepalive_timeout =
            positive_secs("HTTP_KEEPALIVE_TIMEOUT_SECONDS", d.keepalive_timeout)?;
        let shutdown_grace = positive_secs("SHUTDOWN_GRACE_SECONDS", d.shutdown_grace)?;
        let purge_interval = positive_secs("PURGE_INTERVAL_SECONDS", d.purge_interval)?;
        let drain_delay = env_secs(get, "SHUTDOWN_DRAIN_SECONDS", d.drain_delay.as_secs())?;
        let max_connections = env_u32(get, "HTTP_MAX_CONNECTIONS", d.max_connections as u32)?;
        let reconcile_budget = env_u32(get, "RECONCILE_BUDGET", d.reconcile_budget)?;
        for (name, v) in [
            ("HTTP_MAX_CONNECTIONS", max_connections),
            ("RECONCILE_BUDGET", reconcile_budget),
        ] {
            if v == 0 {
                problems.push(format!("{name} must be at least 1"));
            }
        }
        Ok(EdgeLimits {
            header_read_timeout,
            request_timeout,
            keepalive_timeout,
            max_connections: max_connections as usize,
            shutdown_grace,
            drain_delay,
            max_open_orders_per_user: env_u32(
                get,
                "MAX_OPEN_ORDERS_PER_USER",
                d.max_open_orders_per_user,
            )?,
            reconcile_budget,
            purge_interval,
        })
    }
}

/// The variables `--help` documents: (name, meaning).
pub const VARIABLES: &[(&str, &str)] = &[
    (
        "COURSEPAY_ENV",
        "development (default) or production; production refuses unsafe defaults",
    ),
    (
        "LISTEN_ADDR",
        "address to listen on (default 127.0.0.1:8080)",
    ),
    (
        "DATABASE_URL",
        "postgres://… (production) or sqlite://file (default: sqlite://coursepay.db)",
    ),
    (
        "TOSS_SECRET_KEY",
        "Toss secret key, test_sk_… or live_sk_… (required live_sk_ in production)",
    ),
    (
        "TOSS_CLIENT_KEY",
        "Toss client key handed to the storefront (VITE_TOSS_CLIENT_KEY)",
    ),
    (
        "TOSS_API_BASE",
        "Toss API base URL, e.g. https://api.tosspayments.com (unset: built-in sandbox)",
    ),
    (
        "WEBHOOK_SECRET",
        "HMAC-SHA256 key for X-Signature webhooks, ≥ 32 bytes",
    ),
    (
        "WEBHOOK_SECRET_PREVIOUS",
        "the previous webhook key, accepted during a rotation",
    ),
    (
        "WEBHOOK_SECRET_ROTATED_AT",
        "when WEBHOOK_SECRET was last rotated (2026-01-31); preflight warns after a quarter",
    ),
    (
        "WEBHOOK_VERIFY",
        "signature (default) or lookup (accept unsigned Toss deliveries, verified by lookup)",
    ),
    (
        "TOSS_WEBHOOK_SECURITY_KEY",
        "Toss's security key for its signed payout/seller webhooks (unset: refused)",
    ),
    (
        "WEBHOOK_INVALID_SIG_LIMIT",
        "invalid webhook signatures one IP may send per window before 429 (default 20)",
    ),
    (
        "WEBHOOK_INVALID_SIG_WINDOW_SECONDS",
        "the window of WEBHOOK_INVALID_SIG_LIMIT (default 600)",
    ),
    (
        "TRUSTED_PROXIES",
        "comma-separated proxy IPs/CIDRs whose X-Forwarded-For is believed (default none)",
    ),
    (
        "REDIS_URL",
        "redis://… for the webhook replay guard shared by instances (unset: the database)",
    ),
    (
        "JWT_SECRET",
        "HS256 secret of user/service tokens; SUPABASE_JWT_SECRET is accepted too",
    ),
    (
        "CORS_ALLOWED_ORIGINS",
        "comma-separated origins allowed to call the API from a browser",
    ),
    (
        "SUPABASE_URL",
        "Supabase project URL; the storefront's Content-Security-Policy allows it",
    ),
    (
        "PUBLIC_BASE_URL",
        "the URL this service is reached at (sandbox checkout links)",
    ),
    (
        "ORDER_TTL_SECONDS",
        "how long a checkout order stays payable (default 1800)",
    ),
    (
        "TOSS_TIMEOUT_SECONDS",
        "timeout of one Toss API call (default 10)",
    ),
    (
        "RECONCILE_INTERVAL_SECONDS",
        "how often open orders are settled with Toss (default 30)",
    ),
    (
        "SERVER_CONFIRM_GRACE_SECONDS",
        "how long after checkout only the buyer's own confirm charges; order reads and the reconciler confirm after (default 120)",
    ),
    (
        "EXAM_MAX_ATTEMPTS",
        "exam attempts a buyer may start per course (default 3)",
    ),
    (
        "ALERT_WEBHOOK_URL",
        "Slack-compatible webhook receiving alert firing/resolved messages (optional)",
    ),
    (
        "CIRCUIT_COOLDOWN_SECONDS",
        "after 5 consecutive Toss failures, how long confirms get 503 before a probe (default 30)",
    ),
    (
        "RATE_LIMIT_PER_SECOND",
        "requests per second per (client IP, user) on most routes (default 20; 0 = off)",
    ),
    (
        "RATE_LIMIT_BURST",
        "burst of the general rate limit (default 40)",
    ),
    (
        "RATE_LIMIT_CONFIRM_PER_SECOND",
        "the same for checkout and confirm (default 5; 0 = off)",
    ),
    (
        "RATE_LIMIT_CONFIRM_BURST",
        "burst of the checkout/confirm limit (default 10)",
    ),
    (
        "SLOW_QUERY_MS",
        "database calls slower than this are logged with their name (default 200)",
    ),
    // Supabase and least privilege (crate::auth, crate::database).
    (
        "SUPABASE_URL",
        "https://<ref>.supabase.co: tokens signed by its keys (JWKS) are accepted, iss checked",
    ),
    (
        "SUPABASE_JWKS_URL",
        "the signing keys' JWKS (default <SUPABASE_URL>/auth/v1/.well-known/jwks.json)",
    ),
    (
        "SUPABASE_SECRET_KEY",
        "a Supabase secret API key (sb_secret_…) accepted as an admin bearer credential",
    ),
    (
        "JWT_SECRET_PREVIOUS",
        "the previous HS256 secret, accepted during a rotation",
    ),
    (
        "DATABASE_SCHEMA",
        "PostgreSQL schema holding every coursepay object (default coursepay; never public)",
    ),
    (
        "AUTO_MIGRATE",
        "true (default): serve applies migrations; false: serve only checks them (DML-only role)",
    ),
    (
        "DATABASE_POOL_SIZE",
        "most PostgreSQL connections per instance (default 16)",
    ),
    (
        "DATABASE_STATEMENT_TIMEOUT_MS",
        "PostgreSQL statement_timeout of the service's connections (default 30000; 0 = none)",
    ),
    (
        "HTTP_HEADER_READ_TIMEOUT_SECONDS",
        "a client must send its request headers within this, or is disconnected (default 10)",
    ),
    (
        "HTTP_REQUEST_TIMEOUT_SECONDS",
        "longer requests are answered 503 E_REQUEST_TIMEOUT (default 60)",
    ),
    (
        "HTTP_KEEPALIVE_TIMEOUT_SECONDS",
        "idle keep-alive connections are closed after this (default 60)",
    ),
    (
        "HTTP_MAX_CONNECTIONS",
        "connections served at once; more wait to be accepted (default 1024)",
    ),
    (
        "SHUTDOWN_GRACE_SECONDS",
        "after SIGTERM/SIGINT, how long in-flight requests may finish (default 30)",
    ),
    (
        "SHUTDOWN_DRAIN_SECONDS",
        "after SIGTERM/SIGINT, keep accepting this long while /readyz says 503 (default 0)",
    ),
    (
        "MAX_OPEN_ORDERS_PER_USER",
        "unpaid orders one user may hold at once (default 10; 0 = no limit)",
    ),
    (
        "RECONCILE_BUDGET",
        "orders one reconciler pass looks up at Toss at most (default 50)",
    ),
    (
        "PURGE_INTERVAL_SECONDS",
        "how often expired idempotency keys and one-time tokens are deleted (default 300)",
    ),
];

/// A live secret key charges real cards: the storefront must then open Toss's live payment
/// window too, whatever the environment says (production's own table already names
/// TOSS_CLIENT_KEY).
fn check_live_keys(
    prod: bool,
    toss_secret_key: &Option<String>,
    toss_client_key: &Option<String>,
    problems: &mut Vec<String>,
) {
    if !prod
        && toss_secret_key
            .as_deref()
            .is_some_and(|k| k.starts_with("live_sk_"))
        && !toss_client_key
            .as_deref()
            .is_some_and(|k| k.starts_with("live_ck_"))
    {
        problems.push(
            "TOSS_CLIENT_KEY must be a live_ck_ key next to a live_sk_ TOSS_SECRET_KEY".to_owned(),
        );
    }
}

fn rotated_at(
    get: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) -> Option<time::OffsetDateTime> {
    env_opt(get, "WEBHOOK_SECRET_ROTATED_AT").and_then(|v| {
        parse_date(&v).or_else(|| {
            problems.push(
                "WEBHOOK_SECRET_ROTATED_AT must be a date (2026-01-31) or an RFC 3339 time"
                    .to_owned(),
            );
            None
        })
    })
}

fn cors_origins(
    get: &dyn Fn(&str) -> Option<String>,
    prod: bool,
    problems: &mut Vec<String>,
) -> Vec<String> {
    let origins: Vec<String> = env_opt(get, "CORS_ALLOWED_ORIGINS")
        .map(|v| split_origins(&v))
        .unwrap_or_else(|| {
            if prod {
                Vec::new()
            } else {
                vec![
                    "http://localhost:5173".to_owned(),
                    "http://127.0.0.1:5173".to_owned(),
                ]
            }
        });
    // "*" is a development convenience (production refuses it above).
    if !prod && origins.iter().any(|o| o != "*" && !valid_origin(o)) {
        problems.push("CORS_ALLOWED_ORIGINS must list origins as scheme://host[:port]".to_owned());
    }
    origins
}

fn exam_max_attempts(get: &dyn Fn(&str) -> Option<String>) -> Result<u32, ConfigError> {
    match env_opt(get, "EXAM_MAX_ATTEMPTS") {
        None => Ok(3),
        Some(v) => match v.parse::<u32>() {
            Ok(n) if (1..=1000).contains(&n) => Ok(n),
            _ => Err(ConfigError(
                "EXAM_MAX_ATTEMPTS must be a whole number from 1 to 1000".into(),
            )),
        },
    }
}

fn alert_time_scale(
    get: &dyn Fn(&str) -> Option<String>,
    prod: bool,
    problems: &mut Vec<String>,
) -> Result<u32, ConfigError> {
    let scale = env_u32(get, "ALERT_TIME_SCALE", 1)?;
    if !crate::ops::alerts::valid_time_scale(scale) {
        problems.push(
            "ALERT_TIME_SCALE must divide 60 (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30 or 60)"
                .to_owned(),
        );
    }
    if prod && scale != 1 {
        problems.push("ALERT_TIME_SCALE must be 1 in production".to_owned());
    }
    Ok(scale)
}

fn webhook_verify(
    get: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) -> WebhookVerify {
    match env_opt(get, "WEBHOOK_VERIFY").as_deref() {
        None | Some("signature") => WebhookVerify::Signature,
        Some("lookup") => WebhookVerify::Lookup,
        Some(_) => {
            problems.push("WEBHOOK_VERIFY must be signature or lookup".to_owned());
            WebhookVerify::Signature
        }
    }
}

/// How many invalid webhook signatures an IP may send, and in what window.
fn invalid_sig_limit(
    get: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) -> Result<(u32, Duration), ConfigError> {
    let limit = match env_opt(get, "WEBHOOK_INVALID_SIG_LIMIT") {
        None => 20,
        Some(v) => v
            .parse::<u32>()
            .map_err(|_| ConfigError("WEBHOOK_INVALID_SIG_LIMIT must be a whole number".into()))?,
    };
    let window = env_secs(get, "WEBHOOK_INVALID_SIG_WINDOW_SECONDS", 600)?;
    if window.is_zero() {
        problems.push("WEBHOOK_INVALID_SIG_WINDOW_SECONDS must be at least 1".to_owned());
    }
    Ok((limit, window))
}

fn redis_url(get: &dyn Fn(&str) -> Option<String>, problems: &mut Vec<String>) -> Option<String> {
    let url = env_opt(get, "REDIS_URL");
    if let Some(u) = &url
        && !(u.starts_with("redis://") || u.starts_with("rediss://"))
    {
        problems.push("REDIS_URL must start with redis:// or rediss://".to_owned());
    }
    url
}

fn trusted_proxies(
    get: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) -> Vec<ipnet::IpNet> {
    match env_opt(get, "TRUSTED_PROXIES") {
        None => Vec::new(),
        Some(v) => parse_trusted(&v).unwrap_or_else(|e| {
            problems.push(e);
            Vec::new()
        }),
    }
}

/// Parse `TRUSTED_PROXIES`: comma-separated IPs or CIDRs.
pub fn parse_trusted(value: &str) -> Result<Vec<ipnet::IpNet>, String> {
    use ipnet::IpNet;
    use std::net::IpAddr;
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("TRUSTED_PROXIES: {s:?} is not an IP address or CIDR"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(&|k| map.get(k).cloned())
    }

    #[test]
    fn development_needs_nothing() {
        let c = cfg(&[]).unwrap();
        assert!(c.uses_sandbox());
        assert_eq!(c.env, Environment::Development);
    }

    #[test]
    fn production_refuses_defaults_without_printing_secrets() {
        let err = cfg(&[
            ("COURSEPAY_ENV", "production"),
            ("TOSS_SECRET_KEY", "test_sk_leakme"),
        ])
        .unwrap_err();
        for needle in [
            "DATABASE_URL",
            "TOSS_API_BASE",
            "live_sk_",
            "WEBHOOK_SECRET",
            "JWT_SECRET",
        ] {
            assert!(err.0.contains(needle), "{needle} missing from {}", err.0);
        }
        assert!(!err.0.contains("leakme"));
    }

    #[test]
    fn production_accepts_a_full_configuration() {
        let c = cfg(&[
            ("COURSEPAY_ENV", "production"),
            ("DATABASE_URL", "postgres://u@db/coursepay"),
            ("TOSS_API_BASE", "https://api.tosspayments.com"),
            ("TOSS_SECRET_KEY", "live_sk_abc"),
            ("TOSS_CLIENT_KEY", "live_ck_abc"),
            ("WEBHOOK_SECRET", "0123456789abcdef0123456789abcdef"),
            (
                "SUPABASE_JWT_SECRET",
                "super-secret-jwt-of-at-least-32-bytes",
            ),
            ("CORS_ALLOWED_ORIGINS", "https://shop.example.com/"),
        ])
        .unwrap();
        assert_eq!(c.cors_allowed_origins, vec!["https://shop.example.com"]);
        assert!(!format!("{c:?}").contains("super-secret-jwt"));
        assert_eq!(c.edge, EdgeLimits::default());
    }

    #[test]
    fn exam_max_attempts_default_and_range() {
        assert_eq!(cfg(&[]).unwrap().exam_max_attempts, 3);
        assert_eq!(
            cfg(&[("EXAM_MAX_ATTEMPTS", "5")])
                .unwrap()
                .exam_max_attempts,
            5
        );
        for bad in ["0", "-1", "three", "1001"] {
            let err = cfg(&[("EXAM_MAX_ATTEMPTS", bad)]).unwrap_err();
            assert!(err.0.contains("EXAM_MAX_ATTEMPTS"), "{bad}: {}", err.0);
        }
    }

    #[test]
    fn webhook_defenses_defaults_and_refusals() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.webhook_invalid_sig_limit, 20);
        assert_eq!(c.webhook_invalid_sig_window, Duration::from_secs(600));
        assert!(c.trusted_proxies.is_empty() && c.redis_url.is_none());
        assert!(c.toss_webhook_security_key.is_none());
        let c = cfg(&[
            ("WEBHOOK_INVALID_SIG_LIMIT", "5"),
            ("WEBHOOK_INVALID_SIG_WINDOW_SECONDS", "30"),
            ("TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.1"),
            ("REDIS_URL", "redis://:pw-leak@127.0.0.1:6379"),
            ("TOSS_WEBHOOK_SECURITY_KEY", "toss-key-leak"),
        ])
        .unwrap();
        assert_eq!(c.webhook_invalid_sig_limit, 5);
        assert_eq!(c.trusted_proxies.len(), 2);
        let debug = format!("{c:?}");
        assert!(!debug.contains("pw-leak") && !debug.contains("toss-key-leak"));
        assert!(c.secrets().contains(&"toss-key-leak".to_owned()));
        for bad in [
            ("WEBHOOK_INVALID_SIG_LIMIT", "many"),
            ("WEBHOOK_INVALID_SIG_WINDOW_SECONDS", "0"),
            ("TRUSTED_PROXIES", "10.0.0.0/8,proxy.example"),
            ("REDIS_URL", "http://127.0.0.1:6379"),
        ] {
            let err = cfg(&[bad]).unwrap_err();
            assert!(err.0.contains(bad.0), "{}", err.0);
        }
    }

    #[test]
    fn resilience_settings() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.circuit_cooldown, Duration::from_secs(30));
        assert_eq!(
            c.rate_limit,
            Some(RateLimit {
                per_second: 20,
                burst: 40
            })
        );
        assert_eq!(
            c.rate_limit_confirm,
            Some(RateLimit {
                per_second: 5,
                burst: 10
            })
        );
        assert!(c.trusted_proxies.is_empty());
        assert_eq!(
            Config::development().rate_limit,
            None,
            "tests run unlimited"
        );

        let c = cfg(&[
            ("RATE_LIMIT_PER_SECOND", "0"),
            ("RATE_LIMIT_CONFIRM_PER_SECOND", "2"),
            ("RATE_LIMIT_CONFIRM_BURST", "3"),
            ("TRUSTED_PROXIES", "10.0.0.1, ::1"),
            ("CIRCUIT_COOLDOWN_SECONDS", "5"),
        ])
        .unwrap();
        assert_eq!(c.rate_limit, None);
        assert_eq!(
            c.rate_limit_confirm,
            Some(RateLimit {
                per_second: 2,
                burst: 3
            })
        );
        assert_eq!(c.trusted_proxies.len(), 2);
        assert_eq!(c.circuit_cooldown, Duration::from_secs(5));

        let err = cfg(&[("TRUSTED_PROXIES", "10.0.0.1,proxy.local")]).unwrap_err();
        assert!(err.0.contains("TRUSTED_PROXIES"), "{}", err.0);
        assert!(cfg(&[("RATE_LIMIT_BURST", "many")]).is_err());
    }

    #[test]
    fn short_webhook_secret_and_wildcard_cors_refused() {
        assert!(cfg(&[("WEBHOOK_SECRET", "short")]).is_err());
        let err = cfg(&[
            ("COURSEPAY_ENV", "production"),
            ("DATABASE_URL", "postgres://u@db/c"),
            ("TOSS_API_BASE", "https://api.tosspayments.com"),
            ("TOSS_SECRET_KEY", "live_sk_abc"),
            ("WEBHOOK_SECRET", "0123456789abcdef0123456789abcdef"),
            ("JWT_SECRET", "x"),
            ("CORS_ALLOWED_ORIGINS", "*"),
        ])
        .unwrap_err();
        assert!(err.0.contains("CORS"));
    }
    /// A production environment that passes every requirement; tests break one at a time.
    const GOOD_PRODUCTION: &[(&str, &str)] = &[
        ("COURSEPAY_ENV", "production"),
        ("DATABASE_URL", "postgres://u@db/coursepay"),
        ("TOSS_API_BASE", "https://api.tosspayments.com"),
        ("TOSS_SECRET_KEY", "live_sk_secretvalue"),
        ("TOSS_CLIENT_KEY", "live_ck_clientvalue"),
        ("WEBHOOK_SECRET", "webhook-secret-value-0123456789abcdef"),
        ("JWT_SECRET", "jwt-secret-value-0123456789abcdef0123"),
        ("CORS_ALLOWED_ORIGINS", "https://shop.example.com"),
    ];

    fn production_with(over: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut vars: Vec<(&str, &str)> = GOOD_PRODUCTION
            .iter()
            .filter(|(k, _)| !over.iter().any(|(o, _)| o == k))
            .copied()
            .collect();
        vars.extend(over.iter().filter(|(_, v)| !v.is_empty()));
        cfg(&vars)
    }

    #[test]
    fn every_production_requirement_refuses_by_name_never_by_value() {
        assert!(production_with(&[]).is_ok());
        // One violation per requirement of the table, with a value that must not be echoed.
        let cases: &[(&str, &str)] = &[
            ("DATABASE_URL", "sqlite://leak-db"),
            ("TOSS_API_BASE", "http://api.tosspayments.com/leak"),
            ("TOSS_SECRET_KEY", "test_sk_leakvalue"),
            ("TOSS_CLIENT_KEY", "test_ck_leakvalue"),
            ("WEBHOOK_SECRET", "short-leak"),
            ("WEBHOOK_SECRET_PREVIOUS", "short-leak-previous"),
            ("JWT_SECRET", "short-leak-jwt"),
            ("JWT_SECRET_PREVIOUS", "short-leak-jwt-previous"),
            ("CORS_ALLOWED_ORIGINS", "shop.example.com"),
        ];
        let names: Vec<&str> = production_requirements()
            .iter()
            .map(|r| r.variable)
            .collect();
        assert_eq!(names, cases.iter().map(|c| c.0).collect::<Vec<_>>());
        for (name, bad) in cases {
            let err = production_with(&[(name, bad)]).unwrap_err();
            assert!(err.0.contains(&format!("{name} ")), "{name}: {}", err.0);
            assert!(!err.0.contains(bad), "{name} echoed its value: {}", err.0);
        }
        // Missing counts as well, except for the optional previous secrets.
        for r in production_requirements() {
            let res = production_with(&[(r.variable, "")]);
            assert_eq!(
                res.is_ok(),
                r.variable.ends_with("_PREVIOUS"),
                "{}",
                r.variable
            );
        }
    }

    #[test]
    fn production_refuses_development_secrets_and_weak_previous_ones() {
        for (name, dev) in [
            ("WEBHOOK_SECRET", DEV_WEBHOOK_SECRET),
            ("WEBHOOK_SECRET_PREVIOUS", DEV_WEBHOOK_SECRET),
            ("JWT_SECRET", DEV_JWT_SECRET),
        ] {
            let err = production_with(&[(name, dev)]).unwrap_err();
            assert!(err.0.contains(name), "{name}: {}", err.0);
            assert!(!err.0.contains(dev));
        }
        // SUPABASE_JWT_SECRET is held to the same rule when JWT_SECRET is absent.
        let err = production_with(&[("JWT_SECRET", ""), ("SUPABASE_JWT_SECRET", "too-short")])
            .unwrap_err();
        assert!(err.0.contains("JWT_SECRET"), "{}", err.0);
        // The previous webhook secret is checked like the current one in every environment.
        let err = cfg(&[("WEBHOOK_SECRET_PREVIOUS", "short")]).unwrap_err();
        assert!(err.0.contains("WEBHOOK_SECRET_PREVIOUS"), "{}", err.0);
    }

    #[test]
    fn a_live_secret_key_needs_a_live_client_key_everywhere() {
        for client in [None, Some("test_ck_abc")] {
            let mut vars = vec![("TOSS_SECRET_KEY", "live_sk_abc")];
            if let Some(c) = client {
                vars.push(("TOSS_CLIENT_KEY", c));
            }
            let err = cfg(&vars).unwrap_err();
            assert!(err.0.contains("TOSS_CLIENT_KEY"), "{}", err.0);
        }
        assert!(
            cfg(&[
                ("TOSS_SECRET_KEY", "live_sk_abc"),
                ("TOSS_CLIENT_KEY", "live_ck_abc")
            ])
            .is_ok()
        );
    }

    #[test]
    fn origins_must_be_scheme_host_port() {
        for ok in [
            "https://shop.example.com",
            "http://localhost:5173",
            "https://[::1]:8443",
            "http://127.0.0.1",
        ] {
            assert!(valid_origin(ok), "{ok}");
        }
        for bad in [
            "shop.example.com",
            "*",
            "https://*.example.com",
            "https://shop.example.com/path",
            "ftp://shop.example.com",
            "https://",
            "https://shop..example.com",
            "https://shop.example.com:0",
            "https://shop.example.com:99999",
            "https://[nothex]:80",
        ] {
            assert!(!valid_origin(bad), "{bad}");
        }
        let err = production_with(&[(
            "CORS_ALLOWED_ORIGINS",
            "https://shop.example.com, https://*.example.com",
        )])
        .unwrap_err();
        assert!(err.0.contains("CORS_ALLOWED_ORIGINS"));
        assert!(cfg(&[("CORS_ALLOWED_ORIGINS", "localhost:5173")]).is_err());
        assert!(
            cfg(&[("CORS_ALLOWED_ORIGINS", "*")]).is_ok(),
            "development may say *"
        );
    }

    #[test]
    fn edge_limits_defaults_overrides_and_refusals() {
        let d = cfg(&[]).unwrap().edge;
        assert_eq!(d.header_read_timeout, Duration::from_secs(10));
        assert_eq!(d.max_connections, 1024);
        assert_eq!(d.max_open_orders_per_user, 10);
        let c = cfg(&[
            ("HTTP_HEADER_READ_TIMEOUT_SECONDS", "2"),
            ("HTTP_REQUEST_TIMEOUT_SECONDS", "5"),
            ("HTTP_KEEPALIVE_TIMEOUT_SECONDS", "7"),
            ("HTTP_MAX_CONNECTIONS", "64"),
            ("SHUTDOWN_GRACE_SECONDS", "3"),
            ("SHUTDOWN_DRAIN_SECONDS", "4"),
            ("MAX_OPEN_ORDERS_PER_USER", "0"),
            ("RECONCILE_BUDGET", "9"),
            ("PURGE_INTERVAL_SECONDS", "11"),
        ])
        .unwrap()
        .edge;
        assert_eq!(
            c,
            EdgeLimits {
                header_read_timeout: Duration::from_secs(2),
                request_timeout: Duration::from_secs(5),
                keepalive_timeout: Duration::from_secs(7),
                max_connections: 64,
                shutdown_grace: Duration::from_secs(3),
                drain_delay: Duration::from_secs(4),
                max_open_orders_per_user: 0,
                reconcile_budget: 9,
                purge_interval: Duration::from_secs(11),
            }
        );
        for bad in [
            ("HTTP_HEADER_READ_TIMEOUT_SECONDS", "0"),
            ("HTTP_MAX_CONNECTIONS", "0"),
            ("RECONCILE_BUDGET", "0"),
            ("SHUTDOWN_GRACE_SECONDS", "soon"),
        ] {
            let err = cfg(&[bad]).unwrap_err();
            assert!(err.0.contains(bad.0), "{}", err.0);
        }
    }
}
