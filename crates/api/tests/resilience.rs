//! Resilience on both stores: the circuit breaker opens after exactly five provider
//! failures and recovers through a half-open probe; the pause switch blocks new charges but not
//! the settling of money Toss already took; rate limits answer 429 with Retry-After and
//! recover; the reconciler settles orders whose answer was lost, once, even when two instances
//! run it at the same moment.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestApp, spawn_with};
use domain::{IdempotencyKey, Money, OrderId, OrderStatus, PaymentKey};
use flows::config::RateLimit;
use flows::reconcile::reconcile_once;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

async fn status(app: &TestApp) -> Value {
    let r = app.get("/v1/admin/status", Some(&app.admin_token())).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body
}

/// Toss approves the payment, but our server never hears of it (as if its confirm's answer
/// was lost and it crashed): the order stays PENDING here, DONE at Toss.
async fn approve_behind_our_back(app: &TestApp, order_id: &str, payment_key: &str, amount: i64) {
    let order = OrderId::parse(order_id).unwrap();
    let view = app
        .app
        .toss
        .confirm(
            &PaymentKey::parse(payment_key).unwrap(),
            &order,
            Money::new(amount).unwrap(),
            &IdempotencyKey::for_confirm(&order),
            &Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(view.status.as_str(), "DONE");
}

async fn breaker_opens_after_exactly_five_failures_and_recovers(app: TestApp) {
    let p = app.paid_in_window(10_000).await;
    app.fault(json!({"mode": "status5xx", "count": 5, "operations": ["lookup"]}))
        .await;
    // Each read of an open order asks Toss once: four failures leave the circuit closed.
    for n in 1..=4 {
        app.get(&format!("/v1/orders/{}", p.order_id), Some(&p.token))
            .await;
        let s = status(&app).await;
        assert_eq!(s["circuit"]["state"], "closed", "after {n}: {s}");
        assert_eq!(s["circuit"]["consecutiveFailures"], n);
    }
    app.get(&format!("/v1/orders/{}", p.order_id), Some(&p.token))
        .await;
    let s = status(&app).await;
    assert_eq!(s["circuit"]["state"], "open", "{s}");
    assert_eq!(s["circuit"]["consecutiveFailures"], 5);

    // Open: confirm is refused before the claim and without calling Toss.
    let r = app
        .confirm(&p.token, &p.payment_key, &p.order_id, 10_000)
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", r.body);
    assert_eq!(r.code(), "E_PG_UNAVAILABLE");
    assert_eq!(r.body["retryable"], true);
    assert!(r.headers.get("retry-after").is_some());
    assert_eq!(app.confirm_calls().await, 0);
    assert_eq!(app.order(&p.order_id).await.status, OrderStatus::Pending);

    // After the cooldown the circuit is half-open; the next confirm is the probe, succeeds,
    // and closes it.
    let half_open = app
        .eventually(|| async { status(&app).await["circuit"]["state"] == "half_open" })
        .await;
    assert!(half_open);
    let r = app
        .confirm(&p.token, &p.payment_key, &p.order_id, 10_000)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let s = status(&app).await;
    assert_eq!(s["circuit"]["state"], "closed", "{s}");
    assert_eq!(s["circuit"]["consecutiveFailures"], 0);
    assert_eq!(app.stats().await["confirmsExecuted"], 1);
}

async fn declines_do_not_open_the_breaker(app: TestApp) {
    for _ in 0..6 {
        let course = app.create_course(10_000).await;
        let (_, token) = app.new_user();
        let order = app.checkout(&token, &course).await;
        let order_id = order["orderId"].as_str().unwrap();
        let key = app
            .buyer_pays_with(order_id, 10_000, "REJECT_CARD_PAYMENT")
            .await;
        let r = app.confirm(&token, &key, order_id, 10_000).await;
        assert_eq!(r.code(), "E_PAYMENT_REJECTED");
    }
    assert_eq!(status(&app).await["circuit"]["state"], "closed");
}

async fn pause_blocks_new_charges_but_settles_approved_payments(app: TestApp) {
    let admin = app.admin_token();
    let fresh = app.paid_in_window(10_000).await; // IN_PROGRESS at Toss
    let done_read = app.paid_in_window(10_000).await; // DONE at Toss, settled on read
    let done_rec = app.paid_in_window(10_000).await; // DONE at Toss, settled by the reconciler
    approve_behind_our_back(&app, &done_read.order_id, &done_read.payment_key, 10_000).await;
    approve_behind_our_back(&app, &done_rec.order_id, &done_rec.payment_key, 10_000).await;
    let calls_before = app.confirm_calls().await;

    let r = app
        .post(
            "/v1/admin/payments/pause",
            Some(&admin),
            &json!({"reason": "amount mismatches surging"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let s = status(&app).await;
    assert_eq!(s["paymentsPaused"], true);
    assert_eq!(s["pauseReason"], "amount mismatches surging");
    // A user cannot pause.
    let r = app
        .post("/v1/admin/payments/resume", Some(&fresh.token), &json!({}))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // New charges are refused before anything is touched.
    let r = app
        .confirm(&fresh.token, &fresh.payment_key, &fresh.order_id, 10_000)
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", r.body);
    assert_eq!(r.code(), "E_PAYMENTS_PAUSED");
    assert_eq!(r.body["retryable"], true);
    assert_eq!(
        app.order(&fresh.order_id).await.status,
        OrderStatus::Pending
    );
    let r = app
        .post(
            "/v1/checkout",
            Some(&fresh.token),
            &json!({"courseId": fresh.course_id}),
        )
        .await;
    assert_eq!(r.code(), "E_PAYMENTS_PAUSED");
    // Reading the IN_PROGRESS order does not confirm it while paused (no new charge)...
    let r = app
        .get(
            &format!("/v1/orders/{}", fresh.order_id),
            Some(&fresh.token),
        )
        .await;
    assert_eq!(r.body["status"], "PENDING", "{:?}", r.body);
    // ...but money Toss already took is settled, on read and by the reconciler.
    let r = app
        .get(
            &format!("/v1/orders/{}", done_read.order_id),
            Some(&done_read.token),
        )
        .await;
    assert_eq!(r.body["status"], "PAID", "{:?}", r.body);
    let report = reconcile_once(&app.app, "test-instance").await.unwrap();
    // The DONE order settles; the IN_PROGRESS one stays open (and unconfirmed).
    assert_eq!(
        (report.leased, report.paid, report.still_open),
        (2, 1, 1),
        "{report:?}"
    );
    assert_eq!(
        app.order(&done_rec.order_id).await.status,
        OrderStatus::Paid
    );
    assert_eq!(
        app.order(&fresh.order_id).await.status,
        OrderStatus::Pending
    );
    assert_eq!(
        app.confirm_calls().await,
        calls_before,
        "no confirm while paused"
    );

    // Resumed: the buyer's retry goes through.
    let r = app
        .post("/v1/admin/payments/resume", Some(&admin), &json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(status(&app).await["paymentsPaused"], false);
    let r = app
        .confirm(&fresh.token, &fresh.payment_key, &fresh.order_id, 10_000)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(app.stats().await["confirmsExecuted"], 3);
}

/// Another instance on the same database obeys a pause within a second (its cached view of the
/// switch is at most one second old), and the resume likewise.
async fn pause_reaches_every_instance_within_a_second(app: TestApp) {
    let other = flows::App::new(
        app.store.clone(),
        app.app.toss.clone(),
        flows::config::Config::development(),
    );
    let course = domain::CourseId::parse(&app.create_course(10_000).await).unwrap();
    let user = domain::UserId::new();
    // The other instance has read (and cached) "not paused".
    assert!(
        flows::checkout::checkout(&other, user, course)
            .await
            .is_ok()
    );
    let paused_at = std::time::Instant::now();
    let r = app
        .post(
            "/v1/admin/payments/pause",
            Some(&app.admin_token()),
            &json!({"reason": "drill"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let obeyed = app
        .eventually(|| async {
            matches!(
                flows::checkout::checkout(&other, domain::UserId::new(), course).await,
                Err(e) if e.code == domain::ErrorCode::PaymentsPaused
            )
        })
        .await;
    assert!(obeyed);
    assert!(
        paused_at.elapsed() < Duration::from_millis(1500),
        "took {:?}",
        paused_at.elapsed()
    );
    app.post(
        "/v1/admin/payments/resume",
        Some(&app.admin_token()),
        &json!({}),
    )
    .await;
    let resumed = app
        .eventually(|| async {
            flows::checkout::checkout(&other, domain::UserId::new(), course)
                .await
                .is_ok()
        })
        .await;
    assert!(resumed);
}

async fn rate_limit_answers_429_then_recovers(app: TestApp) {
    let (_, token) = app.new_user();
    let mut limited = None;
    // Every request claims another client address in a forged X-Forwarded-For. The peer is not
    // a trusted proxy, so the header is ignored and all of them share one allowance: the 429
    // comes as if the header were absent (believed, each would get a fresh allowance and
    // none would be limited).
    for i in 0..10 {
        let r = app
            .http
            .get(format!("{}/v1/me/enrollments", app.base))
            .bearer_auth(&token)
            .header("x-forwarded-for", format!("203.0.113.{}", i + 1))
            .send()
            .await
            .unwrap();
        let r = common::Resp {
            status: r.status(),
            headers: r.headers().clone(),
            body: r.json().await.unwrap_or(Value::Null),
        };
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(r);
            break;
        }
        assert_eq!(r.status, StatusCode::OK);
    }
    let r = limited.expect("the burst of 3 is exceeded within 10 requests");
    assert_eq!(r.code(), "E_RATE_LIMITED");
    assert!(r.is_problem());
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    // Another user from the same address has their own allowance.
    let (_, other) = app.new_user();
    assert_eq!(
        app.get("/v1/me/enrollments", Some(&other)).await.status,
        StatusCode::OK
    );
    // And the limit recovers.
    let recovered = app
        .eventually(|| async {
            app.get("/v1/me/enrollments", Some(&token)).await.status == StatusCode::OK
        })
        .await;
    assert!(recovered);
}

async fn reconcile_settles_lost_answers_once_with_two_instances(app: TestApp) {
    // A: Toss approved, the answer was lost and the lookup failed: CONFIRMING here, DONE there.
    let a = app.paid_in_window(10_000).await;
    app.fault(json!({"mode": "reset", "afterProcessing": true, "operations": ["confirm"]}))
        .await;
    app.fault(json!({"mode": "status5xx", "count": 3, "operations": ["lookup"]}))
        .await;
    let r = app
        .confirm(&a.token, &a.payment_key, &a.order_id, 10_000)
        .await;
    assert!(r.status.is_server_error(), "{:?}", r.body);
    app.clear_faults().await;
    assert_eq!(app.order(&a.order_id).await.status, OrderStatus::Confirming);
    // B: the confirm never reached Toss (5xx before processing), lookup failed too:
    // CONFIRMING here, IN_PROGRESS there.
    let b = app.paid_in_window(10_000).await;
    app.fault(json!({"mode": "status5xx", "operations": ["confirm"]}))
        .await;
    app.fault(json!({"mode": "status5xx", "count": 3, "operations": ["lookup"]}))
        .await;
    let r = app
        .confirm(&b.token, &b.payment_key, &b.order_id, 10_000)
        .await;
    assert!(r.status.is_server_error(), "{:?}", r.body);
    app.clear_faults().await;
    assert_eq!(app.order(&b.order_id).await.status, OrderStatus::Confirming);
    assert_eq!(app.stats().await["confirmsExecuted"], 1);
    // Fresh orders are payments in progress; a minute on, both are the reconciler's backlog.
    let later = time::OffsetDateTime::now_utc() + flows::reconcile::BACKLOG_AFTER;
    let (backlog, _) = flows::reconcile::backlog(&app.app, later).await.unwrap();
    assert_eq!(backlog, 2);

    // Two instances at once: each order is leased by one of them and confirmed once.
    let (r1, r2) = tokio::join!(
        reconcile_once(&app.app, "instance-1"),
        reconcile_once(&app.app, "instance-2")
    );
    let (r1, r2) = (r1.unwrap(), r2.unwrap());
    assert_eq!(r1.leased + r2.leased, 2, "{r1:?} {r2:?}");
    assert_eq!(r1.paid + r2.paid, 2, "{r1:?} {r2:?}");
    for p in [&a, &b] {
        assert_eq!(app.order(&p.order_id).await.status, OrderStatus::Paid);
        assert_eq!(app.store.list_enrollments(p.user).await.unwrap().len(), 1);
    }
    assert_eq!(
        app.stats().await["confirmsExecuted"],
        2,
        "one charge per order"
    );
    let s = status(&app).await;
    assert_eq!(s["reconciler"]["backlog"], 0);
    assert!(s["reconciler"]["lastRunAt"].is_string());
    // Nothing left: another pass leases nothing.
    let again = reconcile_once(&app.app, "instance-1").await.unwrap();
    assert_eq!(again.leased, 0);
}

/// Test config: short breaker cooldown, reconciler grace of zero (tests call reconcile_once
/// themselves), tight rate limits only for the rate-limit test.
async fn spawn_fast(backend: common::Backend, limits: bool) -> TestApp {
    spawn_with(backend, |c| {
        c.circuit_cooldown = Duration::from_millis(500);
        c.reconcile_interval = Duration::ZERO;
        if limits {
            c.rate_limit = Some(RateLimit {
                per_second: 1,
                burst: 3,
            });
            c.rate_limit_confirm = Some(RateLimit {
                per_second: 1,
                burst: 2,
            });
        }
    })
    .await
}

/// The operator's view joins every piece: the seed's three alert rules, the refund SLA backlog,
/// and the circuit in both `GET /v1/admin/status` and `/metrics`; the reconciler pass also
/// settles a refund whose answer was lost.
async fn status_and_metrics_show_alerts_refunds_and_circuit(app: TestApp) {
    let s = status(&app).await;
    let rules: Vec<&str> = s["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules.len(), 3, "{s}");
    // Each rule shows its value against its threshold and its volume against its gate.
    for a in s["alerts"].as_array().unwrap() {
        assert!(a["value"].is_number() && a["threshold"].is_number(), "{a}");
        let (samples, min) = (
            a["samples"].as_u64().unwrap(),
            a["minSamples"].as_u64().unwrap(),
        );
        assert!(min > 0, "{a}");
        match a["state"].as_str().unwrap() {
            "not enough data" => assert!(samples < min, "{a}"),
            "ok" | "firing" => assert!(samples >= min, "{a}"),
            other => panic!("unexpected state {other}: {a}"),
        }
    }
    assert_eq!(s["refunds"]["slaSeconds"], 600);
    assert_eq!(s["refunds"]["stuck"], 0);

    // A refund whose cancel answer is lost and whose lookups fail stays REQUESTED...
    let p = app.paid_in_window(10_000).await;
    let c = app
        .confirm(&p.token, &p.payment_key, &p.order_id, 10_000)
        .await;
    assert_eq!(c.status, StatusCode::OK);
    let payment_id = c.body["paymentId"].as_str().unwrap().to_owned();
    app.fault(
        json!({"mode": "status5xx", "afterProcessing": true, "count": 1, "operations": ["cancel"]}),
    )
    .await;
    app.fault(json!({"mode": "status5xx", "count": 20, "operations": ["lookup", "cancel"]}))
        .await;
    let r = app
        .post(
            &format!("/v1/payments/{payment_id}/refund"),
            Some(&app.admin_token()),
            &json!({"reason": "lost answer"}),
        )
        .await;
    assert!(r.body["retryable"] == true, "{:?}", r.body);
    app.clear_faults().await;
    // ...until the reconciler pass settles it with Toss (which did cancel).
    // The failed lookups opened the circuit; the pass waits out the (test) cooldown of 0.5 s.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let report = loop {
        let report = reconcile_once(&app.app, "instance-r").await.unwrap();
        if !report.skipped_circuit_open || std::time::Instant::now() > deadline {
            break report;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(report.refunds_settled, 1, "{report:?}");
    let me = app.get("/v1/me/enrollments", Some(&p.token)).await;
    assert_eq!(me.body["items"][0]["status"], "REFUNDED");
    assert_eq!(app.stats().await["cancelsExecuted"], 1);

    // Open the circuit: five provider failures.
    let q = app.paid_in_window(10_000).await;
    app.fault(json!({"mode": "status5xx", "count": 5, "operations": ["lookup"]}))
        .await;
    for _ in 0..5 {
        app.get(&format!("/v1/orders/{}", q.order_id), Some(&q.token))
            .await;
    }
    assert_eq!(status(&app).await["circuit"]["state"], "open");
    let metrics = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    let text = metrics.text().await.unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("coursepay_circuit_state") && l.ends_with(" 2")),
        "circuit gauge open"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("coursepay_payments_paused"))
    );
}

/// While payments are paused (or the circuit is open), new confirms are refused, but a confirm
/// that already succeeded is still answered as the replay it is — from the database, without
/// Toss — so a buyer retrying never sees "unavailable" for a course they paid for.
async fn replays_are_answered_while_paused(app: TestApp) {
    let p = app.paid_in_window(10_000).await;
    let first = app
        .confirm(&p.token, &p.payment_key, &p.order_id, 10_000)
        .await;
    assert_eq!(first.status, StatusCode::OK);
    let fresh = app.paid_in_window(10_000).await;
    let r = app
        .post(
            "/v1/admin/payments/pause",
            Some(&app.admin_token()),
            &json!({"reason": "test"}),
        )
        .await;
    assert!(r.status.is_success(), "{:?}", r.body);
    app.app
        .replays
        .forget(&OrderId::parse(&p.order_id).unwrap());
    let again = app
        .confirm(&p.token, &p.payment_key, &p.order_id, 10_000)
        .await;
    assert_eq!(again.status, StatusCode::OK, "{:?}", again.body);
    assert_eq!(again.body["replayed"], true);
    assert_eq!(again.body["enrollmentId"], first.body["enrollmentId"]);
    let tampered = app.confirm(&p.token, &p.payment_key, &p.order_id, 1).await;
    assert_eq!(tampered.code(), "E_PAYMENTS_PAUSED");
    let blocked = app
        .confirm(&fresh.token, &fresh.payment_key, &fresh.order_id, 10_000)
        .await;
    assert_eq!(blocked.code(), "E_PAYMENTS_PAUSED");
    assert_eq!(app.confirm_calls().await, 1);
}

macro_rules! resilience_tests {
    ($($name:ident: $limits:expr),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::spawn_fast(super::common::Backend::Sqlite, $limits).await).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::spawn_fast(super::common::Backend::Postgres, $limits).await).await;
                }
            )+
        }
    };
}

resilience_tests!(
    breaker_opens_after_exactly_five_failures_and_recovers: false,
    declines_do_not_open_the_breaker: false,
    pause_blocks_new_charges_but_settles_approved_payments: false,
    pause_reaches_every_instance_within_a_second: false,
    rate_limit_answers_429_then_recovers: true,
    reconcile_settles_lost_answers_once_with_two_instances: false,
    status_and_metrics_show_alerts_refunds_and_circuit: false,
    replays_are_answered_while_paused: false,
);
