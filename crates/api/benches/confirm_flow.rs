//! Confirm latency and database round trips (seed §5: p95 confirm < 1,500 ms, average DB round
//! trips ≤ 3), end to end over loopback HTTP against the Toss sandbox, on SQLite and PostgreSQL.
//!
//! Each purchase is checkout → sandbox payment → confirm; only the confirm is timed. Prints
//! p50/p95/p99/max of the confirm, confirms per second at the chosen concurrency and the
//! round trips the server reported (X-Db-Round-Trips). Figures, not assertions: a benchmark
//! that prints, never a timed test that flakes.
//!
//!   TEST_DATABASE_URL=postgres://postgres:postgres@127.0.0.1:5432/test \
//!     cargo bench -p coursepay-api --bench confirm_flow
//!   CONFIRM_BENCH_N=400 CONFIRM_BENCH_CONCURRENCY=16 cargo bench ...
#![allow(clippy::unwrap_used, clippy::expect_used)]

use flows::App;
use flows::config::{Config, DEV_TOSS_SECRET_KEY};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

struct Env {
    base: String,
    http: reqwest::Client,
    app: App,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(store: store::DynStore) -> Env {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = Config::development();
    let sandbox = toss_sandbox::Sandbox::new(toss_sandbox::SandboxConfig {
        secret_keys: vec![DEV_TOSS_SECRET_KEY.to_owned()],
        ..Default::default()
    });
    let toss = toss::TossClient::new(toss::TossConfig {
        api_base: format!("http://{addr}/toss-sandbox"),
        secret_key: DEV_TOSS_SECRET_KEY.to_owned(),
        timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(1),
    })
    .unwrap();
    let app = App::new(store, toss, config);
    let router = api::http::router(app.clone()).nest("/toss-sandbox", sandbox.router());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(api::serve(listener, router, async {
        let _ = rx.await;
    }));
    Env {
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
        app,
        _stop: tx,
    }
}

async fn post(env: &Env, path: &str, token: Option<&str>, body: Value) -> reqwest::Response {
    let mut req = env.http.post(format!("{}{path}", env.base)).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

/// One purchase; returns (confirm latency, round trips the confirm cost).
async fn purchase(env: &Env, course: &str) -> (Duration, u32) {
    let token = env.app.jwt.mint(Some(domain::UserId::new()), 600);
    let order: Value = post(
        env,
        "/v1/checkout",
        Some(&token),
        json!({"courseId": course}),
    )
    .await
    .json()
    .await
    .unwrap();
    let order_id = order["orderId"].as_str().unwrap().to_owned();
    let pay: Value = post(
        env,
        "/toss-sandbox/sandbox/payments",
        None,
        json!({"orderId": order_id, "amount": 10_000}),
    )
    .await
    .json()
    .await
    .unwrap();
    let key = pay["paymentKey"].as_str().unwrap().to_owned();
    let started = Instant::now();
    let r = post(
        env,
        "/v1/payments/confirm",
        Some(&token),
        json!({"paymentKey": key, "orderId": order_id, "amount": 10_000}),
    )
    .await;
    let elapsed = started.elapsed();
    assert!(r.status().is_success(), "confirm failed: {}", r.status());
    let rt = r.headers()["x-db-round-trips"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    (elapsed, rt)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

async fn run(name: &str, store: store::DynStore, n: usize, concurrency: usize) {
    let env = std::sync::Arc::new(start(store).await);
    let admin = env.app.jwt.mint(None, 600);
    let course: Value = post(
        &env,
        "/v1/admin/courses",
        Some(&admin),
        json!({"title": "Bench", "price": 10_000}),
    )
    .await
    .json()
    .await
    .unwrap();
    let course = course["id"].as_str().unwrap().to_owned();
    // Warm-up: connections, prepared statements.
    for _ in 0..10 {
        purchase(&env, &course).await;
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let env = env.clone();
        let course = course.clone();
        let share = n / concurrency + usize::from(w < n % concurrency);
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::with_capacity(share);
            for _ in 0..share {
                out.push(purchase(&env, &course).await);
            }
            out
        }));
    }
    let mut samples = Vec::with_capacity(n);
    for t in tasks {
        samples.extend(t.await.unwrap());
    }
    let wall = started.elapsed();
    let mut lat: Vec<Duration> = samples.iter().map(|s| s.0).collect();
    lat.sort();
    let rt_avg = samples.iter().map(|s| f64::from(s.1)).sum::<f64>() / samples.len() as f64;
    println!(
        "{name:<10} n={n} concurrency={concurrency}: confirm p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {:.0} purchases/s; DB round trips per confirm avg {rt_avg:.1}",
        pct(&lat, 0.50),
        pct(&lat, 0.95),
        pct(&lat, 0.99),
        pct(&lat, 1.0),
        n as f64 / wall.as_secs_f64(),
    );
}

fn main() {
    let n: usize = std::env::var("CONFIRM_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let concurrency: usize = std::env::var("CONFIRM_BENCH_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8)
        .max(1);
    // The JSON request lines go to a buffer, not the terminal: only the figures are printed.
    flows::logging::capture();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        for c in [1, concurrency] {
            run("sqlite", store::testing::sqlite().await, n, c).await;
            run("postgres", store::testing::postgres().await, n, c).await;
        }
    });
}
