//! The LMS side over real HTTP on both stores: refunds through the Toss sandbox that revoke
//! access, and exam attempts gated by enrollment. Each test tries to break an invariant:
//! refund twice, refund more than was paid, lose Toss's answer, race a CANCELED webhook, start
//! more attempts than allowed, submit twice.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Backend, TestApp};
use domain::{
    EnrollmentStatus, IdempotencyKey, OrderId, OrderStatus, PaymentId, PaymentKey, RefundStatus,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use store::Refund;
use time::OffsetDateTime;

store::per_backend!(
    |b| common::spawn(b).await;
    full_refund_revokes_access_and_blocks_exam_attempts,
    partial_refunds_sum_up_then_refuse_more_without_calling_toss,
    concurrent_duplicate_refunds_cancel_once,
    refund_whose_answer_is_lost_is_settled_by_lookup,
    refund_refused_before_processing_is_looked_up_then_sent_again_under_a_new_key,
    refund_left_requested_is_settled_by_the_reconciler,
    refund_racing_a_canceled_provider_view_is_one_record,
    refund_answer_matches_the_committed_state_when_its_webhook_races_it,
    external_cancel_seen_twice_is_one_record_and_blocks_more_refunds,
    canceled_before_done_is_settled_then_revoked_on_read,
    refund_auth_and_bad_input,
    attempt_limit_holds_under_concurrent_starts,
    submit_once_and_owner_checks,
    refund_and_exam_requests_are_logged,
);

/// A buyer who paid `price` for a new course, confirmed.
struct Bought {
    token: String,
    order_id: String,
    payment_key: String,
    payment_id: String,
    enrollment_id: String,
}

async fn bought(app: &TestApp, price: i64) -> Bought {
    let p = app.paid_in_window(price).await;
    let r = app
        .confirm(&p.token, &p.payment_key, &p.order_id, price)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    Bought {
        token: p.token,
        order_id: p.order_id,
        payment_key: p.payment_key,
        payment_id: r.body["paymentId"].as_str().unwrap().to_owned(),
        enrollment_id: r.body["enrollmentId"].as_str().unwrap().to_owned(),
    }
}

async fn refund(app: &TestApp, payment_id: &str, body: Value) -> common::Resp {
    app.post(
        &format!("/v1/payments/{payment_id}/refund"),
        Some(&app.admin_token()),
        &body,
    )
    .await
}

async fn start_attempt(app: &TestApp, token: &str, enrollment_id: &str) -> common::Resp {
    app.post(
        &format!("/v1/enrollments/{enrollment_id}/exam-attempts"),
        Some(token),
        &json!({}),
    )
    .await
}

async fn refunds_of(app: &TestApp, payment_id: &str) -> Vec<Refund> {
    app.store
        .payment_refunds(PaymentId::parse(payment_id).unwrap())
        .await
        .unwrap()
}

async fn our_payment(app: &TestApp, payment_id: &str) -> store::Payment {
    app.store
        .get_payment(PaymentId::parse(payment_id).unwrap())
        .await
        .unwrap()
        .unwrap()
}

fn sandbox_payment(app: &TestApp, payment_key: &str) -> toss::wire::Payment {
    app.sandbox
        .payments()
        .into_iter()
        .find(|p| p.payment_key == payment_key)
        .expect("sandbox knows the payment")
}

async fn my_enrollment_status(app: &TestApp, token: &str, enrollment_id: &str) -> String {
    let r = app.get("/v1/me/enrollments", Some(token)).await;
    assert_eq!(r.status, StatusCode::OK);
    r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == enrollment_id)
        .expect("enrollment listed")["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn count_kind(events: &[store::Event], kind: &str) -> usize {
    events.iter().filter(|e| e.kind == kind).count()
}

async fn full_refund_revokes_access_and_blocks_exam_attempts(app: TestApp) {
    let b = bought(&app, 10_000).await;
    let first = start_attempt(&app, &b.token, &b.enrollment_id).await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    assert_eq!(first.body["enrollmentId"], b.enrollment_id.as_str());

    let r = refund(&app, &b.payment_id, json!({"reason": "customer asked"})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["paymentId"], b.payment_id.as_str());
    assert_eq!(r.body["status"], "CANCELED");
    assert_eq!(r.body["refundedAmount"], 10_000);
    assert_eq!(r.body["enrollmentStatus"], "REFUNDED");
    println!(
        "round trips [{:?}] refund: {}, start attempt: {}",
        app.backend,
        r.round_trips(),
        first.round_trips()
    );
    if app.backend == Backend::Postgres {
        // begin_refund + record_cancellation; get_enrollment + start_attempt.
        assert_eq!(r.round_trips(), 2);
        assert_eq!(first.round_trips(), 2);
    }

    // Access is revoked at once: the list, the enrollment itself and new exam attempts.
    assert_eq!(
        my_enrollment_status(&app, &b.token, &b.enrollment_id).await,
        "REFUNDED"
    );
    let one = app
        .get(
            &format!("/v1/enrollments/{}", b.enrollment_id),
            Some(&b.token),
        )
        .await;
    assert_eq!(one.body["status"], "REFUNDED");
    let blocked = start_attempt(&app, &b.token, &b.enrollment_id).await;
    assert_eq!(blocked.status, StatusCode::FORBIDDEN);
    assert_eq!(blocked.code(), "E_NOT_ENROLLED");

    // Toss and we agree; the order is REFUNDED; a replayed confirm no longer says ENROLLED.
    let sb = sandbox_payment(&app, &b.payment_key);
    assert_eq!(sb.status, "CANCELED");
    assert_eq!(sb.balance_amount, 0);
    let ours = our_payment(&app, &b.payment_id).await;
    assert_eq!(ours.status, domain::PaymentStatus::Canceled);
    assert_eq!(ours.balance.won(), 0);
    assert_eq!(app.order(&b.order_id).await.status, OrderStatus::Refunded);
    let replay = app
        .confirm(&b.token, &b.payment_key, &b.order_id, 10_000)
        .await;
    assert_ne!(replay.status, StatusCode::OK, "{:?}", replay.body);

    let refunds = refunds_of(&app, &b.payment_id).await;
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0].status, RefundStatus::Done);
    assert_eq!(refunds[0].amount.won(), 10_000);
    assert_eq!(
        refunds[0].transaction_key,
        sb.cancels.unwrap()[0].transaction_key.clone().into()
    );
    let events = app
        .store
        .order_events(&OrderId::parse(&b.order_id).unwrap())
        .await
        .unwrap();
    for kind in [
        "refund.requested",
        "payment.canceled",
        "enrollment.refunded",
        "order.refunded",
    ] {
        assert_eq!(count_kind(&events, kind), 1, "{kind}");
    }
    // Refunding again is refused without asking Toss.
    let calls = app.stats().await["cancelCalls"].as_u64().unwrap();
    let again = refund(&app, &b.payment_id, json!({"reason": "again"})).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.code(), "E_REFUND_NOT_ALLOWED");
    assert_eq!(app.stats().await["cancelCalls"].as_u64().unwrap(), calls);
}

