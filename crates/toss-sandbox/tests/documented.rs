//! The Toss behaviours the sandbox models from Toss's documentation beyond the card happy path:
//! errors stored under an Idempotency-Key, nullable fields, virtual-account cancels and their
//! event stream, lookup codes and throttling, cancel codes with Toss's statuses, and the
//! smaller field facts (cultureExpense, suppliedAmount/vat after cancels, dueDate without
//! offset, whtrans_ ids, READY expiry, en-US values).
#![allow(clippy::unwrap_used)]

mod common;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use common::{TestSandbox, order_id, send, spawn, spawn_default};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::mpsc;
use toss_sandbox::{Fault, FaultMode, Operation, SandboxConfig};

type Hook = (HeaderMap, Value);

async fn hook(State(tx): State<mpsc::UnboundedSender<Hook>>, h: HeaderMap, b: Bytes) -> StatusCode {
    let _ = tx.send((h, serde_json::from_slice(&b).unwrap_or(Value::Null)));
    StatusCode::OK
}

/// A sandbox delivering webhooks to a receiver whose bodies the test reads.
async fn with_hooks() -> (TestSandbox, mpsc::UnboundedReceiver<Hook>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new()
        .route("/hooks", axum::routing::post(hook))
        .with_state(tx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let sb = spawn(SandboxConfig {
        webhook_url: Some(url),
        ..SandboxConfig::default()
    })
    .await;
    (sb, rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Hook>) -> Hook {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("webhook not delivered in time")
        .unwrap()
}

/// Collects `n` deliveries (they are independent tasks: any order).
async fn collect(rx: &mut mpsc::UnboundedReceiver<Hook>, n: usize) -> Vec<Hook> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(next(rx).await);
    }
    out
}

fn cancel(sb: &TestSandbox, key: &str, body: Value) -> reqwest::RequestBuilder {
    sb.post(&format!("/v1/payments/{key}/cancel")).json(&body)
}

async fn va_waiting(sb: &TestSandbox, amount: i64) -> (String, String, Value) {
    let order = order_id();
    let key = sb
        .authenticated_with(
            json!({"orderId": order, "amount": amount, "method": "VIRTUAL_ACCOUNT"}),
        )
        .await;
    let (status, p) = sb.confirm(&key, &order, amount).await;
    assert_eq!(
        (status, p["status"].as_str()),
        (200, Some("WAITING_FOR_DEPOSIT"))
    );
    (order, key, p)
}

#[tokio::test]
async fn an_error_is_the_keys_answer_for_good() {
    let sb = spawn_default().await;
    // A test-code error under a key: the same key replays it even without the header.
    let order = order_id();
    let key = sb.authenticated(&order, 5000).await;
    let first = send(
        sb.confirm_request(&key, &order, 5000)
            .header("Idempotency-Key", "k-test-code")
            .header("TossPayments-Test-Code", "PROVIDER_ERROR"),
    )
    .await;
    assert_eq!(
        (first.0, first.1["code"].as_str()),
        (400, Some("PROVIDER_ERROR"))
    );
    let again = send(
        sb.confirm_request(&key, &order, 5000)
            .header("Idempotency-Key", "k-test-code"),
    )
    .await;
    assert_eq!(again, first, "the stored error is replayed");
    assert_eq!(
        sb.lookup(&key).await["status"],
        "IN_PROGRESS",
        "nothing was approved"
    );
    // A new key after the lookup showed no approval goes through.
    let fresh = send(
        sb.confirm_request(&key, &order, 5000)
            .header("Idempotency-Key", "k-new"),
    )
    .await;
    assert_eq!((fresh.0, fresh.1["status"].as_str()), (200, Some("DONE")));

    // A 5xx after processing: approved, but the key's answer is the 500, for good.
    let order = order_id();
    let key = sb.authenticated(&order, 5000).await;
    sb.sandbox.inject_fault(Fault {
        after_processing: true,
        operations: Some(vec![Operation::Confirm]),
        ..Fault::new(FaultMode::Status5xx)
    });
    let lost = send(
        sb.confirm_request(&key, &order, 5000)
            .header("Idempotency-Key", "k-lost"),
    )
    .await;
    assert_eq!(lost.0, 500);
    for _ in 0..3 {
        let replay = send(
            sb.confirm_request(&key, &order, 5000)
                .header("Idempotency-Key", "k-lost"),
        )
        .await;
        assert_eq!(replay, lost);
    }
    assert_eq!(
        sb.lookup(&key).await["status"],
        "DONE",
        "only a lookup tells the truth"
    );
    assert_eq!(sb.sandbox.stats().confirms_executed, 2);

    // A 5xx before processing is stored too.
    let order = order_id();
    let key = sb.authenticated(&order, 5000).await;
    sb.sandbox.inject_fault(Fault::new(FaultMode::Status5xx));
    let first = send(
        sb.confirm_request(&key, &order, 5000)
            .header("Idempotency-Key", "k-front"),
    )
    .await;
    let again = send(
        sb.confirm_request(&key, &order, 5000)
            .header("Idempotency-Key", "k-front"),
    )
    .await;
    assert_eq!((first.0, again), (500, first.clone()));
    assert_eq!(sb.lookup(&key).await["status"], "IN_PROGRESS");
}

