//! The `coursepay` binary: the only place concrete parts are wired together.
//!
//! - `serve`: the service (zero configuration: SQLite file + built-in Toss sandbox).
//! - `migrate`: apply database migrations.
//! - `sandbox`: the Toss sandbox alone.
//! - `token`: mint an admin or user JWT signed with the JWT secret (for development, and for an
//!   operator holding the production secret).
//! - `webhook sign|send`: sign a webhook body with WEBHOOK_SECRET, print or post it.
//! - `preflight`: check a running deployment against the production checklist.

mod preflight;
mod webhook;

use clap::{Parser, Subcommand};
use flows::config::{Config, Environment, VARIABLES};
use std::process::ExitCode;
use std::time::Duration;
use store::DynStore;

/// The service's whole variable table, for `serve --help`.
fn env_help() -> String {
    let mut s = String::from("Environment variables (all optional in development):\n");
    for (name, what) in VARIABLES {
        s.push_str(&format!("  {name:<28} {what}\n"));
    }
    s
}

/// The lines of [`VARIABLES`] for `names`: what another subcommand's `--help` lists.
fn env_subset(names: &[&str]) -> String {
    let mut s = String::from("Environment variables it reads:\n");
    for name in names {
        let what = VARIABLES
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, w)| *w);
        s.push_str(&format!("  {name:<28} {what}\n"));
    }
    s
}

fn migrate_help() -> String {
    env_subset(&["DATABASE_URL", "DATABASE_SCHEMA", "COURSEPAY_ENV"])
}

fn token_help() -> String {
    format!(
        "{}\nThe token is an HS256 JWT signed with JWT_SECRET (or SUPABASE_JWT_SECRET), the secret \
         the server verifies tokens with; in development both default to the same public \
         development secret. With COURSEPAY_ENV=production the secret must be set (the \
         development one is refused). Another way to get an admin token in production: \
         Supabase's service-role key (SUPABASE_SERVICE_ROLE_KEY) is such a token.",
        env_subset(&["COURSEPAY_ENV", "JWT_SECRET", "SUPABASE_URL"])
    )
}

fn webhook_help() -> String {
    "Environment variables it reads:\n  WEBHOOK_SECRET               the signing key (default; \
     --secret-env names another variable). At least 32 bytes, as the server requires; in \
     development it defaults to the server's development secret.\n"
        .to_owned()
}

#[derive(Parser)]
#[command(
    name = "coursepay",
    version = api::build::LONG_VERSION,
    about = "Payment confirmation and enrollment for course platforms selling through Toss Payments",
    after_help = "Each subcommand's --help lists the environment variables it reads; \
                  `coursepay serve --help` has the service's whole configuration."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service. Without configuration: SQLite file coursepay.db, the Toss sandbox at
    /// /toss-sandbox, a development JWT secret and a demo course.
    #[command(after_help = env_help())]
    Serve,
    /// Apply database migrations to DATABASE_URL (or the default SQLite file) and exit. Run it
    /// as the role that owns coursepay's schema; `serve` can then run with AUTO_MIGRATE=false as
    /// a role with DML rights only.
    #[command(after_help = migrate_help())]
    Migrate {
        /// Do not connect: write the PostgreSQL migrations as plain SQL (for a Supabase
        /// project's supabase/migrations/) to stdout, or one file each into --dir.
        #[arg(long)]
        print: bool,
        /// With --print: the directory to write the files into (created if missing).
        #[arg(long, requires = "print")]
        dir: Option<std::path::PathBuf>,
    },
    /// Run the Toss sandbox alone (a faithful fake of the Toss Payments API).
    #[command(
        after_help = "Environment variables it reads: the three above, and WEBHOOK_SECRET (signs \
                      the webhooks it delivers; unset: delivered unsigned)."
    )]
    Sandbox {
        /// Address to listen on (port 0: any free port; the address is printed).
        #[arg(long, default_value = "127.0.0.1:8090", env = "SANDBOX_LISTEN_ADDR")]
        listen: String,
        /// Deliver webhooks to this URL.
        #[arg(long, env = "SANDBOX_WEBHOOK_URL")]
        webhook_url: Option<String>,
        /// How long a `timeout` fault hangs before answering (fault tests set it just above
        /// the server's TOSS_TIMEOUT_SECONDS).
        #[arg(long, default_value_t = 30_000, env = "SANDBOX_TIMEOUT_HANG_MS")]
        timeout_hang_ms: u64,
        /// Toss's processing time before each API call is answered: "<p50>,<p95>" of a
        /// log-normal distribution (e.g. "300ms,1s"), one value for a fixed delay, or "off".
        #[arg(long, default_value = "off", env = "SANDBOX_LATENCY")]
        latency: String,
    },
    /// Print a bearer token for the API: an admin (service_role) or a user token, signed with
    /// JWT_SECRET.
    #[command(after_help = token_help())]
    Token {
        /// User id (UUID) for an end-user token; omit with --role service_role.
        #[arg(long)]
        user: Option<String>,
        /// authenticated (default) or service_role.
        #[arg(long, default_value = "authenticated")]
        role: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: i64,
    },
    /// Sign a webhook body with WEBHOOK_SECRET (X-Timestamp + X-Signature) and print or post
    /// it: for testing a deployment and key rotations.
    #[command(after_help = webhook_help())]
    Webhook {
        #[command(subcommand)]
        action: WebhookAction,
    },
    /// Check a running deployment against the production checklist and print its tables with
    /// each row's status and evidence. Exit 0: every required row passes; 1: some do not;
    /// 2: could not run.
    Preflight(preflight::Args),
}