async fn partial_refunds_sum_up_then_refuse_more_without_calling_toss(app: TestApp) {
    let b = bought(&app, 10_000).await;
    let r = refund(
        &app,
        &b.payment_id,
        json!({"reason": "part 1", "amount": 3_000}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["status"], "PARTIAL_CANCELED");
    assert_eq!(r.body["refundedAmount"], 3_000);
    assert_eq!(r.body["enrollmentStatus"], "ENROLLED");
    let r = refund(
        &app,
        &b.payment_id,
        json!({"reason": "part 2", "amount": 4_000}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["refundedAmount"], 7_000);
    assert_eq!(r.body["status"], "PARTIAL_CANCELED");

    // Our balance is Toss's balance.
    let sb = sandbox_payment(&app, &b.payment_key);
    assert_eq!(sb.balance_amount, 3_000);
    assert_eq!(sb.status, "PARTIAL_CANCELED");
    assert_eq!(our_payment(&app, &b.payment_id).await.balance.won(), 3_000);
    assert_eq!(
        my_enrollment_status(&app, &b.token, &b.enrollment_id).await,
        "ENROLLED"
    );
    assert_eq!(
        start_attempt(&app, &b.token, &b.enrollment_id).await.status,
        StatusCode::CREATED
    );

    // More than remains: refused before Toss is called.
    let calls = app.stats().await["cancelCalls"].as_u64().unwrap();
    assert_eq!(calls, 2);
    let over = refund(
        &app,
        &b.payment_id,
        json!({"reason": "too much", "amount": 3_001}),
    )
    .await;
    assert_eq!(over.status, StatusCode::CONFLICT, "{:?}", over.body);
    assert_eq!(over.code(), "E_REFUND_NOT_ALLOWED");
    assert!(over.is_problem());
    assert_eq!(app.stats().await["cancelCalls"].as_u64().unwrap(), calls);

    // The rest: a full refund now, access revoked.
    let rest = refund(&app, &b.payment_id, json!({"reason": "rest"})).await;
    assert_eq!(rest.status, StatusCode::OK, "{:?}", rest.body);
    assert_eq!(rest.body["status"], "CANCELED");
    assert_eq!(rest.body["refundedAmount"], 10_000);
    assert_eq!(rest.body["enrollmentStatus"], "REFUNDED");
    let refunds = refunds_of(&app, &b.payment_id).await;
    let amounts: Vec<i64> = refunds.iter().map(|r| r.amount.won()).collect();
    assert_eq!(amounts, [3_000, 4_000, 3_000]);
    assert!(refunds.iter().all(|r| r.status == RefundStatus::Done));
    assert_eq!(
        refund(&app, &b.payment_id, json!({"reason": "x", "amount": 1}))
            .await
            .code(),
        "E_REFUND_NOT_ALLOWED"
    );
    assert_eq!(app.stats().await["cancelCalls"].as_u64().unwrap(), 3);
    assert_eq!(app.stats().await["cancelsExecuted"].as_u64().unwrap(), 3);
}

async fn concurrent_duplicate_refunds_cancel_once(app: TestApp) {
    let b = bought(&app, 20_000).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let http = app.http.clone();
        let url = format!("{}/v1/payments/{}/refund", app.base, b.payment_id);
        let token = app.admin_token();
        tasks.spawn(async move {
            let r = http
                .post(url)
                .bearer_auth(token)
                .json(&json!({"reason": "duplicate click"}))
                .send()
                .await
                .unwrap();
            let status = r.status();
            let body: Value = r.json().await.unwrap();
            (status, body)
        });
    }
    let results = tasks.join_all().await;
    let ok: Vec<_> = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::OK)
        .collect();
    assert_eq!(ok.len(), 1, "{results:?}");
    assert_eq!(ok[0].1["refundedAmount"], 20_000);
    for (status, body) in results.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_eq!(*status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["code"], "E_REFUND_NOT_ALLOWED");
    }
    let stats = app.stats().await;
    assert_eq!(stats["cancelsExecuted"], 1, "{stats}");
    assert_eq!(refunds_of(&app, &b.payment_id).await.len(), 1);
    assert_eq!(
        my_enrollment_status(&app, &b.token, &b.enrollment_id).await,
        "REFUNDED"
    );
}