#[tokio::test]
async fn expired_payments_read_like_a_real_lookup() {
    let (sb, mut rx) = with_hooks().await;
    // IN_PROGRESS past the 10-minute confirm window.
    let order = order_id();
    let key = sb.authenticated(&order, 1000).await;
    // READY (window open, nothing authenticated) lives 30 minutes.
    let ready_order = order_id();
    let resp = sb
        .http
        .post(sb.url("/sandbox/payments"))
        .json(&json!({"orderId": ready_order, "amount": 1000, "status": "READY"}))
        .send()
        .await
        .unwrap();
    let ready: Value = resp.json().await.unwrap();
    assert_eq!(ready["status"], "READY");
    let ready_key = ready["paymentKey"].as_str().unwrap().to_owned();
    let (status, body) = sb.confirm(&ready_key, &ready_order, 1000).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("NOT_FOUND_PAYMENT_SESSION"))
    );

    sb.sandbox.advance_clock(11 * 60);
    let expired = sb.lookup(&key).await;
    assert_eq!(expired["status"], "EXPIRED");
    assert!(expired["useEscrow"].is_null(), "{expired}");
    assert_eq!(expired["failure"]["code"], "EXPIRED_PAYMENT");
    assert_eq!(
        sb.lookup(&ready_key).await["status"],
        "READY",
        "30 minutes, not 10"
    );
    let (_, first) = next(&mut rx).await;
    assert_eq!(
        (
            first["eventType"].as_str(),
            first["data"]["paymentKey"].as_str()
        ),
        (Some("PAYMENT_STATUS_CHANGED"), Some(key.as_str()))
    );

    sb.sandbox.advance_clock(20 * 60);
    assert_eq!(sb.lookup(&ready_key).await["status"], "EXPIRED");
    let (headers, ev) = next(&mut rx).await;
    assert_eq!(ev["data"]["status"], "EXPIRED");
    assert_eq!(ev["data"]["paymentKey"], ready_key.as_str());
    let id = headers["tosspayments-webhook-transmission-id"]
        .to_str()
        .unwrap();
    assert!(id.starts_with("whtrans_") && id.len() > 20, "{id}");
    let created = ev["createdAt"].as_str().unwrap();
    assert!(!created.contains('+') && created.contains('.'), "{created}");
    // The client's wire type decodes the nulls.
    let p: toss::wire::Payment = serde_json::from_value(expired).unwrap();
    assert_eq!(p.use_escrow, None);
}

#[tokio::test]
async fn virtual_account_cancel_before_the_deposit_closes_it() {
    let (sb, mut rx) = with_hooks().await;
    let (order, key, waiting) = va_waiting(&sb, 30000).await;
    let due = waiting["virtualAccount"]["dueDate"].as_str().unwrap();
    assert_eq!(due.len(), 19, "dueDate has no offset: {due}");
    let (_, issued) = next(&mut rx).await;
    assert_eq!(issued["status"], "WAITING_FOR_DEPOSIT");
    assert!(
        issued.get("eventType").is_none() && issued.get("paymentKey").is_none(),
        "{issued}"
    );
    assert_eq!(
        (issued["orderId"].as_str(), issued["secret"].clone()),
        (Some(order.as_str()), waiting["secret"].clone())
    );

    let partial = send(cancel(
        &sb,
        &key,
        json!({"cancelReason": "part", "cancelAmount": 1000}),
    ))
    .await;
    assert_eq!(
        (partial.0, partial.1["code"].as_str()),
        (403, Some("NOT_ALLOWED_PARTIAL_REFUND_WAITING_DEPOSIT"))
    );
    let with_account = send(cancel(&sb, &key, json!({"cancelReason": "x",
        "refundReceiveAccount": {"bank": "20", "accountNumber": "1234567890", "holderName": "김토스"}}))).await;
    assert_eq!(
        with_account.0, 400,
        "nothing to pay back before the deposit"
    );
    let (status, closed) = send(cancel(
        &sb,
        &key,
        json!({"cancelReason": "order abandoned"}),
    ))
    .await;
    assert_eq!(
        (status, closed["status"].as_str()),
        (200, Some("CANCELED")),
        "{closed}"
    );
    assert_eq!(closed["balanceAmount"], 0);
    assert_eq!(closed["virtualAccount"]["expired"], true);
    let events = collect(&mut rx, 2).await;
    assert!(
        events
            .iter()
            .any(|(_, b)| b["eventType"] == "PAYMENT_STATUS_CHANGED"
                && b["data"]["status"] == "CANCELED")
    );
    assert!(
        events
            .iter()
            .any(|(_, b)| b.get("eventType").is_none() && b["status"] == "CANCELED")
    );
    let deposit = send(
        sb.http
            .post(sb.url(&format!("/sandbox/payments/{key}/deposit"))),
    )
    .await;
    assert_eq!(deposit.0, 400, "a closed account takes no deposit");
}

