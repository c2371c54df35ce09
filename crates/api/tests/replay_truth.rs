//! `replayed` means "this request did not perform the charge". The sandbox delivers a signed
//! webhook the moment Toss's payment becomes DONE, as Toss does, so the webhook often settles
//! the order while the confirm that charged it is still waiting for Toss's answer. Whoever
//! writes the settlement first, the confirm that claimed the order and called Toss answers
//! `replayed: false` without `Idempotent-Replayed` and counts as `enrolled`; a genuine repeat
//! answers `replayed: true` with the header and counts as `replayed`.
//!
//! Many purchases per store, half of them with Toss's answer held back after the approval
//! (`delay` + `afterProcessing`) so the webhook certainly wins, half left to the natural race.
//!
//! The same holds for server-side confirms (an order read or the reconciler confirming an
//! authenticated payment): inside `SERVER_CONFIRM_GRACE_SECONDS` after checkout the reconciler
//! and webhooks leave the charge to the buyer (the buyer's own order read may charge); past it,
//! whichever confirm calls Toss counts as the approval attempt —
//! in the metric and in the in-process alert evaluator — and the buyer's confirm that did not
//! charge answers the settled result with `replayed: true` (never a 409 to retry).
//!
//! This file is its own test binary because it reads the process-wide confirm counters; the
//! stores' runs take turns on a lock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Backend, Purchase, TestApp};
use flows::config::DEV_WEBHOOK_SECRET;
use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;

const PURCHASES: usize = 60;
/// How long Toss's confirm answer is held back after the approval in the forced half: ample
/// for the webhook to be delivered, looked up and settled on loopback.
const HOLD_BACK_MS: u64 = 300;