#[derive(Subcommand)]
enum WebhookAction {
    /// Print the X-Timestamp and X-Signature headers for the file's exact bytes.
    #[command(after_help = webhook_help())]
    Sign {
        /// The body to sign, byte for byte (a JSON file).
        #[arg(long)]
        file: String,
        /// X-Timestamp in Unix seconds (default: now).
        #[arg(long)]
        timestamp: Option<i64>,
        /// Environment variable holding the secret.
        #[arg(long, default_value = "WEBHOOK_SECRET")]
        secret_env: String,
    },
    /// Sign a body and POST it; prints the HTTP status and the answer, fails unless 2xx.
    #[command(after_help = webhook_help())]
    Send {
        /// The body to send, byte for byte (a JSON file).
        #[arg(long, required_unless_present = "probe", conflicts_with = "probe")]
        file: Option<String>,
        /// Send a probe event instead of a file: an event type the server accepts and ignores,
        /// with a fresh id, so repeated checks are never refused as replays.
        #[arg(long)]
        probe: bool,
        /// The receiver, e.g. https://pay.example.com/v1/webhooks/toss.
        #[arg(long)]
        url: String,
        /// X-Timestamp in Unix seconds (default: now).
        #[arg(long)]
        timestamp: Option<i64>,
        /// Environment variable holding the secret.
        #[arg(long, default_value = "WEBHOOK_SECRET")]
        secret_env: String,
        /// Sent as tosspayments-webhook-transmission-id.
        #[arg(long)]
        transmission_id: Option<String>,
    },
}

/// The demo course `serve` creates in sandbox mode, with a fixed id so the README's walkthrough
/// can be pasted as is.
const DEMO_COURSE_ID: &str = "00000000-0000-4000-8000-00000000c0a1";

