//! Shared test harness: a sandbox served on a loopback port bound before the server starts,
//! and typed helpers for the calls every test makes.
#![allow(dead_code, clippy::unwrap_used)] // each test binary uses a different subset

use base64::Engine;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::net::TcpListener;
use toss_sandbox::{Sandbox, SandboxConfig, serve};

pub const KEY: &str = "test_sk_coursepay_sandbox";

pub struct TestSandbox {
    pub sandbox: Sandbox,
    pub base: String,
    pub http: reqwest::Client,
}

pub fn basic(raw: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

pub async fn spawn(config: SandboxConfig) -> TestSandbox {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sandbox = Sandbox::new(config);
    tokio::spawn(serve(listener, sandbox.clone()));
    TestSandbox {
        sandbox,
        base: format!("http://{addr}"),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
    }
}

pub async fn spawn_default() -> TestSandbox {
    spawn(SandboxConfig::default()).await
}

/// A unique, valid orderId per call.
pub fn order_id() -> String {
    format!("order-{}", uuid::Uuid::new_v4().simple())
}

impl TestSandbox {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .post(self.url(path))
            .header("Authorization", basic(&format!("{KEY}:")))
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .get(self.url(path))
            .header("Authorization", basic(&format!("{KEY}:")))
    }

    /// What a buyer finishing the payment window produces, through `POST /sandbox/payments`.
    pub async fn authenticated(&self, order_id: &str, amount: i64) -> String {
        self.authenticated_with(json!({"orderId": order_id, "amount": amount}))
            .await
    }

    pub async fn authenticated_with(&self, body: Value) -> String {
        let resp = self
            .http
            .post(self.url("/sandbox/payments"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["status"], "IN_PROGRESS");
        body["paymentKey"].as_str().unwrap().to_owned()
    }

    pub fn confirm_request(
        &self,
        payment_key: &str,
        order_id: &str,
        amount: i64,
    ) -> reqwest::RequestBuilder {
        self.post("/v1/payments/confirm").json(&json!({
            "paymentKey": payment_key, "orderId": order_id, "amount": amount
        }))
    }

    pub async fn confirm(&self, payment_key: &str, order_id: &str, amount: i64) -> (u16, Value) {
        send(self.confirm_request(payment_key, order_id, amount)).await
    }

    pub async fn lookup(&self, payment_key: &str) -> Value {
        let (status, body) = send(self.get(&format!("/v1/payments/{payment_key}"))).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    pub async fn inject(&self, fault: Value) {
        let resp = self
            .http
            .post(self.url("/sandbox/faults"))
            .json(&fault)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
    }
}

pub async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// Waits (polling, bounded) until `cond` holds; for state that changes in a spawned task.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
