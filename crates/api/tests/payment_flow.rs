//! The seed's QA scenarios 1–4 and the confirm invariants, over real HTTP on loopback, against
//! the Toss sandbox, on both stores. Each test tries to break an invariant, not just walk the
//! happy path.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Backend, TestApp};
use domain::{EnrollmentStatus, OrderStatus};
use reqwest::StatusCode;
use serde_json::json;

store::per_backend!(
    |b| common::spawn(b).await;
    qa1_normal_payment_enrolls_and_stores_payment,
    qa2_tampered_amount_is_refused_without_calling_toss,
    qa3_duplicate_confirm_replays_the_same_enrollment,
    qa4_client_drops_connection_mid_confirm_enrollment_exists_after,
    qa4_tab_closed_before_confirm_order_read_settles_it,
    fifty_identical_confirms_charge_once,
    second_order_for_the_same_course_is_refused_without_calling_toss,
    approval_whose_answer_is_lost_is_settled_by_lookup,
    provider_timeout_is_504_and_settled_later_on_read,
    declined_card_is_402_with_provider_code_and_nothing_enrolled,
    provider_5xx_without_approval_is_retryable_and_changes_nothing,
    confirm_after_toss_window_is_410,
    idempotency_key_reuse_with_another_body_is_422,
    checkout_refuses_already_enrolled_and_unknown_course,
    courses_and_enrollments_are_readable,
);

async fn qa1_normal_payment_enrolls_and_stores_payment(app: TestApp) {
    let p = app.paid_in_window(10_000).await;
    let r = app
        .confirm(&p.token, &p.payment_key, &p.order_id, 10_000)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["status"], "ENROLLED");
    assert_eq!(r.body["replayed"], false);
    assert_eq!(r.body["amount"], 10_000);
    assert_eq!(r.body["orderId"], p.order_id.as_str());
    assert!(r.headers.get("x-request-id").is_some());

    let order = app.order(&p.order_id).await;
    assert_eq!(order.status, OrderStatus::Paid);
    let payment = app
        .store
        .payment_for_order(&order.order_id)
        .await
        .unwrap()
        .expect("payment stored");
    assert_eq!(payment.provider, "toss");
    assert_eq!(payment.provider_tx_id, p.payment_key);
    assert_eq!(payment.amount.won(), 10_000);
    let enrollment = app
        .store
        .get_enrollment(order.enrollment_id.unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(enrollment.status, EnrollmentStatus::Enrolled);
    assert_eq!(enrollment.user_id, p.user);
    assert_eq!(r.body["enrollmentId"], enrollment.id.to_string());
    assert_eq!(app.confirm_calls().await, 1);
    let events = app.store.order_events(&order.order_id).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert!(
        kinds.contains(&"order.created") && kinds.contains(&"payment.settled"),
        "{kinds:?}"
    );

    if app.backend == Backend::Postgres {
        // DESIGN: claim + settle, one round trip each.
        assert_eq!(
            r.round_trips(),
            2,
            "fresh confirm round trips on PostgreSQL"
        );
    }
    let replay = app
        .confirm(&p.token, &p.payment_key, &p.order_id, 10_000)
        .await;
    assert!(
        replay.round_trips() <= 1,
        "replay costs {}",
        replay.round_trips()
    );
}

async fn qa2_tampered_amount_is_refused_without_calling_toss(app: TestApp) {
    let p = app.paid_in_window(10_000).await;
    for tampered in [100, 9_999, 10_001, 1] {
        let r = app
            .confirm(&p.token, &p.payment_key, &p.order_id, tampered)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(r.code(), "E_AMOUNT_MISMATCH");
        assert!(r.is_problem());
        assert_eq!(r.body["retryable"], false);
    }
    assert_eq!(
        app.confirm_calls().await,
        0,
        "the provider must not be called"
    );
    let order = app.order(&p.order_id).await;
    assert_eq!(order.status, OrderStatus::Pending);
    // The genuine amount still works afterwards.
    let ok = app
        .confirm(&p.token, &p.payment_key, &p.order_id, 10_000)
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    // And a tampered replay of a paid order is still a mismatch, not a replay.
    let r = app.confirm(&p.token, &p.payment_key, &p.order_id, 1).await;
    assert_eq!(r.code(), "E_AMOUNT_MISMATCH");
}