async fn refund_whose_answer_is_lost_is_settled_by_lookup(app: TestApp) {
    let b = bought(&app, 10_000).await;
    app.fault(json!({"mode": "status5xx", "afterProcessing": true, "operations": ["cancel"]}))
        .await;
    let r = refund(&app, &b.payment_id, json!({"reason": "lost answer"})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["status"], "CANCELED");
    assert_eq!(r.body["enrollmentStatus"], "REFUNDED");
    let stats = app.stats().await;
    assert_eq!(stats["cancelsExecuted"], 1, "{stats}");
    let refunds = refunds_of(&app, &b.payment_id).await;
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0].status, RefundStatus::Done);
    let sb = sandbox_payment(&app, &b.payment_key);
    assert_eq!(
        refunds[0].transaction_key.as_deref(),
        Some(sb.cancels.unwrap()[0].transaction_key.as_str())
    );
    assert_eq!(
        my_enrollment_status(&app, &b.token, &b.enrollment_id).await,
        "REFUNDED"
    );
}

async fn refund_refused_before_processing_is_looked_up_then_sent_again_under_a_new_key(
    app: TestApp,
) {
    let b = bought(&app, 10_000).await;
    // The first cancel never reaches Toss's ledger; the lookup shows no cancel, so the flow
    // sends it again under a new Idempotency-Key (Toss would replay the first key's stored
    // error forever): two cancel calls, one executed, one refund.
    app.fault(json!({"mode": "status5xx", "operations": ["cancel"]}))
        .await;
    let r = refund(
        &app,
        &b.payment_id,
        json!({"reason": "retry", "amount": 2_500}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["refundedAmount"], 2_500);
    let stats = app.stats().await;
    assert_eq!(stats["cancelCalls"], 2, "{stats}");
    assert_eq!(stats["cancelsExecuted"], 1, "{stats}");
    assert_eq!(refunds_of(&app, &b.payment_id).await.len(), 1);
}

async fn refund_left_requested_is_settled_by_the_reconciler(app: TestApp) {
    let b = bought(&app, 10_000).await;
    // Every cancel attempt of this request fails before reaching Toss.
    app.fault(json!({"mode": "status5xx", "count": 3, "operations": ["cancel"]}))
        .await;
    let r = refund(&app, &b.payment_id, json!({"reason": "stuck"})).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", r.body);
    assert_eq!(r.body["retryable"], true);
    let refunds = refunds_of(&app, &b.payment_id).await;
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0].status, RefundStatus::Requested);
    assert_eq!(app.stats().await["cancelsExecuted"], 0);
    // While it is unresolved, no second refund can start.
    let second = refund(&app, &b.payment_id, json!({"reason": "again"})).await;
    assert_eq!(second.code(), "E_REFUND_NOT_ALLOWED");
    // It counts as stuck past the SLA; the reconciler settles it with the same key.
    let later = OffsetDateTime::now_utc() + time::Duration::seconds(1);
    let stuck = app.store.stuck_refunds(later, 10).await.unwrap();
    assert_eq!(stuck.len(), 1);
    let settled = flows::refunds::reconcile_refunds(&app.app, later)
        .await
        .unwrap();
    assert_eq!(settled, 1);
    let refunds = refunds_of(&app, &b.payment_id).await;
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0].status, RefundStatus::Done);
    assert_eq!(app.stats().await["cancelsExecuted"], 1);
    assert_eq!(
        my_enrollment_status(&app, &b.token, &b.enrollment_id).await,
        "REFUNDED"
    );
    assert!(app.store.stuck_refunds(later, 10).await.unwrap().is_empty());
}