/// Every request allocates and frees many small buffers across the runtime's threads; glibc's
/// allocator spent about a tenth of the service's CPU per confirm on that (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The standalone sandbox stands in for Toss in tests and benchmarks: one thread serves it
    // (its work per call is a few lookups), so it costs no wake-ups between threads and leaves
    // the other cores to what is being measured. Everything else gets a worker per core.
    let runtime = match cli.command {
        Command::Sandbox { .. } => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        _ => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    };
    match runtime {
        Ok(rt) => rt.block_on(run(cli)),
        Err(e) => {
            eprintln!("coursepay: starting the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Preflight(args) => return ExitCode::from(preflight::run(args).await),
        Command::Serve => serve().await,
        Command::Migrate { print, dir } => migrate(print, dir).await,
        Command::Sandbox {
            listen,
            webhook_url,
            timeout_hang_ms,
            latency,
        } => sandbox(listen, webhook_url, timeout_hang_ms, latency).await,
        Command::Token { user, role, ttl } => token(user, role, ttl),
        Command::Webhook { action } => match action {
            WebhookAction::Sign {
                file,
                timestamp,
                secret_env,
            } => webhook::sign(&file, timestamp, &secret_env),
            WebhookAction::Send {
                file,
                probe: _,
                url,
                timestamp,
                secret_env,
                transmission_id,
            } => {
                // clap requires exactly one of --file and --probe.
                let body = match file {
                    Some(f) => webhook::Body::File(f),
                    None => webhook::Body::Probe,
                };
                webhook::send(&body, &url, timestamp, &secret_env, transmission_id).await
            }
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("coursepay: {msg}");
            ExitCode::from(2)
        }
    }
}

fn config() -> Result<Config, String> {
    Config::from_env().map_err(|e| e.to_string())
}

/// The store for `serve`: migrated first unless AUTO_MIGRATE=false, which only checks.
async fn open_store(config: &Config) -> Result<DynStore, String> {
    use flows::database::{Migrations, open};
    let mode = if config.database.auto_migrate {
        Migrations::Apply
    } else {
        Migrations::Verify
    };
    open(config.database_url.clone(), &config.database, mode).await
}

async fn migrate(print: bool, dir: Option<std::path::PathBuf>) -> Result<(), String> {
    if print {
        let schema = flows::database::DatabaseSettings::from_env()
            .map_err(|e| e.to_string())?
            .pg
            .schema;
        let names =
            flows::database::print_migrations(&schema, dir.as_deref(), &mut std::io::stdout())?;
        if let Some(dir) = dir {
            for name in names {
                eprintln!("coursepay: wrote {}", dir.join(name).display());
            }
        }
        return Ok(());
    }
    // The database settings are all it needs: the rest of the service's configuration is not
    // checked (an incomplete production configuration must not stop a migration).
    let database_url = std::env::var("DATABASE_URL")
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty());
    let settings = flows::database::DatabaseSettings::from_env().map_err(|e| e.to_string())?;
    flows::database::open(database_url, &settings, flows::database::Migrations::Apply).await?;
    eprintln!("coursepay: migrations applied");
    Ok(())
}

async fn serve() -> Result<(), String> {
    let config = config()?;
    flows::logging::init();
    let store = open_store(&config).await?;
    let listener = tokio::net::TcpListener::bind(&config.listen_addr)
        .await
        .map_err(|e| format!("binding {}: {e}", config.listen_addr))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let loopback = format!("http://127.0.0.1:{}", addr.port());

    let sandbox = built_in_sandbox(&config, &loopback);
    let app = flows::App::new(
        store.clone(),
        toss_client(&config, &loopback)?,
        config.clone(),
    );
    // Settles orders left open by crashes, lost answers and closed tabs (flows::reconcile),
    // and deletes expired idempotency keys and one-time tokens (ops::retention).
    let background = [
        flows::reconcile::spawn(app.clone()),
        flows::ops::retention::spawn(app.clone()),
    ];

    if sandbox.is_some() {
        seed_demo_course(&store).await?;
    }
    start_alerts(&config);
    let mut router = api::http::router(app.clone());
    if let Some(sb) = &sandbox {
        router = router.nest("/toss-sandbox", sb.router());
    }
    print_banner(&config, &loopback, sandbox.is_some());
    // SIGTERM/SIGINT: /readyz turns 503 and background loops stop at a safe point; after
    // SHUTDOWN_DRAIN_SECONDS the listener closes and in-flight requests get
    // SHUTDOWN_GRACE_SECONDS to finish.
    let limits = config.edge;
    let stopping = app.clone();
    let cut = api::edge::serve(listener, router, limits, async move {
        flows::ops::shutdown::signal().await;
        stopping.shutdown.begin();
        tokio::time::sleep(limits.drain_delay).await;
    })
    .await
    .map_err(|e| e.to_string())?;
    // The loops saw the switch at once; a pass in progress finishes the order in hand.
    let loops = async {
        for task in background {
            let _ = task.await;
        }
    };
    if tokio::time::timeout(limits.shutdown_grace, loops)
        .await
        .is_err()
    {
        tracing::warn!(target: "coursepay::shutdown", "background tasks still busy after the grace period");
    }
    tracing::info!(target: "coursepay::shutdown", connections_cut = cut, "shutdown complete");
    Ok(())
}