async fn qa3_duplicate_confirm_replays_the_same_enrollment(app: TestApp) {
    let p = app.paid_in_window(10_000).await;
    let first = app
        .confirm(&p.token, &p.payment_key, &p.order_id, 10_000)
        .await;
    assert_eq!(first.status, StatusCode::OK);
    for _ in 0..3 {
        let again = app
            .confirm(&p.token, &p.payment_key, &p.order_id, 10_000)
            .await;
        assert_eq!(again.status, StatusCode::OK);
        assert_eq!(again.body["enrollmentId"], first.body["enrollmentId"]);
        assert_eq!(again.body["paymentId"], first.body["paymentId"]);
        assert_eq!(again.body["replayed"], true);
        assert_eq!(again.headers.get("idempotent-replayed").unwrap(), "true");
    }
    // Also through the database path (a fresh instance has no replay cache).
    app.app
        .replays
        .forget(&domain::OrderId::parse(&p.order_id).unwrap());
    let db_replay = app
        .confirm(&p.token, &p.payment_key, &p.order_id, 10_000)
        .await;
    assert_eq!(db_replay.body["enrollmentId"], first.body["enrollmentId"]);
    assert_eq!(db_replay.body["replayed"], true);
    if app.backend == Backend::Postgres {
        assert!(db_replay.round_trips() <= 1);
    }
    assert_eq!(app.confirm_calls().await, 1);
    assert_eq!(app.store.list_enrollments(p.user).await.unwrap().len(), 1);
    // Another user replaying it learns nothing.
    let (_, other) = app.new_user();
    let r = app
        .confirm(&other, &p.payment_key, &p.order_id, 10_000)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

async fn qa4_client_drops_connection_mid_confirm_enrollment_exists_after(app: TestApp) {
    let p = app.paid_in_window(10_000).await;
    app.fault(json!({"mode": "delay", "delayMs": 800, "operations": ["confirm"]}))
        .await;
    let impatient = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(200))
        .build()
        .unwrap();
    let res = impatient
        .post(format!("{}/v1/payments/confirm", app.base))
        .bearer_auth(&p.token)
        .json(&json!({"paymentKey": p.payment_key, "orderId": p.order_id, "amount": 10_000}))
        .send()
        .await;
    assert!(res.is_err(), "the client should have given up");
    let order_id = p.order_id.clone();
    let paid = app
        .eventually(|| {
            let order_id = order_id.clone();
            let store = app.store.clone();
            async move {
                store
                    .get_order(&domain::OrderId::parse(&order_id).unwrap())
                    .await
                    .unwrap()
                    .is_some_and(|o| o.status == OrderStatus::Paid)
            }
        })
        .await;
    assert!(
        paid,
        "the confirm must finish after the client disconnected"
    );
    let enrollments = app.store.list_enrollments(p.user).await.unwrap();
    assert_eq!(enrollments.len(), 1);
    assert_eq!(app.confirm_calls().await, 1);
    // The buyer comes back and reads the order.
    let r = app
        .get(&format!("/v1/orders/{}", p.order_id), Some(&p.token))
        .await;
    assert_eq!(r.body["status"], "PAID");
    assert_eq!(r.body["enrollmentId"], enrollments[0].id.to_string());
}

async fn qa4_tab_closed_before_confirm_order_read_settles_it(app: TestApp) {
    let p = app.paid_in_window(10_000).await;
    // The buyer approved in the payment window, the tab died before our confirm was called.
    let r = app
        .get(&format!("/v1/orders/{}", p.order_id), Some(&p.token))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["status"], "PAID");
    assert!(r.body["enrollmentId"].is_string());
    assert_eq!(app.confirm_calls().await, 1);
    let me = app.get("/v1/me/enrollments", Some(&p.token)).await;
    assert_eq!(me.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(me.body["items"][0]["status"], "ENROLLED");
    // A late confirm from the revived tab is a replay.
    let late = app
        .confirm(&p.token, &p.payment_key, &p.order_id, 10_000)
        .await;
    assert_eq!(late.status, StatusCode::OK);
    assert_eq!(late.body["replayed"], true);
    assert_eq!(late.body["enrollmentId"], r.body["enrollmentId"]);
    // Someone else cannot read it.
    let (_, other) = app.new_user();
    let r = app
        .get(&format!("/v1/orders/{}", p.order_id), Some(&other))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

async fn fifty_identical_confirms_charge_once(app: TestApp) {
    let p = app.paid_in_window(10_000).await;
    // Keep the provider call open long enough for the herd to pile up behind the claim.
    app.fault(json!({"mode": "delay", "delayMs": 300, "operations": ["confirm"]}))
        .await;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let http = app.http.clone();
        let url = format!("{}/v1/payments/confirm", app.base);
        let token = p.token.clone();
        let body = json!({"paymentKey": p.payment_key, "orderId": p.order_id, "amount": 10_000});
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status();
            let body: serde_json::Value = r.json().await.unwrap();
            (status, body)
        }));
    }
    let mut ok = 0;
    let mut enrollment_ids = std::collections::HashSet::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            StatusCode::OK => {
                ok += 1;
                enrollment_ids.insert(body["enrollmentId"].as_str().unwrap().to_owned());
            }
            StatusCode::CONFLICT => assert_eq!(body["code"], "E_CONFIRM_IN_PROGRESS"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(ok >= 1);
    assert_eq!(
        enrollment_ids.len(),
        1,
        "every 200 names the same enrollment"
    );
    assert_eq!(app.confirm_calls().await, 1, "exactly one provider confirm");
    assert_eq!(app.store.list_enrollments(p.user).await.unwrap().len(), 1);
    assert!(
        app.store
            .payment_for_order(&domain::OrderId::parse(&p.order_id).unwrap())
            .await
            .unwrap()
            .is_some()
    );
}