#[tokio::test]
async fn virtual_account_after_the_deposit_needs_a_refund_account() {
    let (sb, mut rx) = with_hooks().await;
    let (_order, key, _) = va_waiting(&sb, 30000).await;
    next(&mut rx).await; // issued
    sb.sandbox.deposit(&key).unwrap();
    let events = collect(&mut rx, 2).await;
    assert!(
        events
            .iter()
            .any(|(_, b)| b.get("eventType").is_none() && b["status"] == "DONE")
    );
    assert!(
        events
            .iter()
            .any(|(_, b)| b["eventType"] == "PAYMENT_STATUS_CHANGED"
                && b["data"]["status"] == "DONE")
    );

    let missing = send(cancel(&sb, &key, json!({"cancelReason": "refund"}))).await;
    assert_eq!(
        (missing.0, missing.1["code"].as_str()),
        (400, Some("INVALID_REQUEST"))
    );
    assert!(
        missing.1["message"]
            .as_str()
            .unwrap()
            .contains("refundReceiveAccount")
    );
    // Each part of a bad account has its own code in Toss's cancel table.
    for (account, code) in [
        (
            json!({"bank": "20", "accountNumber": "12-34 abc", "holderName": "김토스"}),
            "INVALID_REFUND_ACCOUNT_NUMBER",
        ),
        (
            json!({"bank": " ", "accountNumber": "1234567890", "holderName": "김토스"}),
            "INVALID_BANK",
        ),
        (
            json!({"bank": "20", "accountNumber": "1234567890", "holderName": " "}),
            "INVALID_REFUND_ACCOUNT_INFO",
        ),
    ] {
        let bad = send(cancel(
            &sb,
            &key,
            json!({"cancelReason": "refund", "refundReceiveAccount": account}),
        ))
        .await;
        assert_eq!(
            (bad.0, bad.1["code"].as_str()),
            (400, Some(code)),
            "{account}"
        );
    }
    let (status, part) = send(cancel(&sb, &key, json!({"cancelReason": "refund", "cancelAmount": 10000,
        "refundReceiveAccount": {"bank": "20", "accountNumber": "1234567890", "holderName": "김토스"}}))).await;
    assert_eq!(
        (status, part["status"].as_str()),
        (200, Some("PARTIAL_CANCELED")),
        "{part}"
    );
    // suppliedAmount + vat describe what is left.
    assert_eq!(part["balanceAmount"], 20000);
    assert_eq!(
        part["suppliedAmount"].as_i64().unwrap() + part["vat"].as_i64().unwrap(),
        20000
    );
    assert_eq!(part["vat"], 1818);
    assert_eq!(
        sb.sandbox.reverse_deposit(&key).unwrap_err().code(),
        "INVALID_REQUEST",
        "cancelled in part"
    );
}

