//! The checks of sections 2–9 against a running deployment, over HTTP: one file per checklist
//! section, each with a `run` that fills the rows it owns; what was sent and what came back goes
//! into the row's evidence. This file holds what several sections share: what the first
//! requests learned about the target, and one buyer's way through a sandbox payment.
//!
//! What is sent is harmless on any target: webhooks whose event type the service ignores,
//! confirms for orders that do not exist. Anything that creates orders, payments or
//! enrollments, or flips the pause switch, runs only against a sandbox-mode target (its Toss
//! is the built-in sandbox, so no money moves).

pub mod basics;
pub mod bundle;
pub mod frontend;
pub mod observability;
pub mod performance;
pub mod qa;
pub mod resilience;
pub mod secrets;
pub mod webhooks;

use super::http::{Probe, Resp, SANDBOX_PREFIX};
use serde_json::{Value, json};

/// What the first requests learned about the target.
#[derive(Default)]
pub struct Target {
    pub sandbox: bool,
    pub client_key: String,
    /// The configuration report, when the admin token was accepted.
    pub config: Option<Value>,
    /// p95 of the synthetic run, reused in §7.
    pub p95_ms: Option<f64>,
}

fn rid() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_owned()
}

fn yes(v: &Value) -> bool {
    v.as_bool().unwrap_or(false)
}

/// The string elements of a JSON array (none when it is not one).
fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

/// A confirm body naming an order that does not exist: nothing can be charged for it.
fn unknown_order_confirm() -> Value {
    json!({"paymentKey": format!("preflight_{}", rid()), "orderId": format!("preflight-{}", rid()), "amount": 1000})
}

/// One buyer's way through checkout → payment window (sandbox) → confirm.
struct Paid {
    token: String,
    order_id: String,
    amount: i64,
    payment_key: String,
}

/// A fresh buyer's checkout of `course_id`, approved in the sandbox's payment window.
async fn checkout_and_pay(p: &Probe, course_id: &str) -> Result<Paid, String> {
    let (_, token) = p.new_user();
    let co = p
        .post(
            "/v1/checkout",
            Some(&token),
            &json!({"courseId": course_id}),
        )
        .await?;
    if co.status != 201 {
        return Err(format!("POST /v1/checkout → {}", co.brief()));
    }
    let order_id = co.body["orderId"].as_str().unwrap_or("").to_owned();
    let amount = co.body["amount"].as_i64().unwrap_or(0);
    let pw = p
        .post(
            &format!("{SANDBOX_PREFIX}/sandbox/payments"),
            None,
            &json!({"orderId": order_id, "amount": amount, "orderName": "preflight"}),
        )
        .await?;
    if pw.status != 201 {
        return Err(format!("sandbox payment window → {}", pw.brief()));
    }
    Ok(Paid {
        token,
        order_id,
        amount,
        payment_key: pw.body["paymentKey"].as_str().unwrap_or("").to_owned(),
    })
}

async fn confirm(p: &Probe, paid: &Paid, amount: i64) -> Result<Resp, String> {
    p.post(
        "/v1/payments/confirm",
        Some(&paid.token),
        &json!({"paymentKey": paid.payment_key, "orderId": paid.order_id, "amount": amount}),
    )
    .await
}

/// A published course at `price` (any price when None), created when there is none.
async fn course(p: &Probe, price: Option<i64>) -> Result<String, String> {
    let list = p.get("/v1/courses", None).await?;
    if let Some(c) = list.body["items"].as_array().and_then(|items| {
        items
            .iter()
            .find(|c| price.is_none_or(|want| c["price"].as_i64() == Some(want)))
    }) {
        return Ok(c["id"].as_str().unwrap_or("").to_owned());
    }
    let made = p
        .post(
            "/v1/admin/courses",
            Some(p.admin()),
            &json!({"title": "Course A", "price": price.unwrap_or(10_000)}),
        )
        .await?;
    if made.status != 201 {
        return Err(format!("POST /v1/admin/courses → {}", made.brief()));
    }
    Ok(made.body["id"].as_str().unwrap_or("").to_owned())
}
