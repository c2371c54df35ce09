//! `coursepay-loadgen`: how many purchases per second one instance takes, and what each costs.
//!
//! One run, so the ratios hold on a noisy machine: it creates a fresh PostgreSQL database,
//! starts `coursepay sandbox` and `coursepay serve` as their own processes, then for each kind
//! of request — checkout, fresh confirm, replayed confirm, webhook delivery — sends N at a fixed
//! rate and N more as fast as `--concurrency` workers go, each prepared payment confirmed once.
//! It prints throughput, p50/p95/p99, errors, DB round trips per request (`X-Db-Round-Trips`),
//! the CPU seconds per request of the service and of the sandbox (`/proc/<pid>/stat`), the
//! Toss time inside a confirm (the service's own `coursepay_toss_call_duration_seconds`), and
//! last the two confirm statements run by `pgbench` alone: the database's limit on this machine.
//!
//! `bench/run.sh` builds and runs it (docs/benchmarks.md has the figures and the command).

mod pgbench;
mod phase;
mod procs;

use clap::Parser;
use phase::{Job, Pace, Sample, Summary};
use procs::{CpuMark, Proc};
use serde_json::{Value, json};
use sqlx::ConnectOptions as _;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::fmt::Write as _;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug, Clone)]
#[command(about = "The coursepay load benchmark (see docs/benchmarks.md)")]
struct Args {
    /// The `coursepay` binary to start (sandbox and service).
    #[arg(long, default_value = "target/release/coursepay")]
    bin: String,
    /// A PostgreSQL URL whose role may create databases; the run uses a fresh one beside it.
    #[arg(
        long,
        env = "BENCH_DATABASE_URL",
        default_value = "postgres://postgres:postgres@127.0.0.1:5432/postgres"
    )]
    database_url: String,
    /// Requests of each kind per pace (so 2N payments are prepared and each confirmed once).
    #[arg(long, default_value_t = 2000)]
    n: usize,
    /// The fixed rate, requests per second.
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Requests in flight in the "max" pace.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Toss latency the sandbox adds to each API call, as SANDBOX_LATENCY (e.g. "300ms,1s":
    /// log-normal with that p50 and p95; "off": none).
    #[arg(long, default_value = "off")]
    toss_latency: String,
    /// pgbench clients for the statements-alone limit (0: skip pgbench).
    #[arg(long, default_value_t = 16)]
    pgbench_clients: usize,
    /// pgbench transactions per client.
    #[arg(long, default_value_t = 400)]
    pgbench_transactions: usize,
    /// Rates to print the needed concurrency for (Little's law), comma-separated.
    #[arg(long, default_value = "100,500,1000", value_delimiter = ',')]
    little_rates: Vec<f64>,
    /// A command the service is started under, for profiling (e.g. "valgrind
    /// --tool=callgrind"); its CPU is then counted too.
    #[arg(long)]
    wrap_service: Option<String>,
    /// The same for the sandbox.
    #[arg(long)]
    wrap_sandbox: Option<String>,
    /// Leave out the replay and webhook phases (a profile of checkout + fresh confirm only).
    #[arg(long)]
    fresh_only: bool,
}

