//! The real `coursepay` binary's life cycle: what a release reports about itself
//! (`--version`, `/version`), and a graceful shutdown on SIGTERM while a confirm waits on a slow
//! Toss — `/readyz` turns 503, the listener closes, the confirm still answers and is logged,
//! and the process exits cleanly within its grace period.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::BIN;
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};
const DEMO_COURSE_ID: &str = "00000000-0000-4000-8000-00000000c0a1";

/// A scratch directory removed on drop.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("coursepay-{name}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `coursepay serve` in development mode (SQLite file, built-in sandbox) with `extra` env; its
/// stdout (the JSON log) goes to `log`. Returns the child and its base URL.
async fn serve(dir: &Scratch, extra: &[(&str, &str)]) -> (Child, String, std::path::PathBuf) {
    let log = dir.0.join("server.log");
    let mut cmd = Command::new(BIN);
    cmd.arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.0.join("cp.db").display()),
        )
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("RATE_LIMIT_PER_SECOND", "0")
        .env("RATE_LIMIT_CONFIRM_PER_SECOND", "0")
        .envs(extra.iter().copied())
        .current_dir(&dir.0)
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::fs::File::create(&log).unwrap()));
    let (child, base) = common::spawn_listening(cmd).await;
    (child, base, log)
}

fn user_token() -> String {
    let keys =
        flows::auth::JwtKeys::new(&secrecy::SecretString::from(flows::config::DEV_JWT_SECRET));
    keys.mint(Some(domain::UserId::new()), 600)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_names_the_commit_and_build_time() {
    let out = std::process::Command::new(BIN)
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let line = String::from_utf8(out.stdout).unwrap();
    let dir = Scratch::new("version");
    let (mut child, base, _) = serve(&dir, &[]).await;
    let v: Value = reqwest::get(format!("{base}/version"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    child.kill().await.unwrap();
    let commit = v["gitCommit"].as_str().unwrap();
    let built = v["buildTime"].as_str().unwrap();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        line.trim(),
        format!(
            "coursepay {} (commit {commit}, built {built})",
            env!("CARGO_PKG_VERSION")
        )
    );
    // Built from a git checkout (as here): the commit is HEAD's, the time is RFC 3339.
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    match head {
        Some(head) => {
            assert_eq!(commit, head);
            assert!(
                time::OffsetDateTime::parse(built, &time::format_description::well_known::Rfc3339)
                    .is_ok(),
                "{built}"
            );
        }
        None => assert_eq!(commit, "unknown"),
    }
}

/// SIGTERM while a confirm waits 3 s on Toss: /readyz says 503 during the drain delay, then the
/// port closes; the confirm still answers 200 and has its log line; exit status 0 well within
/// the grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_confirms_then_exits() {
    let dir = Scratch::new("shutdown");
    let (mut child, base, log) = serve(
        &dir,
        &[
            ("SHUTDOWN_DRAIN_SECONDS", "2"),
            ("SHUTDOWN_GRACE_SECONDS", "10"),
            ("RECONCILE_INTERVAL_SECONDS", "1"),
        ],
    )
    .await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    // Each probe on a fresh connection, as a load balancer's health check would.
    let fresh = || {
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap()
    };
    let token = user_token();
    let order: Value = http
        .post(format!("{base}/v1/checkout"))
        .bearer_auth(&token)
        .json(&json!({"courseId": DEMO_COURSE_ID}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let order_id = order["orderId"].as_str().unwrap().to_owned();
    let amount = order["amount"].as_i64().unwrap();
    let paid: Value = http
        .post(format!("{base}/toss-sandbox/sandbox/payments"))
        .json(&json!({"orderId": order_id, "amount": amount}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let payment_key = paid["paymentKey"].as_str().unwrap().to_owned();
    let fault = http
        .post(format!("{base}/toss-sandbox/sandbox/faults"))
        .json(&json!({"mode": "delay", "delayMs": 3000, "operations": ["confirm"]}))
        .send()
        .await
        .unwrap();
    assert!(fault.status().is_success());

    let confirm = {
        let (http, base, token) = (http.clone(), base.clone(), token.clone());
        let body = json!({"paymentKey": payment_key, "orderId": order_id, "amount": amount});
        tokio::spawn(async move {
            let r = http
                .post(format!("{base}/v1/payments/confirm"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = child.id().unwrap().to_string();
    let signalled = Instant::now();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );

    // Draining: /readyz is 503 on new connections while the drain delay lasts.
    let mut saw_503 = false;
    while signalled.elapsed() < Duration::from_millis(1500) {
        if let Ok(r) = fresh().get(format!("{base}/readyz")).send().await
            && r.status().as_u16() == 503
        {
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["code"], "E_SERVICE_UNAVAILABLE");
            saw_503 = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(saw_503, "/readyz never said 503 while draining");

    // Then the listener closes (before the confirm is done).
    let mut refused = false;
    while signalled.elapsed() < Duration::from_millis(2600) {
        if fresh().get(format!("{base}/healthz")).send().await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused, "still accepting connections after the drain delay");

    // The in-flight confirm finishes and answers.
    let (status, body) = confirm.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ENROLLED");

    let exit = tokio::time::timeout(Duration::from_secs(12), child.wait())
        .await
        .expect("did not exit within the grace period")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    let exited_after = signalled.elapsed();
    assert!(exited_after < Duration::from_secs(10), "{exited_after:?}");

    // Logged: the confirm's summary line and the shutdown.
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        lines.iter().any(|l| l["function_name"] == "confirm-payment"
            && l["http_status"] == 200
            && l["order_id"] == order_id.as_str()),
        "no summary line for the confirm:\n{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.to_string().contains("shutdown complete")),
        "{text}"
    );
}
