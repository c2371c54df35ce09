//! The Toss-compatible `/v1` API over real HTTP: confirm, idempotency, expiry, forced outcomes,
//! test codes, auth, languages and cancels.
#![allow(clippy::unwrap_used)]

mod common;

use common::{KEY, basic, order_id, send, spawn_default};
use serde_json::{Value, json};
use std::time::Duration;
use toss_sandbox::{CreatePayment, Fault, FaultMode, Operation};

#[tokio::test]
async fn happy_confirm_returns_a_toss_payment() {
    let sb = spawn_default().await;
    let order = order_id();
    let key = sb.authenticated(&order, 15000).await;

    let (status, p) = sb.confirm(&key, &order, 15000).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["status"], "DONE");
    assert_eq!(p["paymentKey"], key.as_str());
    assert_eq!(p["orderId"], order.as_str());
    assert_eq!(p["method"], "카드");
    assert_eq!(p["version"], "2022-11-16");
    assert_eq!(p["mId"], "tosspayments");
    assert_eq!(p["type"], "NORMAL");
    assert_eq!(p["currency"], "KRW");
    assert_eq!(p["totalAmount"], 15000);
    assert_eq!(p["balanceAmount"], 15000);
    assert_eq!(
        (p["suppliedAmount"].clone(), p["vat"].clone()),
        (json!(13636), json!(1364))
    );
    assert!(p["secret"].is_null());
    assert!(p["card"]["number"].is_string());
    assert_eq!(p["card"]["amount"], 15000);
    assert!(
        p["receipt"]["url"]
            .as_str()
            .unwrap()
            .starts_with("https://")
    );
    assert_eq!(p["lastTransactionKey"].as_str().unwrap().len(), 32);
    let approved_at = p["approvedAt"].as_str().unwrap();
    assert!(approved_at.ends_with("+09:00"), "{approved_at}");
    time::OffsetDateTime::parse(approved_at, &time::format_description::well_known::Rfc3339)
        .unwrap();
    // The wire type the real client parses accepts it.
    let wire: toss::wire::Payment = serde_json::from_value(p.clone()).unwrap();
    assert_eq!(wire.status, "DONE");

    assert_eq!(sb.lookup(&key).await, p);
    let (status, by_order) = send(sb.get(&format!("/v1/payments/orders/{order}"))).await;
    assert_eq!((status, by_order), (200, p));
    let stats = sb.sandbox.stats();
    assert_eq!(
        (
            stats.confirm_calls,
            stats.confirms_executed,
            stats.lookup_calls
        ),
        (1, 1, 2)
    );
}

#[tokio::test]
async fn idempotent_replay_returns_the_identical_body() {
    let sb = spawn_default().await;
    let order = order_id();
    let key = sb.authenticated(&order, 10000).await;
    let first = sb
        .confirm_request(&key, &order, 10000)
        .header("Idempotency-Key", format!("confirm-{order}"))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let first = first.bytes().await.unwrap();
    // Matched on the key, not the body: even a different amount replays the first answer.
    let again = sb
        .confirm_request(&key, &order, 999)
        .header("Idempotency-Key", format!("confirm-{order}"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.bytes().await.unwrap(), first);
    let stats = sb.sandbox.stats();
    assert_eq!((stats.confirm_calls, stats.confirms_executed), (2, 1));
}

#[tokio::test]
async fn idempotent_replay_includes_errors() {
    let sb = spawn_default().await;
    let order = order_id();
    let key = sb.authenticated(&order, 10000).await;
    let idem = || ("Idempotency-Key", format!("bad-{order}"));
    let (status, body) = send(
        sb.confirm_request(&key, &order, 5000)
            .header(idem().0, idem().1),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("INVALID_REQUEST"))
    );
    // Same key, now a correct body: Toss replays the stored error instead of executing.
    let (status, again) = send(
        sb.confirm_request(&key, &order, 10000)
            .header(idem().0, idem().1),
    )
    .await;
    assert_eq!((status, again), (400, body));
    assert_eq!(sb.lookup(&key).await["status"], "IN_PROGRESS");
}

