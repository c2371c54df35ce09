//! `coursepay preflight` against real deployments: the `coursepay serve` binary on SQLite and on
//! PostgreSQL (healthy: exit 0, no row fails), and deliberately broken ones — a missing
//! constraint, a wildcard CORS origin, a webhook secret that does not verify, and a test Toss
//! key in production mode (started in process, since `serve` refuses that configuration) —
//! where the right rows fail and the exit code is 1.
//!
//! The preflight always runs as the real binary and writes its JSON report to a file the test
//! reads. Needs PostgreSQL (TEST_DATABASE_URL) for the PostgreSQL cases.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::BIN;
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, ConnectOptions, Executor};
use std::process::Stdio;
use std::str::FromStr;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

fn test_db_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/test".to_owned())
}

/// A `coursepay serve` child, killed when dropped.
struct Serve {
    _child: Child,
    base: String,
}

async fn serve(envs: &[(&str, String)]) -> Serve {
    let mut cmd = Command::new(BIN);
    cmd.arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LISTEN_ADDR", "127.0.0.1:0")
        // The QA scenario "the buyer closed the tab" reads the order right after approving:
        // the server must confirm it at once, not leave it to the buyer for two minutes.
        .env("SERVER_CONFIRM_GRACE_SECONDS", "0")
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let (child, base) = common::spawn_listening(cmd).await;
    Serve {
        _child: child,
        base,
    }
}

/// Run `coursepay preflight` with `args` (plus a JSON report to a temporary file); the exit
/// code and the report.
async fn preflight(args: &[&str], envs: &[(&str, &str)]) -> (i32, Value) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report.json");
    let started = Instant::now();
    let result = Command::new(BIN)
        .arg("preflight")
        .args(args)
        .args(["--format", "json", "--output", out.to_str().unwrap()])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        elapsed < Duration::from_secs(60),
        "preflight took {elapsed:?}:\n{stderr}"
    );
    let code = result.status.code().unwrap_or(-1);
    let text = std::fs::read_to_string(&out)
        .unwrap_or_else(|e| panic!("no report ({e}); exit {code}; stderr:\n{stderr}"));
    let report: Value = serde_json::from_str(&text).unwrap();
    assert!(
        stderr.contains("preflight [9/9]"),
        "progress on stderr:\n{stderr}"
    );
    assert!(stderr.contains("PASS"), "summary on stderr:\n{stderr}");
    (code, report)
}

fn rows(report: &Value) -> Vec<Value> {
    report["sections"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["rows"].as_array().unwrap().clone())
        .collect()
}

fn status<'a>(report: &'a Value, id: &str) -> &'a str {
    report["sections"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["rows"].as_array().unwrap())
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no row {id}"))["status"]
        .as_str()
        .unwrap()
}

/// Rows a healthy sandbox-mode deployment must PASS (the rest are N/A or WARN by nature in
/// development: production mode, commit, storefront bundle, front-end behaviour).
const MUST_PASS: &[&str] = &[
    "schema.payments_provider_unique",
    "schema.enrollments_user_course_unique",
    "schema.payments_enrollment_fk",
    "schema.exam_attempts_fk",
    "schema.indexes",
    "secrets.toss_secret_key",
    "secrets.service_role",
    "secrets.webhook_secret",
    "secrets.client_key",
    "secrets.webhook_rotation",
    "secrets.never_echoed",
    "hmac.algorithm",
    "hmac.timestamp",
    "hmac.reuse",
    "hmac.idempotency_store",
    "hmac.paymentkey_cache",
    "logs.json",
    "logs.request_id",
    "logs.latency",
    "logs.metrics",
    "logs.alert_rules",
    "perf.p95",
    "fail.toss_outage",
    "fail.amount_mismatch",
    "fail.sig_forgery",
    "rollback.amount_mismatch",
    "rollback.readiness",
    "fe.i18n",
    "fe.cors",
    "qa.normal",
    "qa.tamper",
    "qa.duplicate",
    "qa.network",
    "qa.bad_signature",
];