const PRICE: i64 = 10_000;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("coursepay-loadgen: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

/// Clock ticks per second of `/proc/<pid>/stat` (`getconf CLK_TCK`; 100 on every Linux
/// this runs on, and what the kernel reports if asked).
fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// A fresh database for the run, dropped when it ends.
struct Database {
    admin: PgConnectOptions,
    name: String,
    url: String,
    /// The `sslmode` the service and pgbench connect with, for the report.
    sslmode: String,
}

/// The `sslmode` for the run's connections: the one the URL names, else `disable` when the
/// database is on this machine (TLS over loopback protects nothing and would be counted as
/// the service's CPU; a real deployment keeps the driver's default, `prefer`, or `require`),
/// else the default.
fn choose_sslmode(url: &mut reqwest::Url) -> String {
    if let Some((_, mode)) = url.query_pairs().find(|(k, _)| k == "sslmode") {
        return mode.into_owned();
    }
    let loopback = url.host_str().is_some_and(|h| {
        h == "localhost"
            || h.trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    });
    if loopback {
        url.query_pairs_mut().append_pair("sslmode", "disable");
        "disable".to_owned()
    } else {
        "prefer (the driver's default)".to_owned()
    }
}

impl Database {
    async fn create(admin_url: &str) -> Result<Database, String> {
        let admin = PgConnectOptions::from_str(admin_url).map_err(|e| e.to_string())?;
        let name = format!("coursepay_bench_{}", std::process::id());
        let mut conn = admin
            .connect()
            .await
            .map_err(|e| format!("connecting to {admin_url}: {e}"))?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name}"
        )))
        .execute(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        // The admin URL with the new database: a plain libpq URL, which pgbench reads too.
        let mut url = reqwest::Url::parse(admin_url).map_err(|e| e.to_string())?;
        url.set_path(&name);
        let sslmode = choose_sslmode(&mut url);
        let url = url.to_string();
        Ok(Database {
            admin,
            name,
            url,
            sslmode,
        })
    }

    async fn drop_it(self) {
        if let Ok(mut conn) = self.admin.connect().await {
            let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
            let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await;
        }
    }
}

struct World {
    http: reqwest::Client,
    base: String,
    sandbox: String,
    jwt: flows::auth::JwtKeys,
}

impl World {
    fn post(&self, path: &str, token: Option<&str>, body: &Value) -> reqwest::RequestBuilder {
        let req = self.http.post(format!("{}{path}", self.base)).json(body);
        match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    async fn json(req: reqwest::RequestBuilder) -> Result<Value, String> {
        let resp = req.send().await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let body: Value = resp.json().await.map_err(|e| e.to_string())?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(format!("{status}: {body}"))
        }
    }
}

/// One purchase as it moves through the phases.
#[derive(Debug, Default, Clone)]
struct Purchase {
    token: String,
    order_id: String,
    payment_key: String,
}

type Purchases = Arc<std::sync::Mutex<Vec<Purchase>>>;

fn purchase(all: &Purchases, i: usize) -> Purchase {
    all.lock().map(|v| v[i].clone()).unwrap_or_default()
}

/// The figures of one phase, with the CPU it cost.
struct Row {
    kind: &'static str,
    pace: Pace,
    summary: Summary,
    service_cpu_ms: f64,
    sandbox_cpu_ms: f64,
    /// Mean Toss call time inside these requests (confirms only).
    toss_ms: Option<f64>,
}

async fn run(args: Args) -> Result<(), String> {
    let ticks = ticks_per_second();
    let db = Database::create(&args.database_url).await?;
    eprintln!("database {} (sslmode {})", db.name, db.sslmode);
    let sslmode = db.sslmode.clone();
    let result = run_in(&args, &db, ticks).await;
    db.drop_it().await;
    let out = result?;
    println!("{out}");
    println!("database connections: sslmode {sslmode}");
    Ok(())
}