#[tokio::test]
async fn a_reversed_deposit_goes_back_to_waiting() {
    let (sb, mut rx) = with_hooks().await;
    let (_order, key, _) = va_waiting(&sb, 30000).await;
    next(&mut rx).await;
    sb.sandbox.deposit(&key).unwrap();
    collect(&mut rx, 2).await;
    let resp = sb
        .http
        .post(sb.url(&format!("/sandbox/payments/{key}/reverse-deposit")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let events = collect(&mut rx, 2).await;
    assert!(
        events
            .iter()
            .any(|(_, b)| b.get("eventType").is_none() && b["status"] == "WAITING_FOR_DEPOSIT")
    );
    assert!(
        events
            .iter()
            .any(|(_, b)| b["eventType"] == "PAYMENT_STATUS_CHANGED"
                && b["data"]["status"] == "WAITING_FOR_DEPOSIT")
    );
    let p = sb.lookup(&key).await;
    assert_eq!(p["status"], "WAITING_FOR_DEPOSIT");
    assert!(p["approvedAt"].is_null());
}

#[tokio::test]
async fn lookups_not_found_and_throttled() {
    let sb = spawn_default().await;
    let (status, body) = send(sb.get("/v1/payments/orders/order-nobody-knows")).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("NOT_FOUND")));
    let (status, body) = send(sb.get("/v1/payments/tsbx_nobody")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("NOT_FOUND_PAYMENT"))
    );

    let order = order_id();
    let key = sb.authenticated(&order, 1000).await;
    let resp = sb
        .http
        .post(sb.url("/sandbox/throttle"))
        .json(&json!({"lookupsPerSecond": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut codes = Vec::new();
    for _ in 0..5 {
        let (status, body) = send(sb.get(&format!("/v1/payments/{key}"))).await;
        codes.push((status, body["code"].as_str().map(str::to_owned)));
    }
    assert_eq!(
        codes[..3].iter().filter(|(s, _)| *s == 200).count(),
        3,
        "{codes:?}"
    );
    assert_eq!(
        codes[4],
        (403, Some("FORBIDDEN_CONSECUTIVE_REQUEST".into()))
    );
    // Another payment has its own budget; the client backs off on its own.
    let (status, _) = send(sb.get(&format!("/v1/payments/orders/{order}"))).await;
    assert_eq!(status, 200);
    let client = toss::TossClient::new(toss::TossConfig {
        api_base: sb.base.clone(),
        secret_key: common::KEY.into(),
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(1),
    })
    .unwrap();
    let pk = domain::PaymentKey::parse(&key).unwrap();
    let ctx = toss::CallContext::default();
    let before = sb.sandbox.stats().lookup_calls;
    let err = client.get_payment(&pk, &ctx).await.unwrap_err();
    assert!(err.is_throttled(), "{err:?}");
    assert!(client.lookup_backoff().is_some());
    let err = client.get_payment(&pk, &ctx).await.unwrap_err();
    assert!(err.is_throttled());
    assert_eq!(
        sb.sandbox.stats().lookup_calls,
        before + 1,
        "the back-off sent nothing"
    );
    sb.sandbox.set_lookup_throttle(None);
    tokio::time::sleep(client.lookup_backoff().unwrap_or_default()).await;
    assert!(client.get_payment(&pk, &ctx).await.is_ok());
}

#[tokio::test]
async fn documented_codes_keep_tosss_statuses() {
    let sb = spawn_default().await;
    let order = order_id();
    let key = sb.authenticated(&order, 5000).await;
    sb.confirm(&key, &order, 5000).await;
    for (code, status) in [
        ("FAILED_METHOD_HANDLING_CANCEL", 500),
        ("EXCEED_MAX_REFUND_DUE", 403),
        ("NOT_ALLOWED_PARTIAL_REFUND", 403),
        ("NOT_CANCELABLE_AMOUNT", 403),
        ("FORBIDDEN_CONSECUTIVE_REQUEST", 403),
        ("NOT_FOUND", 404),
    ] {
        let got = send(
            cancel(&sb, &key, json!({"cancelReason": "x"})).header("TossPayments-Test-Code", code),
        )
        .await;
        assert_eq!((got.0, got.1["code"].as_str()), (status, Some(code)));
    }
    // A card payment takes no refund account.
    let card = send(cancel(&sb, &key, json!({"cancelReason": "x",
        "refundReceiveAccount": {"bank": "20", "accountNumber": "1234567890", "holderName": "김토스"}}))).await;
    assert_eq!(card.0, 400);
}

#[tokio::test]
async fn fields_and_english_values() {
    let sb = spawn_default().await;
    let order = order_id();
    let key = sb.authenticated(&order, 15000).await;
    let (_, ko) = sb.confirm(&key, &order, 15000).await;
    assert_eq!(ko["cultureExpense"], false);
    assert!(ko.get("culturalExpense").is_none());
    assert_eq!(ko["method"], "카드");
    assert_eq!(ko["card"]["cardType"], "신용");
    let (_, en) = send(
        sb.get(&format!("/v1/payments/{key}"))
            .header("Accept-Language", "en-US"),
    )
    .await;
    assert_eq!(en["method"], "CARD");
    assert_eq!(en["card"]["cardType"], "CREDIT");
    assert_eq!(en["card"]["ownerType"], "PERSONAL");
    assert_eq!(en["totalAmount"], ko["totalAmount"]);
    let (vorder, vkey, _) = va_waiting(&sb, 20000).await;
    let (_, ven) = send(
        sb.get(&format!("/v1/payments/orders/{vorder}"))
            .header("Accept-Language", "en-US"),
    )
    .await;
    assert_eq!(
        (
            ven["method"].as_str(),
            ven["virtualAccount"]["accountType"].as_str()
        ),
        (Some("VIRTUAL_ACCOUNT"), Some("NORMAL"))
    );
    assert_eq!(ven["paymentKey"], vkey.as_str());
}