async fn refund_racing_a_canceled_provider_view_is_one_record(app: TestApp) {
    let b = bought(&app, 10_000).await;
    // Toss executes the cancel, then its answer is slow: meanwhile the CANCELED status reaches
    // us the other way (a webhook → lookup → apply_view).
    app.fault(json!({"mode": "delay", "delayMs": 1500, "afterProcessing": true, "operations": ["cancel"]}))
        .await;
    let http = app.http.clone();
    let url = format!("{}/v1/payments/{}/refund", app.base, b.payment_id);
    let token = app.admin_token();
    let refund_call = tokio::spawn(async move {
        let r = http
            .post(url)
            .bearer_auth(token)
            .json(&json!({"reason": "race"}))
            .send()
            .await
            .unwrap();
        (r.status(), r.json::<Value>().await.unwrap())
    });
    let key = b.payment_key.clone();
    assert!(
        app.eventually(|| {
            let status = sandbox_payment(&app, &key).status;
            async move { status == "CANCELED" }
        })
        .await
    );
    let view = app
        .app
        .toss
        .get_payment(
            &PaymentKey::parse(&b.payment_key).unwrap(),
            &Default::default(),
        )
        .await
        .unwrap();
    let order = app.order(&b.order_id).await;
    let ev = flows::event_ctx("webhook");
    flows::settle::apply_view(
        &app.app,
        &order,
        &view,
        flows::settle::SettleSource::Webhook,
        &ev,
    )
    .await
    .unwrap();
    // The provider view was recorded first: the refund's own answer is still on its way.
    assert!(!refund_call.is_finished());
    assert_eq!(
        my_enrollment_status(&app, &b.token, &b.enrollment_id).await,
        "REFUNDED"
    );

    let (status, body) = refund_call.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "CANCELED");
    assert_eq!(body["refundedAmount"], 10_000);
    let refunds = refunds_of(&app, &b.payment_id).await;
    assert_eq!(refunds.len(), 1, "{refunds:?}");
    assert_eq!(refunds[0].status, RefundStatus::Done);
    assert_eq!(
        refunds[0].transaction_key.as_deref(),
        view.last_transaction_key.as_deref()
    );
    let events = app.store.order_events(&order.order_id).await.unwrap();
    assert_eq!(count_kind(&events, "payment.canceled"), 1);
    assert_eq!(count_kind(&events, "enrollment.refunded"), 1);
    assert_eq!(app.stats().await["cancelsExecuted"], 1);
}

