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
    pub webhook_verify: WebhookVerify,
    pub jwt_secret: SecretString,
    pub cors_allowed_origins: Vec<String>,
    pub public_base_url: Option<String>,
    /// How long an order can wait for its confirm (the Toss payment window lives 30 minutes).
    pub order_ttl: Duration,
    pub toss_timeout: Duration,
    pub reconcile_interval: Duration,
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

impl Config {
    /// Read from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&|k| std::env::var(k).ok())
    }

    /// Read through `get` (tests pass a map). In production every missing or development
    /// value is an error; the message names the variable, never its value.
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = match env_opt(get, "COURSEPAY_ENV").as_deref() {
            None | Some("development") | Some("dev") => Environment::Development,
            Some("production") | Some("prod") => Environment::Production,
            Some(_) => {
                return Err(ConfigError(
                    "COURSEPAY_ENV must be development or production".into(),
                ));
            }
        };
        let prod = env == Environment::Production;
        let mut problems = Vec::new();

        let database_url = env_opt(get, "DATABASE_URL");
        if prod
            && !database_url
                .as_deref()
                .is_some_and(|u| u.starts_with("postgres"))
        {
            problems.push("DATABASE_URL must point to PostgreSQL in production".to_owned());
        }
        let toss_api_base = env_opt(get, "TOSS_API_BASE");
        if prod && toss_api_base.is_none() {
            problems.push(
                "TOSS_API_BASE must be set in production (the sandbox is refused)".to_owned(),
            );
        }
        if prod
            && toss_api_base
                .as_deref()
                .is_some_and(|b| b.contains("sandbox"))
        {
            problems.push("TOSS_API_BASE points at a sandbox in production".to_owned());
        }
        let toss_secret_key = env_opt(get, "TOSS_SECRET_KEY");
        if prod
            && !toss_secret_key
                .as_deref()
                .is_some_and(|k| k.starts_with("live_sk_"))
        {
            problems.push("TOSS_SECRET_KEY must be a live_sk_ key in production".to_owned());
        }
        let webhook_secret = env_opt(get, "WEBHOOK_SECRET");
        if let Some(s) = &webhook_secret
            && s.len() < 32
        {
            problems.push("WEBHOOK_SECRET must be at least 32 bytes".to_owned());
        }
        if prod && webhook_secret.is_none() {
            problems.push("WEBHOOK_SECRET must be set in production".to_owned());
        }
        let webhook_secret_previous = env_opt(get, "WEBHOOK_SECRET_PREVIOUS");
        let webhook_verify = match env_opt(get, "WEBHOOK_VERIFY").as_deref() {
            None | Some("signature") => WebhookVerify::Signature,
            Some("lookup") => WebhookVerify::Lookup,
            Some(_) => {
                problems.push("WEBHOOK_VERIFY must be signature or lookup".to_owned());
                WebhookVerify::Signature
            }
        };
        let jwt_secret = env_opt(get, "JWT_SECRET").or_else(|| env_opt(get, "SUPABASE_JWT_SECRET"));
        if prod && jwt_secret.is_none() {
            problems
                .push("JWT_SECRET (or SUPABASE_JWT_SECRET) must be set in production".to_owned());
        }
        if prod && jwt_secret.as_deref() == Some(DEV_JWT_SECRET) {
            problems.push("JWT_SECRET is the public development secret".to_owned());
        }
        let cors_allowed_origins: Vec<String> = env_opt(get, "CORS_ALLOWED_ORIGINS")
            .map(|v| {
                v.split(',')
                    .map(|o| o.trim().trim_end_matches('/').to_owned())
                    .filter(|o| !o.is_empty())
                    .collect()
            })
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
        if prod && cors_allowed_origins.iter().any(|o| o == "*") {
            problems.push("CORS_ALLOWED_ORIGINS may not be * in production".to_owned());
        }
        let order_ttl = env_secs(get, "ORDER_TTL_SECONDS", 30 * 60)?;
        let toss_timeout = env_secs(get, "TOSS_TIMEOUT_SECONDS", 10)?;
        let reconcile_interval = env_secs(get, "RECONCILE_INTERVAL_SECONDS", 30)?;
        let exam_max_attempts = match env_opt(get, "EXAM_MAX_ATTEMPTS") {
            None => 3,
            Some(v) => match v.parse::<u32>() {
                Ok(n) if (1..=1000).contains(&n) => n,
                _ => {
                    return Err(ConfigError(
                        "EXAM_MAX_ATTEMPTS must be a whole number from 1 to 1000".into(),
                    ));
                }
            },
        };
        let webhook_invalid_sig_limit = match env_opt(get, "WEBHOOK_INVALID_SIG_LIMIT") {
            None => 20,
            Some(v) => v.parse::<u32>().map_err(|_| {
                ConfigError("WEBHOOK_INVALID_SIG_LIMIT must be a whole number".into())
            })?,
        };
        let webhook_invalid_sig_window = env_secs(get, "WEBHOOK_INVALID_SIG_WINDOW_SECONDS", 600)?;
        if webhook_invalid_sig_window.is_zero() {
            problems.push("WEBHOOK_INVALID_SIG_WINDOW_SECONDS must be at least 1".to_owned());
        }
        let trusted_proxies = match env_opt(get, "TRUSTED_PROXIES") {
            None => Vec::new(),
            Some(v) => crate::http::client_ip::parse_trusted(&v).unwrap_or_else(|e| {
                problems.push(e);
                Vec::new()
            }),
        };
        let redis_url = env_opt(get, "REDIS_URL");
        if let Some(u) = &redis_url
            && !(u.starts_with("redis://") || u.starts_with("rediss://"))
        {
            problems.push("REDIS_URL must start with redis:// or rediss://".to_owned());
        }
        let circuit_cooldown = env_secs(get, "CIRCUIT_COOLDOWN_SECONDS", 30)?;
        let rate_limit = env_limit(get, "RATE_LIMIT_PER_SECOND", "RATE_LIMIT_BURST", (20, 40))?;
        let rate_limit_confirm = env_limit(
            get,
            "RATE_LIMIT_CONFIRM_PER_SECOND",
            "RATE_LIMIT_CONFIRM_BURST",
            (5, 10),
        )?;

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
            toss_client_key: env_opt(get, "TOSS_CLIENT_KEY")
                .unwrap_or_else(|| DEV_TOSS_CLIENT_KEY.into()),
            webhook_secret: SecretString::from(
                webhook_secret.unwrap_or_else(|| DEV_WEBHOOK_SECRET.into()),
            ),
            webhook_secret_previous: webhook_secret_previous.map(SecretString::from),
            webhook_verify,
            jwt_secret: SecretString::from(jwt_secret.unwrap_or_else(|| DEV_JWT_SECRET.into())),
            cors_allowed_origins,
            public_base_url: env_opt(get, "PUBLIC_BASE_URL"),
            order_ttl,
            toss_timeout,
            reconcile_interval,
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
        v
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
];

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
            ("WEBHOOK_SECRET", "0123456789abcdef0123456789abcdef"),
            ("SUPABASE_JWT_SECRET", "super-secret-jwt"),
            ("CORS_ALLOWED_ORIGINS", "https://shop.example.com/"),
        ])
        .unwrap();
        assert_eq!(c.cors_allowed_origins, vec!["https://shop.example.com"]);
        assert!(!format!("{c:?}").contains("super-secret-jwt"));
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
}
