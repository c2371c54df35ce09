//! Webhook delivery to a real receiver: retries on non-200, stable transmission id, increasing
//! retried-count, a signature that verifies, and events for every status change.
#![allow(clippy::unwrap_used)]

mod common;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use common::{order_id, spawn, spawn_default};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use toss_sandbox::{DeliveryStatus, SandboxConfig};

struct Received {
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone)]
struct Receiver {
    calls: Arc<AtomicUsize>,
    fail_first: usize,
    tx: mpsc::UnboundedSender<Received>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let n = r.calls.fetch_add(1, Ordering::SeqCst);
    let _ = r.tx.send(Received { headers, body });
    if n < r.fail_first {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

/// A webhook endpoint answering 500 to the first `fail_first` deliveries, then 200.
async fn receiver(fail_first: usize) -> (String, mpsc::UnboundedReceiver<Received>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new()
        .route("/hooks/toss", axum::routing::post(receive))
        .with_state(Receiver {
            calls: Arc::new(AtomicUsize::new(0)),
            fail_first,
            tx,
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/toss", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Received>) -> Received {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("webhook not delivered in time")
        .expect("receiver closed")
}

fn header<'a>(r: &'a Received, name: &str) -> &'a str {
    r.headers
        .get(name)
        .unwrap_or_else(|| panic!("missing {name}"))
        .to_str()
        .unwrap()
}

fn verify(secret: &str, r: &Received) {
    let ts = header(r, "x-timestamp");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(
        (now - ts.parse::<i64>().unwrap()).abs() < 60,
        "timestamp uses real time"
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{ts}.").as_bytes());
    mac.update(&r.body);
    let expected = format!("v1={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(header(r, "x-signature"), expected);
}

#[tokio::test]
async fn retried_after_500_with_stable_id_and_valid_signature() {
    let (url, mut rx) = receiver(1).await;
    let sb = spawn(SandboxConfig {
        webhook_url: Some(url),
        webhook_secret: Some("whsec_test".into()),
        webhook_retry_base: Duration::from_millis(20),
        ..Default::default()
    })
    .await;
    let order = order_id();
    let key = sb.authenticated(&order, 10000).await;
    assert_eq!(sb.confirm(&key, &order, 10000).await.0, 200);

    let first = next(&mut rx).await;
    let second = next(&mut rx).await;
    assert_eq!(
        header(&first, "tosspayments-webhook-transmission-retried-count"),
        "0"
    );
    assert_eq!(
        header(&second, "tosspayments-webhook-transmission-retried-count"),
        "1"
    );
    let id = header(&first, "tosspayments-webhook-transmission-id");
    assert_eq!(header(&second, "tosspayments-webhook-transmission-id"), id);
    assert!(header(&first, "tosspayments-webhook-transmission-time").ends_with("+09:00"));
    assert_eq!(header(&first, "content-type"), "application/json");
    verify("whsec_test", &first);
    verify("whsec_test", &second);
    assert_eq!(first.body, second.body);

    let event: Value = serde_json::from_slice(&second.body).unwrap();
    assert_eq!(event["eventType"], "PAYMENT_STATUS_CHANGED");
    assert_eq!(event["data"]["paymentKey"], key.as_str());
    assert_eq!(event["data"]["status"], "DONE");
    // yyyy-MM-ddTHH:mm:ss.SSSSSS, no offset.
    let created_at = event["createdAt"].as_str().unwrap();
    assert_eq!(created_at.len(), 26, "{created_at}");
    assert_eq!(&created_at[19..20], ".");
    assert!(!created_at.contains('+') && !created_at.ends_with('Z'));
    let wire: toss::wire::WebhookEvent = serde_json::from_slice(&second.body).unwrap();
    assert_eq!(wire.event_type, "PAYMENT_STATUS_CHANGED");

    let sandbox = sb.sandbox.clone();
    common::eventually("delivery recorded", || {
        sandbox.stats().webhooks_delivered == 1
    })
    .await;
    assert_eq!(sb.sandbox.stats().webhooks_failed, 1);
    let (status, list) = common::send(sb.http.get(sb.url("/sandbox/webhooks"))).await;
    assert_eq!(status, 200);
    let d = &list[0];
    assert_eq!(d["transmissionId"], id);
    assert_eq!(d["eventType"], "PAYMENT_STATUS_CHANGED");
    assert_eq!(d["status"], "DELIVERED");
    assert_eq!(d["attempts"], 2);
    assert_eq!(d["lastHttpStatus"], 200);
}

#[tokio::test]
async fn unsigned_without_secret_and_every_status_change_is_an_event() {
    let (url, mut rx) = receiver(0).await;
    let sb = spawn_default().await;
    // Set at runtime over HTTP.
    let (status, _) = common::send(
        sb.http
            .post(sb.url("/sandbox/webhooks"))
            .json(&json!({"url": url})),
    )
    .await;
    assert_eq!(status, 200);

    let order = order_id();
    let key = sb.authenticated(&order, 10000).await;
    assert_eq!(sb.confirm(&key, &order, 10000).await.0, 200);
    let cancel =
        |body: Value| common::send(sb.post(&format!("/v1/payments/{key}/cancel")).json(&body));
    assert_eq!(
        cancel(json!({"cancelReason": "part", "cancelAmount": 1000}))
            .await
            .0,
        200
    );
    assert_eq!(cancel(json!({"cancelReason": "rest"})).await.0, 200);

    let expired_order = order_id();
    let expired_key = sb.authenticated(&expired_order, 5000).await;
    sb.sandbox.advance_clock(601);

    let aborted_order = order_id();
    let aborted_key = sb
        .authenticated_with(
            json!({"orderId": aborted_order, "amount": 5000, "outcome": "REJECT_CARD_COMPANY"}),
        )
        .await;
    assert_eq!(sb.confirm(&aborted_key, &aborted_order, 5000).await.0, 403);

    let mut seen = Vec::new();
    for _ in 0..5 {
        let r = next(&mut rx).await;
        assert!(r.headers.get("x-signature").is_none());
        assert!(r.headers.get("x-timestamp").is_none());
        let event: Value = serde_json::from_slice(&r.body).unwrap();
        seen.push((
            event["data"]["paymentKey"].as_str().unwrap().to_owned(),
            event["data"]["status"].as_str().unwrap().to_owned(),
        ));
    }
    seen.sort();
    let mut expected = vec![
        (key.clone(), "DONE".to_owned()),
        (key.clone(), "PARTIAL_CANCELED".to_owned()),
        (key.clone(), "CANCELED".to_owned()),
        (expired_key, "EXPIRED".to_owned()),
        (aborted_key, "ABORTED".to_owned()),
    ];
    expected.sort();
    assert_eq!(seen, expected);

    // Expiry is reported once, however often the payment is read afterwards.
    let _ = common::send(sb.http.get(sb.url("/sandbox/payments"))).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(100), rx.recv())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn gives_up_after_seven_retries() {
    let (url, mut rx) = receiver(usize::MAX).await;
    let sb = spawn(SandboxConfig {
        webhook_url: Some(url),
        // 1+4+16+64+256+1024+4096 = 5461 units: ~0.55 s at 100 µs.
        webhook_retry_base: Duration::from_micros(100),
        ..Default::default()
    })
    .await;
    let order = order_id();
    let key = sb.authenticated(&order, 10000).await;
    assert_eq!(sb.confirm(&key, &order, 10000).await.0, 200);
    for retried in 0..=7 {
        let r = next(&mut rx).await;
        assert_eq!(
            header(&r, "tosspayments-webhook-transmission-retried-count"),
            retried.to_string()
        );
    }
    let sandbox = sb.sandbox.clone();
    common::eventually("delivery to fail", || {
        sandbox
            .deliveries()
            .first()
            .is_some_and(|d| d.status == DeliveryStatus::Failed)
    })
    .await;
    let d = &sb.sandbox.deliveries()[0];
    assert_eq!((d.attempts, d.last_http_status), (8, Some(500)));
    assert_eq!(sb.sandbox.stats().webhooks_failed, 8);
    assert!(
        tokio::time::timeout(Duration::from_millis(50), rx.recv())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn nothing_is_sent_without_a_url() {
    let sb = spawn_default().await;
    let order = order_id();
    let key = sb.authenticated(&order, 10000).await;
    assert_eq!(sb.confirm(&key, &order, 10000).await.0, 200);
    assert!(sb.sandbox.deliveries().is_empty());
    let (status, body) = common::send(
        sb.http
            .post(sb.url("/sandbox/webhooks"))
            .json(&json!({"url": "ftp://nope"})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("INVALID_REQUEST"))
    );
}