/// The built-in Toss sandbox, when the configuration asks for it (no real Toss API base).
fn built_in_sandbox(config: &Config, loopback: &str) -> Option<toss_sandbox::Sandbox> {
    use secrecy::ExposeSecret;
    config.uses_sandbox().then(|| {
        toss_sandbox::Sandbox::new(toss_sandbox::SandboxConfig {
            secret_keys: vec![config.toss_secret_key.expose_secret().to_owned()],
            // The sandbox plays Toss behind a signing relay: its webhooks reach our own route.
            webhook_url: Some(format!("{loopback}/v1/webhooks/toss")),
            webhook_secret: Some(config.webhook_secret.expose_secret().to_owned()),
            ..Default::default()
        })
    })
}

fn toss_client(config: &Config, loopback: &str) -> Result<toss::TossClient, String> {
    use secrecy::ExposeSecret;
    let api_base = match &config.toss_api_base {
        Some(base) => base.clone(),
        // Real HTTP over loopback to ourselves: the client cannot tell the sandbox from Toss.
        None => format!("{loopback}/toss-sandbox"),
    };
    toss::TossClient::new(toss::TossConfig {
        api_base,
        secret_key: config.toss_secret_key.expose_secret().to_owned(),
        timeout: config.toss_timeout,
        connect_timeout: Duration::from_secs(3),
    })
    .map_err(|e| e.to_string())
}

/// The alert evaluator's ticker, posting to `ALERT_WEBHOOK_URL` when set.
fn start_alerts(config: &Config) {
    use secrecy::ExposeSecret;
    let alert_webhook = config
        .alert_webhook_url
        .as_ref()
        .map(|u| u.expose_secret().to_owned());
    flows::ops::alerts::set_time_scale(config.alert_time_scale);
    flows::ops::alerts::spawn_ticker(
        alert_webhook.as_deref(),
        flows::ops::alerts::EVALUATE_EVERY / config.alert_time_scale,
    );
}

/// Where to find things, on stderr; the development hints only in development.
fn print_banner(config: &Config, loopback: &str, sandbox: bool) {
    // One write: scripts wait for this line and read the address from it, and `eprintln!`
    // writes each piece separately, so a reader could see "listening on" without the address.
    let listening = format!(
        "coursepay {} listening on {loopback}\n",
        env!("CARGO_PKG_VERSION")
    );
    let _ = std::io::Write::write_all(&mut std::io::stderr(), listening.as_bytes());
    if config.env != Environment::Development {
        return;
    }
    eprintln!("  storefront:  {loopback}/ (development sign-in: POST {loopback}/v1/dev/token)");
    eprintln!(
        "  store: {}",
        if config.database_url.is_some() {
            "DATABASE_URL"
        } else {
            "sqlite://coursepay.db"
        }
    );
    if sandbox {
        eprintln!(
            "  Toss sandbox: {loopback}/toss-sandbox (payment window: {loopback}/toss-sandbox/sandbox/checkout)"
        );
        eprintln!("  demo course: {DEMO_COURSE_ID}");
    }
    eprintln!("  user token:  coursepay token --user $(cat /proc/sys/kernel/random/uuid)");
    eprintln!("  admin token: coursepay token --role service_role");
}