#[tokio::test]
async fn second_confirm_without_key_is_already_processed() {
    let sb = spawn_default().await;
    let order = order_id();
    let key = sb.authenticated(&order, 10000).await;
    assert_eq!(sb.confirm(&key, &order, 10000).await.0, 200);
    let (status, body) = sb.confirm(&key, &order, 10000).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("ALREADY_PROCESSED_PAYMENT"))
    );
    assert_eq!(body["message"], "이미 처리된 결제 입니다.");
    assert_eq!(sb.sandbox.stats().confirms_executed, 1);
}

#[tokio::test]
async fn repeat_while_running_is_idempotent_request_processing() {
    let sb = spawn_default().await;
    let order = order_id();
    let key = sb.authenticated(&order, 10000).await;
    sb.sandbox.inject_fault(Fault {
        delay_ms: Some(700),
        operations: Some(vec![Operation::Confirm]),
        ..Fault::new(FaultMode::Delay)
    });
    let first = tokio::spawn(
        sb.confirm_request(&key, &order, 10000)
            .header("Idempotency-Key", "same-key")
            .send(),
    );
    // Counting and claiming the key happen under one lock: once the call is counted, the key
    // is claimed.
    let sandbox = sb.sandbox.clone();
    common::eventually("first confirm to arrive", || {
        sandbox.stats().confirm_calls == 1
    })
    .await;

    let (status, body) = send(
        sb.confirm_request(&key, &order, 10000)
            .header("Idempotency-Key", "same-key"),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("IDEMPOTENT_REQUEST_PROCESSING"))
    );

    let first = first.await.unwrap().unwrap();
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    let (status, replay) = send(
        sb.confirm_request(&key, &order, 10000)
            .header("Idempotency-Key", "same-key"),
    )
    .await;
    assert_eq!((status, replay), (200, first));
    assert_eq!(sb.sandbox.stats().confirms_executed, 1);
}

#[tokio::test]
async fn over_long_idempotency_key_is_invalid() {
    let sb = spawn_default().await;
    let order = order_id();
    let key = sb.authenticated(&order, 10000).await;
    let (status, body) = send(
        sb.confirm_request(&key, &order, 10000)
            .header("Idempotency-Key", "k".repeat(301)),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("INVALID_IDEMPOTENCY_KEY"))
    );
    assert_eq!(sb.lookup(&key).await["status"], "IN_PROGRESS");
    let (status, _) = send(
        sb.confirm_request(&key, &order, 10000)
            .header("Idempotency-Key", "k".repeat(300)),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn idempotency_keys_are_kept_fifteen_days() {
    let sb = spawn_default().await;
    let order = order_id();
    let key = sb.authenticated(&order, 10000).await;
    let confirm = || {
        sb.confirm_request(&key, &order, 10000)
            .header("Idempotency-Key", "kept")
    };
    assert_eq!(send(confirm()).await.0, 200);
    sb.sandbox.advance_clock(15 * 24 * 3600 - 60);
    assert_eq!(send(confirm()).await.0, 200);
    sb.sandbox.advance_clock(120);
    let (status, body) = send(confirm()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("ALREADY_PROCESSED_PAYMENT"))
    );
}

#[tokio::test]
async fn confirm_after_ten_minutes_is_not_found_payment_session() {
    let sb = spawn_default().await;
    let order = order_id();
    let key = sb.authenticated(&order, 10000).await;
    let (status, body) = send(
        sb.http
            .post(sb.url("/sandbox/clock"))
            .json(&json!({"advanceSeconds": 601})),
    )
    .await;
    assert_eq!(status, 200);
    assert!(body["now"].as_str().unwrap().ends_with("+09:00"));

    let (status, body) = sb.confirm(&key, &order, 10000).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("NOT_FOUND_PAYMENT_SESSION"))
    );
    assert_eq!(sb.lookup(&key).await["status"], "EXPIRED");
}

#[tokio::test]
async fn lookup_alone_expires_a_payment_past_its_window() {
    let sb = spawn_default().await;
    let order = order_id();
    let key = sb.authenticated(&order, 10000).await;
    // Real time keeps running under the offset, so stay clear of the exact boundary.
    sb.sandbox.advance_clock(590);
    assert_eq!(sb.lookup(&key).await["status"], "IN_PROGRESS");
    sb.sandbox.advance_clock(11);
    assert_eq!(sb.lookup(&key).await["status"], "EXPIRED");
}

