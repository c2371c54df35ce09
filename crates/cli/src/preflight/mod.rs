//! `coursepay preflight`: the production checklist as an executable gate.
//!
//! Pointed at a running deployment, it verifies every checklist row it can observe — the schema
//! from the database catalog, the configuration through the service-role report, webhooks,
//! logs, metrics, performance, the pause switch, CORS, the error messages and (with `--qa`) the
//! five QA scenarios — and prints the checklist's own section tables with a status and the
//! evidence of each row, in Korean or English, as Markdown or JSON.
//!
//! Exit code: 0 when every required row passes, 1 otherwise, 2 when it could not run (target
//! unreachable, bad arguments). Progress goes to stderr, the report to stdout or `--output`.
//!
//! - [`checklist`]: the rows, as data, in both languages.
//! - [`schema`]: section 1 from the PostgreSQL or SQLite catalog.
//! - [`checks`]: sections 2–9 over HTTP, through [`http::Probe`].
//! - [`report`]: outcomes, the gate, Markdown and JSON.

pub mod checklist;
pub mod checks;
pub mod http;
pub mod report;
pub mod schema;

use report::{Lang, Outcome, Report};
use secrecy::SecretString;
use std::time::Instant;

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum LangArg {
    Ko,
    En,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Format {
    Md,
    Json,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The deployment to check, e.g. https://pay.example.com.
    #[arg(long)]
    pub url: String,
    /// A (read-only) DSN of the deployment's database, for the schema rows: postgres://… or
    /// sqlite://file. Without it the schema rows are unverified and the gate fails.
    #[arg(long, env = "PREFLIGHT_DATABASE_URL")]
    pub database_url: Option<String>,
    /// The PostgreSQL schema holding coursepay's tables: the deployment's DATABASE_SCHEMA.
    #[arg(long, env = "DATABASE_SCHEMA", default_value = "coursepay")]
    pub database_schema: String,
    /// A service-role token (e.g. Supabase's service-role key). Default: one minted with
    /// JWT_SECRET / SUPABASE_JWT_SECRET (or the development secret).
    #[arg(long, env = "PREFLIGHT_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Language of the report's tables: Korean or English.
    #[arg(long, value_enum, default_value = "en")]
    pub lang: LangArg,
    /// Report format: Markdown (for a pull request or release) or JSON (for automation).
    #[arg(long, value_enum, default_value = "md")]
    pub format: Format,
    /// Also run the five QA scenarios end to end (sandbox-mode targets only: they pay).
    #[arg(long)]
    pub qa: bool,
    /// Write the report to this file instead of stdout.
    #[arg(long)]
    pub output: Option<std::path::PathBuf>,
    /// A Prometheus server whose loaded rules must include the three alert rules.
    #[arg(long)]
    pub prometheus_url: Option<String>,
    /// Confirms in the synthetic performance run (sandbox-mode targets).
    #[arg(long, default_value_t = 20)]
    pub confirms: usize,
}

/// A secret from the environment, or the development default.
fn env_secret(names: &[&str], default: &str) -> String {
    names
        .iter()
        .filter_map(|n| std::env::var(n).ok())
        .map(|v| v.trim().to_owned())
        .find(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

fn progress(step: usize, what: &str) {
    eprintln!("preflight [{step}/9] {what}");
}

/// Run the preflight; the process exit code.
pub async fn run(args: Args) -> u8 {
    match run_inner(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("preflight could not run: {e}");
            2
        }
    }
}

async fn run_inner(args: Args) -> Result<u8, String> {
    let started = Instant::now();
    let jwt_secret = env_secret(
        &["JWT_SECRET", "SUPABASE_JWT_SECRET"],
        flows::config::DEV_JWT_SECRET,
    );
    let webhook_secret = env_secret(&["WEBHOOK_SECRET"], flows::config::DEV_WEBHOOK_SECRET);
    let toss_secret = env_secret(&["TOSS_SECRET_KEY"], "");
    let probe = http::Probe::new(
        &args.url,
        args.admin_token.clone(),
        SecretString::from(jwt_secret.clone()),
        SecretString::from(webhook_secret.clone()),
    )?;
    let mut r = Report {
        target: probe.base.clone(),
        ..Default::default()
    };
    let mut t = checks::Target::default();

    progress(1, "health, readiness, version");
    checks::basics(&probe, &mut r, &mut t)
        .await
        .map_err(|e| format!("{} is not reachable: {e}", probe.base))?;
    eprintln!(
        "  target is in {} mode",
        if t.sandbox { "sandbox" } else { "provider" }
    );

    progress(2, "§1 schema from the database catalog");
    match &args.database_url {
        None => {
            for id in checklist::SECTIONS[0].rows.iter().map(|r| r.id) {
                r.set(
                    id,
                    Outcome::unverified("no --database-url given: the catalog was not read"),
                );
            }
        }
        Some(dsn) => schema::read(dsn, &args.database_schema)
            .await?
            .evaluate(&mut r),
    }

    // A failing step marks what it could not check and the run goes on.
    let steps: [(usize, &str); 7] = [
        (3, "§2 configuration report"),
        (4, "§3 webhook signatures and idempotency keys"),
        (5, "§5 performance (synthetic run, storefront bundle)"),
        (6, "§4 logs, metrics, alert rules"),
        (7, "§6/§7 circuit breaker, pause switch"),
        (8, "§8 error messages, CORS"),
        (9, "§9 QA scenarios"),
    ];
    for (n, what) in steps {
        progress(n, what);
        let res = match n {
            3 => checks::secrets(&probe, &mut r, &mut t).await,
            4 => checks::webhooks(&probe, &mut r).await,
            5 => match checks::performance(&probe, &mut r, &mut t, args.confirms).await {
                Ok(()) => checks::bundle(&probe, &mut r).await,
                Err(e) => Err(e),
            },
            6 => checks::observability(&probe, &mut r, args.prometheus_url.as_deref()).await,
            7 => checks::resilience(&probe, &mut r, &mut t).await,
            8 => checks::frontend(&probe, &mut r, &t).await,
            _ => checks::qa(&probe, &mut r, &t, args.qa).await,
        };
        if let Err(e) = res {
            eprintln!("  error: {e}");
            let section: u8 = match n {
                3 => 2,
                4 => 3,
                5 => 5,
                6 => 4,
                7 => 6,
                8 => 8,
                _ => 9,
            };
            for s in checklist::SECTIONS
                .iter()
                .filter(|s| s.number == section || (section == 6 && s.number == 7))
            {
                for row in s.rows {
                    if !r.outcomes.contains_key(row.id) {
                        r.set(row.id, Outcome::fail(format!("check aborted: {e}")));
                    }
                }
            }
        }
    }
    let mut secrets = vec![
        ("WEBHOOK_SECRET", webhook_secret),
        ("JWT_SECRET", jwt_secret),
    ];
    if !toss_secret.is_empty() {
        secrets.push(("TOSS_SECRET_KEY", toss_secret));
    }
    secrets.push(("the admin token", probe.admin().to_owned()));
    checks::never_echoed(&probe, &mut r, &secrets);

    r.elapsed_ms = started.elapsed().as_millis();
    let lang = match args.lang {
        LangArg::Ko => Lang::Ko,
        LangArg::En => Lang::En,
    };
    let text = match args.format {
        Format::Md => r.to_markdown(lang),
        Format::Json => {
            let mut s =
                serde_json::to_string_pretty(&r.to_json(lang)).map_err(|e| e.to_string())?;
            s.push('\n');
            s
        }
    };
    match &args.output {
        Some(path) => {
            std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))?
        }
        None => print!("{text}"),
    }
    for id in r.blocking() {
        if let Some(o) = r.outcomes.get(id) {
            eprintln!("  {} {id}: {}", o.status.as_str(), o.evidence);
        }
    }
    eprintln!("{}", r.summary_line());
    Ok(r.exit_code())
}
