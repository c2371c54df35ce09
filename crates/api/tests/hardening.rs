//! Safe to put on the internet: the edge's timeouts and connection cap (raw TCP clients that
//! misbehave while normal requests go on), the per-request timeout, draining, the per-user
//! open-order cap, the reconciler's budget and priorities, and the retention purge.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Backend, TestApp, spawn_with};
use flows::config::Config;
use flows::reconcile::{LOOKUPS_AFTER_EXPIRY, reconcile_once};
use reqwest::StatusCode;
use serde_json::json;
use std::time::{Duration, Instant};
use store::NewOrder;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn edge(header: u64, keepalive: u64, max_connections: usize) -> impl FnOnce(&mut Config) {
    move |c: &mut Config| {
        c.edge.header_read_timeout = Duration::from_secs(header);
        c.edge.keepalive_timeout = Duration::from_secs(keepalive);
        c.edge.max_connections = max_connections;
    }
}

fn addr(t: &TestApp) -> String {
    t.base.trim_start_matches("http://").to_owned()
}

/// Read until the server closes the connection (EOF or reset); how long that took.
async fn closed_after(mut s: TcpStream, opened: Instant) -> Duration {
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return opened.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("connection still open after 10 s"),
        }
    }
}

/// 300 half-open connections (150 silent, 150 stuck inside their headers) are all closed
/// within the 1 s header timeout (plus scheduling slack), while a client keeps getting answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn half_open_connections_are_closed_while_requests_are_served() {
    let t = spawn_with(Backend::Sqlite, edge(1, 5, 1024)).await;
    let a = addr(&t);
    let mut holders = Vec::new();
    for i in 0..300 {
        let mut s = TcpStream::connect(&a).await.unwrap();
        let opened = Instant::now();
        if i % 2 == 1 {
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Unfinished: ")
                .await
                .unwrap();
        }
        holders.push(tokio::spawn(closed_after(s, opened)));
    }
    // Normal traffic meanwhile: every request answered, promptly.
    let started = Instant::now();
    let mut served = 0;
    let mut slowest = Duration::ZERO;
    while started.elapsed() < Duration::from_millis(1800) {
        let sent = Instant::now();
        let r = t.get("/healthz", None).await;
        assert_eq!(r.status, StatusCode::OK);
        slowest = slowest.max(sent.elapsed());
        served += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served >= 20, "only {served} requests served");
    assert!(slowest < Duration::from_millis(500), "slowest {slowest:?}");
    for h in holders {
        let after = h.await.unwrap();
        assert!(
            after >= Duration::from_millis(900) && after < Duration::from_millis(2500),
            "closed after {after:?}"
        );
    }
    let metrics = t.get("/metrics", None).await;
    assert_eq!(metrics.status, StatusCode::OK);
}

/// Dribbling a header byte by byte does not extend the deadline; an idle kept-alive connection
/// is closed after the keep-alive timeout (2 s here), not the header timeout (1 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dribbled_headers_are_cut_and_idle_connections_closed() {
    let t = spawn_with(Backend::Sqlite, edge(1, 2, 1024)).await;
    let a = addr(&t);

    let slow = TcpStream::connect(&a).await.unwrap();
    let opened = Instant::now();
    let cut = dribble_until_cut(slow, opened).await;
    assert!(
        cut >= Duration::from_millis(900) && cut < Duration::from_millis(2000),
        "{cut:?}"
    );

    // One full request, then silence: closed after the keep-alive timeout.
    let mut s = TcpStream::connect(&a).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let answered = Instant::now();
    let after = closed_after(s, answered).await;
    assert_keepalive_timeout(after, "an idle HTTP/1 connection");
}

/// An HTTP/2 connection (prior knowledge, as a proxy speaking h2c would open it): its request
/// sender, and its driver, which ends when the server closes the connection. With `ping`, the
/// client pings the server at that interval, idle or not (as a proxy keeping its pool warm).
async fn http2(
    t: &TestApp,
    ping: Option<Duration>,
) -> (
    hyper::client::conn::http2::SendRequest<axum::body::Body>,
    tokio::task::JoinHandle<()>,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let s = TcpStream::connect(&addr(t)).await.unwrap();
    let mut builder = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
    builder.timer(TokioTimer::new());
    if let Some(every) = ping {
        builder
            .keep_alive_interval(every)
            .keep_alive_while_idle(true);
    }
    let (sender, conn) = builder.handshake(TokioIo::new(s)).await.unwrap();
    let open = tokio::spawn(async move {
        let _ = conn.await;
    });
    (sender, open)
}