#[tokio::test]
async fn forced_outcome_rejects_and_aborts() {
    let sb = spawn_default().await;
    let order = order_id();
    let key = sb
        .authenticated_with(
            json!({"orderId": order, "amount": 10000, "outcome": "REJECT_CARD_PAYMENT"}),
        )
        .await;
    let (status, body) = sb.confirm(&key, &order, 10000).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("REJECT_CARD_PAYMENT"))
    );
    let p = sb.lookup(&key).await;
    assert_eq!(p["status"], "ABORTED");
    assert_eq!(p["failure"]["code"], "REJECT_CARD_PAYMENT");
    assert!(p["approvedAt"].is_null());
    assert_eq!(sb.sandbox.stats().confirms_executed, 0);
}

#[tokio::test]
async fn test_code_header_forces_the_error_and_changes_nothing() {
    let sb = spawn_default().await;
    let order = order_id();
    let key = sb.authenticated(&order, 10000).await;
    let (status, body) = send(
        sb.confirm_request(&key, &order, 10000)
            .header("TossPayments-Test-Code", "REJECT_CARD_COMPANY"),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("REJECT_CARD_COMPANY"))
    );
    let (status, body) = send(
        sb.get(&format!("/v1/payments/{key}"))
            .header("TossPayments-Test-Code", "SOME_UNDOCUMENTED_CODE"),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("SOME_UNDOCUMENTED_CODE"))
    );
    let (status, body) = send(sb.get(&format!("/v1/payments/{key}")).header(
        "TossPayments-Test-Code",
        "FAILED_INTERNAL_SYSTEM_PROCESSING",
    ))
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (500, Some("FAILED_INTERNAL_SYSTEM_PROCESSING"))
    );
    assert_eq!(sb.lookup(&key).await["status"], "IN_PROGRESS");
    assert_eq!(sb.confirm(&key, &order, 10000).await.0, 200);
}

#[tokio::test]
async fn auth_errors() {
    let sb = spawn_default().await;
    let path = sb.url("/v1/payments/tsbx_whatever");
    let code = |(status, body): (u16, Value)| (status, body["code"].as_str().map(str::to_owned));

    let none = code(send(sb.http.get(&path)).await);
    assert_eq!(none, (401, Some("UNAUTHORIZED_KEY".into())));
    let unknown = code(
        send(
            sb.http
                .get(&path)
                .header("Authorization", basic("live_sk_nope:")),
        )
        .await,
    );
    assert_eq!(unknown, (401, Some("UNAUTHORIZED_KEY".into())));
    let no_colon = code(send(sb.http.get(&path).header("Authorization", basic(KEY))).await);
    assert_eq!(no_colon, (403, Some("INCORRECT_BASIC_AUTH_FORMAT".into())));
    let bearer = code(
        send(
            sb.http
                .get(&path)
                .header("Authorization", format!("Bearer {KEY}")),
        )
        .await,
    );
    assert_eq!(bearer, (403, Some("INCORRECT_BASIC_AUTH_FORMAT".into())));
    let garbage = code(send(sb.http.get(&path).header("Authorization", "Basic ***")).await);
    assert_eq!(garbage, (403, Some("INCORRECT_BASIC_AUTH_FORMAT".into())));
    // Auth passes, then the payment is unknown.
    let ok = code(send(sb.get("/v1/payments/tsbx_whatever")).await);
    assert_eq!(ok, (404, Some("NOT_FOUND_PAYMENT".into())));
}

#[tokio::test]
async fn configured_keys_are_the_only_ones_accepted() {
    let sb = common::spawn(toss_sandbox::SandboxConfig {
        secret_keys: vec!["test_sk_configured".into()],
        ..Default::default()
    })
    .await;
    let path = sb.url("/v1/payments/tsbx_x");
    let (status, _) = send(
        sb.http
            .get(&path)
            .header("Authorization", basic("test_sk_configured:")),
    )
    .await;
    assert_eq!(status, 404);
    let (status, body) = send(
        sb.http
            .get(&path)
            .header("Authorization", basic(&format!("{KEY}:"))),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("UNAUTHORIZED_KEY"))
    );
}