/// Toss delivers a CANCELED webhook the moment it executes the cancel, so the webhook's
/// recording races the refund's own. Whichever commits first, the refund's answer says what is
/// committed: the enrollment is REFUNDED. Many times, across a sweep of timings.
async fn refund_answer_matches_the_committed_state_when_its_webhook_races_it(app: TestApp) {
    app.sandbox.set_webhook(
        Some(format!("{}{}", app.base, common::WEBHOOK_PATH)),
        Some(flows::config::DEV_WEBHOOK_SECRET.to_owned()),
    );
    for i in 0..40 {
        let b = bought(&app, 10_000).await;
        // Toss's answer held back 0, 3, 6, ... ms after the cancel executed: a sweep across the
        // time the webhook needs (delivery, lookup, recording), so that in some rounds the two
        // recordings overlap, in others either one is first.
        app.fault(json!({"mode": "delay", "delayMs": 3 * i, "afterProcessing": true, "operations": ["cancel"]}))
            .await;
        let r = refund(&app, &b.payment_id, json!({"reason": "race"})).await;
        assert_eq!(r.status, StatusCode::OK, "refund {i}: {:?}", r.body);
        assert_eq!(r.body["status"], "CANCELED", "refund {i}");
        assert_eq!(
            r.body["enrollmentStatus"], "REFUNDED",
            "refund {i}: the answer says what is committed"
        );
        assert_eq!(
            my_enrollment_status(&app, &b.token, &b.enrollment_id).await,
            "REFUNDED",
            "refund {i}"
        );
        let events = app
            .store
            .order_events(&OrderId::parse(&b.order_id).unwrap())
            .await
            .unwrap();
        assert_eq!(count_kind(&events, "enrollment.refunded"), 1, "refund {i}");
    }
}

async fn external_cancel_seen_twice_is_one_record_and_blocks_more_refunds(app: TestApp) {
    let b = bought(&app, 10_000).await;
    // Cancelled at Toss directly (e.g. the merchant console), not through coursepay.
    let key = PaymentKey::parse(&b.payment_key).unwrap();
    let view = app
        .app
        .toss
        .cancel(
            &key,
            "console refund",
            None,
            None,
            &IdempotencyKey::parse("test-external-cancel-1").unwrap(),
            &Default::default(),
        )
        .await
        .unwrap();
    let order = app.order(&b.order_id).await;
    for _ in 0..2 {
        let ev = flows::event_ctx("webhook");
        flows::settle::apply_view(
            &app.app,
            &order,
            &view,
            flows::settle::SettleSource::Webhook,
            &ev,
        )
        .await
        .unwrap();
    }
    let refunds = refunds_of(&app, &b.payment_id).await;
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0].status, RefundStatus::Done);
    assert_eq!(refunds[0].requested_by, "external:webhook");
    assert_eq!(
        my_enrollment_status(&app, &b.token, &b.enrollment_id).await,
        "REFUNDED"
    );
    let calls = app.stats().await["cancelCalls"].as_u64().unwrap();
    let r = refund(&app, &b.payment_id, json!({"reason": "too late"})).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.code(), "E_REFUND_NOT_ALLOWED");
    assert_eq!(app.stats().await["cancelCalls"].as_u64().unwrap(), calls);
}

