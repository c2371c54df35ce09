//! Injected faults over real HTTP: each mode, before and after processing.
#![allow(clippy::unwrap_used)]

mod common;

use common::{order_id, send, spawn, spawn_default};
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use toss_sandbox::SandboxConfig;

#[tokio::test]
async fn status5xx_before_processing_changes_nothing() {
    let sb = spawn_default().await;
    let order = order_id();
    let key = sb.authenticated(&order, 10000).await;
    sb.inject(json!({"mode": "status5xx", "operations": ["confirm"]}))
        .await;
    let (status, body) = sb.confirm(&key, &order, 10000).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (500, Some("FAILED_INTERNAL_SYSTEM_PROCESSING"))
    );
    assert_eq!(sb.lookup(&key).await["status"], "IN_PROGRESS");
    assert_eq!(sb.confirm(&key, &order, 10000).await.0, 200);
    let stats = sb.sandbox.stats();
    assert_eq!((stats.confirm_calls, stats.confirms_executed), (2, 1));
}

#[tokio::test]
async fn status5xx_after_processing_hides_an_approval() {
    let sb = spawn_default().await;
    let order = order_id();
    let key = sb.authenticated(&order, 10000).await;
    sb.inject(json!({"mode": "status5xx", "afterProcessing": true}))
        .await;
    let confirm = || {
        sb.confirm_request(&key, &order, 10000)
            .header("Idempotency-Key", format!("confirm-{order}"))
    };
    let (status, body) = send(confirm()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (500, Some("FAILED_INTERNAL_SYSTEM_PROCESSING"))
    );
    assert_eq!(sb.lookup(&key).await["status"], "DONE");
    // The 500 is the key's answer now: a retry with the same key gets it again (as at Toss,
    // which replays a key's first answer, errors included). Only the lookup tells the truth.
    let (status, body) = send(confirm()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (500, Some("FAILED_INTERNAL_SYSTEM_PROCESSING"))
    );
    assert_eq!(sb.sandbox.stats().confirms_executed, 1);
}

