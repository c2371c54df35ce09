//! The Toss behaviours that differ from a friendly double, end to end on both stores:
//!
//! - through the sandbox: a confirm key whose first answer was an error (Toss replays it for
//!   the key's lifetime) recovers by lookup and a new key, also from the reconciler; deposited
//!   virtual-account refunds need the buyer's bank account (validated, never logged); a
//!   reversed deposit revokes the course; an account closed before its deposit.
//! - through a *recorded* Toss: a loopback server answering with Toss's documented example
//!   answers (crates/toss/tests/fixtures), so the flows meet fields, nulls and codes that did
//!   not come from the sandbox: confirm, lookups with nulls, cancel, every webhook event
//!   including DEPOSIT_CALLBACK, NOT_FOUND, and throttled lookups backing off.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::extract::{Path, State};
use axum::http::StatusCode as AxStatus;
use common::{Backend, TestApp, spawn_with};
use flows::config::{Config, WebhookVerify};
use flows::reconcile::reconcile_once;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const HOOK: &str = common::WEBHOOK_PATH;
const ACCOUNT: &str = "110234567890";
const HOLDER: &str = "김토스환불";

fn fast_reconcile(c: &mut Config) {
    c.reconcile_interval = Duration::from_millis(1);
}

async fn order_status(t: &TestApp, order_id: &str) -> String {
    t.order(order_id).await.status.as_str().to_owned()
}

// --- through the sandbox ---------------------------------------------------------------------

/// Every confirm attempt's key gets a stored 500 that Toss would replay for 15 days; the order
/// must still be paid, by lookup and a new key — first in the request, then by the reconciler.
async fn stored_error_under_the_confirm_key_does_not_block_the_order(backend: Backend) {
    let t = spawn_with(backend, fast_reconcile).await;
    // In the request: the first key answers 500 (stored), the lookup says IN_PROGRESS, the
    // second key goes through.
    let p = t.paid_in_window(10_000).await;
    t.fault(json!({"mode": "status5xx", "operations": ["confirm"]}))
        .await;
    let r = t
        .confirm(&p.token, &p.payment_key, &p.order_id, 10_000)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let keys: Vec<String> = t
        .sandbox
        .requests()
        .into_iter()
        .filter_map(|r| r.idempotency_key)
        .filter(|k| k.contains(&p.order_id))
        .collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_ne!(keys[0], keys[1], "the retry used a new key");
    assert_eq!(t.stats().await["confirmsExecuted"], 1);

    // Every attempt of the request fails: the order is left CONFIRMING; the reconciler's
    // first call (the order's key) is replayed the stored 500, and it still gets paid.
    let q = t.paid_in_window(10_000).await;
    t.fault(json!({"mode": "status5xx", "count": 3, "operations": ["confirm"]}))
        .await;
    let r = t
        .confirm(&q.token, &q.payment_key, &q.order_id, 10_000)
        .await;
    assert!(r.status.is_server_error(), "{:?}", r.body);
    assert_eq!(order_status(&t, &q.order_id).await, "CONFIRMING");
    t.clear_faults().await;
    reconcile_once(&t.app, "toss-documented").await.unwrap();
    assert_eq!(order_status(&t, &q.order_id).await, "PAID");
    assert_eq!(
        t.stats().await["confirmsExecuted"],
        2,
        "one approval per order"
    );
}

/// A virtual-account order whose account is issued: the order CONFIRMING, Toss
/// WAITING_FOR_DEPOSIT.
async fn va_issued(t: &TestApp) -> common::Purchase {
    let course_id = t.create_course(30_000).await;
    let (user, token) = t.new_user();
    let order = t.checkout(&token, &course_id).await;
    let order_id = order["orderId"].as_str().unwrap().to_owned();
    let r = t
        .post(
            "/toss-sandbox/sandbox/payments",
            None,
            &json!({"orderId": order_id, "amount": 30_000, "method": "VIRTUAL_ACCOUNT"}),
        )
        .await;
    let payment_key = r.body["paymentKey"].as_str().unwrap().to_owned();
    let confirm = t.confirm(&token, &payment_key, &order_id, 30_000).await;
    assert_eq!(
        confirm.code(),
        "E_CONFIRM_IN_PROGRESS",
        "{:?}",
        confirm.body
    );
    common::Purchase {
        user,
        token,
        course_id,
        order_id,
        payment_key,
        amount: 30_000,
    }
}

fn sandbox_status(t: &TestApp, payment_key: &str) -> String {
    t.sandbox
        .payments()
        .into_iter()
        .find(|x| x.payment_key == payment_key)
        .unwrap()
        .status
}

/// Every delivery the sandbox made so far was answered 200.
async fn all_delivered(t: &TestApp, at_least: usize) -> bool {
    t.eventually(|| async {
        let d = t.sandbox.deliveries();
        d.len() >= at_least
            && d.iter()
                .all(|d| d.status == toss_sandbox::DeliveryStatus::Delivered)
    })
    .await
}

async fn no_payment_recorded(t: &TestApp, order_id: &str) -> bool {
    t.store
        .payment_for_order(&domain::OrderId::parse(order_id).unwrap())
        .await
        .unwrap()
        .is_none()
}

