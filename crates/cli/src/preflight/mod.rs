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
//! - [`checks`]: sections 2–9 over HTTP, through [`http::Probe`]: one file per section.
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

/// The secrets the preflight was given (or the development defaults): it signs and mints with
/// them, and checks at the end that no answer echoed one.
struct Known {
    jwt: String,
    webhook: String,
    toss: String,
}

impl Known {
    fn from_env() -> Self {
        Self {
            jwt: env_secret(
                &["JWT_SECRET", "SUPABASE_JWT_SECRET"],
                flows::config::DEV_JWT_SECRET,
            ),
            webhook: env_secret(&["WEBHOOK_SECRET"], flows::config::DEV_WEBHOOK_SECRET),
            toss: env_secret(&["TOSS_SECRET_KEY"], ""),
        }
    }

    /// Each secret with the name the "never echoed" evidence gives it.
    fn named(self, probe: &http::Probe) -> Vec<(&'static str, String)> {
        let mut secrets = vec![("WEBHOOK_SECRET", self.webhook), ("JWT_SECRET", self.jwt)];
        if !self.toss.is_empty() {
            secrets.push(("TOSS_SECRET_KEY", self.toss));
        }
        secrets.push(("the admin token", probe.admin().to_owned()));
        secrets
    }
}

/// The steps over HTTP after §1, in the order they run. A failing step marks the rows of its
/// sections it could not check, and the run goes on.
#[derive(Clone, Copy)]
enum Step {
    Secrets,
    Webhooks,
    Performance,
    Observability,
    Resilience,
    Frontend,
    Qa,
}

impl Step {
    const ALL: [Step; 7] = [
        Step::Secrets,
        Step::Webhooks,
        Step::Performance,
        Step::Observability,
        Step::Resilience,
        Step::Frontend,
        Step::Qa,
    ];
    /// The progress number of the first: reachability and §1 from the catalog come before.
    const FIRST: usize = 3;
    const COUNT: usize = Self::FIRST - 1 + Self::ALL.len();

    /// What the step checks, after its section numbers in the progress line.
    fn what(self) -> &'static str {
        match self {
            Step::Secrets => "configuration report",
            Step::Webhooks => "webhook signatures and idempotency keys",
            Step::Performance => "performance (synthetic run, storefront bundle)",
            Step::Observability => "logs, metrics, alert rules",
            Step::Resilience => "circuit breaker, pause switch",
            Step::Frontend => "error messages, CORS",
            Step::Qa => "QA scenarios",
        }
    }

    fn label(self) -> String {
        let sections: Vec<String> = self.sections().iter().map(|n| format!("§{n}")).collect();
        format!("{} {}", sections.join("/"), self.what())
    }

    /// The checklist sections the step checks: the rows still unset fail when it aborts.
    fn sections(self) -> &'static [u8] {
        match self {
            Step::Secrets => &[2],
            Step::Webhooks => &[3],
            Step::Performance => &[5],
            Step::Observability => &[4],
            Step::Resilience => &[6, 7],
            Step::Frontend => &[8],
            Step::Qa => &[9],
        }
    }

    async fn run(
        self,
        probe: &http::Probe,
        r: &mut Report,
        t: &mut checks::Target,
        args: &Args,
    ) -> Result<(), String> {
        match self {
            Step::Secrets => checks::secrets::run(probe, r, t).await,
            Step::Webhooks => checks::webhooks::run(probe, r).await,
            Step::Performance => {
                checks::performance::run(probe, r, t, args.confirms).await?;
                checks::bundle::run(probe, r).await
            }
            Step::Observability => {
                checks::observability::run(probe, r, args.prometheus_url.as_deref()).await
            }
            Step::Resilience => checks::resilience::run(probe, r, t).await,
            Step::Frontend => checks::frontend::run(probe, r, t).await,
            Step::Qa => checks::qa::run(probe, r, t, args.qa).await,
        }
    }

    /// Every row of the step's sections that is still unset fails with the error.
    fn abort(self, r: &mut Report, error: &str) {
        let sections = checklist::SECTIONS
            .iter()
            .filter(|s| self.sections().contains(&s.number));
        for row in sections.flat_map(|s| s.rows) {
            if !r.outcomes.contains_key(row.id) {
                r.set(row.id, Outcome::fail(format!("check aborted: {error}")));
            }
        }
    }
}

fn progress(step: usize, what: &str) {
    eprintln!("preflight [{step}/{}] {what}", Step::COUNT);
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
    let known = Known::from_env();
    let probe = http::Probe::new(
        &args.url,
        args.admin_token.clone(),
        SecretString::from(known.jwt.clone()),
        SecretString::from(known.webhook.clone()),
    )?;
    let mut r = Report {
        target: probe.base.clone(),
        ..Default::default()
    };
    let mut t = checks::Target::default();

    progress(1, "health, readiness, version");
    checks::basics::run(&probe, &mut r, &mut t)
        .await
        .map_err(|e| format!("{} is not reachable: {e}", probe.base))?;
    eprintln!(
        "  target is in {} mode",
        if t.sandbox { "sandbox" } else { "provider" }
    );

    progress(2, "§1 schema from the database catalog");
    schema_step(&args, &mut r).await?;

    for (i, step) in Step::ALL.into_iter().enumerate() {
        progress(Step::FIRST + i, &step.label());
        if let Err(e) = step.run(&probe, &mut r, &mut t, &args).await {
            eprintln!("  error: {e}");
            step.abort(&mut r, &e);
        }
    }
    checks::secrets::never_echoed(&probe, &mut r, &known.named(&probe));

    r.elapsed_ms = started.elapsed().as_millis();
    deliver(&args, &r)?;
    Ok(r.exit_code())
}

/// §1 from the catalog of `--database-url`; without one, its rows are unverified.
async fn schema_step(args: &Args, r: &mut Report) -> Result<(), String> {
    match &args.database_url {
        None => {
            for row in checklist::SECTIONS[0].rows {
                r.set(
                    row.id,
                    Outcome::unverified("no --database-url given: the catalog was not read"),
                );
            }
        }
        Some(dsn) => schema::read(dsn, &args.database_schema).await?.evaluate(r),
    }
    Ok(())
}

/// Write the report where it was asked for, then the blocking rows and the summary to stderr.
fn deliver(args: &Args, r: &Report) -> Result<(), String> {
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
    Ok(())
}