async fn run_in(args: &Args, db: &Database, ticks: f64) -> Result<String, String> {
    let (sandbox, service) = start_processes(args, db, ticks).await?;
    let world = Arc::new(World {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(args.concurrency.max(64) * 2)
            .build()
            .map_err(|e| e.to_string())?,
        base: service.base.clone(),
        sandbox: sandbox.base.clone(),
        jwt: flows::auth::JwtKeys::new(&secrecy::SecretString::from(flows::config::DEV_JWT_SECRET)),
    });
    let admin = world.jwt.mint(None, 3600);
    let course = World::json(world.post(
        "/v1/admin/courses",
        Some(&admin),
        &json!({"title": "Benchmark", "price": PRICE}),
    ))
    .await?;
    let course = course["id"].as_str().ok_or("no course id")?.to_owned();

    let n = args.n;
    let purchases: Purchases = Arc::new(std::sync::Mutex::new(
        (0..2 * n)
            .map(|_| Purchase {
                token: world.jwt.mint(Some(domain::UserId::new()), 3600),
                ..Purchase::default()
            })
            .collect(),
    ));
    let paces = [Pace::Rate(args.rate), Pace::Max(args.concurrency)];
    let mut rows = Vec::new();

    // Checkouts: one order per buyer.
    for (k, pace) in paces.iter().enumerate() {
        let job = checkout_job(&world, &purchases, &course, k * n);
        rows.push(measure("checkout", *pace, n, job, &service, &sandbox, None).await);
    }

    prepare_payments(&world, &purchases, 2 * n, args.concurrency).await?;

    // Confirms: the first pass is fresh (each payment once), the second replays them.
    let kinds: &[&'static str] = if args.fresh_only {
        &["confirm (fresh)"]
    } else {
        &["confirm (fresh)", "confirm (replay)"]
    };
    for &kind in kinds {
        for (k, pace) in paces.iter().enumerate() {
            let metrics = Some((&*world, "confirm"));
            let job = confirm_job(&world, &purchases, k * n);
            rows.push(measure(kind, *pace, n, job, &service, &sandbox, metrics).await);
        }
    }

    for (k, pace) in paces.iter().enumerate().filter(|_| !args.fresh_only) {
        let metrics = Some((&*world, "lookup"));
        let job = webhook_job(&world, &purchases, k * n);
        rows.push(measure("webhook", *pace, n, job, &service, &sandbox, metrics).await);
    }

    let limit = if args.pgbench_clients > 0 {
        Some(run_pgbench(args, db, &course).await?)
    } else {
        None
    };
    service.stop().await;
    sandbox.stop().await;
    Ok(report(args, &rows, limit))
}

/// The sandbox, then the service pointed at it and at the benchmark's database.
async fn start_processes(args: &Args, db: &Database, ticks: f64) -> Result<(Proc, Proc), String> {
    let sandbox = Proc::start(
        args.wrap_sandbox.as_deref(),
        &args.bin,
        &["sandbox", "--listen", "127.0.0.1:0"],
        &[("SANDBOX_LATENCY", args.toss_latency.clone())],
        ticks,
    )
    .await?;
    let service = Proc::start(
        args.wrap_service.as_deref(),
        &args.bin,
        &["serve"],
        &[
            ("DATABASE_URL", db.url.clone()),
            ("LISTEN_ADDR", "127.0.0.1:0".to_owned()),
            ("TOSS_API_BASE", sandbox.base.clone()),
            ("TOSS_TIMEOUT_SECONDS", "10".to_owned()),
            // The benchmark is one client sending thousands a second: per-client limits off.
            ("RATE_LIMIT_PER_SECOND", "0".to_owned()),
            ("RATE_LIMIT_CONFIRM_PER_SECOND", "0".to_owned()),
        ],
        ticks,
    )
    .await?;
    Ok((sandbox, service))
}

/// Checkout `i` of a phase: one order for buyer `offset + i`, whose id it keeps.
fn checkout_job(world: &Arc<World>, all: &Purchases, course: &str, offset: usize) -> Job {
    let (w, all, course) = (world.clone(), all.clone(), course.to_owned());
    Arc::new(move |i| {
        let (w, all, course) = (w.clone(), all.clone(), course.clone());
        Box::pin(async move {
            let i = i + offset;
            let p = purchase(&all, i);
            let started = Instant::now();
            let resp = w
                .post("/v1/checkout", Some(&p.token), &json!({"courseId": course}))
                .send()
                .await;
            let body = match resp {
                Ok(r) if r.status().is_success() => r.json::<Value>().await.ok(),
                _ => None,
            };
            let order_id = body
                .as_ref()
                .and_then(|b| b["orderId"].as_str())
                .map(str::to_owned);
            let s = Sample {
                latency: started.elapsed(),
                ok: order_id.is_some(),
                round_trips: None,
            };
            if let (Some(id), Ok(mut v)) = (order_id, all.lock()) {
                v[i].order_id = id;
            }
            s
        })
    })
}