async fn second_order_for_the_same_course_is_refused_without_calling_toss(app: TestApp) {
    let course = app.create_course(10_000).await;
    let (user, token) = app.new_user();
    let a = app.checkout(&token, &course).await;
    let b = app.checkout(&token, &course).await;
    let a_id = a["orderId"].as_str().unwrap();
    let b_id = b["orderId"].as_str().unwrap();
    let ka = app.buyer_pays(a_id, 10_000).await;
    let kb = app.buyer_pays(b_id, 10_000).await;
    assert_eq!(
        app.confirm(&token, &ka, a_id, 10_000).await.status,
        StatusCode::OK
    );
    let r = app.confirm(&token, &kb, b_id, 10_000).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.code(), "E_ALREADY_ENROLLED");
    assert_eq!(app.confirm_calls().await, 1, "no second charge attempted");
    assert_eq!(app.order(b_id).await.status, OrderStatus::Pending);
    assert_eq!(app.store.list_enrollments(user).await.unwrap().len(), 1);
    // A third checkout is refused up front.
    let r = app
        .post("/v1/checkout", Some(&token), &json!({"courseId": course}))
        .await;
    assert_eq!(r.code(), "E_ALREADY_ENROLLED");
}

async fn approval_whose_answer_is_lost_is_settled_by_lookup(app: TestApp) {
    for mode in ["status5xx", "reset"] {
        let p = app.paid_in_window(10_000).await;
        app.fault(json!({"mode": mode, "afterProcessing": true, "operations": ["confirm"]}))
            .await;
        let r = app
            .confirm(&p.token, &p.payment_key, &p.order_id, 10_000)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{mode}: {:?}", r.body);
        assert_eq!(app.order(&p.order_id).await.status, OrderStatus::Paid);
        assert_eq!(app.store.list_enrollments(p.user).await.unwrap().len(), 1);
    }
    let executed = app.stats().await["confirmsExecuted"].as_u64().unwrap();
    assert_eq!(executed, 2, "one charge per order");
}

async fn provider_timeout_is_504_and_settled_later_on_read(app: TestApp) {
    let p = app.paid_in_window(10_000).await;
    // The approval happens but the answer never comes in time; lookups fail too.
    app.fault(
        json!({"mode": "timeout", "afterProcessing": true, "count": 1, "operations": ["confirm"]}),
    )
    .await;
    app.fault(json!({"mode": "status5xx", "count": 5, "operations": ["lookup"]}))
        .await;
    let r = app
        .confirm(&p.token, &p.payment_key, &p.order_id, 10_000)
        .await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT, "{:?}", r.body);
    assert_eq!(r.code(), "E_PG_TIMEOUT");
    assert_eq!(r.body["retryable"], true);
    assert_eq!(app.order(&p.order_id).await.status, OrderStatus::Confirming);
    app.clear_faults().await;
    // Never guessed: the next read asks Toss and settles.
    let r = app
        .get(&format!("/v1/orders/{}", p.order_id), Some(&p.token))
        .await;
    assert_eq!(r.body["status"], "PAID", "{:?}", r.body);
    let again = app
        .confirm(&p.token, &p.payment_key, &p.order_id, 10_000)
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(app.stats().await["confirmsExecuted"], 1);
}

async fn declined_card_is_402_with_provider_code_and_nothing_enrolled(app: TestApp) {
    let course = app.create_course(10_000).await;
    let (user, token) = app.new_user();
    let order = app.checkout(&token, &course).await;
    let order_id = order["orderId"].as_str().unwrap();
    let key = app
        .buyer_pays_with(order_id, 10_000, "REJECT_CARD_PAYMENT")
        .await;
    let r = app.confirm(&token, &key, order_id, 10_000).await;
    assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED, "{:?}", r.body);
    assert_eq!(r.code(), "E_PAYMENT_REJECTED");
    assert_eq!(r.body["providerCode"], "REJECT_CARD_PAYMENT");
    assert_eq!(app.order(order_id).await.status, OrderStatus::Failed);
    assert!(app.store.list_enrollments(user).await.unwrap().is_empty());
    // Replaying the failed confirm gives the same answer without another provider call.
    let again = app.confirm(&token, &key, order_id, 10_000).await;
    assert_eq!(again.body["providerCode"], "REJECT_CARD_PAYMENT");
    assert_eq!(app.confirm_calls().await, 1);
}