static COUNTERS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `coursepay_confirm_total{outcome="<outcome>"}` as `/metrics` shows it.
async fn confirms(t: &TestApp, outcome: &str) -> u64 {
    let text = t
        .http
        .get(format!("{}/metrics", t.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = format!("coursepay_confirm_total{{outcome=\"{outcome}\",class=");
    text.lines()
        .filter(|l| l.starts_with(&series))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .reduce(|a, b| a + b)
        .unwrap_or_else(|| panic!("{series} missing from /metrics"))
}

/// Approval attempts the in-process evaluator holds for the 5-minute approval rule.
fn evaluator_attempts() -> usize {
    flows::ops::alerts::evaluate_global(time::OffsetDateTime::now_utc(), None);
    flows::ops::alerts::alerts_snapshot()
        .into_iter()
        .find(|s| s.rule == flows::ops::alerts::APPROVAL_FAILURE)
        .unwrap()
        .samples
}

/// Who claimed `p`'s order — and so called Toss's confirm: "user:<id>" for the buyer's
/// request, "settle-on-read" for an order read. (Who wrote the settlement says nothing about
/// who charged: a read that finds the payment DONE settles it without confirming.)
async fn claimed_by(t: &TestApp, p: &Purchase) -> String {
    let events = t
        .store
        .order_events(&domain::OrderId::parse(&p.order_id).unwrap())
        .await
        .unwrap();
    let claims: Vec<_> = events
        .iter()
        .filter(|e| e.kind == "order.claimed")
        .collect();
    assert_eq!(claims.len(), 1, "{}: claimed once: {events:?}", p.order_id);
    claims[0].actor.clone()
}

async fn first_confirms_are_never_replays(backend: Backend) {
    let _turn = COUNTERS.lock().await;
    let t = common::spawn(backend).await;
    t.sandbox.set_webhook(
        Some(format!("{}/v1/webhooks/toss", t.base)),
        Some(DEV_WEBHOOK_SECRET.to_owned()),
    );
    let (enrolled0, replayed0) = (
        confirms(&t, "enrolled").await,
        confirms(&t, "replayed").await,
    );
    let mut webhook_first = 0;
    for i in 0..PURCHASES {
        let p = t.paid_in_window(10_000).await;
        if i % 2 == 0 {
            t.fault(json!({"mode": "delay", "delayMs": HOLD_BACK_MS, "afterProcessing": true, "operations": ["confirm"]}))
                .await;
        }
        let first = t
            .confirm(&p.token, &p.payment_key, &p.order_id, 10_000)
            .await;
        assert_eq!(
            first.status,
            StatusCode::OK,
            "purchase {i}: {:?}",
            first.body
        );
        assert_eq!(
            first.body["replayed"], false,
            "purchase {i}: the charging confirm is no replay"
        );
        assert!(
            first.headers.get("idempotent-replayed").is_none(),
            "purchase {i}: no Idempotent-Replayed on the charging confirm"
        );
        let again = t
            .confirm(&p.token, &p.payment_key, &p.order_id, 10_000)
            .await;
        assert_eq!(
            again.status,
            StatusCode::OK,
            "purchase {i}: {:?}",
            again.body
        );
        assert_eq!(
            again.body["replayed"], true,
            "purchase {i}: a repeat is a replay"
        );
        assert_eq!(
            again.headers.get("idempotent-replayed").unwrap(),
            "true",
            "purchase {i}"
        );
        assert_eq!(again.body["enrollmentId"], first.body["enrollmentId"]);
        // Who wrote the settlement: the webhook or the confirm itself.
        let events = t
            .store
            .order_events(&domain::OrderId::parse(&p.order_id).unwrap())
            .await
            .unwrap();
        let settled: Vec<_> = events
            .iter()
            .filter(|e| e.kind == "payment.settled")
            .collect();
        assert_eq!(settled.len(), 1, "purchase {i}: settled once");
        if settled[0].detail["source"] == "webhook" {
            webhook_first += 1;
        }
    }
    // The race really happened: at least the forced half was settled by the webhook first.
    assert!(
        webhook_first >= PURCHASES / 2,
        "{webhook_first} of {PURCHASES} settled by the webhook first"
    );
    // Exactly one charge per purchase at Toss.
    assert_eq!(t.confirm_calls().await, PURCHASES as u64);
    assert_eq!(
        confirms(&t, "enrolled").await - enrolled0,
        PURCHASES as u64,
        "every charging confirm counts as enrolled"
    );
    assert_eq!(
        confirms(&t, "replayed").await - replayed0,
        PURCHASES as u64,
        "every repeat counts as replayed"
    );
    eprintln!("{backend:?}: {webhook_first}/{PURCHASES} settled by the webhook before the confirm");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_first_confirms_are_never_replays() {
    first_confirms_are_never_replays(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_first_confirms_are_never_replays() {
    first_confirms_are_never_replays(Backend::Postgres).await;
}

const RACES: usize = 40;

/// Inside the grace the reconciler leaves an authenticated order to its buyer, while the
/// buyer's own order read (a tab that died before the success page, seed QA 4: "on refresh the
/// enrollment exists") charges it at once: that read is the approval attempt, and the buyer's
/// later confirm answers the settled result as a replay. A buyer who confirms charges with the
/// confirm itself.
async fn young_orders_are_charged_only_by_their_buyer(backend: Backend) {
    let _turn = COUNTERS.lock().await;
    let t = common::spawn_with(backend, |c| {
        c.server_confirm_grace = Duration::from_secs(120);
    })
    .await;
    let (enrolled0, attempts0) = (confirms(&t, "enrolled").await, evaluator_attempts());
    let calls0 = t.confirm_calls().await;

    // The reconciler: past its own wait (one Toss timeout, 2 s here) but inside the grace the
    // order is looked up and left PENDING.
    let p = t.paid_in_window(10_000).await;
    tokio::time::sleep(t.app.config.toss_timeout + Duration::from_millis(200)).await;
    let report = flows::reconcile::reconcile_once(&t.app, "grace-test")
        .await
        .unwrap();
    assert!(report.leased >= 1, "{report:?}");
    assert_eq!(
        t.order(&p.order_id).await.status,
        domain::OrderStatus::Pending
    );
    assert_eq!(
        t.confirm_calls().await,
        calls0,
        "the reconciler charged nothing"
    );

    // The buyer comes back and reads the order: it charges at once.
    let read = t
        .get(&format!("/v1/orders/{}", p.order_id), Some(&p.token))
        .await;
    assert_eq!(read.body["status"], "PAID", "{:?}", read.body);
    assert!(read.body["enrollmentId"].is_string(), "{:?}", read.body);
    assert_eq!(claimed_by(&t, &p).await, "settle-on-read");
    let late = t
        .confirm(&p.token, &p.payment_key, &p.order_id, 10_000)
        .await;
    assert_eq!(late.status, StatusCode::OK, "{:?}", late.body);
    assert_eq!(late.body["replayed"], true, "{:?}", late.body);

    // A buyer who confirms inside the grace charges with the confirm.
    let q = t.paid_in_window(10_000).await;
    let first = t
        .confirm(&q.token, &q.payment_key, &q.order_id, 10_000)
        .await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    assert_eq!(first.body["replayed"], false, "{:?}", first.body);
    assert!(claimed_by(&t, &q).await.starts_with("user:"));

    assert_eq!(t.confirm_calls().await, calls0 + 2, "one charge each");
    assert_eq!(confirms(&t, "enrolled").await - enrolled0, 2);
    assert_eq!(evaluator_attempts() - attempts0, 2);
}

/// Past the grace (0 here) an order read races the buyer's confirm. Half the time the read's
/// server-side confirm is certainly first (Toss's answer held back, the buyer sent only once
/// the order is CONFIRMING); half the time the race is free. Whoever called Toss counts as
/// the approval; the buyer's answer is 200 either way, `replayed` exactly when the read
/// charged.
async fn server_side_confirms_count_and_the_buyer_gets_a_replay(backend: Backend) {
    let _turn = COUNTERS.lock().await;
    let t = common::spawn(backend).await;
    let (enrolled0, replayed0, attempts0) = (
        confirms(&t, "enrolled").await,
        confirms(&t, "replayed").await,
        evaluator_attempts(),
    );
    let mut server_first = 0;
    for i in 0..RACES {
        let p = t.paid_in_window(10_000).await;
        let forced = i % 2 == 0;
        if forced {
            t.fault(json!({"mode": "delay", "delayMs": 300, "afterProcessing": true, "operations": ["confirm"]}))
                .await;
        }
        let read = {
            let (http, url, token) = (
                t.http.clone(),
                format!("{}/v1/orders/{}", t.base, p.order_id),
                p.token.clone(),
            );
            tokio::spawn(async move { http.get(url).bearer_auth(token).send().await.unwrap() })
        };
        if forced {
            let claimed = t
                .eventually(|| {
                    let store = t.store.clone();
                    let id = domain::OrderId::parse(&p.order_id).unwrap();
                    async move {
                        store.get_order(&id).await.unwrap().unwrap().status
                            != domain::OrderStatus::Pending
                    }
                })
                .await;
            assert!(claimed, "purchase {i}: the read claimed the order");
        }
        let buyer = t
            .confirm(&p.token, &p.payment_key, &p.order_id, 10_000)
            .await;
        let read = read.await.unwrap();
        assert_eq!(read.status(), StatusCode::OK);
        assert_eq!(
            buyer.status,
            StatusCode::OK,
            "purchase {i}: {:?}",
            buyer.body
        );
        let by = claimed_by(&t, &p).await;
        let server_charged = by == "settle-on-read";
        assert!(
            server_charged || by.starts_with("user:"),
            "purchase {i}: {by}"
        );
        if forced {
            assert!(server_charged, "purchase {i}: the read charged");
        }
        server_first += usize::from(server_charged);
        assert_eq!(
            buyer.body["replayed"], server_charged,
            "purchase {i}: replayed exactly when the buyer did not charge"
        );
        assert_eq!(
            buyer.headers.get("idempotent-replayed").is_some(),
            server_charged,
            "purchase {i}"
        );
        assert_eq!(t.order(&p.order_id).await.status, domain::OrderStatus::Paid);
    }
    assert_eq!(t.confirm_calls().await, RACES as u64, "one charge each");
    assert_eq!(
        confirms(&t, "enrolled").await - enrolled0,
        RACES as u64,
        "every charge counts as enrolled, whoever made it"
    );
    assert_eq!(
        confirms(&t, "replayed").await - replayed0,
        server_first as u64
    );
    assert_eq!(evaluator_attempts() - attempts0, RACES);
    eprintln!("{backend:?}: {server_first}/{RACES} charged by the order read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_young_orders_are_charged_only_by_their_buyer() {
    young_orders_are_charged_only_by_their_buyer(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_young_orders_are_charged_only_by_their_buyer() {
    young_orders_are_charged_only_by_their_buyer(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_server_side_confirms_count_and_the_buyer_gets_a_replay() {
    server_side_confirms_count_and_the_buyer_gets_a_replay(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_server_side_confirms_count_and_the_buyer_gets_a_replay() {
    server_side_confirms_count_and_the_buyer_gets_a_replay(Backend::Postgres).await;
}
