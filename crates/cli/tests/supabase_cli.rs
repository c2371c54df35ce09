//! Least privilege with the real binary: `coursepay serve` with `AUTO_MIGRATE=false` refuses an
//! unmigrated database, `coursepay migrate` (as the owner) prepares it, and `serve` then runs
//! a whole purchase as a role that has nothing but DML on coursepay's tables. Plus `coursepay
//! migrate --print` writing plain SQL files. Needs PostgreSQL (TEST_DATABASE_URL).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::BIN;
use serde_json::{Value, json};
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Executor, PgConnection};
use std::process::Stdio;
use std::str::FromStr;
use std::time::Duration;
use tokio::process::Command;

const DEMO_COURSE_ID: &str = "00000000-0000-4000-8000-00000000c0a1";

fn test_db_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/test".to_owned())
}

async fn admin() -> PgConnection {
    PgConnection::connect_with(&PgConnectOptions::from_str(&test_db_url()).unwrap())
        .await
        .expect("PostgreSQL reachable at TEST_DATABASE_URL")
}

fn command(args: &[&str], envs: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// Run to completion: (exit code, stdout, stderr).
async fn run(args: &[&str], envs: &[(&str, String)]) -> (i32, String, String) {
    let out = tokio::time::timeout(Duration::from_secs(60), command(args, envs).output())
        .await
        .expect("coursepay finished in time")
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn serve_as_a_dml_only_role_after_migrate_as_the_owner() {
    let db = format!(
        "cp_least_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    let role = format!(
        "cp_app_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    admin()
        .await
        .execute(AssertSqlSafe(format!("CREATE DATABASE {db}")))
        .await
        .unwrap();
    let owner_opts = PgConnectOptions::from_str(&test_db_url())
        .unwrap()
        .database(&db);
    let owner_url = owner_opts.to_url_lossy().to_string();
    let app_url = owner_opts
        .clone()
        .username(&role)
        .to_url_lossy()
        .to_string();

    // 1. serve without migrating refuses, saying what to do.
    let (code, _, stderr) = run(
        &["serve"],
        &[
            ("DATABASE_URL", owner_url.clone()),
            ("AUTO_MIGRATE", "false".into()),
            ("LISTEN_ADDR", "127.0.0.1:0".into()),
        ],
    )
    .await;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("AUTO_MIGRATE=false") && stderr.contains("coursepay migrate"),
        "{stderr}"
    );

    // 2. The owner migrates; the runtime role gets DML only (the SQL the README documents).
    let (code, _, stderr) = run(&["migrate"], &[("DATABASE_URL", owner_url.clone())]).await;
    assert_eq!(code, 0, "{stderr}");
    let mut owner = PgConnection::connect_with(&owner_opts).await.unwrap();
    for sql in [
        format!("CREATE ROLE {role} LOGIN"),
        format!("GRANT CONNECT ON DATABASE {db} TO {role}"),
        format!("GRANT USAGE ON SCHEMA coursepay TO {role}"),
        format!("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA coursepay TO {role}"),
        format!("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA coursepay TO {role}"),
    ] {
        owner.execute(AssertSqlSafe(sql)).await.unwrap();
    }

    // 3. serve as that role, with a small pool and a statement timeout.
    let mut cmd = command(
        &["serve"],
        &[
            ("DATABASE_URL", app_url),
            ("AUTO_MIGRATE", "false".into()),
            ("DATABASE_POOL_SIZE", "3".into()),
            ("DATABASE_STATEMENT_TIMEOUT_MS", "4000".into()),
            ("LISTEN_ADDR", "127.0.0.1:0".into()),
            ("RATE_LIMIT_PER_SECOND", "0".into()),
            ("RATE_LIMIT_CONFIRM_PER_SECOND", "0".into()),
        ],
    );
    cmd.stdout(Stdio::null());
    let (mut child, base) = common::spawn_listening(cmd).await;

    let http = reqwest::Client::new();
    let r = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let keys =
        flows::auth::JwtKeys::new(&secrecy::SecretString::from(flows::config::DEV_JWT_SECRET));
    let token = keys.mint(Some(domain::UserId::new()), 600);
    let post = |path: &str, body: Value, auth: bool| {
        let mut req = http.post(format!("{base}{path}")).json(&body);
        if auth {
            req = req.bearer_auth(&token);
        }
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, order) = post("/v1/checkout", json!({"courseId": DEMO_COURSE_ID}), true).await;
    assert_eq!(status, 201, "{order}");
    let (order_id, amount) = (order["orderId"].clone(), order["amount"].clone());
    let (status, paid) = post(
        "/toss-sandbox/sandbox/payments",
        json!({"orderId": order_id, "amount": amount, "orderName": "Course A", "outcome": "approve"}),
        false,
    )
    .await;
    assert_eq!(status, 201, "{paid}");
    let (status, confirmed) = post(
        "/v1/payments/confirm",
        json!({"paymentKey": paid["paymentKey"], "orderId": order_id, "amount": amount}),
        true,
    )
    .await;
    assert_eq!(status, 200, "{confirmed}");
    assert_eq!(confirmed["status"], "ENROLLED");

    // The rows are in coursepay's schema, written by the runtime role within its pool size.
    let payments: i64 = sqlx::query_scalar("SELECT count(*) FROM coursepay.payments")
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert_eq!(payments, 1);
    let connections: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE usename = $1")
            .bind(&role)
            .fetch_one(&mut owner)
            .await
            .unwrap();
    assert!((1..=3).contains(&connections), "{connections} connections");

    child.start_kill().unwrap();
    let _ = child.wait().await;
    let _ = owner.close().await;
    let mut admin = admin().await;
    admin
        .execute(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
        )))
        .await
        .unwrap();
    admin
        .execute(AssertSqlSafe(format!("DROP ROLE IF EXISTS {role}")))
        .await
        .unwrap();
}

#[tokio::test]
async fn migrate_print_writes_plain_sql_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("supabase/migrations");
    let (code, stdout, stderr) = run(
        &["migrate", "--print", "--dir", out.to_str().unwrap()],
        &[("DATABASE_SCHEMA", "billing".into())],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.is_empty());
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 4, "{names:?}");
    assert!(names[0].ends_with("_coursepay_0001_init.sql"), "{names:?}");
    for name in &names {
        let sql = std::fs::read_to_string(out.join(name)).unwrap();
        assert!(sql.contains("SET search_path TO \"billing\";"), "{name}");
        assert!(sql.contains("INSERT INTO _sqlx_migrations"), "{name}");
        assert!(sql.trim_end().ends_with("RESET search_path;"), "{name}");
        assert!(stderr.contains(name.as_str()), "{stderr}");
    }
    // Without --dir: the same SQL on stdout.
    let (code, stdout, _) = run(&["migrate", "--print"], &[]).await;
    assert_eq!(code, 0);
    assert!(stdout.contains("CREATE TABLE courses") && stdout.contains("\"coursepay\""));
    // public is refused.
    let (code, _, stderr) = run(
        &["migrate", "--print"],
        &[("DATABASE_SCHEMA", "public".into())],
    )
    .await;
    assert_eq!(code, 2);
    assert!(stderr.contains("DATABASE_SCHEMA"), "{stderr}");
}