/// How long after `since` the server closed the connection that `open` drives.
async fn http2_closed_after(open: tokio::task::JoinHandle<()>, since: Instant) -> Duration {
    tokio::time::timeout(Duration::from_secs(10), open)
        .await
        .expect("HTTP/2 connection still open after 10 s")
        .unwrap();
    since.elapsed()
}

/// Closed by the keep-alive timeout of these tests (2 s), not earlier, not much later.
fn assert_keepalive_timeout(after: Duration, what: &str) {
    assert!(
        after >= Duration::from_millis(1800) && after < Duration::from_millis(3500),
        "{what} closed {after:?} after it went idle"
    );
}

/// After each pause, a `/healthz` on the HTTP/2 connection, answered 200; when the last answer
/// came.
async fn answered_after(
    t: &TestApp,
    sender: &mut hyper::client::conn::http2::SendRequest<axum::body::Body>,
    pauses: [Duration; 2],
) -> Instant {
    let mut answered = Instant::now();
    for pause in pauses {
        tokio::time::sleep(pause).await;
        let req = hyper::Request::get(format!("{}/healthz", t.base))
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = sender.send_request(req).await.unwrap_or_else(|e| {
            panic!("no answer {pause:?} after the last one, within the keep-alive timeout: {e}")
        });
        assert_eq!(resp.status(), StatusCode::OK);
        answered = Instant::now();
    }
    answered
}

/// HTTP/2 requests are answered in tasks of their own, so the end of one reaches the
/// connection's task by a wake-up, not through that task's own poll: an idle HTTP/2 connection
/// is closed after the keep-alive timeout like an HTTP/1 one, counted from its last answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_http2_connections_are_closed_after_the_keepalive_timeout() {
    let t = spawn_with(Backend::Sqlite, edge(1, 2, 1024)).await;
    let (mut sender, open) = http2(&t, None).await;
    let answered = answered_after(
        &t,
        &mut sender,
        [Duration::ZERO, Duration::from_millis(1200)],
    )
    .await;
    // The second request moved the deadline: 2 s from its answer, not from the first one's.
    let after = http2_closed_after(open, answered).await;
    assert_keepalive_timeout(after, "an HTTP/2 connection");
}

/// The frames an HTTP/2 client sends between requests (here a ping every 200 ms; in life also
/// settings acknowledgements and window updates) are not a request's headers: they neither put
/// the idle connection on the 1 s header clock (it once closed it before the next request) nor
/// keep it open past the keep-alive timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pings_on_an_idle_http2_connection_neither_cut_it_nor_keep_it_open() {
    let t = spawn_with(Backend::Sqlite, edge(1, 2, 1024)).await;
    let (mut sender, open) = http2(&t, Some(Duration::from_millis(200))).await;
    let answered = answered_after(
        &t,
        &mut sender,
        [Duration::ZERO, Duration::from_millis(1500)],
    )
    .await;
    let after = http2_closed_after(open, answered).await;
    assert_keepalive_timeout(after, "a pinged idle HTTP/2 connection");
}

/// A request the client cancels (an HTTP/2 RST_STREAM) ends in its own task after the
/// connection's task has gone back to sleep, with no request left in flight: that task is
/// woken to arm the keep-alive deadline, and the idle connection is closed 2 s later.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancelled_http2_request_leaves_the_connection_to_the_keepalive_timeout() {
    let t = spawn_with(Backend::Sqlite, edge(1, 2, 1024)).await;
    let (mut sender, open) = http2(&t, None).await;
    // A webhook whose body never ends: the handler waits for the rest of it.
    let (body, rx) = futures::channel::mpsc::unbounded::<Result<Vec<u8>, std::io::Error>>();
    body.unbounded_send(Ok(b"{\"eventType\":".to_vec()))
        .unwrap();
    let req = hyper::Request::post(format!("{}/v1/webhooks/toss", t.base))
        .header("content-type", "application/json")
        .body(axum::body::Body::from_stream(rx))
        .unwrap();
    let answer = tokio::spawn(sender.send_request(req));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Still open in flight, past the header timeout: a request in flight has no deadline.
    assert!(!open.is_finished(), "closed while a request was in flight");
    body.unbounded_send(Err(std::io::Error::other("the client gives up")))
        .unwrap();
    let cancelled = Instant::now();
    assert!(
        answer.await.unwrap().is_err(),
        "a cancelled request got an answer"
    );
    let after = http2_closed_after(open, cancelled).await;
    assert_keepalive_timeout(after, "an HTTP/2 connection whose request was cancelled");
}

