//! The `coursepay` binary: the only place concrete parts are wired together.
//!
//! - `serve`: the service (zero configuration: SQLite file + built-in Toss sandbox).
//! - `migrate`: apply database migrations.
//! - `sandbox`: the Toss sandbox alone.
//! - `token`: mint a development JWT.
//! - `webhook sign|send`: sign a webhook body with WEBHOOK_SECRET, print or post it.

mod webhook;

use clap::{Parser, Subcommand};
use server::config::{Config, Environment, VARIABLES};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use store::DynStore;

fn env_help() -> String {
    let mut s = String::from("Environment variables (all optional in development):\n");
    for (name, what) in VARIABLES {
        s.push_str(&format!("  {name:<28} {what}\n"));
    }
    s
}

#[derive(Parser)]
#[command(name = "coursepay", version = server::build::LONG_VERSION, about = "Payment confirmation and enrollment for course platforms selling through Toss Payments", after_help = env_help())]
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
    /// Apply database migrations to DATABASE_URL (or the default SQLite file) and exit.
    #[command(after_help = env_help())]
    Migrate,
    /// Run the Toss sandbox alone (a faithful fake of the Toss Payments API).
    Sandbox {
        #[arg(long, default_value = "127.0.0.1:8090", env = "SANDBOX_LISTEN_ADDR")]
        listen: String,
        /// Deliver webhooks to this URL.
        #[arg(long, env = "SANDBOX_WEBHOOK_URL")]
        webhook_url: Option<String>,
        /// How long a `timeout` fault hangs before answering (fault tests set it just above
        /// the server's TOSS_TIMEOUT_SECONDS).
        #[arg(long, default_value_t = 30_000, env = "SANDBOX_TIMEOUT_HANG_MS")]
        timeout_hang_ms: u64,
    },
    /// Mint a development token (refused when COURSEPAY_ENV=production).
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
    Webhook {
        #[command(subcommand)]
        action: WebhookAction,
    },
}