async fn provider_5xx_without_approval_is_retryable_and_changes_nothing(app: TestApp) {
    let p = app.paid_in_window(10_000).await;
    app.fault(json!({"mode": "status5xx", "count": 20})).await;
    let r = app
        .confirm(&p.token, &p.payment_key, &p.order_id, 10_000)
        .await;
    assert!(
        r.status == StatusCode::SERVICE_UNAVAILABLE || r.status == StatusCode::GATEWAY_TIMEOUT,
        "{:?}",
        r.body
    );
    assert_eq!(r.body["retryable"], true);
    assert!(app.store.list_enrollments(p.user).await.unwrap().is_empty());
    app.clear_faults().await;
    // Toss is back: the retry (or the order read) completes it exactly once.
    let r = app
        .get(&format!("/v1/orders/{}", p.order_id), Some(&p.token))
        .await;
    assert_eq!(r.body["status"], "PAID", "{:?}", r.body);
    let again = app
        .confirm(&p.token, &p.payment_key, &p.order_id, 10_000)
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(app.stats().await["confirmsExecuted"], 1);
}

async fn confirm_after_toss_window_is_410(app: TestApp) {
    let p = app.paid_in_window(10_000).await;
    let r = app
        .post(
            "/toss-sandbox/sandbox/clock",
            None,
            &json!({"advanceSeconds": 601}),
        )
        .await;
    assert!(r.status.is_success());
    let r = app
        .confirm(&p.token, &p.payment_key, &p.order_id, 10_000)
        .await;
    assert_eq!(r.status, StatusCode::GONE, "{:?}", r.body);
    assert_eq!(r.code(), "E_ORDER_EXPIRED");
    assert_eq!(app.order(&p.order_id).await.status, OrderStatus::Expired);
    assert!(app.store.list_enrollments(p.user).await.unwrap().is_empty());
}

async fn idempotency_key_reuse_with_another_body_is_422(app: TestApp) {
    let p = app.paid_in_window(10_000).await;
    let body = json!({"paymentKey": p.payment_key, "orderId": p.order_id, "amount": 10_000});
    let key = [("idempotency-key", "client-key-1")];
    let r = app
        .post_raw(
            "/v1/payments/confirm",
            Some(&p.token),
            body.to_string().into_bytes(),
            &key,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .post_raw(
            "/v1/payments/confirm",
            Some(&p.token),
            body.to_string().into_bytes(),
            &key,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["replayed"], true);
    let other = json!({"paymentKey": p.payment_key, "orderId": p.order_id, "amount": 9_000});
    let r = app
        .post_raw(
            "/v1/payments/confirm",
            Some(&p.token),
            other.to_string().into_bytes(),
            &key,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.code(), "E_IDEMPOTENCY_KEY_REUSED");
}

async fn checkout_refuses_already_enrolled_and_unknown_course(app: TestApp) {
    let (_, token) = app.new_user();
    let r = app
        .post(
            "/v1/checkout",
            Some(&token),
            &json!({"courseId": domain::CourseId::new().to_string()}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "E_COURSE_NOT_FOUND");
    let p = app.paid_in_window(20_000).await;
    let order = app.checkout(&p.token, &p.course_id).await; // still not enrolled: allowed
    assert_eq!(order["amount"], 20_000);
    assert_eq!(order["status"], "PENDING");
    assert_eq!(order["currency"], "KRW");
    assert!(order["expiresAt"].is_string());
    app.confirm(&p.token, &p.payment_key, &p.order_id, 20_000)
        .await;
    let r = app
        .post(
            "/v1/checkout",
            Some(&p.token),
            &json!({"courseId": p.course_id}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.code(), "E_ALREADY_ENROLLED");
}

async fn courses_and_enrollments_are_readable(app: TestApp) {
    let id = app.create_course(15_000).await;
    let r = app.get(&format!("/v1/courses/{id}"), None).await;
    assert_eq!(r.body["price"], 15_000);
    assert_eq!(r.body["status"], "PUBLISHED");
    let list = app.get("/v1/courses", None).await;
    assert!(
        list.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == id.as_str())
    );
    let p = app.paid_in_window(10_000).await;
    let c = app
        .confirm(&p.token, &p.payment_key, &p.order_id, 10_000)
        .await;
    let eid = c.body["enrollmentId"].as_str().unwrap();
    let r = app
        .get(&format!("/v1/enrollments/{eid}"), Some(&p.token))
        .await;
    assert_eq!(r.body["status"], "ENROLLED");
    assert_eq!(r.body["userId"], p.user.to_string());
    let (_, other) = app.new_user();
    let r = app
        .get(&format!("/v1/enrollments/{eid}"), Some(&other))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}