#[tokio::test]
async fn english_messages_on_request() {
    let sb = spawn_default().await;
    let (_, ko) = send(sb.get("/v1/payments/tsbx_missing")).await;
    assert_eq!(ko["message"], "존재하지 않는 결제 정보 입니다.");
    let (_, en) = send(
        sb.get("/v1/payments/tsbx_missing")
            .header("Accept-Language", "en-US"),
    )
    .await;
    assert_eq!(en["code"], "NOT_FOUND_PAYMENT");
    assert_eq!(en["message"], "Payment information does not exist.");
    let (_, en) = send(
        sb.http
            .get(sb.url("/v1/payments/x"))
            .header("Accept-Language", "en"),
    )
    .await;
    assert_eq!(en["message"], "Unauthorized secret key or client key.");
}

#[tokio::test]
async fn confirm_validation_errors() {
    let sb = spawn_default().await;
    let order = order_id();
    let key = sb.authenticated(&order, 10000).await;
    let code = |(status, body): (u16, Value)| (status, body["code"].as_str().unwrap().to_owned());

    assert_eq!(
        code(sb.confirm(&key, &order, 9000).await),
        (400, "INVALID_REQUEST".into())
    );
    assert_eq!(
        code(sb.confirm(&key, &order_id(), 10000).await),
        (400, "INVALID_REQUEST".into())
    );
    assert_eq!(
        code(sb.confirm(&key, &order, 99).await),
        (400, "BELOW_MINIMUM_AMOUNT".into())
    );
    assert_eq!(
        code(sb.confirm("tsbx_unknown", &order, 10000).await),
        (404, "NOT_FOUND_PAYMENT".into())
    );
    let malformed = send(sb.post("/v1/payments/confirm").body("{not json")).await;
    assert_eq!(code(malformed), (400, "INVALID_REQUEST".into()));
    let missing = send(
        sb.post("/v1/payments/confirm")
            .json(&json!({"paymentKey": key})),
    )
    .await;
    assert_eq!(code(missing), (400, "INVALID_REQUEST".into()));
    assert_eq!(sb.lookup(&key).await["status"], "IN_PROGRESS");
    assert_eq!(sb.sandbox.stats().confirm_calls, 6);

    // A payment under the card minimum can be authenticated but not confirmed.
    let small = order_id();
    let small_key = sb.authenticated(&small, 50).await;
    assert_eq!(
        code(sb.confirm(&small_key, &small, 50).await),
        (400, "BELOW_MINIMUM_AMOUNT".into())
    );
}

#[tokio::test]
async fn sandbox_payment_creation_rules() {
    let sb = spawn_default().await;
    let create = |body: Value| send(sb.http.post(sb.url("/sandbox/payments")).json(&body));
    for bad in [
        json!({"orderId": "short", "amount": 1000}),
        json!({"orderId": "with space ok", "amount": 1000}),
        json!({"orderId": order_id(), "amount": 0}),
        json!({"orderId": order_id(), "amount": 10.5}),
        json!({"orderId": order_id(), "amount": "1000"}),
        json!({"orderId": order_id()}),
    ] {
        let (status, body) = create(bad.clone()).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("INVALID_REQUEST")),
            "{bad}"
        );
    }
    let order = order_id();
    let first = sb.authenticated(&order, 1000).await;
    let second = sb.authenticated(&order, 2000).await;
    let (_, by_order) = send(sb.get(&format!("/v1/payments/orders/{order}"))).await;
    assert_eq!(by_order["paymentKey"], second.as_str());
    assert!(second.starts_with("tsbx_") && second.len() == 5 + 32);
    assert_ne!(first, second);
    assert_eq!(sb.confirm(&second, &order, 2000).await.0, 200);
    let (status, body) = create(json!({"orderId": order, "amount": 1000})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("DUPLICATED_ORDER_ID"))
    );

    let (status, all) = send(sb.http.get(sb.url("/sandbox/payments"))).await;
    assert_eq!(status, 200);
    assert_eq!(all.as_array().unwrap().len(), 2);
    assert_eq!(sb.sandbox.payments().len(), 2);
}