#[tokio::test]
async fn timeout_hangs_then_answers() {
    let sb = spawn(SandboxConfig {
        timeout_fault_hang: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let order = order_id();
    let key = sb.authenticated(&order, 10000).await;

    // A caller with a shorter timeout than the hang gives up; nothing was processed.
    sb.inject(json!({"mode": "timeout"})).await;
    let confirm = || {
        sb.confirm_request(&key, &order, 10000)
            .header("Idempotency-Key", "gave-up")
    };
    let err = confirm()
        .timeout(Duration::from_millis(100))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(sb.lookup(&key).await["status"], "IN_PROGRESS");

    // The abandoned request released its key (409 only until the server notices the hang-up),
    // so the retry executes instead of replaying or staying "processing" forever.
    let deadline = Instant::now() + Duration::from_secs(5);
    let body = loop {
        let (status, body) = send(confirm()).await;
        if status != 409 {
            assert_eq!(status, 200, "{body}");
            break body;
        }
        assert!(Instant::now() < deadline, "key never released");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(body["status"], "DONE");
    assert_eq!(sb.sandbox.stats().confirms_executed, 1);

    // A patient caller gets the normal answer after the hang.
    sb.inject(json!({"mode": "timeout", "operations": ["lookup"]}))
        .await;
    let started = Instant::now();
    assert_eq!(sb.lookup(&key).await["status"], "DONE");
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn timeout_after_processing_approves_but_the_caller_never_hears() {
    let sb = spawn(SandboxConfig {
        timeout_fault_hang: Duration::from_secs(5),
        ..Default::default()
    })
    .await;
    let order = order_id();
    let key = sb.authenticated(&order, 10000).await;
    sb.inject(json!({"mode": "timeout", "afterProcessing": true}))
        .await;
    let err = sb
        .confirm_request(&key, &order, 10000)
        .timeout(Duration::from_millis(200))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(sb.lookup(&key).await["status"], "DONE");
}

#[tokio::test]
async fn delay_slows_the_answer() {
    let sb = spawn_default().await;
    let order = order_id();
    let key = sb.authenticated(&order, 10000).await;
    sb.inject(json!({"mode": "delay", "delayMs": 150, "operations": ["lookup"]}))
        .await;
    // The confirm is not a lookup: not delayed, the fault stays pending.
    let started = Instant::now();
    assert_eq!(sb.confirm(&key, &order, 10000).await.0, 200);
    let confirm_took = started.elapsed();
    let started = Instant::now();
    assert_eq!(sb.lookup(&key).await["status"], "DONE");
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert!(confirm_took < Duration::from_millis(150));
}

#[tokio::test]
async fn reset_drops_the_connection() {
    let sb = spawn_default().await;
    let order = order_id();
    let key = sb.authenticated(&order, 10000).await;
    sb.inject(json!({"mode": "reset"})).await;
    let outcome = match sb.confirm_request(&key, &order, 10000).send().await {
        Err(e) => Err(e),
        Ok(resp) => resp.bytes().await.map(|_| ()),
    };
    let err = outcome.unwrap_err();
    assert!(!err.is_timeout(), "{err}");
    assert_eq!(sb.lookup(&key).await["status"], "IN_PROGRESS");

    // On the wire: the connection closes without a single byte of an HTTP answer.
    sb.inject(json!({"mode": "reset"})).await;
    let mut raw = tokio::net::TcpStream::connect(sb.base.trim_start_matches("http://"))
        .await
        .unwrap();
    let auth = common::basic(&format!("{}:", common::KEY));
    raw.write_all(
        format!(
            "GET /v1/payments/{key} HTTP/1.1\r\nHost: sandbox\r\nAuthorization: {auth}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut received = Vec::new();
    let _ = raw.read_to_end(&mut received).await;
    assert!(
        received.is_empty(),
        "{}",
        String::from_utf8_lossy(&received)
    );

    // The real client classifies it as a broken connection: outcome unknown, look it up.
    let client = toss::TossClient::new(toss::TossConfig {
        api_base: sb.base.clone(),
        secret_key: common::KEY.into(),
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(1),
    })
    .unwrap();
    sb.inject(json!({"mode": "reset", "afterProcessing": true}))
        .await;
    let err = client
        .confirm(
            &domain::PaymentKey::parse(&key).unwrap(),
            &domain::OrderId::parse(&order).unwrap(),
            domain::Money::new(10000).unwrap(),
            &domain::IdempotencyKey::parse(&format!("confirm-{order}")).unwrap(),
            &toss::CallContext::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, toss::TossError::Network(_)), "{err:?}");
    assert_eq!(err.outcome(), toss::Outcome::Unknown);
    // afterProcessing: the payment was approved although the answer never arrived.
    assert_eq!(sb.lookup(&key).await["status"], "DONE");
}

#[tokio::test]
async fn count_operations_and_clearing() {
    let sb = spawn_default().await;
    let order = order_id();
    let key = sb.authenticated(&order, 10000).await;
    sb.inject(json!({"mode": "status5xx", "count": 2, "operations": ["lookup"]}))
        .await;
    let lookup = || send(sb.get(&format!("/v1/payments/{key}")));
    assert_eq!(lookup().await.0, 500);
    assert_eq!(lookup().await.0, 500);
    assert_eq!(lookup().await.0, 200);

    sb.inject(json!({"mode": "status5xx", "count": 5})).await;
    let resp = sb
        .http
        .delete(sb.url("/sandbox/faults"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(lookup().await.0, 200);
    assert_eq!(sb.sandbox.stats().lookup_calls, 4);

    let (status, body) = send(
        sb.http
            .post(sb.url("/sandbox/faults"))
            .json(&json!({"mode": "explode"})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("INVALID_REQUEST"))
    );
}

#[tokio::test]
async fn cancel_after_processing_fault_is_replayed_as_the_500() {
    let sb = spawn_default().await;
    let order = order_id();
    let key = sb.authenticated(&order, 10000).await;
    assert_eq!(sb.confirm(&key, &order, 10000).await.0, 200);
    sb.inject(json!({"mode": "status5xx", "afterProcessing": true, "operations": ["cancel"]}))
        .await;
    let cancel = || {
        sb.post(&format!("/v1/payments/{key}/cancel"))
            .header("Idempotency-Key", "refund-1")
            .json(&json!({"cancelReason": "refund"}))
    };
    assert_eq!(send(cancel()).await.0, 500);
    assert_eq!(sb.lookup(&key).await["status"], "CANCELED");
    // The replay is the 500 the caller saw, not the cancel behind it: never a second cancel.
    let (status, _) = send(cancel()).await;
    assert_eq!(status, 500);
    assert_eq!(sb.sandbox.stats().cancels_executed, 1);
}
