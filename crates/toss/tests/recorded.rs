//! Toss's documented example answers (tests/fixtures, see its README) decoded by the client
//! exactly as a live answer is: every documented null, unknown field and code must decode.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use domain::PaymentStatus;
use toss::{Outcome, TossError, decode_answer, is_virtual_account_method, wire};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn ok(name: &str) -> toss::PaymentView {
    decode_answer(200, &fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn card_confirm_and_its_english_lookup() {
    let v = ok("confirm_card_done.json");
    assert_eq!(v.status, PaymentStatus::Done);
    assert_eq!((v.total_amount.won(), v.balance_amount.won()), (1000, 1000));
    assert_eq!(v.order_id.as_str(), "a4CWyWY5m89PNh7xJwhk1");
    assert!(v.approved_at.is_some());
    assert_eq!(v.method.as_deref(), Some("카드"));
    let en = ok("lookup_card_done_en_us.json");
    assert_eq!(en.method.as_deref(), Some("CARD"));
    assert_eq!(en.status, v.status);
    assert_eq!(en.approved_at, v.approved_at);
}

#[test]
fn expired_lookup_with_nulls_decodes() {
    let v = ok("lookup_expired.json");
    assert_eq!(v.status, PaymentStatus::Expired);
    assert_eq!(v.approved_at, None);
    assert_eq!(v.method, None);
    let raw: wire::Payment = serde_json::from_slice(&fixture("lookup_expired.json")).unwrap();
    assert_eq!(raw.use_escrow, None);
    assert_eq!(raw.failure.unwrap().code, "EXPIRED_PAYMENT");
}

#[test]
fn cancels_lower_the_balance() {
    let full = ok("cancel_full.json");
    assert_eq!(full.status, PaymentStatus::Canceled);
    assert_eq!(full.balance_amount.won(), 0);
    assert_eq!(full.cancels.len(), 1);
    assert_eq!(full.cancels[0].amount.won(), 1000);
    assert!(full.cancels[0].canceled_at.is_some());
    let part = ok("cancel_partial.json");
    assert_eq!(part.status, PaymentStatus::PartialCanceled);
    assert_eq!(part.balance_amount.won(), 700);
    let raw: wire::Payment = serde_json::from_slice(&fixture("cancel_partial.json")).unwrap();
    assert_eq!(raw.supplied_amount + raw.vat, raw.balance_amount);
}

#[test]
fn virtual_account_life() {
    let waiting = ok("confirm_virtual_account_waiting.json");
    assert_eq!(waiting.status, PaymentStatus::WaitingForDeposit);
    assert!(is_virtual_account_method(
        waiting.method.as_deref().unwrap()
    ));
    assert!(waiting.secret.as_deref().unwrap().starts_with("ps_"));
    let done = ok("lookup_virtual_account_done.json");
    assert_eq!(
        (done.status, done.secret),
        (PaymentStatus::Done, waiting.secret.clone())
    );
    let closed = ok("cancel_virtual_account_before_deposit.json");
    assert_eq!(closed.status, PaymentStatus::Canceled);
    assert_eq!(closed.balance_amount.won(), 0);
}

#[test]
fn webhook_bodies_decode() {
    for name in [
        "webhook_payment_status_changed_done.json",
        "webhook_payment_status_changed_canceled.json",
        "webhook_payment_status_changed_expired.json",
    ] {
        let ev: wire::WebhookEvent = serde_json::from_slice(&fixture(name)).unwrap();
        assert_eq!(ev.event_type, "PAYMENT_STATUS_CHANGED");
        assert!(
            !ev.created_at.unwrap().contains('+'),
            "createdAt has no offset"
        );
        let data = serde_json::to_vec(&ev.data).unwrap();
        decode_answer(200, &data).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let mut statuses = Vec::new();
    for name in ["issued", "deposited", "canceled", "reversed"] {
        let body = fixture(&format!("webhook_deposit_callback_{name}.json"));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(v.get("eventType").is_none() && v.get("paymentKey").is_none());
        let cb: wire::DepositCallback = serde_json::from_slice(&body).unwrap();
        statuses.push(cb.status);
    }
    assert_eq!(
        statuses,
        [
            "WAITING_FOR_DEPOSIT",
            "DONE",
            "CANCELED",
            "WAITING_FOR_DEPOSIT"
        ]
    );
}

#[test]
fn documented_errors_classify_by_code() {
    let err = |code: &str, status: u16| -> TossError {
        decode_answer(status, &fixture(&format!("error_{code}.json"))).unwrap_err()
    };
    let nf = err("NOT_FOUND", 404);
    assert!(nf.is_not_found());
    assert!(err("NOT_FOUND_PAYMENT", 404).is_not_found());
    assert!(!err("NOT_FOUND_PAYMENT_SESSION", 404).is_not_found());
    let throttled = err("FORBIDDEN_CONSECUTIVE_REQUEST", 403);
    assert!(throttled.is_throttled());
    assert_eq!(throttled.outcome(), Outcome::Unknown);
    assert_eq!(
        err("ALREADY_PROCESSED_PAYMENT", 400).outcome(),
        Outcome::AlreadyProcessed
    );
    for code in [
        "REJECT_CARD_PAYMENT",
        "EXCEED_MAX_REFUND_DUE",
        "NOT_ALLOWED_PARTIAL_REFUND",
        "NOT_CANCELABLE_AMOUNT",
    ] {
        assert_eq!(err(code, 403).outcome(), Outcome::Refused, "{code}");
    }
    for code in [
        "FAILED_METHOD_HANDLING_CANCEL",
        "FAILED_INTERNAL_SYSTEM_PROCESSING",
    ] {
        let e = err(code, 500);
        assert_eq!(e.outcome(), Outcome::Unknown, "{code}");
        assert!(e.is_provider_failure());
    }
}