async fn canceled_before_done_is_settled_then_revoked_on_read(app: TestApp) {
    // The buyer paid, Toss confirmed (our confirm's answer never arrived) and the payment was
    // cancelled at Toss before we heard of it. Reading the order settles and revokes it.
    let p = app.paid_in_window(10_000).await;
    let order_id = OrderId::parse(&p.order_id).unwrap();
    let key = PaymentKey::parse(&p.payment_key).unwrap();
    let ctx = Default::default();
    app.app
        .toss
        .confirm(
            &key,
            &order_id,
            domain::Money::new(10_000).unwrap(),
            &IdempotencyKey::for_confirm(&order_id),
            &ctx,
        )
        .await
        .unwrap();
    app.app
        .toss
        .cancel(
            &key,
            "canceled",
            None,
            None,
            &IdempotencyKey::parse("test-early-cancel-1").unwrap(),
            &ctx,
        )
        .await
        .unwrap();
    let r = app
        .get(&format!("/v1/orders/{}", p.order_id), Some(&p.token))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["status"], "REFUNDED");
    let order = app.order(&p.order_id).await;
    let payment = app
        .store
        .payment_for_order(&order_id)
        .await
        .unwrap()
        .expect("the money that moved is recorded");
    assert_eq!(payment.status, domain::PaymentStatus::Canceled);
    assert_eq!(payment.balance.won(), 0);
    let enrollment = app
        .store
        .get_enrollment(order.enrollment_id.unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(enrollment.status, EnrollmentStatus::Refunded);
    assert_eq!(refunds_of(&app, &payment.id.to_string()).await.len(), 1);
}

async fn refund_auth_and_bad_input(app: TestApp) {
    let b = bought(&app, 10_000).await;
    let path = format!("/v1/payments/{}/refund", b.payment_id);
    let body = json!({"reason": "x"});
    let user = app.post(&path, Some(&b.token), &body).await;
    assert_eq!(user.status, StatusCode::FORBIDDEN);
    assert_eq!(user.code(), "E_FORBIDDEN");
    let anon = app.post(&path, None, &body).await;
    assert_eq!(anon.status, StatusCode::UNAUTHORIZED);
    let unknown = refund(&app, &PaymentId::new().to_string(), body.clone()).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.code(), "E_PAYMENT_NOT_FOUND");
    let not_uuid = refund(&app, "not-a-uuid", body.clone()).await;
    assert_eq!(not_uuid.code(), "E_PAYMENT_NOT_FOUND");
    for (bad, field) in [
        (json!({}), "reason"),
        (json!({"reason": ""}), "reason"),
        (json!({"reason": "   "}), "reason"),
        (json!({"reason": "x".repeat(201)}), "reason"),
        (json!({"reason": 5}), "reason"),
        (json!({"reason": "x", "amount": 0}), "amount"),
        (json!({"reason": "x", "amount": -5}), "amount"),
        (json!({"reason": "x", "amount": 1.5}), "amount"),
        (json!({"reason": "x", "amount": "100"}), "amount"),
    ] {
        let r = refund(&app, &b.payment_id, bad.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {:?}", r.body);
        assert_eq!(r.code(), "E_INVALID_REQUEST");
        assert!(
            r.body["detail"].as_str().unwrap().starts_with(field),
            "{bad}: {:?}",
            r.body
        );
    }
    // Nothing was refunded or asked of Toss by any of that.
    assert_eq!(app.stats().await["cancelCalls"], 0);
    assert!(refunds_of(&app, &b.payment_id).await.is_empty());
    let ok = refund(&app, &b.payment_id, json!({"reason": "가".repeat(200)})).await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
}

async fn attempt_limit_holds_under_concurrent_starts(app: TestApp) {
    let b = bought(&app, 10_000).await;
    assert_eq!(app.app.config.exam_max_attempts, 3);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let http = app.http.clone();
        let url = format!(
            "{}/v1/enrollments/{}/exam-attempts",
            app.base, b.enrollment_id
        );
        let token = b.token.clone();
        tasks.spawn(async move {
            let r = http.post(url).bearer_auth(token).send().await.unwrap();
            let status = r.status();
            (status, r.json::<Value>().await.unwrap())
        });
    }
    let results = tasks.join_all().await;
    let created = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    assert_eq!(created, 3, "{results:?}");
    for (status, body) in results.iter().filter(|(s, _)| *s != StatusCode::CREATED) {
        assert_eq!(*status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["code"], "E_ATTEMPT_LIMIT_REACHED");
    }
}