/// Automatic: an issued account whose due date passed is closed by the reconciler (a full
/// cancel, CANCELED at Toss), the order EXPIRES, a deposit sent afterwards is refused, and
/// the close's own webhooks (CANCELED without a deposit) record no money.
async fn unpaid_virtual_account_closes_when_its_due_date_passes(backend: Backend) {
    let t = spawn_with(backend, fast_reconcile).await;
    with_sandbox_webhooks(&t);
    // Issued "8 days ago" by the sandbox's clock: its 7-day due date is already behind us.
    t.sandbox.advance_clock(-8 * 24 * 3600);
    let p = va_issued(&t).await;
    t.sandbox.advance_clock(8 * 24 * 3600);
    // Cancels Toss carried out: a late delivery may ask again, under the same order-derived
    // key, and gets the first answer replayed.
    let cancels = || t.sandbox.stats().cancels_executed;
    // (The server's own reconciler may get there first: either way it is closed once.)

    reconcile_once(&t.app, "toss-documented").await.unwrap();
    let order = t.order(&p.order_id).await;
    assert_eq!(order.status.as_str(), "EXPIRED");
    assert_eq!(
        order.failure_code.as_deref(),
        Some("VIRTUAL_ACCOUNT_CLOSED")
    );
    assert_eq!(sandbox_status(&t, &p.payment_key), "CANCELED");
    assert_eq!(cancels(), 1);
    let late = t.sandbox.deposit(&p.payment_key).unwrap_err();
    assert_eq!(
        late.code(),
        "INVALID_REQUEST",
        "a closed account takes no deposit"
    );

    // Issue + close, each as DEPOSIT_CALLBACK and (the close) PAYMENT_STATUS_CHANGED: all
    // answered 200, and a CANCELED payment that never held money is never settled.
    assert!(all_delivered(&t, 3).await, "{:?}", t.sandbox.deliveries());
    assert!(no_payment_recorded(&t, &p.order_id).await);
    assert_eq!(order_status(&t, &p.order_id).await, "EXPIRED");
    reconcile_once(&t.app, "toss-documented-2").await.unwrap();
    assert_eq!(cancels(), 1, "closed once");
    let mine = t.get("/v1/me/enrollments", Some(&p.token)).await;
    assert_eq!(mine.body["items"], json!([]), "{:?}", mine.body);
}

async fn cancel_order(t: &TestApp, order_id: &str, token: Option<&str>) -> common::Resp {
    t.post(
        &format!("/v1/admin/orders/{order_id}/cancel"),
        token,
        &json!({}),
    )
    .await
}

/// The operator path: `POST /v1/admin/orders/{orderId}/cancel` closes an issued account
/// (idempotently), refuses paid orders, and ends an order with nothing at Toss.
async fn operator_cancels_an_unpaid_virtual_account(backend: Backend) {
    let t = spawn_with(backend, |_| {}).await;
    with_sandbox_webhooks(&t);
    let p = va_issued(&t).await;
    let admin = t.admin_token();
    // Cancels Toss carried out: a late delivery may ask again, under the same order-derived
    // key, and gets the first answer replayed.
    let cancels = || t.sandbox.stats().cancels_executed;

    let r = cancel_order(&t, &p.order_id, Some(&p.token)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    let r = cancel_order(&t, "no_such_order_123", Some(&admin)).await;
    assert_eq!(r.code(), "E_ORDER_NOT_FOUND", "{:?}", r.body);
    let r = cancel_order(&t, "bad!id", Some(&admin)).await;
    assert_eq!(r.code(), "E_INVALID_REQUEST", "{:?}", r.body);
    assert_eq!(cancels(), 0, "bad requests reach nobody");

    let r = cancel_order(&t, &p.order_id, Some(&admin)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        r.body,
        json!({"orderId": p.order_id, "status": "FAILED", "failureCode": "ORDER_CANCELED", "accountClosed": true})
    );
    assert_eq!(sandbox_status(&t, &p.payment_key), "CANCELED");
    assert!(
        t.sandbox.deposit(&p.payment_key).is_err(),
        "closed: no deposit"
    );
    // Again: answered as it is, nothing sent.
    let again = cancel_order(&t, &p.order_id, Some(&admin)).await;
    assert_eq!(
        (again.status, again.body.clone()),
        (StatusCode::OK, r.body.clone())
    );
    assert_eq!(cancels(), 1);
    assert!(all_delivered(&t, 3).await, "{:?}", t.sandbox.deliveries());
    assert!(no_payment_recorded(&t, &p.order_id).await);
    assert_eq!(order_status(&t, &p.order_id).await, "FAILED");

    // A paid order is refunded, not canceled: refused, unchanged.
    let card = t.paid_in_window(10_000).await;
    let c = t
        .confirm(&card.token, &card.payment_key, &card.order_id, 10_000)
        .await;
    assert_eq!(c.status, StatusCode::OK, "{:?}", c.body);
    let r = cancel_order(&t, &card.order_id, Some(&admin)).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "E_ORDER_NOT_CANCELABLE"),
        "{:?}",
        r.body
    );
    assert_eq!(order_status(&t, &card.order_id).await, "PAID");

    // A PENDING order with nothing at Toss simply ends.
    let course = t.create_course(5_000).await;
    let (_, token) = t.new_user();
    let order = t.checkout(&token, &course).await;
    let o = order["orderId"].as_str().unwrap();
    let r = cancel_order(&t, o, Some(&admin)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        (r.body["status"].as_str(), r.body["accountClosed"].as_bool()),
        (Some("FAILED"), Some(false))
    );
    assert_eq!(cancels(), 1, "no cancel for an order Toss does not know");
}