/// The buyers authenticate in the payment window (not measured: Toss's side).
async fn prepare_payments(
    world: &Arc<World>,
    all: &Purchases,
    count: usize,
    concurrency: usize,
) -> Result<(), String> {
    let prep: Job = {
        let (w, all) = (world.clone(), all.clone());
        Arc::new(move |i| {
            let (w, all) = (w.clone(), all.clone());
            Box::pin(async move {
                let p = purchase(&all, i);
                let url = format!("{}/sandbox/payments", w.sandbox);
                let body = json!({"orderId": p.order_id, "amount": PRICE});
                let key = World::json(w.http.post(url).json(&body))
                    .await
                    .ok()
                    .and_then(|b| b["paymentKey"].as_str().map(str::to_owned));
                let ok = key.is_some();
                if let (Some(k), Ok(mut v)) = (key, all.lock()) {
                    v[i].payment_key = k;
                }
                Sample {
                    ok,
                    ..Sample::default()
                }
            })
        })
    };
    let (prepared, _) = phase::run(count, Pace::Max(concurrency), prep).await;
    let failed = prepared.iter().filter(|s| !s.ok).count();
    if failed > 0 {
        return Err(format!("{failed} sandbox payments could not be prepared"));
    }
    Ok(())
}

/// Confirm `i` of a phase: purchase `offset + i`'s payment.
fn confirm_job(world: &Arc<World>, all: &Purchases, offset: usize) -> Job {
    let (w, all) = (world.clone(), all.clone());
    Arc::new(move |i| {
        let p = purchase(&all, i + offset);
        let req = w.post(
            "/v1/payments/confirm",
            Some(&p.token),
            &json!({"paymentKey": p.payment_key, "orderId": p.order_id, "amount": PRICE}),
        );
        Box::pin(phase::timed(req))
    })
}

/// Webhook delivery `i` of a phase, naming purchase `offset + i`'s confirmed payment with its
/// own transmission id (the service re-reads each payment from Toss, as it must).
fn webhook_job(world: &Arc<World>, all: &Purchases, offset: usize) -> Job {
    let (w, all) = (world.clone(), all.clone());
    Arc::new(move |i| {
        let p = purchase(&all, i + offset);
        let body = json!({
            "eventType": "PAYMENT_STATUS_CHANGED",
            "createdAt": "2026-12-01T00:00:00.000000",
            "data": {"paymentKey": p.payment_key, "orderId": p.order_id, "status": "DONE"},
        })
        .to_string();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let (ts, sig) = flows::webhook_auth::signature::sign_x_signature(
            flows::config::DEV_WEBHOOK_SECRET.as_bytes(),
            now,
            body.as_bytes(),
        );
        let req = w
            .http
            .post(format!("{}/v1/webhooks/toss", w.base))
            .header("content-type", "application/json")
            .header("x-timestamp", ts)
            .header("x-signature", sig)
            .header(
                "tosspayments-webhook-transmission-id",
                format!("bench-{}", uuid::Uuid::new_v4()),
            )
            .body(body);
        Box::pin(phase::timed(req))
    })
}

/// Runs one phase and reads the CPU it cost; with `metrics`, also the service's mean Toss
/// call time for that operation over the phase.
async fn measure(
    kind: &'static str,
    pace: Pace,
    n: usize,
    job: Job,
    service: &Proc,
    sandbox: &Proc,
    metrics: Option<(&World, &str)>,
) -> Row {
    let before = match metrics {
        Some((w, op)) => toss_time(w, op).await,
        None => None,
    };
    let cpu = CpuMark::now(service, sandbox);
    let (samples, wall) = phase::run(n, pace, job).await;
    let (svc, sbx) = cpu.since(service, sandbox);
    let after = match metrics {
        Some((w, op)) => toss_time(w, op).await,
        None => None,
    };
    let toss_ms = match (before, after) {
        (Some((s0, c0)), Some((s1, c1))) if c1 > c0 => Some((s1 - s0) / (c1 - c0) * 1000.0),
        _ => None,
    };
    let summary = Summary::of(&samples, wall);
    let per = |cpu: f64| cpu * 1000.0 / summary.requests.max(1) as f64;
    let row = Row {
        kind,
        pace,
        service_cpu_ms: per(svc),
        sandbox_cpu_ms: per(sbx),
        toss_ms,
        summary,
    };
    eprintln!("{}", line(&row));
    row
}