async fn submit_once_and_owner_checks(app: TestApp) {
    let b = bought(&app, 10_000).await;
    let started = start_attempt(&app, &b.token, &b.enrollment_id).await;
    assert_eq!(started.status, StatusCode::CREATED);
    let id = started.body["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/exam-attempts/{id}/submit");

    // Bad scores change nothing.
    for bad in [
        json!({}),
        json!({"score": 101}),
        json!({"score": -1}),
        json!({"score": 50.5}),
    ] {
        let r = app.post(&path, Some(&b.token), &bad).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(r.body["detail"].as_str().unwrap().starts_with("score"));
    }
    // Someone else's attempt / enrollment.
    let (_, other) = app.new_user();
    let r = app.post(&path, Some(&other), &json!({"score": 10})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        start_attempt(&app, &other, &b.enrollment_id).await.code(),
        "E_FORBIDDEN"
    );
    assert_eq!(
        start_attempt(&app, &b.token, &domain::EnrollmentId::new().to_string())
            .await
            .code(),
        "E_ENROLLMENT_NOT_FOUND"
    );
    let missing = app
        .post(
            &format!("/v1/exam-attempts/{}/submit", domain::AttemptId::new()),
            Some(&b.token),
            &json!({"score": 1}),
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.code(), "E_ATTEMPT_NOT_FOUND");

    // Ten submits at once: exactly one is recorded.
    let mut tasks = tokio::task::JoinSet::new();
    for score in 0..10 {
        let http = app.http.clone();
        let url = format!("{}{}", app.base, path);
        let token = b.token.clone();
        tasks.spawn(async move {
            let r = http
                .post(url)
                .bearer_auth(token)
                .json(&json!({"score": 90 + score}))
                .send()
                .await
                .unwrap();
            let status = r.status();
            (status, r.json::<Value>().await.unwrap())
        });
    }
    let results = tasks.join_all().await;
    let ok: Vec<_> = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::OK)
        .collect();
    assert_eq!(ok.len(), 1, "{results:?}");
    let winner = ok[0].1["score"].as_i64().unwrap();
    assert!(ok[0].1["submittedAt"].is_string());
    assert_eq!(ok[0].1["id"], id.as_str());
    for (status, body) in results.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_eq!(*status, StatusCode::CONFLICT);
        assert_eq!(body["code"], "E_ATTEMPT_ALREADY_SUBMITTED");
    }
    let again = app.post(&path, Some(&b.token), &json!({"score": 1})).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    // A second submit is answered from the attempt as read: one round trip.
    assert_eq!(again.round_trips(), 1);
    assert_eq!(again.code(), "E_ATTEMPT_ALREADY_SUBMITTED");
    let stored = app
        .store
        .get_attempt(domain::AttemptId::parse(&id).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.score.map(i64::from), Some(winner));
}

async fn refund_and_exam_requests_are_logged(app: TestApp) {
    let buf = flows::logging::capture();
    let b = bought(&app, 10_000).await;
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let start_id = format!("lms-start-{tag}");
    let r = app
        .post_raw(
            &format!("/v1/enrollments/{}/exam-attempts", b.enrollment_id),
            Some(&b.token),
            Vec::new(),
            &[("x-request-id", &start_id)],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let refund_id = format!("lms-refund-{tag}");
    let admin = app.admin_token();
    let r = app
        .post_raw(
            &format!("/v1/payments/{}/refund", b.payment_id),
            Some(&admin),
            json!({"reason": "logged"}).to_string().into_bytes(),
            &[("x-request-id", &refund_id)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let lines = flows::logging::captured_lines(&buf);
    let line = |id: &str| -> Value {
        let ours: Vec<&Value> = lines.iter().filter(|l| l["request_id"] == id).collect();
        assert_eq!(ours.len(), 1, "one summary line for {id}");
        ours[0].clone()
    };
    let start = line(&start_id);
    assert_eq!(start["function_name"], "start-exam-attempt");
    assert_eq!(start["enrollment_id"], b.enrollment_id.as_str());
    assert!(start["course_id"].is_string());
    assert!(start["user_id"].is_string());
    let refund = line(&refund_id);
    assert_eq!(refund["function_name"], "refund-payment");
    assert_eq!(refund["provider"], "toss");
    assert_eq!(refund["provider_tx_id"], b.payment_key.as_str());
    assert_eq!(refund["enrollment_id"], b.enrollment_id.as_str());
    assert_eq!(refund["status"], "CANCELED");
    assert_eq!(refund["http_status"], 200);
    let text = String::from_utf8_lossy(&buf.lock().unwrap()).into_owned();
    assert!(!text.contains(&admin), "a token reached the log");
    assert!(!text.contains(&b.token), "a token reached the log");
}