#[derive(Subcommand)]
enum WebhookAction {
    /// Print the X-Timestamp and X-Signature headers for the file's exact bytes.
    Sign {
        #[arg(long)]
        file: String,
        /// Unix seconds (default: now).
        #[arg(long)]
        timestamp: Option<i64>,
        /// Environment variable holding the secret.
        #[arg(long, default_value = "WEBHOOK_SECRET")]
        secret_env: String,
    },
    /// Sign the file and POST it; prints the HTTP status and the answer.
    Send {
        #[arg(long)]
        file: String,
        /// e.g. https://pay.example.com/v1/webhooks/toss
        #[arg(long)]
        url: String,
        #[arg(long)]
        timestamp: Option<i64>,
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

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve => serve().await,
        Command::Migrate => migrate().await,
        Command::Sandbox {
            listen,
            webhook_url,
            timeout_hang_ms,
        } => sandbox(listen, webhook_url, timeout_hang_ms).await,
        Command::Token { user, role, ttl } => token(user, role, ttl),
        Command::Webhook { action } => match action {
            WebhookAction::Sign {
                file,
                timestamp,
                secret_env,
            } => webhook::sign(&file, timestamp, &secret_env),
            WebhookAction::Send {
                file,
                url,
                timestamp,
                secret_env,
                transmission_id,
            } => webhook::send(&file, &url, timestamp, &secret_env, transmission_id).await,
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

async fn open_store(config: &Config) -> Result<DynStore, String> {
    let url = config
        .database_url
        .clone()
        .unwrap_or_else(|| "sqlite://coursepay.db".to_owned());
    let store: DynStore = if url.starts_with("postgres") {
        Arc::new(
            store::postgres::PgStore::connect(&url)
                .await
                .map_err(|e| format!("connecting to PostgreSQL: {e}"))?,
        )
    } else if url.starts_with("sqlite") {
        Arc::new(
            store::sqlite::SqliteStore::open(&url)
                .await
                .map_err(|e| format!("opening SQLite: {e}"))?,
        )
    } else {
        return Err("DATABASE_URL must start with postgres:// or sqlite://".into());
    };
    store
        .migrate()
        .await
        .map_err(|e| format!("applying migrations: {e}"))?;
    Ok(store)
}

async fn migrate() -> Result<(), String> {
    let config = config()?;
    open_store(&config).await?;
    eprintln!("coursepay: migrations applied");
    Ok(())
}

async fn serve() -> Result<(), String> {
    let config = config()?;
    server::logging::init();
    let store = open_store(&config).await?;
    let listener = tokio::net::TcpListener::bind(&config.listen_addr)
        .await
        .map_err(|e| format!("binding {}: {e}", config.listen_addr))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let loopback = format!("http://127.0.0.1:{}", addr.port());

    let sandbox = config.uses_sandbox().then(|| {
        use secrecy::ExposeSecret;
        toss_sandbox::Sandbox::new(toss_sandbox::SandboxConfig {
            secret_keys: vec![config.toss_secret_key.expose_secret().to_owned()],
            // The sandbox plays Toss behind a signing relay: its webhooks reach our own route.
            webhook_url: Some(format!("{loopback}/v1/webhooks/toss")),
            webhook_secret: Some(config.webhook_secret.expose_secret().to_owned()),
            ..Default::default()
        })
    });
    let api_base = match &config.toss_api_base {
        Some(base) => base.clone(),
        // Real HTTP over loopback to ourselves: the client cannot tell the sandbox from Toss.
        None => format!("{loopback}/toss-sandbox"),
    };
    let toss = {
        use secrecy::ExposeSecret;
        toss::TossClient::new(toss::TossConfig {
            api_base,
            secret_key: config.toss_secret_key.expose_secret().to_owned(),
            timeout: config.toss_timeout,
            connect_timeout: Duration::from_secs(3),
        })
        .map_err(|e| e.to_string())?
    };
    let app = server::App::new(store.clone(), toss, config.clone());
    // Settles orders left open by crashes, lost answers and closed tabs (flows::reconcile),
    // and deletes expired idempotency keys and one-time tokens (ops::retention).
    let background = [
        server::flows::reconcile::spawn(app.clone()),
        server::ops::retention::spawn(app.clone()),
    ];

    if sandbox.is_some() {
        seed_demo_course(&store).await?;
    }
    let alert_webhook = {
        use secrecy::ExposeSecret;
        config
            .alert_webhook_url
            .as_ref()
            .map(|u| u.expose_secret().to_owned())
    };
    server::ops::alerts::spawn_ticker(
        alert_webhook.as_deref(),
        server::ops::alerts::EVALUATE_EVERY,
    );
    let mut router = server::http::router(app.clone());
    if let Some(sb) = &sandbox {
        router = router.nest("/toss-sandbox", sb.router());
    }

    eprintln!(
        "coursepay {} listening on {loopback}",
        env!("CARGO_PKG_VERSION")
    );
    if config.env == Environment::Development {
        eprintln!(
            "  store: {}",
            if config.database_url.is_some() {
                "DATABASE_URL"
            } else {
                "sqlite://coursepay.db"
            }
        );
        if sandbox.is_some() {
            eprintln!(
                "  Toss sandbox: {loopback}/toss-sandbox (payment window: {loopback}/toss-sandbox/sandbox/checkout)"
            );
            eprintln!("  demo course: {DEMO_COURSE_ID}");
        }
        eprintln!("  user token:  coursepay token --user $(cat /proc/sys/kernel/random/uuid)");
        eprintln!("  admin token: coursepay token --role service_role");
    }
    // SIGTERM/SIGINT: /readyz turns 503 and background loops stop at a safe point; after
    // SHUTDOWN_DRAIN_SECONDS the listener closes and in-flight requests get
    // SHUTDOWN_GRACE_SECONDS to finish.
    let limits = config.edge;
    let stopping = app.clone();
    let cut = server::edge::serve(listener, router, limits, async move {
        server::ops::shutdown::signal().await;
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
) -> Result<(), String> {
    server::logging::init();
    let secret = std::env::var("WEBHOOK_SECRET").ok();
    let sb = toss_sandbox::Sandbox::new(toss_sandbox::SandboxConfig {
        webhook_url,
        webhook_secret: secret,
        timeout_fault_hang: Duration::from_millis(timeout_hang_ms),
        ..Default::default()
    });
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| format!("binding {listen}: {e}"))?;
    eprintln!(
        "Toss sandbox listening on http://{}",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    toss_sandbox::serve(listener, sb)
        .await
        .map_err(|e| e.to_string())
}

fn token(user: Option<String>, role: String, ttl: i64) -> Result<(), String> {
    let config = config()?;
    if config.env == Environment::Production {
        return Err("token minting is for development only".into());
    }
    let keys = server::auth::JwtKeys::new(&config.jwt_secret);
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
