//! `POST /v1/webhooks/toss` end to end on both stores: the seed's QA scenario 5 (docs/seed.md), every way a signature can be
//! wrong, rotation, replay, Toss retries, out-of-order deliveries, forged bodies, provider
//! outages, virtual-account deposits, the IP throttle and the sandbox delivering to us.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Backend, Purchase, Resp, TestApp, spawn_with};
use flows::config::{Config, DEV_WEBHOOK_SECRET, WebhookVerify};
use flows::webhook_auth::signature::{sign_toss, sign_x_signature};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const HOOK: &str = common::WEBHOOK_PATH;
const NEW: &str = "coursepay-new-webhook-secret-0123456789abcdef";
const OLD: &str = "coursepay-old-webhook-secret-0123456789abcdef";
const OLDER: &str = "coursepay-older-webhook-secret-0123456789abcd";
const TOSS_KEY: &str = "toss-webhook-security-key-for-tests";

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn status_body(payment_key: &str, order_id: &str, claimed: &str) -> Vec<u8> {
    json!({
        "eventType": "PAYMENT_STATUS_CHANGED",
        "createdAt": "2026-11-24T12:00:00.000000",
        "data": {"paymentKey": payment_key, "orderId": order_id, "status": claimed, "totalAmount": 10000},
    })
    .to_string()
    .into_bytes()
}

type Headers = Vec<(String, String)>;

/// Headers of a delivery signed with `secret` at `ts`.
fn signed(secret: &str, ts: i64, body: &[u8]) -> Vec<(String, String)> {
    let (t, s) = sign_x_signature(secret.as_bytes(), ts, body);
    vec![("X-Timestamp".into(), t), ("X-Signature".into(), s)]
}

/// Toss approves the payment without our server hearing of it (the browser never came back):
/// only a webhook or the reconciler can tell us.
async fn approve_at_toss(t: &TestApp, p: &Purchase) {
    let view = t
        .app
        .toss
        .confirm(
            &domain::PaymentKey::parse(&p.payment_key).unwrap(),
            &domain::OrderId::parse(&p.order_id).unwrap(),
            domain::Money::new(p.amount).unwrap(),
            &domain::IdempotencyKey::parse(&format!("test-{}", p.order_id)).unwrap(),
            &toss::CallContext::default(),
        )
        .await
        .unwrap();
    assert_eq!(view.status, domain::PaymentStatus::Done);
}

async fn lookups(t: &TestApp) -> u64 {
    t.stats().await["lookupCalls"].as_u64().unwrap()
}

async fn status_of(t: &TestApp, order_id: &str) -> &'static str {
    t.order(order_id).await.status.as_str()
}

fn assert_invalid_sig(r: &Resp, case: &str) {
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{case}: {:?}", r.body);
    assert_eq!(r.code(), "E_WEBHOOK_INVALID_SIG", "{case}");
    assert!(r.is_problem(), "{case}");
}

fn received(r: &Resp) {
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body, json!({"received": true}));
}

fn secrets(current: &str, previous: Option<&str>) -> impl FnOnce(&mut Config) {
    let (current, previous) = (current.to_owned(), previous.map(str::to_owned));
    move |c: &mut Config| {
        c.webhook_secret = SecretString::from(current);
        c.webhook_secret_previous = previous.map(SecretString::from);
        c.webhook_invalid_sig_limit = 1000;
    }
}

// --- seed QA 5 and every way to be wrong -------------------------------------------------

