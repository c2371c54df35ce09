//! `replayed` means "this request did not perform the charge". The sandbox delivers a signed
//! webhook the moment Toss's payment becomes DONE, as Toss does, so the webhook often settles
//! the order while the confirm that charged it is still waiting for Toss's answer. Whoever
//! writes the settlement first, the confirm that claimed the order and called Toss answers
//! `replayed: false` without `Idempotent-Replayed` and counts as `enrolled`; a genuine repeat
//! answers `replayed: true` with the header and counts as `replayed`.
//!
//! Many purchases per store, half of them with Toss's answer held back after the approval
//! (`delay` + `afterProcessing`) so the webhook certainly wins, half left to the natural race.
//! This file is its own test binary because it reads the process-wide confirm counters; the
//! two stores' runs take turns on a lock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Backend, TestApp};
use flows::config::DEV_WEBHOOK_SECRET;
use reqwest::StatusCode;
use serde_json::json;

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
    let series = format!("coursepay_confirm_total{{outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .unwrap_or_else(|| panic!("{series} missing from /metrics"))
        .trim()
        .parse()
        .unwrap()
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