/// An order that ended here while Toss kept its virtual account open, with the webhook that
/// would have had it closed lost: the operator's cancel ended the order but could not close the
/// account (every cancel call lost), and nothing is delivered to us. The reconciler finds the
/// ended order and closes the account once; a deposit sent afterwards is refused.
async fn reconciler_closes_the_account_of_an_ended_order(backend: Backend) {
    let t = spawn_with(backend, |_| {}).await;
    let p = va_issued(&t).await;
    let cancels = || t.sandbox.stats().cancels_executed;
    t.fault(json!({"mode": "reset", "count": 20, "operations": ["cancel"]}))
        .await;
    let r = cancel_order(&t, &p.order_id, Some(&t.admin_token())).await;
    assert!(r.status.is_server_error(), "{:?}", r.body);
    assert_eq!(order_status(&t, &p.order_id).await, "FAILED");
    assert_eq!(sandbox_status(&t, &p.payment_key), "WAITING_FOR_DEPOSIT");
    assert_eq!(cancels(), 0);
    t.clear_faults().await;
    assert!(t.sandbox.deliveries().is_empty(), "no webhook reaches us");

    let report = reconcile_once(&t.app, "ended-accounts").await.unwrap();
    assert_eq!(report.accounts_closed, 1, "{report:?}");
    assert_eq!(sandbox_status(&t, &p.payment_key), "CANCELED");
    assert_eq!(cancels(), 1);
    assert!(
        t.sandbox.deposit(&p.payment_key).is_err(),
        "closed: no deposit"
    );
    let order = t.order(&p.order_id).await;
    assert_eq!(
        (order.status.as_str(), order.failure_code.as_deref()),
        ("FAILED", Some("ORDER_CANCELED"))
    );
    assert!(no_payment_recorded(&t, &p.order_id).await);

    // Done with: later passes neither ask Toss about it nor close it again.
    let lookups = t.sandbox.requests().len();
    let report = reconcile_once(&t.app, "ended-accounts-2").await.unwrap();
    assert_eq!(report.accounts_closed, 0, "{report:?}");
    assert_eq!(t.sandbox.requests().len(), lookups);
    assert_eq!(cancels(), 1);
}

fn account() -> Value {
    json!({"bank": "20", "accountNumber": ACCOUNT, "holderName": HOLDER})
}

async fn refund_rows(t: &TestApp, payment_id: &str) -> Vec<domain::RefundStatus> {
    let id = domain::PaymentId::parse(payment_id).unwrap();
    t.store
        .payment_refunds(id)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.status)
        .collect()
}