async fn qa5_tampered_signature_is_401(backend: Backend) {
    let t = spawn_with(backend, |_| {}).await;
    let p = t.paid_in_window(10_000).await;
    approve_at_toss(&t, &p).await;
    let body = status_body(&p.payment_key, &p.order_id, "DONE");
    let mut headers = signed(DEV_WEBHOOK_SECRET, now(), &body);
    let good = headers[1].1.clone();
    let last = good.chars().last().unwrap();
    headers[1].1 = format!(
        "{}{}",
        &good[..good.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    let r = t.deliver_webhook(&body, &headers).await;
    assert_invalid_sig(&r, "tampered X-Signature");
    assert_eq!(status_of(&t, &p.order_id).await, "PENDING");
    headers[1].1 = good;
    received(&t.deliver_webhook(&body, &headers).await);
    assert_eq!(status_of(&t, &p.order_id).await, "PAID");
}

async fn every_way_to_be_wrong_is_401_and_changes_nothing(backend: Backend) {
    let t = spawn_with(backend, secrets(NEW, None)).await;
    let p = t.paid_in_window(10_000).await;
    approve_at_toss(&t, &p).await;
    let body = status_body(&p.payment_key, &p.order_id, "DONE");
    let ts = now();
    let (good_ts, good_sig) = sign_x_signature(NEW.as_bytes(), ts, &body);
    let hex = good_sig.strip_prefix("v1=").unwrap().to_owned();
    let flip = |s: &str, i: usize| {
        let mut b = s.as_bytes().to_vec();
        b[i] = if b[i] == b'a' { b'b' } else { b'a' };
        String::from_utf8(b).unwrap()
    };
    let mut flipped_body = body.clone();
    let i = flipped_body.len() / 2;
    flipped_body[i] ^= 0x01;
    let h = |t: &str, s: &str| {
        vec![
            ("X-Timestamp".to_owned(), t.to_owned()),
            ("X-Signature".to_owned(), s.to_owned()),
        ]
    };
    let cases: Vec<(&str, Vec<u8>, Headers)> = vec![
        (
            "one flipped body byte",
            flipped_body,
            h(&good_ts, &good_sig),
        ),
        (
            "one flipped signature nibble",
            body.clone(),
            h(&good_ts, &format!("v1={}", flip(&hex, 17))),
        ),
        (
            "truncated signature",
            body.clone(),
            h(&good_ts, &good_sig[..good_sig.len() - 2]),
        ),
        ("v1= with an empty value", body.clone(), h(&good_ts, "v1=")),
        ("empty X-Signature", body.clone(), h(&good_ts, "")),
        (
            "uppercase hex",
            body.clone(),
            h(&good_ts, &format!("v1={}", hex.to_uppercase())),
        ),
        (
            "non-hex",
            body.clone(),
            h(&good_ts, &format!("v1={}z", &hex[..63])),
        ),
        (
            "no v1 scheme",
            body.clone(),
            h(&good_ts, &format!("v2={hex}")),
        ),
        (
            "valid value plus an empty one",
            body.clone(),
            h(&good_ts, &format!("{good_sig},v1=")),
        ),
        (
            "duplicated X-Signature",
            body.clone(),
            vec![
                ("X-Timestamp".into(), good_ts.clone()),
                ("X-Signature".into(), good_sig.clone()),
                ("X-Signature".into(), good_sig.clone()),
            ],
        ),
        (
            "duplicated X-Timestamp",
            body.clone(),
            vec![
                ("X-Timestamp".into(), good_ts.clone()),
                ("X-Timestamp".into(), good_ts.clone()),
                ("X-Signature".into(), good_sig.clone()),
            ],
        ),
        (
            "timestamp 301 s old",
            body.clone(),
            signed(NEW, ts - 301, &body),
        ),
        (
            "timestamp 301 s ahead",
            body.clone(),
            signed(NEW, ts + 301, &body),
        ),
        ("non-numeric timestamp", body.clone(), h("12a4", &good_sig)),
        (
            "missing X-Timestamp",
            body.clone(),
            vec![("X-Signature".into(), good_sig.clone())],
        ),
        (
            "secret rotated out long ago",
            body.clone(),
            signed(OLDER, ts, &body),
        ),
        (
            "previous secret after the rotation ended",
            body.clone(),
            signed(OLD, ts, &body),
        ),
        ("unsigned in signature mode", body.clone(), vec![]),
    ];
    let lookups_before = lookups(&t).await;
    for (case, body, headers) in &cases {
        let r = t.deliver_webhook(body, headers).await;
        assert_invalid_sig(&r, case);
    }
    // Nothing was processed: Toss was never asked, the order is untouched.
    assert_eq!(lookups(&t).await, lookups_before);
    assert_eq!(status_of(&t, &p.order_id).await, "PENDING");
    assert!(
        t.store
            .payment_for_order(&domain::OrderId::parse(&p.order_id).unwrap())
            .await
            .unwrap()
            .is_none()
    );
    // The same delivery signed correctly is accepted: the refusals were about the signature.
    received(&t.deliver_webhook(&body, &h(&good_ts, &good_sig)).await);
    assert_eq!(status_of(&t, &p.order_id).await, "PAID");
}

async fn previous_secret_accepted_during_rotation(backend: Backend) {
    let t = spawn_with(backend, secrets(NEW, Some(OLD))).await;
    let p = t.paid_in_window(10_000).await;
    let body = status_body(&p.payment_key, &p.order_id, "DONE");
    // Three deliveries of one body at three timestamps (the same body and timestamp would be
    // one delivery, whatever secret signed it: see no_signature_combination_replays_a_delivery).
    let base = now();
    received(&t.deliver_webhook(&body, &signed(OLD, base, &body)).await);
    received(
        &t.deliver_webhook(&body, &signed(NEW, base - 2, &body))
            .await,
    );
    // Two values (sender mid-rotation): one matching is enough.
    let (ts, a) = sign_x_signature(OLDER.as_bytes(), base - 1, &body);
    let (_, b) = sign_x_signature(OLD.as_bytes(), base - 1, &body);
    let both = vec![
        ("X-Timestamp".to_owned(), ts),
        ("X-Signature".to_owned(), format!("{a},{b}")),
    ];
    received(&t.deliver_webhook(&body, &both).await);
    let r = t.deliver_webhook(&body, &signed(OLDER, now(), &body)).await;
    assert_invalid_sig(&r, "a secret that is neither current nor previous");
}

// --- replay and Toss retries -----------------------------------------------------------------

async fn replay_within_ten_minutes_is_409(backend: Backend) {
    let t = spawn_with(backend, |_| {}).await;
    let p = t.paid_in_window(10_000).await;
    let body = status_body(&p.payment_key, &p.order_id, "DONE");
    let headers = signed(DEV_WEBHOOK_SECRET, now(), &body);
    received(&t.deliver_webhook(&body, &headers).await);
    let lookups_after_first = lookups(&t).await;
    let r = t.deliver_webhook(&body, &headers).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert_eq!(r.code(), "E_WEBHOOK_REPLAYED");
    assert_eq!(lookups(&t).await, lookups_after_first);
}

/// Two instances sharing one store (or one Redis) block each other's replays.
async fn replay_is_blocked_across_instances(backend: Backend, redis: bool) {
    let redis_url =
        std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let tweak = |c: &mut Config| {
        if redis {
            c.redis_url = Some(SecretString::from(redis_url.clone()));
        }
    };
    let t = spawn_with(backend, tweak).await;
    let mut config2 = t.app.config.clone();
    tweak(&mut config2);
    let second = flows::App::new(t.store.clone(), t.app.toss.clone(), config2);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base2 = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(api::serve(
        listener,
        api::http::router(second.clone()),
        std::future::pending(),
    ));
    assert_eq!(
        t.app.webhooks.replay.backend(),
        if redis { "redis" } else { "database" }
    );

    let p = t.paid_in_window(10_000).await;
    let body = status_body(&p.payment_key, &p.order_id, "DONE");
    let headers = signed(DEV_WEBHOOK_SECRET, now(), &body);
    received(&t.deliver_webhook(&body, &headers).await);
    let mut req = t.http.post(format!("{base2}{HOOK}")).body(body.clone());
    for (k, v) in &headers {
        req = req.header(k, v);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem["code"], "E_WEBHOOK_REPLAYED");
}

async fn replay_across_instances_database(backend: Backend) {
    replay_is_blocked_across_instances(backend, false).await;
}

async fn replay_across_instances_redis(backend: Backend) {
    replay_is_blocked_across_instances(backend, true).await;
}

/// Redis down: the delivery is refused with a retryable 503 (never accepted unchecked), fast.
async fn replay_guard_down_is_503(backend: Backend) {
    let t = spawn_with(backend, |c| {
        // Nothing listens on port 1.
        c.redis_url = Some(SecretString::from("redis://127.0.0.1:1".to_owned()));
    })
    .await;
    let p = t.paid_in_window(10_000).await;
    let body = status_body(&p.payment_key, &p.order_id, "DONE");
    let started = Instant::now();
    let r = t
        .deliver_webhook(&body, &signed(DEV_WEBHOOK_SECRET, now(), &body))
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", r.body);
    assert!(r.headers.get("retry-after").is_some());
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(status_of(&t, &p.order_id).await, "PENDING");
}

async fn same_transmission_id_is_processed_once(backend: Backend) {
    let t = spawn_with(backend, |_| {}).await;
    let p = t.paid_in_window(10_000).await;
    approve_at_toss(&t, &p).await;
    let body = status_body(&p.payment_key, &p.order_id, "DONE");
    let before = lookups(&t).await;
    // Toss's retries (re-signed by the relay, so each signature is fresh), some concurrent.
    let all: Vec<Vec<(String, String)>> = (0..6)
        .map(|i| {
            let mut headers = signed(DEV_WEBHOOK_SECRET, now() - i, &body);
            headers.push((
                "tosspayments-webhook-transmission-id".into(),
                "tx-same-1".into(),
            ));
            headers.push((
                "tosspayments-webhook-transmission-retried-count".into(),
                i.to_string(),
            ));
            headers
        })
        .collect();
    let tasks = all.iter().map(|h| t.deliver_webhook(&body, h));
    for r in futures::future::join_all(tasks).await {
        received(&r);
    }
    assert_eq!(lookups(&t).await, before + 1, "processed exactly once");
    assert_eq!(status_of(&t, &p.order_id).await, "PAID");
}

// --- state ------------------------------------------------------------------------------------

/// The card was declined (ABORTED), the buyer paid again (DONE): Toss's two deliveries can
/// arrive in either order and the order ends PAID either way.
async fn out_of_order_done_and_aborted_end_paid(backend: Backend) {
    let t = spawn_with(backend, |_| {}).await;
    for aborted_first in [true, false] {
        let course = t.create_course(10_000).await;
        let (_, token) = t.new_user();
        let order = t.checkout(&token, &course).await;
        let order_id = order["orderId"].as_str().unwrap().to_owned();
        let declined = t
            .buyer_pays_with(&order_id, 10_000, "REJECT_CARD_PAYMENT")
            .await;
        let declined_confirm = t
            .app
            .toss
            .confirm(
                &domain::PaymentKey::parse(&declined).unwrap(),
                &domain::OrderId::parse(&order_id).unwrap(),
                domain::Money::new(10_000).unwrap(),
                &domain::IdempotencyKey::parse(&format!("declined-{order_id}")).unwrap(),
                &toss::CallContext::default(),
            )
            .await;
        assert!(declined_confirm.is_err());
        let paid = t.buyer_pays(&order_id, 10_000).await;
        let purchase = Purchase {
            user: domain::UserId::new(),
            token: token.clone(),
            course_id: course.clone(),
            order_id: order_id.clone(),
            payment_key: paid.clone(),
            amount: 10_000,
        };
        approve_at_toss(&t, &purchase).await;
        let aborted = status_body(&declined, &order_id, "ABORTED");
        let done = status_body(&paid, &order_id, "DONE");
        let sequence = if aborted_first {
            [aborted, done]
        } else {
            [done, aborted]
        };
        for body in sequence {
            received(
                &t.deliver_webhook(&body, &signed(DEV_WEBHOOK_SECRET, now(), &body))
                    .await,
            );
        }
        let o = t.order(&order_id).await;
        assert_eq!(o.status.as_str(), "PAID", "aborted_first={aborted_first}");
        let enrollment = t
            .store
            .get_enrollment(o.enrollment_id.unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(enrollment.status.as_str(), "ENROLLED");
    }
}

/// Unsigned deliveries in lookup mode are believed only as far as Toss confirms them.
async fn forged_done_for_unpaid_order_changes_nothing(backend: Backend) {
    let t = spawn_with(backend, |c| c.webhook_verify = WebhookVerify::Lookup).await;
    let course = t.create_course(10_000).await;
    let (_, token) = t.new_user();
    let order = t.checkout(&token, &course).await;
    let order_id = order["orderId"].as_str().unwrap().to_owned();
    // A payment key Toss never issued.
    let forged = status_body("tsbx_00000000000000000000000000000000", &order_id, "DONE");
    received(&t.deliver_webhook(&forged, &[]).await);
    // Someone else's real, paid payment key, claimed for our order.
    let other = t.paid_in_window(10_000).await;
    approve_at_toss(&t, &other).await;
    let stolen = status_body(&other.payment_key, &order_id, "DONE");
    received(&t.deliver_webhook(&stolen, &[]).await);
    assert_eq!(status_of(&t, &order_id).await, "PENDING");
    assert!(
        t.store
            .payment_for_order(&domain::OrderId::parse(&order_id).unwrap())
            .await
            .unwrap()
            .is_none()
    );
    // The other order was settled (the lookup said DONE for it), not ours.
    assert_eq!(status_of(&t, &other.order_id).await, "PAID");
}

/// In lookup mode every unsigned delivery costs a Toss lookup: one naming payments Toss never
/// issued counts against its sender like an invalid signature.
async fn unsigned_forgeries_in_lookup_mode_are_throttled(backend: Backend) {
    let t = spawn_with(backend, |c| {
        c.webhook_verify = WebhookVerify::Lookup;
        c.webhook_invalid_sig_limit = 2;
    })
    .await;
    let forged = status_body(
        "tsbx_00000000000000000000000000000000",
        "order-forged-1",
        "DONE",
    );
    received(&t.deliver_webhook(&forged, &[]).await);
    received(&t.deliver_webhook(&forged, &[]).await);
    let before = lookups(&t).await;
    let r = t.deliver_webhook(&forged, &[]).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{:?}", r.body);
    let r = t.deliver_webhook(&forged, &[]).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    // Once blocked, no more lookups are spent on this sender.
    assert_eq!(lookups(&t).await, before + 1);
}

async fn lookup_failure_is_503_and_a_retry_processes(backend: Backend) {
    let t = spawn_with(backend, |_| {}).await;
    let p = t.paid_in_window(10_000).await;
    approve_at_toss(&t, &p).await;
    let body = status_body(&p.payment_key, &p.order_id, "DONE");
    t.fault(json!({"mode": "status5xx", "count": 20, "operations": ["lookup"]}))
        .await;
    let mut headers = signed(DEV_WEBHOOK_SECRET, now(), &body);
    headers.push((
        "tosspayments-webhook-transmission-id".into(),
        "tx-retry-1".into(),
    ));
    let r = t.deliver_webhook(&body, &headers).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", r.body);
    assert!(r.headers.get("retry-after").is_some());
    assert_eq!(status_of(&t, &p.order_id).await, "PENDING");
    t.clear_faults().await;
    // Toss's retry: same transmission id, re-signed by the relay.
    let mut retry = signed(DEV_WEBHOOK_SECRET, now() + 1, &body);
    retry.push((
        "tosspayments-webhook-transmission-id".into(),
        "tx-retry-1".into(),
    ));
    received(&t.deliver_webhook(&body, &retry).await);
    assert_eq!(status_of(&t, &p.order_id).await, "PAID");
}

/// The replay mark is what was signed (timestamp + body), not a signature value: a delivery
/// signed with both secrets during a rotation cannot be replayed with only one of its values,
/// in another order, or with a value added.
async fn no_signature_combination_replays_a_delivery(backend: Backend) {
    let t = spawn_with(backend, secrets(NEW, Some(OLD))).await;
    let p = t.paid_in_window(10_000).await;
    approve_at_toss(&t, &p).await;
    let body = status_body(&p.payment_key, &p.order_id, "DONE");
    let ts = now();
    let (ts_new, new) = sign_x_signature(NEW.as_bytes(), ts, &body);
    let (_, old) = sign_x_signature(OLD.as_bytes(), ts, &body);
    let (_, older) = sign_x_signature(OLDER.as_bytes(), ts, &body);
    let with = |sig: String| {
        vec![
            ("X-Timestamp".to_owned(), ts_new.clone()),
            ("X-Signature".to_owned(), sig),
        ]
    };
    received(
        &t.deliver_webhook(&body, &with(format!("{new},{old}")))
            .await,
    );
    assert_eq!(status_of(&t, &p.order_id).await, "PAID");
    let lookups_after_first = lookups(&t).await;
    for (case, sig) in [
        ("only the previous secret's value", old.clone()),
        ("only the current secret's value", new.clone()),
        ("values reversed", format!("{old},{new}")),
        ("an unknown value added", format!("{older},{old}")),
    ] {
        let r = t.deliver_webhook(&body, &with(sig)).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{case}: {:?}", r.body);
        assert_eq!(r.code(), "E_WEBHOOK_REPLAYED", "{case}");
    }
    assert_eq!(
        lookups(&t).await,
        lookups_after_first,
        "no replay was processed"
    );
}

/// A delivery whose processing failed is not remembered: the very same request (same
/// timestamp, same signature, no transmission id) sent again is processed.
async fn failed_delivery_can_be_resent_identically(backend: Backend) {
    let t = spawn_with(backend, |_| {}).await;
    let p = t.paid_in_window(10_000).await;
    approve_at_toss(&t, &p).await;
    let body = status_body(&p.payment_key, &p.order_id, "DONE");
    t.fault(json!({"mode": "status5xx", "count": 20, "operations": ["lookup"]}))
        .await;
    let headers = signed(DEV_WEBHOOK_SECRET, now(), &body);
    let r = t.deliver_webhook(&body, &headers).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", r.body);
    assert_eq!(status_of(&t, &p.order_id).await, "PENDING");
    t.clear_faults().await;
    received(&t.deliver_webhook(&body, &headers).await);
    assert_eq!(status_of(&t, &p.order_id).await, "PAID");
    // Processed now, so a third copy is a replay.
    let r = t.deliver_webhook(&body, &headers).await;
    assert_eq!(r.code(), "E_WEBHOOK_REPLAYED");
}

async fn unknown_event_and_toss_signed_events(backend: Backend) {
    let t = spawn_with(backend, |c| {
        c.toss_webhook_security_key = Some(SecretString::from(TOSS_KEY.to_owned()));
    })
    .await;
    let body = br#"{"eventType":"payout.changed","createdAt":"2026-11-24T12:00:00.000000","data":{"payoutKey":"p1"}}"#.to_vec();
    received(
        &t.deliver_webhook(&body, &signed(DEV_WEBHOOK_SECRET, now(), &body))
            .await,
    );
    // Toss's own scheme for payout/seller events.
    let time = "2026-11-24T12:00:00+09:00";
    let sig = sign_toss(TOSS_KEY.as_bytes(), time, &body);
    let toss_headers = |s: &str| {
        vec![
            ("tosspayments-webhook-signature".to_owned(), s.to_owned()),
            (
                "tosspayments-webhook-transmission-time".to_owned(),
                time.to_owned(),
            ),
        ]
    };
    received(
        &t.deliver_webhook(
            &body,
            &toss_headers(&format!("{},{sig}", sign_toss(b"old-key", time, &body))),
        )
        .await,
    );
    let wrong = sign_toss(b"not-the-key", time, &body);
    assert_invalid_sig(
        &t.deliver_webhook(&body, &toss_headers(&wrong)).await,
        "wrong Toss key",
    );
    assert_invalid_sig(
        &t.deliver_webhook(&body, &toss_headers("v1:")).await,
        "empty Toss value",
    );
    // Without a configured key, Toss-signed deliveries cannot be verified: refused.
    let t2 = spawn_with(backend, |_| {}).await;
    assert_invalid_sig(
        &t2.deliver_webhook(&body, &toss_headers(&sig)).await,
        "no Toss key configured",
    );
}

async fn deposit_callback_checks_the_secret(backend: Backend) {
    let t = spawn_with(backend, |_| {}).await;
    let course = t.create_course(10_000).await;
    let (_, token) = t.new_user();
    let order = t.checkout(&token, &course).await;
    let order_id = order["orderId"].as_str().unwrap().to_owned();
    let r = t
        .post(
            "/toss-sandbox/sandbox/payments",
            None,
            &json!({"orderId": order_id, "amount": 10_000, "method": "VIRTUAL_ACCOUNT"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let payment_key = r.body["paymentKey"].as_str().unwrap().to_owned();
    let confirm = t.confirm(&token, &payment_key, &order_id, 10_000).await;
    assert_ne!(
        confirm.status,
        StatusCode::OK,
        "waiting for the deposit: {:?}",
        confirm.body
    );
    let secret = t
        .sandbox
        .payments()
        .into_iter()
        .find(|p| p.payment_key == payment_key)
        .unwrap()
        .secret
        .unwrap();
    assert_eq!(
        t.store
            .deposit_secret(&domain::OrderId::parse(&order_id).unwrap())
            .await
            .unwrap(),
        Some(secret.clone())
    );
    let r = t
        .post(
            &format!("/toss-sandbox/sandbox/payments/{payment_key}/deposit"),
            None,
            &json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let callback = |s: &str| {
        json!({"createdAt": "2026-11-24T12:00:00.000000", "secret": s, "status": "DONE",
               "transactionKey": "TX1", "orderId": order_id})
        .to_string()
        .into_bytes()
    };
    let wrong = callback("ps_wrong");
    let r = t
        .deliver_webhook(&wrong, &signed(DEV_WEBHOOK_SECRET, now(), &wrong))
        .await;
    assert_invalid_sig(&r, "wrong deposit secret");
    assert_ne!(status_of(&t, &order_id).await, "PAID");
    let right = callback(&secret);
    received(
        &t.deliver_webhook(&right, &signed(DEV_WEBHOOK_SECRET, now(), &right))
            .await,
    );
    assert_eq!(status_of(&t, &order_id).await, "PAID");
}

async fn ip_throttle_blocks_then_recovers(backend: Backend) {
    let t = spawn_with(backend, |c| {
        c.webhook_invalid_sig_limit = 3;
        c.webhook_invalid_sig_window = Duration::from_secs(60);
    })
    .await;
    let base = Instant::now();
    let offset = Arc::new(AtomicU64::new(0));
    let o = offset.clone();
    t.app.webhooks.throttle.set_clock(Arc::new(move || {
        base + Duration::from_secs(o.load(Ordering::SeqCst))
    }));
    let p = t.paid_in_window(10_000).await;
    let body = status_body(&p.payment_key, &p.order_id, "DONE");
    let forged = signed(OLDER, now(), &body);
    for i in 0..3 {
        assert_invalid_sig(
            &t.deliver_webhook(&body, &forged).await,
            &format!("attempt {i}"),
        );
    }
    let r = t.deliver_webhook(&body, &forged).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{:?}", r.body);
    assert_eq!(r.code(), "E_RATE_LIMITED");
    assert!(r.headers.get("retry-after").is_some());
    // Blocked means blocked, even with a good signature, for the rest of the window.
    offset.store(59, Ordering::SeqCst);
    let r = t
        .deliver_webhook(&body, &signed(DEV_WEBHOOK_SECRET, now(), &body))
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    offset.store(60, Ordering::SeqCst);
    received(
        &t.deliver_webhook(&body, &signed(DEV_WEBHOOK_SECRET, now() - 1, &body))
            .await,
    );
}

/// Toss approves; only the sandbox's signed webhook tells our server.
async fn sandbox_delivered_webhook_settles_end_to_end(backend: Backend) {
    let t = spawn_with(backend, |_| {}).await;
    t.sandbox.set_webhook(
        Some(format!("{}{HOOK}", t.base)),
        Some(DEV_WEBHOOK_SECRET.to_owned()),
    );
    let p = t.paid_in_window(10_000).await;
    approve_at_toss(&t, &p).await;
    let order_id = domain::OrderId::parse(&p.order_id).unwrap();
    let settled = t
        .eventually(|| {
            let store = t.store.clone();
            let order_id = order_id.clone();
            async move {
                store.get_order(&order_id).await.unwrap().unwrap().status
                    == domain::OrderStatus::Paid
            }
        })
        .await;
    assert!(settled, "the webhook settled the order");
    // The sandbox records the delivery's answer after the server has settled the order: wait
    // for that record rather than reading it at the instant the order turned PAID.
    let recorded = t
        .eventually(|| {
            let d = t.sandbox.deliveries();
            async move {
                d.first()
                    .is_some_and(|d| d.status != toss_sandbox::DeliveryStatus::Pending)
            }
        })
        .await;
    assert!(recorded, "the sandbox recorded the delivery's answer");
    let d = t.sandbox.deliveries();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].status, toss_sandbox::DeliveryStatus::Delivered);
    assert_eq!(d[0].last_http_status, Some(200));
}

async fn sandbox_deposit_callback_settles_end_to_end(backend: Backend) {
    let t = spawn_with(backend, |_| {}).await;
    t.sandbox.set_webhook(
        Some(format!("{}{HOOK}", t.base)),
        Some(DEV_WEBHOOK_SECRET.to_owned()),
    );
    let course = t.create_course(10_000).await;
    let (_, token) = t.new_user();
    let order = t.checkout(&token, &course).await;
    let order_id = order["orderId"].as_str().unwrap().to_owned();
    let r = t
        .post(
            "/toss-sandbox/sandbox/payments",
            None,
            &json!({"orderId": order_id, "amount": 10_000, "method": "VIRTUAL_ACCOUNT"}),
        )
        .await;
    let payment_key = r.body["paymentKey"].as_str().unwrap().to_owned();
    let confirm = t.confirm(&token, &payment_key, &order_id, 10_000).await;
    assert_ne!(confirm.status, StatusCode::OK);
    t.sandbox.deposit(&payment_key).unwrap();
    let oid = domain::OrderId::parse(&order_id).unwrap();
    let settled = t
        .eventually(|| {
            let store = t.store.clone();
            let oid = oid.clone();
            async move {
                store.get_order(&oid).await.unwrap().unwrap().status == domain::OrderStatus::Paid
            }
        })
        .await;
    assert!(settled);
    let d = t.sandbox.deliveries();
    assert_eq!(d.last().unwrap().event_type, "DEPOSIT_CALLBACK");
}

/// Toss approves and then fully cancels a payment we never heard of; the CANCELED delivery
/// arrives before the DONE one. Both are re-read from Toss (which says CANCELED), so the order
/// ends recorded and refunded — one payment, one refund, access revoked — in either order.
async fn canceled_before_done_ends_refunded(backend: Backend) {
    let t = spawn_with(backend, |_| {}).await;
    for canceled_first in [true, false] {
        let p = t.paid_in_window(10_000).await;
        approve_at_toss(&t, &p).await;
        let key = domain::PaymentKey::parse(&p.payment_key).unwrap();
        let canceled = t
            .app
            .toss
            .cancel(
                &key,
                "buyer changed their mind",
                None,
                None,
                &domain::IdempotencyKey::parse(&format!("cancel-{}", p.order_id)).unwrap(),
                &toss::CallContext::default(),
            )
            .await
            .unwrap();
        assert_eq!(canceled.status, domain::PaymentStatus::Canceled);
        let cancel_body = status_body(&p.payment_key, &p.order_id, "CANCELED");
        let done_body = status_body(&p.payment_key, &p.order_id, "DONE");
        let sequence = if canceled_first {
            [cancel_body, done_body]
        } else {
            [done_body, cancel_body]
        };
        for body in sequence {
            received(
                &t.deliver_webhook(&body, &signed(DEV_WEBHOOK_SECRET, now(), &body))
                    .await,
            );
        }
        assert_eq!(
            status_of(&t, &p.order_id).await,
            "REFUNDED",
            "canceled_first={canceled_first}"
        );
        let order_id = domain::OrderId::parse(&p.order_id).unwrap();
        let payment = t
            .store
            .payment_for_order(&order_id)
            .await
            .unwrap()
            .expect("payment recorded");
        assert_eq!(payment.status, domain::PaymentStatus::Canceled);
        assert_eq!(payment.balance.won(), 0);
        let refunds = t.store.payment_refunds(payment.id).await.unwrap();
        assert_eq!(refunds.len(), 1, "one refund record");
        let me = t.get("/v1/me/enrollments", Some(&p.token)).await;
        assert_eq!(me.body["items"][0]["status"], "REFUNDED");
    }
}

/// The sum of `coursepay_toss_calls_total` for Toss lookups, read from the process's recorder.
fn lookup_calls_counted() -> f64 {
    flows::ops::metrics::render()
        .lines()
        .filter(|l| {
            l.starts_with("coursepay_toss_calls_total{") && l.contains("operation=\"lookup\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A webhook's Toss lookup goes through the gateway like every other call: it is counted in
/// the Toss call metrics, its failures open the circuit, and while the circuit is open the
/// delivery is answered 503 (Toss retries) without asking Toss.
async fn webhook_lookups_go_through_the_breaker(backend: Backend) {
    let t = spawn_with(backend, |_| {}).await;
    let p = t.paid_in_window(10_000).await;
    approve_at_toss(&t, &p).await;
    let body = status_body(&p.payment_key, &p.order_id, "DONE");
    t.fault(json!({"mode": "status5xx", "count": 5, "operations": ["lookup"]}))
        .await;
    let counted_before = lookup_calls_counted();
    for n in 1..=5u32 {
        let r = t
            .deliver_webhook(
                &body,
                &signed(DEV_WEBHOOK_SECRET, now() + i64::from(n), &body),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{n}: {:?}",
            r.body
        );
        assert_eq!(t.app.breaker.snapshot().1, n, "failure {n} fed the breaker");
    }
    assert_eq!(
        t.app.breaker.snapshot().0,
        flows::ops::breaker::CircuitState::Open
    );
    // Other tests share the recorder: at least these five, never fewer.
    assert!(lookup_calls_counted() - counted_before >= 5.0);

    // Open: Toss is not asked, the delivery is refused for Toss to retry, nothing changes.
    t.clear_faults().await;
    let asked = lookups(&t).await;
    let r = t
        .deliver_webhook(&body, &signed(DEV_WEBHOOK_SECRET, now() + 10, &body))
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", r.body);
    assert!(r.headers.get("retry-after").is_some());
    assert_eq!(
        lookups(&t).await,
        asked,
        "no lookup while the circuit is open"
    );
    assert_eq!(status_of(&t, &p.order_id).await, "PENDING");
}

store::per_backend!(
    qa5_tampered_signature_is_401,
    every_way_to_be_wrong_is_401_and_changes_nothing,
    previous_secret_accepted_during_rotation,
    replay_within_ten_minutes_is_409,
    replay_across_instances_database,
    replay_across_instances_redis,
    replay_guard_down_is_503,
    no_signature_combination_replays_a_delivery,
    failed_delivery_can_be_resent_identically,
    same_transmission_id_is_processed_once,
    out_of_order_done_and_aborted_end_paid,
    forged_done_for_unpaid_order_changes_nothing,
    unsigned_forgeries_in_lookup_mode_are_throttled,
    lookup_failure_is_503_and_a_retry_processes,
    unknown_event_and_toss_signed_events,
    deposit_callback_checks_the_secret,
    ip_throttle_blocks_then_recovers,
    sandbox_delivered_webhook_settles_end_to_end,
    sandbox_deposit_callback_settles_end_to_end,
    canceled_before_done_ends_refunded,
    webhook_lookups_go_through_the_breaker,
);