fn assert_healthy(code: i32, report: &Value) {
    for row in rows(report) {
        assert_ne!(row["status"], "FAIL", "{row}");
    }
    for id in MUST_PASS {
        assert_eq!(status(report, id), "PASS", "{id}: {report:#}");
    }
    assert_eq!(code, 0, "{:#}", report["summary"]);
    assert_eq!(report["passed"], true);
}

/// README's example run is this test's run: its summary line, and the WARN and N/A rows it
/// names (the backquoted ids after "WARN:" and after "N/A:"), are the report's.
fn readme_describes(report: &Value) {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let paragraph = readme
        .split("\n\n")
        .find(|p| p.starts_with("Against a local `serve`"))
        .expect("README: the paragraph of the example preflight run")
        .replace('\n', " ");
    let span = |from: &str, to: &str| -> String {
        let start = paragraph
            .find(from)
            .unwrap_or_else(|| panic!("README: no {from:?}"));
        let rest = &paragraph[start + from.len()..];
        rest[..rest.find(to).unwrap_or_else(|| panic!("README: no {to:?}"))].to_owned()
    };
    let ids = |span: String| -> Vec<String> {
        let mut ids: Vec<String> = span
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect();
        ids.sort();
        ids
    };
    let with_status = |wanted: &str| -> Vec<String> {
        let mut ids: Vec<String> = rows(report)
            .iter()
            .filter(|r| r["status"] == wanted)
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    let c = &report["summary"];
    let summary = format!(
        "preflight passed: {} PASS, {} FAIL, {} WARN, {} N/A",
        c["pass"], c["fail"], c["warn"], c["na"]
    );
    assert_eq!(span("and ends `", "`"), summary, "README: {paragraph}");
    assert_eq!(
        ids(span("WARN:", "N/A:")),
        with_status("WARN"),
        "README: {paragraph}"
    );
    assert_eq!(
        ids(span("N/A:", "Without")),
        with_status("N/A"),
        "README: {paragraph}"
    );
}

fn today() -> String {
    let d = time::OffsetDateTime::now_utc().date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// A fresh PostgreSQL schema; a URL whose connections use it.
async fn pg_schema() -> (String, sqlx::PgPool, String) {
    let base = test_db_url();
    let opts = PgConnectOptions::from_str(&base).unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(opts.clone())
        .await
        .expect("PostgreSQL is required (TEST_DATABASE_URL)");
    let schema = format!("pf_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    pool.execute(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .await
        .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    (url, pool, schema)
}

async fn drop_schema(pool: &sqlx::PgPool, schema: &str) {
    let _ = pool
        .execute(AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE"
        )))
        .await;
}

#[tokio::test]
async fn healthy_serve_on_sqlite_passes_with_qa() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/coursepay.db", dir.path().display());
    let s = serve(&[
        ("DATABASE_URL", db.clone()),
        ("WEBHOOK_SECRET_ROTATED_AT", today()),
    ])
    .await;
    let (code, report) = preflight(&["--url", &s.base, "--database-url", &db, "--qa"], &[]).await;
    assert_healthy(code, &report);
    assert!(
        rows(&report).iter().any(|r| r["evidence"]
            .as_str()
            .unwrap()
            .starts_with("sqlite catalog")),
        "the SQLite catalog was read"
    );
    // SQLite counts every statement of its two transactions: measured, reported, not gated.
    assert_eq!(status(&report, "perf.round_trips"), "WARN");
    readme_describes(&report);

    // The two admin endpoints the preflight reads: service role only, bad input is a problem.
    let admin =
        flows::auth::JwtKeys::new(&secrecy::SecretString::from(flows::config::DEV_JWT_SECRET))
            .mint(None, 60);
    let http = reqwest::Client::new();
    for path in ["/v1/admin/config-report", "/v1/admin/logs/recent"] {
        let anon = http.get(format!("{}{path}", s.base)).send().await.unwrap();
        assert_eq!(anon.status(), 401, "{path}");
    }
    for bad in ["0", "201", "many"] {
        let r = http
            .get(format!("{}/v1/admin/logs/recent?limit={bad}", s.base))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "limit={bad}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/problem+json")
        );
    }
    let logs: Value = http
        .get(format!("{}/v1/admin/logs/recent?limit=200", s.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = logs["items"].as_array().unwrap();
    assert!(
        (50..=200).contains(&items.len()),
        "at most the last 200 summary lines: {}",
        items.len()
    );
    assert!(items.iter().any(|l| {
        l["request_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("preflight-"))
    }));
    assert!(items.iter().any(|l| l["user_id"] == "[redacted]"));
    let text = logs.to_string();
    assert!(!text.contains(&admin) && !text.contains(flows::config::DEV_JWT_SECRET));
    // Markdown in Korean, to stdout.
    let out = Command::new(BIN)
        .args([
            "preflight",
            "--url",
            &s.base,
            "--database-url",
            &db,
            "--lang",
            "ko",
            "--confirms",
            "2",
        ])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .await
        .unwrap();
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(md.contains("## 1. 스키마 & 제약 조건"), "{md}");
    assert!(
        md.contains("| payments.provider + payments.provider_tx_id UNIQUE | 필수 | **PASS** |"),
        "{md}"
    );
    assert!(md.contains("## 9. QA 시나리오 (최소)"), "{md}");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn healthy_serve_on_postgres_passes() {
    let (url, pool, schema) = pg_schema().await;
    let s = serve(&[
        ("DATABASE_URL", url.clone()),
        ("DATABASE_SCHEMA", schema.clone()),
        ("WEBHOOK_SECRET_ROTATED_AT", today()),
    ])
    .await;
    let (code, report) = preflight(
        &["--url", &s.base, "--database-url", &url, "--qa"],
        &[("DATABASE_SCHEMA", &schema)],
    )
    .await;
    assert_healthy(code, &report);
    assert_eq!(status(&report, "perf.round_trips"), "PASS");
    assert!(
        rows(&report).iter().any(|r| r["evidence"]
            .as_str()
            .unwrap()
            .starts_with("postgres catalog")),
        "the PostgreSQL catalog was read"
    );

    // Broken: the seed's first constraint dropped (on a running deployment).
    pool.execute(AssertSqlSafe(format!(
        "ALTER TABLE {schema}.payments DROP CONSTRAINT payments_provider_tx_key"
    )))
    .await
    .unwrap();
    let (code, report) = preflight(
        &[
            "--url",
            &s.base,
            "--database-url",
            &url,
            "--database-schema",
            &schema,
            "--confirms",
            "2",
        ],
        &[],
    )
    .await;
    assert_eq!(status(&report, "schema.payments_provider_unique"), "FAIL");
    assert_eq!(
        status(&report, "schema.enrollments_user_course_unique"),
        "PASS"
    );
    assert_eq!(code, 1);
    drop(s);
    drop_schema(&pool, &schema).await;
}

#[tokio::test]
async fn sqlite_missing_index_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/coursepay.db", dir.path().display());
    let s = serve(&[("DATABASE_URL", db.clone())]).await;
    let mut conn = sqlx::sqlite::SqliteConnectOptions::from_str(&db)
        .unwrap()
        .connect()
        .await
        .unwrap();
    conn.execute("DROP INDEX exam_attempts_enrollment_id_idx")
        .await
        .unwrap();
    let (code, report) = preflight(
        &["--url", &s.base, "--database-url", &db, "--confirms", "2"],
        &[],
    )
    .await;
    assert_eq!(status(&report, "schema.indexes"), "FAIL");
    assert_eq!(status(&report, "schema.payments_provider_unique"), "PASS");
    assert_eq!(code, 1);
}

#[tokio::test]
async fn without_a_database_url_the_schema_rows_block_the_gate() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/coursepay.db", dir.path().display());
    let s = serve(&[("DATABASE_URL", db)]).await;
    let (code, report) = preflight(&["--url", &s.base, "--confirms", "2"], &[]).await;
    assert_eq!(status(&report, "schema.payments_provider_unique"), "N/A");
    assert!(
        report["summary"]["blocking"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b == "schema.payments_provider_unique")
    );
    assert_eq!(code, 1);
}

#[tokio::test]
async fn wildcard_cors_origin_fails() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/coursepay.db", dir.path().display());
    let s = serve(&[
        ("DATABASE_URL", db.clone()),
        ("CORS_ALLOWED_ORIGINS", "*".to_owned()),
    ])
    .await;
    let (code, report) = preflight(
        &["--url", &s.base, "--database-url", &db, "--confirms", "2"],
        &[],
    )
    .await;
    assert_eq!(status(&report, "fe.cors"), "FAIL");
    assert_eq!(status(&report, "fe.i18n"), "PASS");
    assert_eq!(code, 1);
}