/// A virtual-account refund whose answer was lost (the account is never stored, so the
/// reconciler cannot resend it) is sent again by a new request carrying the account, after a
/// lookup: exactly one refund at Toss, whether the lost cancel happened or not.
async fn lost_virtual_account_refund_is_resent_once(backend: Backend) {
    let t = spawn_with(backend, |_| {}).await;
    let executed = || t.sandbox.stats().cancels_executed;
    // Generous counts: every attempt of the request must fail, whatever else looks up
    // meanwhile; what is left is cleared before the resend.
    let lose_everything = |after_processing: bool| {
        json!({"mode": "reset", "count": 20, "operations": ["cancel"],
            "afterProcessing": after_processing})
    };
    let lookups_fail = json!({"mode": "reset", "count": 20, "operations": ["lookup"]});

    // 1. The cancel never reached Toss and no lookup could tell: REQUESTED. A new request
    //    with the account looks up, supersedes the lost one and refunds once.
    with_sandbox_webhooks(&t);
    let (p1, pay1) = va_paid(&t).await;
    assert!(all_delivered(&t, 0).await);
    t.sandbox.set_webhook(None, None);
    t.fault(lose_everything(false)).await;
    t.fault(lookups_fail.clone()).await;
    let r = refund(
        &t,
        &pay1,
        json!({"reason": "r", "refundReceiveAccount": account()}),
    )
    .await;
    assert!(r.status.is_server_error(), "{:?}", r.body);
    assert_eq!(
        refund_rows(&t, &pay1).await,
        [domain::RefundStatus::Requested]
    );
    t.clear_faults().await;
    // Without the account it is still refused (nothing to resend with).
    let r = refund(&t, &pay1, json!({"reason": "r"})).await;
    assert_eq!(r.status.as_u16(), 409, "{:?}", r.body);
    let r = refund(
        &t,
        &pay1,
        json!({"reason": "r", "refundReceiveAccount": account()}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["status"], "CANCELED");
    assert_eq!(
        refund_rows(&t, &pay1).await,
        [domain::RefundStatus::Failed, domain::RefundStatus::Done]
    );
    assert_eq!(executed(), 1);
    assert_eq!(sandbox_status(&t, &p1.payment_key), "CANCELED");

    // 2. The cancel *was* carried out, only its answers were lost: the new request finds it
    //    by lookup, records it and sends nothing.
    with_sandbox_webhooks(&t);
    let (p2, pay2) = va_paid(&t).await;
    assert!(all_delivered(&t, 0).await);
    t.sandbox.set_webhook(None, None);
    t.fault(lose_everything(true)).await;
    t.fault(lookups_fail.clone()).await;
    let r = refund(
        &t,
        &pay2,
        json!({"reason": "r", "refundReceiveAccount": account()}),
    )
    .await;
    assert!(r.status.is_server_error(), "{:?}", r.body);
    assert_eq!(executed(), 2, "Toss did refund");
    t.clear_faults().await;
    let calls = t.sandbox.stats().cancel_calls;
    let r = refund(
        &t,
        &pay2,
        json!({"reason": "r", "refundReceiveAccount": account()}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["refundedAmount"], 30_000);
    assert_eq!(t.sandbox.stats().cancel_calls, calls, "nothing sent again");
    assert_eq!(refund_rows(&t, &pay2).await, [domain::RefundStatus::Done]);
    assert_eq!(order_status(&t, &p2.order_id).await, "REFUNDED");

    // 3. The reconciler got there first: FAILED (REFUND_ACCOUNT_NOT_KEPT); a new request with
    //    the account refunds once.
    with_sandbox_webhooks(&t);
    let (_p3, pay3) = va_paid(&t).await;
    assert!(all_delivered(&t, 0).await);
    t.sandbox.set_webhook(None, None);
    t.fault(lose_everything(false)).await;
    t.fault(lookups_fail).await;
    let r = refund(
        &t,
        &pay3,
        json!({"reason": "r", "refundReceiveAccount": account()}),
    )
    .await;
    assert!(r.status.is_server_error(), "{:?}", r.body);
    t.clear_faults().await;
    let later = time::OffsetDateTime::now_utc() + time::Duration::minutes(1);
    flows::refunds::reconcile_refunds(&t.app, later)
        .await
        .unwrap();
    assert_eq!(refund_rows(&t, &pay3).await, [domain::RefundStatus::Failed]);
    let r = refund(
        &t,
        &pay3,
        json!({"reason": "r", "refundReceiveAccount": account()}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(executed(), 3, "one refund per payment");
}

/// A virtual-account order: issued, deposited (the sandbox delivers both events to us), PAID.
async fn va_paid(t: &TestApp) -> (common::Purchase, String) {
    let p = va_issued(t).await;
    t.sandbox.deposit(&p.payment_key).unwrap();
    assert!(
        t.eventually(|| async { order_status(t, &p.order_id).await == "PAID" })
            .await,
        "the deposit webhooks settle the order"
    );
    let payment = t
        .store
        .payment_for_order(&domain::OrderId::parse(&p.order_id).unwrap())
        .await
        .unwrap()
        .unwrap();
    (p, payment.id.to_string())
}

fn with_sandbox_webhooks(t: &TestApp) {
    t.sandbox.set_webhook(
        Some(format!("{}{HOOK}", t.base)),
        Some(flows::config::DEV_WEBHOOK_SECRET.to_owned()),
    );
}

async fn refund(t: &TestApp, payment_id: &str, body: Value) -> common::Resp {
    t.post(
        &format!("/v1/payments/{payment_id}/refund"),
        Some(&t.admin_token()),
        &body,
    )
    .await
}

async fn deposited_virtual_account_refund_needs_the_buyers_account(backend: Backend) {
    let logs = flows::logging::capture();
    let t = spawn_with(backend, |_| {}).await;
    with_sandbox_webhooks(&t);
    let (p, payment_id) = va_paid(&t).await;
    // From here the refund's own answer is what is checked: no CANCELED webhook racing it.
    t.sandbox.set_webhook(None, None);
    let cancels = || t.sandbox.stats().cancel_calls;
    let before = cancels();
    for (body, field) in [
        (json!({"reason": "r"}), "refundReceiveAccount"),
        (
            json!({"reason": "r", "refundReceiveAccount": "110-234"}),
            "refundReceiveAccount",
        ),
        (
            json!({"reason": "r", "refundReceiveAccount": {"bank": "20", "accountNumber": "12ab", "holderName": HOLDER}}),
            "accountNumber",
        ),
        (
            json!({"reason": "r", "refundReceiveAccount": {"bank": "20", "accountNumber": ACCOUNT, "holderName": "a\u{0}b"}}),
            "",
        ),
        (
            json!({"reason": "r", "refundReceiveAccount": {"bank": "", "accountNumber": ACCOUNT, "holderName": HOLDER}}),
            "bank",
        ),
        (
            json!({"reason": "r", "refundReceiveAccount": {"bank": "20", "accountNumber": ACCOUNT, "holderName": HOLDER, "x": 1}}),
            "refundReceiveAccount",
        ),
    ] {
        let r = refund(&t, &payment_id, body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {:?}", r.body);
        assert_eq!(r.code(), "E_INVALID_REQUEST");
        // (A NUL may be refused before the field is looked at: then any field name will do.)
        assert!(
            r.body["detail"].as_str().unwrap().contains(field),
            "{:?}",
            r.body
        );
        assert!(!r.body.to_string().contains(ACCOUNT));
    }
    assert_eq!(cancels(), before, "bad input never reaches Toss");
    // A malformed account is refused before anything is written; a missing one is known to be
    // missing only once the payment is read, and that request stays on record as FAILED.
    let id = domain::PaymentId::parse(&payment_id).unwrap();
    let refused = t.store.payment_refunds(id).await.unwrap();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].status, domain::RefundStatus::Failed);
    assert_eq!(
        order_status(&t, &p.order_id).await,
        "PAID",
        "money and access untouched"
    );

    let r = refund(
        &t,
        &payment_id,
        json!({"reason": "buyer asked", "refundReceiveAccount": {"bank": "20", "accountNumber": "110-234-567890", "holderName": HOLDER}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["status"], "CANCELED");
    assert_eq!(r.body["enrollmentStatus"], "REFUNDED");
    let sent = t
        .sandbox
        .payments()
        .into_iter()
        .find(|x| x.payment_key == p.payment_key)
        .unwrap();
    assert_eq!(sent.status, "CANCELED");
    // The account went to Toss and nowhere else: not in any log line.
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(
        !text.contains(ACCOUNT) && !text.contains(HOLDER),
        "refund account logged"
    );

    // A card payment refuses the field (nothing to send it to).
    let card = t.paid_in_window(10_000).await;
    let c = t
        .confirm(&card.token, &card.payment_key, &card.order_id, 10_000)
        .await;
    let card_payment = c.body["paymentId"].as_str().unwrap().to_owned();
    let r = refund(&t, &card_payment, json!({"reason": "r", "refundReceiveAccount": {"bank": "20", "accountNumber": ACCOUNT, "holderName": HOLDER}})).await;
    assert_eq!(r.code(), "E_INVALID_REQUEST", "{:?}", r.body);
}

async fn reversed_deposit_revokes_the_enrollment(backend: Backend) {
    let logs = flows::logging::capture();
    let t = spawn_with(backend, |_| {}).await;
    with_sandbox_webhooks(&t);
    let (p, payment_id) = va_paid(&t).await;
    let enrollments = t.get("/v1/me/enrollments", Some(&p.token)).await;
    assert_eq!(enrollments.body["items"][0]["status"], "ENROLLED");
    t.sandbox.reverse_deposit(&p.payment_key).unwrap();
    assert!(
        t.eventually(|| async { order_status(&t, &p.order_id).await == "REFUNDED" })
            .await,
        "the reversal's webhooks revoke the order"
    );
    let enrollments = t.get("/v1/me/enrollments", Some(&p.token)).await;
    assert_eq!(enrollments.body["items"][0]["status"], "REFUNDED");
    let id = domain::PaymentId::parse(&payment_id).unwrap();
    let refunds = t.store.payment_refunds(id).await.unwrap();
    assert_eq!(refunds.len(), 1, "one record however many deliveries");
    assert_eq!(refunds[0].amount.won(), 30_000);
    // Every event (issue, deposit, reversal; both kinds) was delivered and answered 200.
    let all_delivered = t
        .eventually(|| async {
            let d = t.sandbox.deliveries();
            d.len() >= 5
                && d.iter()
                    .all(|d| d.status == toss_sandbox::DeliveryStatus::Delivered)
        })
        .await;
    assert!(all_delivered, "{:?}", t.sandbox.deliveries());

    // The buyer wires the money again to the same account (DONE again at Toss). Its
    // DEPOSIT_CALLBACK reaches us late: first a stale delivery (the reversal's, WAITING_FOR_
    // DEPOSIT) whose lookup already shows the second deposit, then the deposit's own callback
    // twice at once. One re-enrollment, the same rows, and the money adds up.
    t.sandbox.set_webhook(None, None);
    // Toss's approvedAt has whole seconds; a real second deposit comes long after the first.
    t.sandbox.advance_clock(60);
    t.sandbox.deposit(&p.payment_key).unwrap();
    let secret = t
        .sandbox
        .payments()
        .into_iter()
        .find(|x| x.payment_key == p.payment_key)
        .unwrap()
        .secret
        .unwrap();
    let callback = |status: &str, tx: &str| {
        json!({"createdAt": "2026-11-24T12:00:00.000000", "secret": secret, "status": status,
               "transactionKey": tx, "orderId": p.order_id})
        .to_string()
        .into_bytes()
    };
    // `age`: seconds the delivery was signed before now (Toss signs each retry anew).
    let deliver = |body: Vec<u8>, age: i64| {
        let t = &t;
        async move {
            let (ts, sig) = flows::webhook_auth::signature::sign_x_signature(
                flows::config::DEV_WEBHOOK_SECRET.as_bytes(),
                time::OffsetDateTime::now_utc().unix_timestamp() - age,
                &body,
            );
            let r = t
                .post_raw(
                    HOOK,
                    None,
                    body,
                    &[("X-Timestamp", ts.as_str()), ("X-Signature", sig.as_str())],
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        }
    };
    deliver(callback("WAITING_FOR_DEPOSIT", "TX_REVERSAL"), 0).await;
    assert_eq!(order_status(&t, &p.order_id).await, "PAID", "re-enrolled");
    tokio::join!(
        deliver(callback("DONE", "TX_REDEPOSIT"), 0),
        deliver(callback("DONE", "TX_REDEPOSIT"), 1)
    );
    assert_eq!(order_status(&t, &p.order_id).await, "PAID");
    let enrollments = t.get("/v1/me/enrollments", Some(&p.token)).await;
    let items = enrollments.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["status"], "ENROLLED");
    let payment = t.store.get_payment(id).await.unwrap().unwrap();
    let refunds = t.store.payment_refunds(id).await.unwrap();
    assert_eq!(refunds.len(), 1, "the reversal stays on record, once");
    assert_eq!(
        (payment.amount.won(), payment.balance.won()),
        (60_000, 30_000),
        "captured twice, holds one deposit"
    );
    let refunded: i64 = refunds.iter().map(|r| r.amount.won()).sum();
    assert_eq!(payment.amount.won() - payment.balance.won(), refunded);
    let order_id = domain::OrderId::parse(&p.order_id).unwrap();
    let events = t.store.order_events(&order_id).await.unwrap();
    let redeposits = events
        .iter()
        .filter(|e| e.kind == "payment.redeposited")
        .count();
    assert_eq!(redeposits, 1, "{events:?}");
    assert!(
        !String::from_utf8_lossy(&logs.lock().unwrap()).contains("not re-enrolled"),
        "nothing left for an operator"
    );
}

// --- through a recorded Toss -------------------------------------------------------------------

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../toss/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

/// A documented answer made to name our order and payment; nothing else changes.
fn for_order(mut v: Value, order_id: &str, payment_key: &str) -> Value {
    if let Some(o) = v.as_object_mut() {
        if o.contains_key("orderId") {
            o.insert("orderId".into(), json!(order_id));
        }
        if o.contains_key("paymentKey") {
            o.insert("paymentKey".into(), json!(payment_key));
        }
        if let Some(d) = o.get_mut("data").and_then(Value::as_object_mut) {
            d.insert("orderId".into(), json!(order_id));
            d.insert("paymentKey".into(), json!(payment_key));
        }
    }
    v
}

/// (HTTP status, body).
type Answer = (u16, Value);

#[derive(Clone, Default)]
struct Recorded {
    /// "confirm" | "lookup" | "cancel" → (HTTP status, body).
    /// The last answer repeats; earlier ones are given once each, in order.
    answers: Arc<Mutex<HashMap<&'static str, Vec<Answer>>>>,
    /// (operation, request body) in arrival order.
    calls: Arc<Mutex<Vec<(&'static str, Value)>>>,
}

impl Recorded {
    fn answer(&self, op: &'static str, status: u16, body: Value) {
        self.answers
            .lock()
            .unwrap()
            .insert(op, vec![(status, body)]);
    }
    /// `first` once, then `then` for every further call.
    fn answer_then(&self, op: &'static str, first: Answer, then: Answer) {
        self.answers.lock().unwrap().insert(op, vec![first, then]);
    }
    fn count(&self, op: &str) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(o, _)| *o == op)
            .count()
    }
    fn reply(&self, op: &'static str, body: Value) -> (AxStatus, axum::Json<Value>) {
        self.calls.lock().unwrap().push((op, body));
        let next = {
            let mut answers = self.answers.lock().unwrap();
            match answers.get_mut(op) {
                Some(queue) if queue.len() > 1 => Some(queue.remove(0)),
                Some(queue) => queue.first().cloned(),
                None => None,
            }
        };
        let (status, body) = next.unwrap_or((
            500,
            json!({"code": "COMMON_ERROR", "message": "no recorded answer"}),
        ));
        (AxStatus::from_u16(status).unwrap(), axum::Json(body))
    }
}

async fn recorded_server() -> (String, Recorded) {
    use axum::routing::{get, post};
    let rec = Recorded::default();
    let app = axum::Router::new()
        .route(
            "/v1/payments/confirm",
            post(|State(r): State<Recorded>, b: axum::Json<Value>| async move { r.reply("confirm", b.0) }),
        )
        .route(
            "/v1/payments/orders/{id}",
            get(|State(r): State<Recorded>, Path(_): Path<String>| async move { r.reply("lookup", Value::Null) }),
        )
        .route(
            "/v1/payments/{key}",
            get(|State(r): State<Recorded>, Path(_): Path<String>| async move { r.reply("lookup", Value::Null) }),
        )
        .route(
            "/v1/payments/{key}/cancel",
            post(|State(r): State<Recorded>, Path(_): Path<String>, b: axum::Json<Value>| async move { r.reply("cancel", b.0) }),
        )
        .with_state(rec.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, rec)
}

/// The coursepay server with its Toss client pointed at the recorded Toss (webhooks unsigned,
/// verified by lookup, as when Toss posts directly).
async fn spawn_recorded(backend: Backend) -> (TestApp, Recorded) {
    let (base, rec) = recorded_server().await;
    let mut t = spawn_with(backend, |c| {
        c.webhook_verify = WebhookVerify::Lookup;
        fast_reconcile(c);
    })
    .await;
    let toss = toss::TossClient::new(toss::TossConfig {
        api_base: base,
        secret_key: flows::config::DEV_TOSS_SECRET_KEY.to_owned(),
        timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(1),
    })
    .unwrap();
    let app = flows::App::new(t.store.clone(), toss, t.app.config.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(api::serve(
        listener,
        api::http::router(app.clone()),
        std::future::pending(),
    ));
    t.base = format!("http://{addr}");
    t.app = app;
    (t, rec)
}

/// A PENDING order for a 1000-won course (the documented examples' amount) and a payment key.
async fn recorded_order(t: &TestApp) -> (String, String, String) {
    let course = t.create_course(1000).await;
    let (_, token) = t.new_user();
    let order = t.checkout(&token, &course).await;
    let order_id = order["orderId"].as_str().unwrap().to_owned();
    let payment_key = format!("5EnNZRJGvaBX7zk2yd8y{}", uuid::Uuid::new_v4().simple());
    (order_id, payment_key, token)
}

async fn unsigned(t: &TestApp, body: &Value) -> common::Resp {
    let id = format!("whtrans_{}", uuid::Uuid::new_v4().simple());
    t.deliver_webhook(
        body.to_string().as_bytes(),
        &[("tosspayments-webhook-transmission-id".to_owned(), id)],
    )
    .await
}

async fn recorded_card_confirm_refund_and_webhooks(backend: Backend) {
    let (t, rec) = spawn_recorded(backend).await;
    let (order_id, key, token) = recorded_order(&t).await;
    let of = |name: &str| for_order(fixture(name), &order_id, &key);
    rec.answer("confirm", 200, of("confirm_card_done.json"));
    let r = t.confirm(&token, &key, &order_id, 1000).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["status"], "ENROLLED");
    let payment_id = r.body["paymentId"].as_str().unwrap().to_owned();

    // A documented PAYMENT_STATUS_CHANGED (DONE) for the paid order: looked up (English
    // values this time), nothing changes.
    rec.answer("lookup", 200, of("lookup_card_done_en_us.json"));
    let r = unsigned(&t, &of("webhook_payment_status_changed_done.json")).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(order_status(&t, &order_id).await, "PAID");

    // Refund: Toss's documented full-cancel answer.
    rec.answer("cancel", 200, of("cancel_full.json"));
    let r = refund(&t, &payment_id, json!({"reason": "buyer asked"})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        (r.body["status"].as_str(), r.body["refundedAmount"].as_i64()),
        (Some("CANCELED"), Some(1000))
    );
    let sent = rec
        .calls
        .lock()
        .unwrap()
        .iter()
        .rev()
        .find(|(o, _)| *o == "cancel")
        .unwrap()
        .1
        .clone();
    assert_eq!(sent["refundableAmount"], 1000);
    assert!(sent.get("refundReceiveAccount").is_none());

    // The CANCELED webhook afterwards is the same cancellation: one refund record.
    rec.answer("lookup", 200, of("cancel_full.json"));
    let r = unsigned(&t, &of("webhook_payment_status_changed_canceled.json")).await;
    assert_eq!(r.status, StatusCode::OK);
    let id = domain::PaymentId::parse(&payment_id).unwrap();
    assert_eq!(t.store.payment_refunds(id).await.unwrap().len(), 1);
    assert_eq!(order_status(&t, &order_id).await, "REFUNDED");

    // A documented refusal with Toss's 403 is a refusal, not an outage.
    let (o2, k2, tok2) = recorded_order(&t).await;
    rec.answer(
        "confirm",
        200,
        for_order(fixture("confirm_card_done.json"), &o2, &k2),
    );
    let r = t.confirm(&tok2, &k2, &o2, 1000).await;
    let pid2 = r.body["paymentId"].as_str().unwrap().to_owned();
    rec.answer("cancel", 403, fixture("error_EXCEED_MAX_REFUND_DUE.json"));
    let r = refund(&t, &pid2, json!({"reason": "too late"})).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "E_REFUND_NOT_ALLOWED"),
        "{:?}",
        r.body
    );
    assert_eq!(r.body["providerCode"], "EXCEED_MAX_REFUND_DUE");
}

async fn recorded_lookups_nulls_not_found_and_throttling(backend: Backend) {
    let (t, rec) = spawn_recorded(backend).await;
    // An EXPIRED lookup full of nulls settles the order instead of looping.
    let (order_id, key, token) = recorded_order(&t).await;
    rec.answer(
        "lookup",
        200,
        for_order(fixture("lookup_expired.json"), &order_id, &key),
    );
    let r = t.get(&format!("/v1/orders/{order_id}"), Some(&token)).await;
    assert_eq!(r.body["status"], "EXPIRED", "{:?}", r.body);
    // The EXPIRED webhook for it: looked up, nothing more to do.
    let r = unsigned(
        &t,
        &for_order(
            fixture("webhook_payment_status_changed_expired.json"),
            &order_id,
            &key,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);

    // NOT_FOUND (the generic lookup code) on the webhook path: a payment Toss does not know.
    let (o2, k2, _) = recorded_order(&t).await;
    rec.answer("lookup", 404, fixture("error_NOT_FOUND.json"));
    let r = unsigned(
        &t,
        &for_order(
            fixture("webhook_payment_status_changed_done.json"),
            &o2,
            &k2,
        ),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "ignored, not retried: {:?}",
        r.body
    );
    assert_eq!(order_status(&t, &o2).await, "PENDING");

    // Throttled: the first lookup of a pass is refused; the pass stops asking, the client
    // holds further lookups back, and the orders stay open for a later pass.
    let (o3, _, _) = recorded_order(&t).await;
    rec.answer(
        "lookup",
        403,
        fixture("error_FORBIDDEN_CONSECUTIVE_REQUEST.json"),
    );
    let before = rec.count("lookup");
    let report = reconcile_once(&t.app, "recorded").await.unwrap();
    assert!(report.throttled, "{report:?}");
    assert_eq!(
        rec.count("lookup"),
        before + 1,
        "one refused lookup, then back-off"
    );
    assert!(t.app.toss.lookup_backoff().is_some());
    reconcile_once(&t.app, "recorded-2").await.unwrap();
    assert_eq!(
        rec.count("lookup"),
        before + 1,
        "still backing off: nothing sent"
    );
    assert_eq!(order_status(&t, &o3).await, "PENDING");
    assert_eq!(order_status(&t, &o2).await, "PENDING");
}

async fn recorded_virtual_account_events(backend: Backend) {
    let (t, rec) = spawn_recorded(backend).await;
    let (order_id, key, token) = recorded_order(&t).await;
    let of = |name: &str| for_order(fixture(name), &order_id, &key);
    // Issued: the confirm answers WAITING_FOR_DEPOSIT with the documented secret.
    rec.answer("confirm", 200, of("confirm_virtual_account_waiting.json"));
    let r = t.confirm(&token, &key, &order_id, 1000).await;
    assert_eq!(r.code(), "E_CONFIRM_IN_PROGRESS", "{:?}", r.body);
    rec.answer("lookup", 200, of("confirm_virtual_account_waiting.json"));
    // The issue callback (no eventType) is recognised and changes nothing — but its due date
    // (2024) is long gone, so the order is closed at Toss.
    rec.answer(
        "cancel",
        200,
        of("cancel_virtual_account_before_deposit.json"),
    );
    let r = unsigned(&t, &of("webhook_deposit_callback_issued.json")).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(order_status(&t, &order_id).await, "EXPIRED");
    let closed = rec
        .calls
        .lock()
        .unwrap()
        .iter()
        .rev()
        .find(|(o, _)| *o == "cancel")
        .unwrap()
        .1
        .clone();
    assert!(
        closed.get("cancelAmount").is_none(),
        "a full cancel closes the account"
    );
    assert!(closed.get("refundReceiveAccount").is_none());

    // Another order: deposited (callback with the documented secret) → PAID, then the deposit
    // is reversed → the course is taken back; a forged secret is refused.
    let (o2, k2, tok2) = recorded_order(&t).await;
    let of2 = |name: &str| for_order(fixture(name), &o2, &k2);
    rec.answer("confirm", 200, of2("confirm_virtual_account_waiting.json"));
    t.confirm(&tok2, &k2, &o2, 1000).await;
    rec.answer("lookup", 200, of2("lookup_virtual_account_done.json"));
    let mut forged = of2("webhook_deposit_callback_deposited.json");
    forged["secret"] = json!("ps_forged");
    let r = unsigned(&t, &forged).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{:?}", r.body);
    assert_eq!(order_status(&t, &o2).await, "CONFIRMING");
    let r = unsigned(&t, &of2("webhook_deposit_callback_deposited.json")).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(order_status(&t, &o2).await, "PAID");
    let mut reversed = of2("confirm_virtual_account_waiting.json");
    reversed["virtualAccount"]["dueDate"] = json!("2999-12-31T23:59:59");
    rec.answer("lookup", 200, reversed);
    let r = unsigned(&t, &of2("webhook_deposit_callback_reversed.json")).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(order_status(&t, &o2).await, "REFUNDED");
    let mine = t.get("/v1/me/enrollments", Some(&tok2)).await;
    assert_eq!(
        mine.body["items"][0]["status"], "REFUNDED",
        "{:?}",
        mine.body
    );
}

/// An operator cancel that meets a deposit: the close is refused (the account is paid now) and
/// the lookup shows DONE, so the money is settled and the order PAID, never turned away.
async fn recorded_deposit_beats_the_operator_cancel(backend: Backend) {
    let (t, rec) = spawn_recorded(backend).await;
    let (order_id, key, token) = recorded_order(&t).await;
    let of = |name: &str| for_order(fixture(name), &order_id, &key);
    rec.answer("confirm", 200, of("confirm_virtual_account_waiting.json"));
    let r = t.confirm(&token, &key, &order_id, 1000).await;
    assert_eq!(r.code(), "E_CONFIRM_IN_PROGRESS", "{:?}", r.body);
    let mut waiting = of("confirm_virtual_account_waiting.json");
    waiting["virtualAccount"]["dueDate"] = json!("2999-12-31T23:59:59");
    // The cancel's lookup by orderId still shows the account waiting; the lookup after the
    // refused close shows the deposit.
    rec.answer_then(
        "lookup",
        (200, waiting),
        (200, of("lookup_virtual_account_done.json")),
    );
    rec.answer(
        "cancel",
        400,
        json!({"code": "INVALID_REQUEST", "message": "refundReceiveAccount is required"}),
    );
    let r = t
        .post(
            &format!("/v1/admin/orders/{order_id}/cancel"),
            Some(&t.admin_token()),
            &json!({}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "E_ORDER_NOT_CANCELABLE"),
        "{:?}",
        r.body
    );
    assert_eq!(rec.count("cancel"), 1);
    assert_eq!(
        order_status(&t, &order_id).await,
        "PAID",
        "the deposit is kept"
    );
    let mine = t.get("/v1/me/enrollments", Some(&token)).await;
    assert_eq!(
        mine.body["items"][0]["status"], "ENROLLED",
        "{:?}",
        mine.body
    );
}

macro_rules! backend_tests {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Backend::Sqlite).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Backend::Postgres).await;
                }
            )+
        }
    };
}

backend_tests!(
    stored_error_under_the_confirm_key_does_not_block_the_order,
    deposited_virtual_account_refund_needs_the_buyers_account,
    reversed_deposit_revokes_the_enrollment,
    unpaid_virtual_account_closes_when_its_due_date_passes,
    operator_cancels_an_unpaid_virtual_account,
    reconciler_closes_the_account_of_an_ended_order,
    lost_virtual_account_refund_is_resent_once,
    recorded_card_confirm_refund_and_webhooks,
    recorded_lookups_nulls_not_found_and_throttling,
    recorded_virtual_account_events,
    recorded_deposit_beats_the_operator_cancel,
);