/// Sends a request's headers a byte per 100 ms; how long after `since` the server cut it.
async fn dribble_until_cut(mut slow: TcpStream, since: Instant) -> Duration {
    let header = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    for byte in header {
        if slow.write_all(&[*byte]).await.is_err() {
            return since.elapsed();
        }
        let mut probe = [0u8; 64];
        match tokio::time::timeout(Duration::from_millis(100), slow.read(&mut probe)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return since.elapsed(),
            _ => {}
        }
    }
    panic!("a dribbling client was never cut");
}

/// On a kept-alive connection the next request's headers are timed from its first byte: the
/// header timeout (1 s here) cuts it, although the keep-alive deadline (4 s from the answer) is
/// further away.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dribbled_headers_on_a_kept_alive_connection_are_cut() {
    let t = spawn_with(Backend::Sqlite, edge(1, 4, 1024)).await;
    let mut s = TcpStream::connect(&addr(&t)).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Idle past the first request's header deadline, so only the keep-alive one is pending.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let cut = dribble_until_cut(s, Instant::now()).await;
    assert!(
        cut >= Duration::from_millis(900) && cut < Duration::from_millis(2000),
        "{cut:?}"
    );
}

/// With a cap of 4 connections, 4 silent clients hold every slot: a fifth client is served only
/// once the header timeout frees one (never refused, never served early).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connection_cap_makes_extra_clients_wait() {
    let t = spawn_with(Backend::Sqlite, edge(1, 5, 4)).await;
    let a = addr(&t);
    let mut holders = Vec::new();
    for _ in 0..4 {
        holders.push(TcpStream::connect(&a).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let r = reqwest::Client::new()
        .get(format!("{}/healthz", t.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(700) && waited < Duration::from_millis(3000),
        "the fifth client waited {waited:?}"
    );
    drop(holders);
}

/// A request that outlives HTTP_REQUEST_TIMEOUT_SECONDS is answered with a retryable problem;
/// the confirm behind it still settles the order.
async fn slow_request_times_out_with_a_problem_and_the_confirm_settles(t: TestApp) {
    let p = t.paid_in_window(10_000).await;
    t.fault(json!({"mode": "delay", "delayMs": 1500, "operations": ["confirm"]}))
        .await;
    let started = Instant::now();
    let r = t
        .confirm(&p.token, &p.payment_key, &p.order_id, p.amount)
        .await;
    assert!(started.elapsed() < Duration::from_millis(1400));
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", r.body);
    assert!(r.is_problem());
    assert_eq!(r.code(), "E_REQUEST_TIMEOUT");
    assert_eq!(r.body["retryable"], true);
    let settled = t
        .eventually(|| async { t.order(&p.order_id).await.status == domain::OrderStatus::Paid })
        .await;
    assert!(settled, "the confirm's work finished after the timeout");
    // The buyer's retry is answered from the database.
    let again = t
        .confirm(&p.token, &p.payment_key, &p.order_id, p.amount)
        .await;
    assert_eq!(again.status, StatusCode::OK, "{:?}", again.body);
    assert_eq!(t.confirm_calls().await, 1);
}

async fn readyz_is_503_while_draining(t: TestApp) {
    assert_eq!(t.get("/readyz", None).await.status, StatusCode::OK);
    t.app.shutdown.begin();
    let r = t.get("/readyz", None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.is_problem());
    assert_eq!(r.code(), "E_SERVICE_UNAVAILABLE");
    // Liveness is unaffected.
    assert_eq!(t.get("/healthz", None).await.status, StatusCode::OK);
}

/// MAX_OPEN_ORDERS_PER_USER: the next checkout is a clear 409 that creates nothing; paying one
/// order makes room.
async fn open_order_cap_is_a_clear_problem(t: TestApp) {
    let (user, token) = t.new_user();
    let mut courses = Vec::new();
    for _ in 0..3 {
        courses.push(t.create_course(10_000).await);
    }
    let first = t.checkout(&token, &courses[0]).await;
    t.checkout(&token, &courses[1]).await;
    let r = t
        .post(
            "/v1/checkout",
            Some(&token),
            &json!({"courseId": courses[2]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert!(r.is_problem());
    assert_eq!(r.code(), "E_TOO_MANY_OPEN_ORDERS");
    assert_eq!(r.body["retryable"], false);
    assert!(t.app.store.list_enrollments(user).await.unwrap().is_empty());
    // Another buyer is not affected.
    let (_, other) = t.new_user();
    t.checkout(&other, &courses[2]).await;
    // Paying one of the two frees a slot.
    let order_id = first["orderId"].as_str().unwrap();
    let key = t.buyer_pays(order_id, 10_000).await;
    assert_eq!(
        t.confirm(&token, &key, order_id, 10_000).await.status,
        StatusCode::OK
    );
    t.checkout(&token, &courses[2]).await;
    // The code is in the catalog every locale serves.
    for locale in ["ko", "en"] {
        let m = t.get(&format!("/v1/i18n/{locale}"), None).await;
        assert!(
            m.body["ui.payment.error.E_TOO_MANY_OPEN_ORDERS"].is_string(),
            "{locale}"
        );
    }
}

/// `n` PENDING orders for one course, each of another buyer, created straight in the store.
async fn abandoned(t: &TestApp, n: usize, created: OffsetDateTime, expires: OffsetDateTime) {
    let course = t.create_course(10_000).await;
    let course = domain::CourseId::parse(&course).unwrap();
    for _ in 0..n {
        let user = domain::UserId::new();
        t.store
            .create_order(NewOrder {
                order_id: domain::OrderId::generate(),
                user_id: user,
                course_id: course,
                amount: domain::Money::new(10_000).unwrap(),
                order_name: "Course A".into(),
                now: created,
                expires_at: expires,
                ctx: store::EventContext::new(format!("user:{user}"), None, created),
                max_open_per_user: None,
            })
            .await
            .unwrap();
    }
}

async fn lookups(t: &TestApp) -> u64 {
    t.stats().await["lookupCalls"].as_u64().unwrap()
}

/// 500 abandoned checkouts, all older than one lost answer (Toss approved, our confirm never
/// heard): the first pass, within its budget of 50 lookups, settles the lost answer.
async fn abandoned_orders_do_not_delay_a_lost_answer(t: TestApp) {
    let now = OffsetDateTime::now_utc();
    abandoned(
        &t,
        500,
        now - time::Duration::minutes(5),
        now + time::Duration::minutes(25),
    )
    .await;
    let lost = t.paid_in_window(10_000).await;
    t.fault(json!({"mode": "reset", "afterProcessing": true, "operations": ["confirm"]}))
        .await;
    t.fault(json!({"mode": "status5xx", "count": 3, "operations": ["lookup"]}))
        .await;
    let r = t
        .confirm(&lost.token, &lost.payment_key, &lost.order_id, 10_000)
        .await;
    assert!(r.status.is_server_error(), "{:?}", r.body);
    t.clear_faults().await;
    assert_eq!(
        t.order(&lost.order_id).await.status,
        domain::OrderStatus::Confirming
    );

    let before = lookups(&t).await;
    let started = Instant::now();
    let report = reconcile_once(&t.app, "budget").await.unwrap();
    let took = started.elapsed();
    assert_eq!(
        t.order(&lost.order_id).await.status,
        domain::OrderStatus::Paid,
        "{report:?}"
    );
    assert_eq!(report.leased, 50, "{report:?}");
    assert_eq!(report.paid, 1, "{report:?}");
    let spent = lookups(&t).await - before;
    assert!(spent <= 51, "{spent} lookups in one pass");
    assert!(took < Duration::from_secs(10), "pass took {took:?}");
    // The rest wait their turn: 450 were not even leased.
    let (open, _) = t
        .store
        .open_order_backlog(OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(open, 500);
}

/// An abandoned checkout past its expiry is looked up LOOKUPS_AFTER_EXPIRY times, then expired
/// without asking Toss again.
async fn expired_abandoned_orders_are_looked_up_a_bounded_number_of_times(t: TestApp) {
    let now = OffsetDateTime::now_utc();
    // Expired a minute ago: within Toss's confirm window, so "not found" alone does not end it.
    abandoned(
        &t,
        2,
        now - time::Duration::minutes(31),
        now - time::Duration::minutes(1),
    )
    .await;
    let before = lookups(&t).await;
    for pass in 0..LOOKUPS_AFTER_EXPIRY {
        let report = reconcile_once(&t.app, "bounded").await.unwrap();
        assert_eq!(report.leased, 2, "pass {pass}: {report:?}");
        assert_eq!(report.still_open, 2, "pass {pass}: {report:?}");
        // Wait out the lease (TOSS_TIMEOUT × 4 + interval = 1 s here).
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    assert_eq!(lookups(&t).await - before, 2 * LOOKUPS_AFTER_EXPIRY as u64);
    let report = reconcile_once(&t.app, "bounded").await.unwrap();
    assert_eq!(report.abandoned, 2, "{report:?}");
    assert_eq!(report.leased, 0, "{report:?}");
    assert_eq!(lookups(&t).await - before, 2 * LOOKUPS_AFTER_EXPIRY as u64);
    let (open, _) = t
        .store
        .open_order_backlog(OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(open, 0);
}

/// The purge deletes expired idempotency keys and one-time tokens and counts them in
/// /metrics; live rows stay usable.
async fn purge_deletes_expired_rows_and_counts_them(t: TestApp) {
    let now = OffsetDateTime::now_utc();
    let past = now - time::Duration::minutes(1);
    for i in 0..7 {
        t.store
            .remember_idempotency_key("confirm:purge", &format!("k{i}"), "fp", past, past)
            .await
            .unwrap();
        t.store
            .remember_once("webhook-sig", &format!("purge-{i}"), past, past)
            .await
            .unwrap();
    }
    t.store
        .remember_once(
            "webhook-sig",
            "purge-live",
            now,
            now + time::Duration::minutes(10),
        )
        .await
        .unwrap();
    let purged = flows::ops::retention::purge_once(&t.app, now)
        .await
        .unwrap();
    assert!(purged >= 14, "{purged}");
    assert!(
        t.store
            .purge_expired(now, 100)
            .await
            .unwrap()
            .iter()
            .all(|p| p.rows == 0),
        "nothing expired is left"
    );
    assert!(
        !t.store
            .remember_once("webhook-sig", "purge-live", now, now)
            .await
            .unwrap(),
        "a live mark survives the purge"
    );
    let text = t
        .http
        .get(format!("{}/metrics", t.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("coursepay_purged_rows_total{")
                && l.contains("table=\"one_time_tokens\"")
                && l.contains("kind=\"webhook-sig\"")
                && !l.ends_with(" 0")),
        "{text}"
    );
}

macro_rules! both {
    ($($name:ident => $tweak:expr),+ $(,)?) => {
        mod sqlite {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(spawn_with(Backend::Sqlite, $tweak).await).await;
                }
            )+
        }
        mod postgres {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(spawn_with(Backend::Postgres, $tweak).await).await;
                }
            )+
        }
    };
}

both!(
    slow_request_times_out_with_a_problem_and_the_confirm_settles => |c: &mut Config| {
        c.edge.request_timeout = Duration::from_secs(1);
    },
    readyz_is_503_while_draining => |_: &mut Config| {},
    open_order_cap_is_a_clear_problem => |c: &mut Config| {
        c.edge.max_open_orders_per_user = 2;
    },
    abandoned_orders_do_not_delay_a_lost_answer => |c: &mut Config| {
        c.edge.reconcile_budget = 50;
        c.reconcile_interval = Duration::ZERO;
        c.circuit_cooldown = Duration::from_millis(200);
    },
    expired_abandoned_orders_are_looked_up_a_bounded_number_of_times => |c: &mut Config| {
        c.toss_timeout = Duration::from_millis(250);
        c.reconcile_interval = Duration::ZERO;
    },
    purge_deletes_expired_rows_and_counts_them => |_: &mut Config| {},
);