#[tokio::test]
async fn webhook_secret_that_does_not_verify_fails() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/coursepay.db", dir.path().display());
    let s = serve(&[
        ("DATABASE_URL", db.clone()),
        (
            "WEBHOOK_SECRET",
            "the-deployment-webhook-secret-0123456789".to_owned(),
        ),
    ])
    .await;
    let (code, report) = preflight(
        &["--url", &s.base, "--database-url", &db, "--confirms", "2"],
        &[(
            "WEBHOOK_SECRET",
            "another-webhook-secret-that-is-32-bytes-long",
        )],
    )
    .await;
    assert_eq!(status(&report, "hmac.algorithm"), "FAIL");
    assert_eq!(status(&report, "hmac.reuse"), "FAIL");
    // The deployment's own secret is fine; the preflight was told a different one.
    assert_eq!(status(&report, "secrets.webhook_secret"), "PASS");
    assert_eq!(code, 1);
    // The preflight's secret never appears in its report.
    assert!(!report.to_string().contains("another-webhook-secret"));
}

/// A production deployment holding a test Toss key. `serve` refuses to start like that, so the
/// test starts it in process with the configuration built by hand.
#[tokio::test]
async fn test_key_in_production_mode_fails() {
    use flows::config::{Config, DEV_TOSS_SECRET_KEY, Environment};
    // The in-process server's log lines go to a buffer, not the test's output.
    flows::logging::capture();
    let store = store::testing::sqlite().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = Config::development();
    config.env = Environment::Production;
    config.toss_api_base = Some(format!("http://{addr}/toss-sandbox"));
    config.jwt_secret = secrecy::SecretString::from("a-production-jwt-secret-0123456789abcdef");
    let sandbox = toss_sandbox::Sandbox::new(toss_sandbox::SandboxConfig {
        secret_keys: vec![DEV_TOSS_SECRET_KEY.to_owned()],
        ..Default::default()
    });
    let toss = toss::TossClient::new(toss::TossConfig {
        api_base: format!("http://{addr}/toss-sandbox"),
        secret_key: DEV_TOSS_SECRET_KEY.to_owned(),
        timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(1),
    })
    .unwrap();
    let app = flows::App::new(store, toss, config);
    let router = api::http::router(app).nest("/toss-sandbox", sandbox.router());
    let (_tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(api::serve(listener, router, async {
        let _ = rx.await;
    }));
    let base = format!("http://{addr}");
    let (code, report) = preflight(
        &["--url", &base],
        &[("JWT_SECRET", "a-production-jwt-secret-0123456789abcdef")],
    )
    .await;
    assert_eq!(status(&report, "secrets.toss_secret_key"), "FAIL");
    assert_eq!(status(&report, "secrets.client_key"), "FAIL");
    assert_eq!(status(&report, "secrets.production_mode"), "FAIL");
    assert_eq!(status(&report, "secrets.service_role"), "PASS");
    // Not a sandbox-mode target: nothing that pays or pauses was run.
    assert_eq!(status(&report, "perf.p95"), "N/A");
    assert_eq!(status(&report, "fail.amount_mismatch"), "N/A");
    assert_eq!(code, 1);
}

#[tokio::test]
async fn unreachable_target_exits_2() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let out = Command::new(BIN)
        .args(["preflight", "--url", &format!("http://127.0.0.1:{port}")])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("could not run"));
}
