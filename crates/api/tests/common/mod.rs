//! Test harness: a real coursepay server on a loopback port with the Toss sandbox nested at
//! /toss-sandbox (reached over real HTTP by the Toss client), on a fresh SQLite file or a fresh
//! PostgreSQL schema. Typed helpers for the steps a buyer and an admin take.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use flows::App;
use flows::config::{Config, DEV_TOSS_SECRET_KEY};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;
use store::DynStore;

pub use store::Backend;

/// Where Toss delivers webhooks.
pub const WEBHOOK_PATH: &str = "/v1/webhooks/toss";

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub app: App,
    pub store: DynStore,
    pub sandbox: toss_sandbox::Sandbox,
    pub backend: Backend,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
    pub fn round_trips(&self) -> u32 {
        self.headers
            .get("x-db-round-trips")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .expect("x-db-round-trips header")
    }
    pub fn is_problem(&self) -> bool {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/problem+json"))
    }
}

pub async fn spawn(backend: Backend) -> TestApp {
    spawn_with(backend, |_| {}).await
}

pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> TestApp {
    flows::logging::capture();
    let store = store::testing::store(backend).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = Config::development();
    config.toss_timeout = Duration::from_secs(2);
    // Most tests expect the reconciler and webhooks to confirm an authenticated order at once
    // (the buyer's own order read always does). Tests of the grace itself set it.
    config.server_confirm_grace = Duration::ZERO;
    tweak(&mut config);
    let sandbox = toss_sandbox::Sandbox::new(toss_sandbox::SandboxConfig {
        secret_keys: vec![DEV_TOSS_SECRET_KEY.to_owned()],
        timeout_fault_hang: Duration::from_secs(5),
        ..Default::default()
    });
    let toss = toss::TossClient::new(toss::TossConfig {
        api_base: format!("http://{addr}/toss-sandbox"),
        secret_key: DEV_TOSS_SECRET_KEY.to_owned(),
        timeout: config.toss_timeout,
        connect_timeout: Duration::from_secs(1),
    })
    .unwrap();
    let app = App::new(store.clone(), toss, config);
    let router = api::http::router(app.clone()).nest("/toss-sandbox", sandbox.router());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let edge = app.config.edge;
    tokio::spawn(api::edge::serve(listener, router, edge, async {
        let _ = rx.await;
    }));
    TestApp {
        base: format!("http://{addr}"),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        app,
        store,
        sandbox,
        backend,
        _shutdown: tx,
    }
}

async fn into_resp(r: reqwest::Response) -> Resp {
    let status = r.status();
    let headers = r.headers().clone();
    let bytes = r.bytes().await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Resp {
        status,
        headers,
        body,
    }
}

impl TestApp {
    pub fn user_token(&self, user: domain::UserId) -> String {
        self.app.jwt.mint(Some(user), 600)
    }
    pub fn admin_token(&self) -> String {
        self.app.jwt.mint(None, 600)
    }
    pub fn new_user(&self) -> (domain::UserId, String) {
        let u = domain::UserId::new();
        (u, self.user_token(u))
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        let mut req = self.http.get(format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        into_resp(req.send().await.unwrap()).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Resp {
        self.post_raw(path, token, body.to_string().into_bytes(), &[])
            .await
    }

    pub async fn post_raw(
        &self,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = self
            .http
            .post(format!("{}{}", self.base, path))
            .header("content-type", "application/json")
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        into_resp(req.send().await.unwrap()).await
    }

    /// One webhook delivery to `POST /v1/webhooks/toss`: `body` as sent, with `headers`
    /// (signature, timestamp, transmission id — whatever the case needs, nothing added).
    pub async fn deliver_webhook(&self, body: &[u8], headers: &[(String, String)]) -> Resp {
        let h: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.post_raw(WEBHOOK_PATH, None, body.to_vec(), &h).await
    }

    pub async fn create_course(&self, price: i64) -> String {
        let r = self
            .post(
                "/v1/admin/courses",
                Some(&self.admin_token()),
                &json!({"title": "Course A", "price": price}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.body["id"].as_str().unwrap().to_owned()
    }

    pub async fn checkout(&self, token: &str, course_id: &str) -> Value {
        let r = self
            .post("/v1/checkout", Some(token), &json!({"courseId": course_id}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.body
    }

    /// What the buyer finishing the Toss payment window produces: an authenticated payment.
    pub async fn buyer_pays(&self, order_id: &str, amount: i64) -> String {
        self.buyer_pays_with(order_id, amount, "approve").await
    }

    pub async fn buyer_pays_with(&self, order_id: &str, amount: i64, outcome: &str) -> String {
        let r = self
            .post(
                "/toss-sandbox/sandbox/payments",
                None,
                &json!({"orderId": order_id, "amount": amount, "orderName": "Course A", "outcome": outcome}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.body["paymentKey"].as_str().unwrap().to_owned()
    }

    pub async fn confirm(
        &self,
        token: &str,
        payment_key: &str,
        order_id: &str,
        amount: i64,
    ) -> Resp {
        self.post(
            "/v1/payments/confirm",
            Some(token),
            &json!({"paymentKey": payment_key, "orderId": order_id, "amount": amount}),
        )
        .await
    }

    pub async fn stats(&self) -> Value {
        self.get("/toss-sandbox/sandbox/stats", None).await.body
    }

    pub async fn confirm_calls(&self) -> u64 {
        self.stats().await["confirmCalls"].as_u64().unwrap()
    }

    /// `DELETE /sandbox/faults`: Toss is healthy again.
    pub async fn clear_faults(&self) {
        let r = self
            .http
            .delete(format!("{}/toss-sandbox/sandbox/faults", self.base))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }

    pub async fn fault(&self, fault: Value) {
        let r = self
            .post("/toss-sandbox/sandbox/faults", None, &fault)
            .await;
        assert!(r.status.is_success(), "{:?}", r.body);
    }

    /// A course, a buyer with a PENDING order for it and an authenticated sandbox payment.
    pub async fn paid_in_window(&self, price: i64) -> Purchase {
        let course_id = self.create_course(price).await;
        let (user, token) = self.new_user();
        let order = self.checkout(&token, &course_id).await;
        let order_id = order["orderId"].as_str().unwrap().to_owned();
        let payment_key = self.buyer_pays(&order_id, price).await;
        Purchase {
            user,
            token,
            course_id,
            order_id,
            payment_key,
            amount: price,
        }
    }

    /// Poll the store until `check` holds or 10 s pass (for work that finishes in the
    /// background after a client went away).
    pub async fn eventually<F, Fut>(&self, mut check: F) -> bool
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::time::Instant::now() < deadline {
            if check().await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    pub async fn order(&self, order_id: &str) -> store::Order {
        self.store
            .get_order(&domain::OrderId::parse(order_id).unwrap())
            .await
            .unwrap()
            .unwrap()
    }
}

pub struct Purchase {
    pub user: domain::UserId,
    pub token: String,
    pub course_id: String,
    pub order_id: String,
    pub payment_key: String,
    pub amount: i64,
}