#[tokio::test]
async fn partial_then_full_cancel() {
    let sb = spawn_default().await;
    let order = order_id();
    let key = sb.authenticated(&order, 10000).await;
    let cancel_path = format!("/v1/payments/{key}/cancel");
    let cancel = |body: Value| send(sb.post(&cancel_path).json(&body));

    let (status, body) = cancel(json!({"cancelReason": "too early"})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("NOT_CANCELABLE_PAYMENT"))
    );
    assert_eq!(sb.confirm(&key, &order, 10000).await.0, 200);

    let (status, p) =
        cancel(json!({"cancelReason": "partial", "cancelAmount": 3000, "refundableAmount": 10000}))
            .await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["status"], "PARTIAL_CANCELED");
    assert_eq!(
        (p["totalAmount"].clone(), p["balanceAmount"].clone()),
        (json!(10000), json!(7000))
    );
    let c = &p["cancels"][0];
    assert_eq!(c["cancelAmount"], 3000);
    assert_eq!(c["refundableAmount"], 7000);
    assert_eq!(c["cancelReason"], "partial");
    assert_eq!(c["cancelStatus"], "DONE");
    assert!(c["canceledAt"].as_str().unwrap().ends_with("+09:00"));
    assert_eq!(p["lastTransactionKey"], c["transactionKey"]);

    let (status, body) = cancel(json!({"cancelReason": "stale", "refundableAmount": 10000})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("NOT_MATCHES_REFUNDABLE_AMOUNT"))
    );
    let (status, body) = cancel(json!({"cancelReason": "too much", "cancelAmount": 8000})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("NOT_CANCELABLE_AMOUNT"))
    );
    let (status, body) = cancel(json!({"cancelReason": "negative", "cancelAmount": -1})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("NOT_CANCELABLE_AMOUNT"))
    );
    let (status, body) = cancel(json!({"cancelAmount": 1000})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("INVALID_REQUEST"))
    );
    let (status, body) = cancel(json!({"cancelReason": "x".repeat(201)})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("INVALID_REQUEST"))
    );

    let (status, p) = cancel(json!({"cancelReason": "rest", "refundableAmount": 7000})).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(
        (p["status"].as_str(), p["balanceAmount"].as_i64()),
        (Some("CANCELED"), Some(0))
    );
    assert_eq!(p["cancels"].as_array().unwrap().len(), 2);
    assert_eq!(p["cancels"][1]["cancelAmount"], 7000);
    assert_eq!(p["cancels"][1]["refundableAmount"], 0);

    let (status, body) = cancel(json!({"cancelReason": "again"})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("ALREADY_CANCELED_PAYMENT"))
    );
    let (status, body) = send(
        sb.post("/v1/payments/tsbx_nope/cancel")
            .json(&json!({"cancelReason": "x"})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("NOT_FOUND_PAYMENT"))
    );
    let stats = sb.sandbox.stats();
    assert_eq!((stats.cancel_calls, stats.cancels_executed), (10, 2));
}

#[tokio::test]
async fn cancel_with_idempotency_key_refunds_once() {
    let sb = spawn_default().await;
    let order = order_id();
    let key = sb.authenticated(&order, 10000).await;
    assert_eq!(sb.confirm(&key, &order, 10000).await.0, 200);
    let cancel = || {
        sb.post(&format!("/v1/payments/{key}/cancel"))
            .header("Idempotency-Key", format!("refund-{order}"))
            .json(&json!({"cancelReason": "refund", "cancelAmount": 4000}))
    };
    let (s1, first) = send(cancel()).await;
    let (s2, second) = send(cancel()).await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(first, second);
    assert_eq!(sb.lookup(&key).await["balanceAmount"], 6000);
    assert_eq!(sb.sandbox.stats().cancels_executed, 1);
}