/// (sum of seconds, count) of the service's `coursepay_toss_call_duration_seconds` for
/// `operation`, over every outcome, from `/metrics`.
async fn toss_time(w: &World, operation: &str) -> Option<(f64, f64)> {
    let text = w
        .http
        .get(format!("{}/metrics", w.base))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    Some(parse_histogram(
        &text,
        flows::ops::metrics::TOSS_DURATION,
        &format!("operation=\"{operation}\""),
    ))
}

/// Sums `<name>_sum` and `<name>_count` over the series whose labels contain `label`.
fn parse_histogram(text: &str, name: &str, label: &str) -> (f64, f64) {
    let (mut sum, mut count) = (0.0, 0.0);
    for l in text.lines().filter(|l| l.contains(label)) {
        let value = || l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
        if l.starts_with(&format!("{name}_sum{{")) {
            sum += value().unwrap_or(0.0);
        } else if l.starts_with(&format!("{name}_count{{")) {
            count += value().unwrap_or(0.0);
        }
    }
    (sum, count)
}

/// pgbench's figure for the claim + settle statements alone, and how many of its orders
/// the statements really settled (all of them, or the figure is of no-ops).
struct Limit {
    clients: usize,
    tps: f64,
    paid: i64,
    transactions: usize,
}

async fn run_pgbench(args: &Args, db: &Database, course: &str) -> Result<Limit, String> {
    let source = std::fs::read_to_string(pgbench::STORE_SOURCE)
        .map_err(|e| format!("reading {}: {e}", pgbench::STORE_SOURCE))?;
    let script = pgbench::script(&source)?;
    let path = std::env::temp_dir().join(format!("coursepay-pgbench-{}.sql", std::process::id()));
    std::fs::write(&path, script).map_err(|e| e.to_string())?;
    let opts = PgConnectOptions::from_str(&db.url)
        .map_err(|e| e.to_string())?
        .options([("search_path", "coursepay")]);
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await
        .map_err(|e| e.to_string())?;
    let (clients, per) = (args.pgbench_clients, args.pgbench_transactions);
    sqlx::query(sqlx::AssertSqlSafe(pgbench::prepare_sql(
        course, clients, per,
    )))
    .execute(&pool)
    .await
    .map_err(|e| format!("preparing pgbench orders: {e}"))?;
    let out = tokio::process::Command::new("pgbench")
        .env("PGOPTIONS", "-c search_path=coursepay")
        .args(["-n", "-M", "prepared", "-D", "i=0"])
        .args([
            "-c",
            &clients.to_string(),
            "-j",
            "2",
            "-t",
            &per.to_string(),
        ])
        .arg("-f")
        .arg(&path)
        .arg(&db.url)
        .output()
        .await
        .map_err(|e| format!("running pgbench: {e}"))?;
    let _ = std::fs::remove_file(&path);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let tps = pgbench::parse_tps(&stdout).ok_or_else(|| {
        format!(
            "pgbench printed no tps: {}{}",
            stdout,
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let paid: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM orders WHERE order_id LIKE 'pgb-%' AND status = 'PAID'",
    )
    .fetch_one(&pool)
    .await
    .map_err(|e| e.to_string())?;
    pool.close().await;
    Ok(Limit {
        clients,
        tps,
        paid,
        transactions: clients * per,
    })
}

fn line(r: &Row) -> String {
    let s = &r.summary;
    let fmt = |v: Option<f64>, p: usize| v.map_or("–".to_owned(), |v| format!("{v:.p$}"));
    format!(
        "| {} | {} | {} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {} | {:.3} | {:.3} | {} |",
        r.kind,
        r.pace,
        s.requests,
        s.errors,
        s.per_second,
        s.p50_ms,
        s.p95_ms,
        s.p99_ms,
        fmt(s.round_trips, 2),
        r.service_cpu_ms,
        r.sandbox_cpu_ms,
        fmt(r.toss_ms, 1),
    )
}

fn report(args: &Args, rows: &[Row], limit: Option<Limit>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nToss latency in the sandbox: {}; {} requests per kind and pace\n",
        args.toss_latency, args.n
    );
    let _ = writeln!(
        out,
        "| kind | pace | requests | errors | req/s | p50 ms | p95 ms | p99 ms | DB round trips | service CPU ms/req | sandbox CPU ms/req | Toss ms (mean) |"
    );
    let _ = writeln!(out, "|{}", " --- |".repeat(12));
    for r in rows {
        let _ = writeln!(out, "{}", line(r));
    }
    if let Some(l) = limit {
        let _ = writeln!(
            out,
            "\npgbench, claim + settle alone ({} clients): {:.0} confirms/s; {} of {} orders settled",
            l.clients, l.tps, l.paid, l.transactions
        );
        if let Some(fresh) = rows
            .iter()
            .find(|r| r.kind == "confirm (fresh)" && matches!(r.pace, Pace::Max(_)))
        {
            let _ = writeln!(
                out,
                "fresh confirms at max reach {:.0}% of the statements-alone limit",
                fresh.summary.per_second / l.tps * 100.0
            );
        }
    }
    // Little's law: requests in flight = arrival rate × time each spends in the system.
    if let Some(fresh) = rows
        .iter()
        .find(|r| r.kind == "confirm (fresh)" && matches!(r.pace, Pace::Rate(_)))
    {
        let latency = fresh.summary.mean_ms / 1000.0;
        let own = fresh.toss_ms.map(|t| fresh.summary.mean_ms - t);
        let _ = writeln!(
            out,
            "\nfresh confirm at {}: mean {:.1} ms end to end, of which Toss {} and the service's own {}",
            fresh.pace,
            fresh.summary.mean_ms,
            fresh.toss_ms.map_or("–".into(), |t| format!("{t:.1} ms")),
            own.map_or("–".into(), |t| format!("{t:.1} ms")),
        );
        for rate in &args.little_rates {
            let _ = writeln!(
                out,
                "to hold {rate:.0} confirms/s an instance keeps {:.0} confirms in flight \
                 (Little's law: rate × mean latency)",
                (rate * latency).ceil()
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_is_left_out_only_on_loopback_and_only_when_the_url_names_no_sslmode() {
        let mode = |u: &str| {
            let mut url = reqwest::Url::parse(u).unwrap();
            let mode = choose_sslmode(&mut url);
            (mode, url.to_string())
        };
        assert_eq!(
            mode("postgres://u:p@127.0.0.1:5432/db"),
            (
                "disable".to_owned(),
                "postgres://u:p@127.0.0.1:5432/db?sslmode=disable".to_owned()
            )
        );
        assert_eq!(mode("postgres://u:p@localhost/db").0, "disable");
        assert_eq!(mode("postgres://u:p@[::1]/db").0, "disable");
        assert_eq!(
            mode("postgres://u:p@127.0.0.1/db?sslmode=require"),
            (
                "require".to_owned(),
                "postgres://u:p@127.0.0.1/db?sslmode=require".to_owned()
            )
        );
        let (m, url) = mode("postgres://u:p@db.example.com/db");
        assert!(m.starts_with("prefer"));
        assert!(!url.contains("sslmode"));
    }

    #[test]
    fn histogram_sums_only_the_labelled_series() {
        let text = "\
coursepay_toss_call_duration_seconds_bucket{operation=\"confirm\",outcome=\"ok\",le=\"0.5\"} 3
coursepay_toss_call_duration_seconds_sum{operation=\"confirm\",outcome=\"ok\"} 1.5
coursepay_toss_call_duration_seconds_count{operation=\"confirm\",outcome=\"ok\"} 3
coursepay_toss_call_duration_seconds_sum{operation=\"confirm\",outcome=\"timeout\"} 0.5
coursepay_toss_call_duration_seconds_count{operation=\"confirm\",outcome=\"timeout\"} 1
coursepay_toss_call_duration_seconds_sum{operation=\"lookup\",outcome=\"ok\"} 9
coursepay_toss_call_duration_seconds_count{operation=\"lookup\",outcome=\"ok\"} 9
";
        let (sum, count) = parse_histogram(
            text,
            "coursepay_toss_call_duration_seconds",
            "operation=\"confirm\"",
        );
        assert_eq!((sum, count), (2.0, 4.0));
    }
}