async fn seed_demo_course(store: &DynStore) -> Result<(), String> {
    let id = domain::CourseId::parse(DEMO_COURSE_ID).map_err(|e| e.to_string())?;
    if store
        .get_course(id)
        .await
        .map_err(|e| e.to_string())?
        .is_none()
    {
        store
            .create_course(store::NewCourse {
                id,
                title: "Course A".into(),
                price: domain::Money::new(10_000).map_err(|e| e.to_string())?,
                now: time::OffsetDateTime::now_utc(),
            })
            .await
            .map_err(|e| format!("creating the demo course: {e}"))?;
    }
    Ok(())
}

async fn sandbox(
    listen: String,
    webhook_url: Option<String>,
    timeout_hang_ms: u64,
    latency: String,
) -> Result<(), String> {
    let latency = toss_sandbox::LatencyModel::parse(&latency)?;
    flows::logging::init();
    let secret = std::env::var("WEBHOOK_SECRET").ok();
    let sb = toss_sandbox::Sandbox::new(toss_sandbox::SandboxConfig {
        webhook_url,
        webhook_secret: secret,
        timeout_fault_hang: Duration::from_millis(timeout_hang_ms),
        latency,
        ..Default::default()
    });
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| format!("binding {listen}: {e}"))?;
    if let Some(model) = latency {
        eprintln!("Toss latency: {model}");
    }
    eprintln!(
        "Toss sandbox listening on http://{}",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    toss_sandbox::serve(listener, sb)
        .await
        .map_err(|e| e.to_string())
}

/// Reads only COURSEPAY_ENV and the JWT secret: minting a token needs nothing else, so an
/// incomplete production configuration is not this command's business.
fn token(user: Option<String>, role: String, ttl: i64) -> Result<(), String> {
    let var = |k: &str| {
        std::env::var(k)
            .ok()
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let production = matches!(
        var("COURSEPAY_ENV").as_deref(),
        Some("production") | Some("prod")
    );
    let secret = var("JWT_SECRET").or_else(|| var("SUPABASE_JWT_SECRET"));
    let secret = match secret {
        Some(s) if production && s == flows::config::DEV_JWT_SECRET => {
            return Err(
                "JWT_SECRET is the public development secret, refused with COURSEPAY_ENV=production"
                    .into(),
            );
        }
        Some(s) => s,
        None if production => {
            return Err(
                "coursepay token signs an admin or user token with the JWT secret the \
                 server verifies tokens with. With COURSEPAY_ENV=production set JWT_SECRET (or \
                 SUPABASE_JWT_SECRET) to the deployment's secret, or use Supabase's service-role \
                 key (SUPABASE_SERVICE_ROLE_KEY) as the admin token"
                    .into(),
            );
        }
        None => flows::config::DEV_JWT_SECRET.to_owned(),
    };
    if ttl <= 0 {
        return Err("--ttl must be a positive number of seconds".into());
    }
    // Tokens carry the project's issuer when SUPABASE_URL names it (the server then checks it).
    let mut problems = Vec::new();
    let settings = flows::auth::AuthSettings::from_lookup(&|k| var(k), production, &mut problems);
    if let Some(p) = problems.first() {
        return Err(p.clone());
    }
    let keys = flows::auth::JwtKeys::from_settings(&secrecy::SecretString::from(secret), &settings);
    let user = match (role.as_str(), user) {
        ("service_role", _) => None,
        ("authenticated", Some(u)) => {
            Some(domain::UserId::parse(&u).map_err(|_| "--user must be a UUID".to_owned())?)
        }
        ("authenticated", None) => {
            return Err("--user <uuid> is required for an authenticated token".into());
        }
        _ => return Err("--role must be authenticated or service_role".into()),
    };
    println!("{}", keys.mint(user, ttl));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// clap's own consistency checks, and a description on every flag of every subcommand.
    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
        fn walk(cmd: &clap::Command, path: &str) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                assert!(arg.get_help().is_some(), "{path} --{id} has no description");
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()));
            }
        }
        walk(&Cli::command(), "coursepay");
    }
}