/// The real client, unchanged, against the sandbox: the strongest check that the sandbox
/// speaks Toss's wire format as coursepay reads it.
#[tokio::test]
async fn the_real_toss_client_works_against_it() {
    let sb = spawn_default().await;
    let client = toss::TossClient::new(toss::TossConfig {
        api_base: sb.base.clone(),
        secret_key: KEY.into(),
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(1),
    })
    .unwrap();
    let ctx = toss::CallContext::default();
    let order = domain::OrderId::generate();
    let p = sb
        .sandbox
        .create_payment(CreatePayment::new(order.as_str(), 20000))
        .unwrap();
    let payment_key = domain::PaymentKey::parse(&p.payment_key).unwrap();
    let amount = domain::Money::new(20000).unwrap();
    let idem = domain::IdempotencyKey::for_confirm(&order);

    let done = client
        .confirm(&payment_key, &order, amount, &idem, &ctx)
        .await
        .unwrap();
    assert_eq!(done.total_amount, amount);
    assert!(done.approved_at.is_some());
    let replay = client
        .confirm(&payment_key, &order, amount, &idem, &ctx)
        .await
        .unwrap();
    assert_eq!(replay, done);
    let by_order = client.get_payment_by_order(&order, &ctx).await.unwrap();
    assert_eq!(by_order, done);

    let refund = domain::IdempotencyKey::for_refund(&uuid::Uuid::new_v4());
    let part = domain::Money::new(5000).unwrap();
    let canceled = client
        .cancel(
            &payment_key,
            "test",
            Some(part),
            Some(amount),
            &refund,
            &ctx,
        )
        .await
        .unwrap();
    assert_eq!(canceled.balance_amount, domain::Money::new(15000).unwrap());
    assert_eq!(canceled.cancels.len(), 1);

    let err = client
        .cancel(
            &payment_key,
            "stale",
            None,
            Some(amount),
            &domain::IdempotencyKey::for_refund(&uuid::Uuid::new_v4()),
            &ctx,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("NOT_MATCHES_REFUNDABLE_AMOUNT"));
    assert_eq!(err.outcome(), toss::Outcome::Refused);
}

/// In-process use, as the server does when it nests the router: no socket involved.
#[tokio::test]
async fn router_works_in_process() {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    let sandbox = toss_sandbox::Sandbox::new(Default::default());
    let app = axum::Router::new().nest("/toss-sandbox", sandbox.router());
    let resp = app
        .clone()
        .oneshot(
            Request::post("/toss-sandbox/sandbox/payments")
                .header("content-type", "application/json")
                .body(Body::from(
                    r#"{"orderId":"order-in-process","amount":1000}"#,
                ))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let resp = app
        .oneshot(
            Request::get("/toss-sandbox/v1/payments/orders/order-in-process")
                .header("authorization", basic(&format!("{KEY}:")))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    let p: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(p["status"], "IN_PROGRESS");
}

#[tokio::test]
async fn request_log_keeps_trace_and_idempotency_headers_never_credentials() {
    let sb = spawn_default().await;
    let order = order_id();
    let key = sb.authenticated(&order, 15000).await;
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let (status, _) = send(
        sb.confirm_request(&key, &order, 15000)
            .header("traceparent", tp)
            .header("Idempotency-Key", "idem-1"),
    )
    .await;
    assert_eq!(status, 200);
    sb.lookup(&key).await;
    let (status, seen) = send(sb.http.get(sb.url("/sandbox/requests"))).await;
    assert_eq!(status, 200);
    let seen = seen.as_array().unwrap();
    assert_eq!(seen.len(), 2, "control routes are not recorded: {seen:?}");
    assert_eq!(seen[0]["method"], "POST");
    assert_eq!(seen[0]["path"], "/v1/payments/confirm");
    assert_eq!(seen[0]["traceparent"], tp);
    assert_eq!(seen[0]["idempotencyKey"], "idem-1");
    assert_eq!(seen[1]["path"], format!("/v1/payments/{key}"));
    assert!(seen[1]["traceparent"].is_null());
    let text = serde_json::to_string(seen).unwrap();
    assert!(!text.contains(KEY) && !text.contains("Basic "));
    assert_eq!(sb.sandbox.requests().len(), 2);
}
