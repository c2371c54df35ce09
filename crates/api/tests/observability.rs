//! Observability over real HTTP: the summary log line on success, on every error class and on
//! a panic (every field present, secrets absent), traceparent from the client to Toss,
//! `/metrics` counts after a known sequence of requests, and the exposition passing
//! `promtool check metrics` (promtool must be installed: its absence fails the test).
//!
//! The metrics recorder is process-global: tests here hold [`GATE`] shared and the test that
//! asserts on metric deltas holds it exclusively, so no other request moves its counters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Resp, TestApp};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;

static GATE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

store::per_backend!(
    |b| common::spawn(b).await;
    log_line_is_complete_on_success_and_carries_the_trace,
    log_line_is_complete_on_every_error_class,
    metrics_count_a_known_sequence_of_requests,
    a_client_that_leaves_mid_confirm_still_gets_one_line,
);

/// The fields every summary line has (null where unknown): the seed's ten plus ours.
const FIELDS: &[&str] = &[
    "timestamp",
    "level",
    "message",
    "request_id",
    "function_name",
    "provider",
    "provider_tx_id",
    "enrollment_id",
    "course_id",
    "user_id",
    "status",
    "error_code",
    "latency_ms",
    "http_status",
    "method",
    "path",
    "route",
    "order_id",
    "trace_id",
    "db_round_trips",
    "auth_hash",
];

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn rid() -> String {
    format!("obs-{}", uuid::Uuid::new_v4().simple())
}

/// A request with a fresh X-Request-Id; returns the response and that id.
async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Vec<u8>>,
    headers: &[(&str, &str)],
) -> (Resp, String) {
    let id = rid();
    let mut req = app
        .http
        .request(method, format!("{}{}", app.base, path))
        .header("x-request-id", &id);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let hdrs = r.headers().clone();
    let bytes = r.bytes().await.unwrap();
    (
        Resp {
            status,
            headers: hdrs,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        },
        id,
    )
}

/// The summary line of request `id`, checked for completeness.
fn line_for(id: &str) -> Value {
    let buf = flows::logging::capture();
    let lines: Vec<Value> = flows::logging::captured_lines(&buf)
        .into_iter()
        .filter(|l| l["message"] == "request" && l["request_id"] == id)
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "exactly one summary line for {id}: {lines:?}"
    );
    let line = lines.into_iter().next().unwrap();
    let obj = line.as_object().unwrap();
    for f in FIELDS {
        assert!(obj.contains_key(*f), "{f} missing from {line}");
    }
    assert!(line["latency_ms"].is_u64(), "{line}");
    assert!(line["db_round_trips"].is_u64(), "{line}");
    assert!(line["timestamp"].is_string(), "{line}");
    line
}

/// A line for an error answer: consistent with the problem body and the status.
fn assert_error_line(r: &Resp, id: &str, function_name: Option<&str>) -> Value {
    let line = line_for(id);
    assert!(r.is_problem(), "{:?}", r.body);
    assert_eq!(line["http_status"], r.status.as_u16(), "{line}");
    assert_eq!(line["error_code"], r.code(), "{line}");
    assert_eq!(line["status"], "error", "{line}");
    assert_eq!(r.body["requestId"], id);
    assert_eq!(
        line["level"],
        if r.status.is_server_error() {
            "ERROR"
        } else {
            "INFO"
        }
    );
    assert_eq!(line["function_name"].as_str(), function_name, "{line}");
    line
}

async fn log_line_is_complete_on_success_and_carries_the_trace(app: TestApp) {
    let _gate = GATE.read().await;
    let p = app.paid_in_window(10_000).await;
    let body = json!({"paymentKey": p.payment_key, "orderId": p.order_id, "amount": 10_000});
    let (r, id) = send(
        &app,
        reqwest::Method::POST,
        "/v1/payments/confirm",
        Some(&p.token),
        Some(body.to_string().into_bytes()),
        &[("traceparent", TRACEPARENT)],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.headers["x-request-id"], id.as_str());
    let line = line_for(&id);
    assert_eq!(line["function_name"], "confirm-payment");
    assert_eq!(line["status"], "ENROLLED");
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["error_code"], Value::Null);
    assert_eq!(line["http_status"], 200);
    assert_eq!(line["method"], "POST");
    assert_eq!(line["path"], "/v1/payments/confirm");
    assert_eq!(line["route"], "/v1/payments/confirm");
    assert_eq!(line["provider"], "toss");
    assert_eq!(line["provider_tx_id"], p.payment_key.as_str());
    assert_eq!(line["order_id"], p.order_id.as_str());
    assert_eq!(line["course_id"], p.course_id.as_str());
    assert_eq!(line["user_id"], p.user.to_string());
    assert_eq!(line["enrollment_id"], r.body["enrollmentId"]);
    assert_eq!(line["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(
        line["db_round_trips"].as_u64().unwrap(),
        u64::from(r.round_trips())
    );
    assert!(line["db_round_trips"].as_u64().unwrap() >= 1);
    // The credential is identified by a hash, never written.
    let auth = format!("Bearer {}", p.token);
    assert_eq!(
        line["auth_hash"],
        flows::logging::credential_hash(auth.as_bytes())
    );
    assert_eq!(line["auth_hash"].as_str().unwrap().len(), 16);

    // The same traceparent reached Toss, with the order-derived Idempotency-Key.
    let seen = app.get("/toss-sandbox/sandbox/requests", None).await.body;
    let confirms: Vec<&Value> = seen
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["path"] == "/v1/payments/confirm")
        .collect();
    assert_eq!(confirms.len(), 1, "{seen}");
    assert_eq!(confirms[0]["traceparent"], TRACEPARENT);
    assert!(confirms[0]["idempotencyKey"].is_string());
    assert!(confirms[0].get("authorization").is_none());

    // Without a traceparent: trace_id null, nothing invented for Toss; a bad X-Request-Id is
    // replaced by a fresh one.
    let (r, id) = send(
        &app,
        reqwest::Method::GET,
        &format!("/v1/courses/{}", p.course_id),
        None,
        None,
        &[("traceparent", "garbage")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let line = line_for(&id);
    assert_eq!(line["trace_id"], Value::Null);
    assert_eq!(line["route"], "/v1/courses/{courseId}");
    assert_eq!(line["function_name"], "get-course");
    assert_eq!(line["course_id"], Value::Null);
    let bad = app
        .http
        .get(format!("{}/healthz", app.base))
        .header("x-request-id", "has space")
        .send()
        .await
        .unwrap();
    let fresh = bad.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(fresh, "has space");
    let line = line_for(&fresh);
    assert_eq!(line["function_name"], "healthz");
}

async fn log_line_is_complete_on_every_error_class(app: TestApp) {
    let _gate = GATE.read().await;
    let post = reqwest::Method::POST;
    let get = reqwest::Method::GET;
    let course = app.create_course(10_000).await;
    let (_, user_token) = app.new_user();
    let admin = app.admin_token();
    let mut tokens = vec![user_token.clone(), admin.clone()];

    // 400: malformed JSON, refused by the extractor: the route's name is still logged.
    let (r, id) = send(
        &app,
        post.clone(),
        "/v1/checkout",
        Some(&user_token),
        Some(b"{not json".to_vec()),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let line = assert_error_line(&r, &id, Some("checkout"));
    assert_eq!(line["route"], "/v1/checkout");

    // 401: no token on confirm.
    let (r, id) = send(
        &app,
        post.clone(),
        "/v1/payments/confirm",
        None,
        Some(b"{}".to_vec()),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let line = assert_error_line(&r, &id, Some("confirm-payment"));
    assert_eq!(line["user_id"], Value::Null);
    assert_eq!(line["auth_hash"], Value::Null);

    // 401: a forged token; it never appears in the log.
    let forged = format!("{}x", &user_token[..user_token.len() - 1]);
    tokens.push(forged.clone());
    let (r, id) = send(
        &app,
        get.clone(),
        "/v1/me/enrollments",
        Some(&forged),
        None,
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_error_line(&r, &id, Some("list-my-enrollments"));

    // 403: a user on an admin route.
    let (r, id) = send(
        &app,
        post.clone(),
        "/v1/admin/courses",
        Some(&user_token),
        Some(
            json!({"title": "x", "price": 1000})
                .to_string()
                .into_bytes(),
        ),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_error_line(&r, &id, Some("create-course"));

    // 404: unknown path (route null, raw path kept in `path`) and unknown course.
    let (r, id) = send(&app, get.clone(), "/v1/nowhere/42", None, None, &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let line = assert_error_line(&r, &id, Some("not-found"));
    assert_eq!(line["route"], Value::Null);
    assert_eq!(line["path"], "/v1/nowhere/42");
    let (r, id) = send(
        &app,
        get.clone(),
        &format!("/v1/courses/{}", uuid::Uuid::new_v4()),
        None,
        None,
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_error_line(&r, &id, Some("get-course"));

    // 405.
    let (r, id) = send(
        &app,
        reqwest::Method::DELETE,
        "/v1/courses",
        None,
        None,
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_error_line(&r, &id, Some("method-not-allowed"));

    // 409: already enrolled.
    let p = app.paid_in_window(10_000).await;
    tokens.push(p.token.clone());
    let ok = app
        .confirm(&p.token, &p.payment_key, &p.order_id, 10_000)
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    let (r, id) = send(
        &app,
        post.clone(),
        "/v1/checkout",
        Some(&p.token),
        Some(json!({"courseId": p.course_id}).to_string().into_bytes()),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    let line = assert_error_line(&r, &id, Some("checkout"));
    assert_eq!(line["user_id"], p.user.to_string());

    // 402: declined card; the provider fields are filled.
    let (declined_user, declined_token) = app.new_user();
    tokens.push(declined_token.clone());
    let order = app.checkout(&declined_token, &course).await;
    let order_id = order["orderId"].as_str().unwrap();
    let key = app
        .buyer_pays_with(order_id, 10_000, "REJECT_CARD_PAYMENT")
        .await;
    let body = json!({"paymentKey": key, "orderId": order_id, "amount": 10_000});
    let (r, id) = send(
        &app,
        post.clone(),
        "/v1/payments/confirm",
        Some(&declined_token),
        Some(body.to_string().into_bytes()),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED, "{:?}", r.body);
    let line = assert_error_line(&r, &id, Some("confirm-payment"));
    assert_eq!(line["provider"], "toss");
    assert_eq!(line["provider_tx_id"], key.as_str());
    assert_eq!(line["user_id"], declined_user.to_string());
    assert_eq!(line["enrollment_id"], Value::Null);

    // 503/504: Toss failing (5xx without approval, then a timeout after approval).
    for fault in [
        json!({"mode": "status5xx", "count": 20}),
        json!({"mode": "timeout", "afterProcessing": true, "count": 1, "operations": ["confirm"]}),
    ] {
        let p = app.paid_in_window(10_000).await;
        tokens.push(p.token.clone());
        app.fault(fault.clone()).await;
        if fault["mode"] == "timeout" {
            app.fault(json!({"mode": "status5xx", "count": 5, "operations": ["lookup"]}))
                .await;
        }
        let body = json!({"paymentKey": p.payment_key, "orderId": p.order_id, "amount": 10_000});
        let (r, id) = send(
            &app,
            post.clone(),
            "/v1/payments/confirm",
            Some(&p.token),
            Some(body.to_string().into_bytes()),
            &[],
        )
        .await;
        assert!(
            r.status == StatusCode::SERVICE_UNAVAILABLE || r.status == StatusCode::GATEWAY_TIMEOUT,
            "{fault}: {:?}",
            r.body
        );
        let line = assert_error_line(&r, &id, Some("confirm-payment"));
        assert_eq!(line["level"], "ERROR");
        app.clear_faults().await;
    }

    // No credential anywhere in the log: tokens, keys, the Basic auth header sent to Toss.
    let buf = flows::logging::capture();
    let text = String::from_utf8_lossy(&buf.lock().unwrap()).into_owned();
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:", flows::config::DEV_TOSS_SECRET_KEY));
    tokens.push(basic);
    tokens.extend(app.app.config.secrets());
    for secret in &tokens {
        assert!(!text.contains(secret.as_str()), "a credential was logged");
    }
    assert!(!text.to_ascii_lowercase().contains("bearer "));
}

/// A client that gives up mid-confirm: the confirm finishes in its detached task and is
/// counted with what it really did — enrolled, or declined — never as `client_closed`; its one
/// summary line carries the 499 and that outcome. Exclusive on [`GATE`]: it reads counter deltas.
async fn a_client_that_leaves_mid_confirm_still_gets_one_line(app: TestApp) {
    let _gate = GATE.write().await;
    let (_, before) = scrape(&app).await;
    let confirms = |m: &HashMap<String, f64>, outcome: &str| {
        sum(m, "coursepay_confirm_total", &[("outcome", outcome)])
    };
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let buf = flows::logging::capture();
    // (how the buyer pays, the order's status afterwards, the line's status and error code)
    let cases = [
        (
            "approve",
            domain::OrderStatus::Paid,
            "ENROLLED",
            Value::Null,
        ),
        (
            "REJECT_CARD_PAYMENT",
            domain::OrderStatus::Failed,
            "error",
            json!("E_PAYMENT_REJECTED"),
        ),
    ];
    for (pays, final_status, line_status, error_code) in cases {
        let course = app.create_course(10_000).await;
        let (_, token) = app.new_user();
        let order = app.checkout(&token, &course).await;
        let order_id = order["orderId"].as_str().unwrap().to_owned();
        let key = app.buyer_pays_with(&order_id, 10_000, pays).await;
        app.fault(json!({"mode": "delay", "delayMs": 800, "operations": ["confirm"]}))
            .await;
        let id = rid();
        let gone = impatient
            .post(format!("{}/v1/payments/confirm", app.base))
            .bearer_auth(&token)
            .header("x-request-id", &id)
            .json(&json!({"paymentKey": key, "orderId": order_id, "amount": 10_000}))
            .send()
            .await;
        assert!(gone.is_err(), "the client gave up");
        let logged = app
            .eventually(|| {
                let found = flows::logging::captured_lines(&buf)
                    .iter()
                    .any(|l| l["message"] == "request" && l["request_id"] == id);
                async move { found }
            })
            .await;
        assert!(logged, "no summary line for a request whose client left");
        let line = line_for(&id);
        assert_eq!(line["http_status"], 499, "{line}");
        assert_eq!(line["function_name"], "confirm-payment");
        // Written once the detached confirm ended, with what it did.
        assert_eq!(line["status"], line_status, "{line}");
        assert_eq!(line["error_code"], error_code, "{line}");
        assert_eq!(app.order(&order_id).await.status, final_status);
    }
    let (_, after) = scrape(&app).await;
    for (outcome, n) in [
        ("enrolled", 1.0),
        ("E_PAYMENT_REJECTED", 1.0),
        ("client_closed", 0.0),
    ] {
        assert_eq!(
            confirms(&after, outcome) - confirms(&before, outcome),
            n,
            "{outcome}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_panic_is_caught_logged_and_rendered_as_problem_json() {
    let _gate = GATE.read().await;
    flows::logging::capture();
    let routes = axum::Router::new().route(
        "/boom",
        axum::routing::get(|| async {
            if std::hint::black_box(true) {
                panic!("handler exploded");
            }
            "unreachable"
        }),
    );
    let router = api::http::layers(routes);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(api::serve(listener, router, std::future::pending()));
    let id = rid();
    let r = reqwest::Client::new()
        .get(format!("http://{addr}/boom"))
        .header("x-request-id", &id)
        .header("traceparent", TRACEPARENT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        r.headers()["content-type"],
        "application/problem+json",
        "panic answered as problem+json"
    );
    assert_eq!(r.headers()["x-request-id"], id.as_str());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "E_INTERNAL");
    assert!(!body.to_string().contains("exploded"), "panic text leaked");
    let line = line_for(&id);
    assert_eq!(line["http_status"], 500);
    assert_eq!(line["error_code"], "E_INTERNAL");
    assert_eq!(line["status"], "error");
    assert_eq!(line["level"], "ERROR");
    assert_eq!(line["route"], "/boom");
    assert_eq!(line["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
}

/// Parse the exposition: series (name + labels as rendered) → value.
fn parse(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// Sum of every series of `name` whose labels include all of `labels`.
fn sum(m: &HashMap<String, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    m.iter()
        .filter(|(series, _)| {
            let (n, rest) = series.split_once('{').unwrap_or((series.as_str(), ""));
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|(_, v)| v)
        .sum()
}

async fn scrape(app: &TestApp) -> (String, HashMap<String, f64>) {
    let r = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = r.text().await.unwrap();
    let m = parse(&text);
    (text, m)
}

async fn metrics_count_a_known_sequence_of_requests(app: TestApp) {
    let _gate = GATE.write().await;
    let (_, before) = scrape(&app).await;
    let delta = |after: &HashMap<String, f64>, name: &str, labels: &[(&str, &str)]| {
        sum(after, name, labels) - sum(&before, name, labels)
    };

    // One enrollment, its replay, a declined card and a tampered amount.
    let p = app.paid_in_window(10_000).await;
    let r = app
        .confirm(&p.token, &p.payment_key, &p.order_id, 10_000)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .confirm(&p.token, &p.payment_key, &p.order_id, 10_000)
        .await;
    assert_eq!(r.body["replayed"], true);
    let (_, token) = app.new_user();
    let order = app.checkout(&token, &p.course_id).await;
    let order_id = order["orderId"].as_str().unwrap();
    let key = app
        .buyer_pays_with(order_id, 10_000, "REJECT_CARD_PAYMENT")
        .await;
    let r = app.confirm(&token, &key, order_id, 10_000).await;
    assert_eq!(r.code(), "E_PAYMENT_REJECTED");
    let q = app.paid_in_window(20_000).await;
    let r = app
        .confirm(&q.token, &q.payment_key, &q.order_id, 1_000)
        .await;
    assert_eq!(r.code(), "E_AMOUNT_MISMATCH");
    // Two reads of one course, one unknown path: templates, never raw paths.
    for _ in 0..2 {
        let r = app.get(&format!("/v1/courses/{}", p.course_id), None).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let stray = uuid::Uuid::new_v4().simple().to_string();
    let r = app.get(&format!("/v1/stray/{stray}"), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let (text, after) = scrape(&app).await;
    let http = "coursepay_http_requests_total";
    let course_route = [
        ("route", "/v1/courses/{courseId}"),
        ("method", "GET"),
        ("status", "200"),
    ];
    assert_eq!(delta(&after, http, &course_route), 2.0, "{text}");
    assert_eq!(
        delta(
            &after,
            http,
            &[("route", "unmatched"), ("method", "GET"), ("status", "404")]
        ),
        1.0
    );
    assert_eq!(
        delta(
            &after,
            http,
            &[("route", "/v1/payments/confirm"), ("status", "200")]
        ),
        2.0
    );
    // The previous scrape is counted too (its line is written after the body is rendered).
    assert_eq!(delta(&after, http, &[("route", "/metrics")]), 1.0);
    assert!(!text.contains(&stray), "raw path in a label");
    assert!(!text.contains(&p.course_id), "raw id in a label");
    assert!(!text.contains(&p.order_id), "raw id in a label");

    let confirms = "coursepay_confirm_total";
    for (outcome, n) in [
        ("enrolled", 1.0),
        ("replayed", 1.0),
        ("E_PAYMENT_REJECTED", 1.0),
        ("E_AMOUNT_MISMATCH", 1.0),
    ] {
        assert_eq!(
            delta(&after, confirms, &[("outcome", outcome)]),
            n,
            "{outcome}"
        );
    }
    assert_eq!(
        delta(&after, "coursepay_confirm_duration_seconds_count", &[]),
        4.0
    );
    assert_eq!(
        delta(
            &after,
            "coursepay_http_request_duration_seconds_count",
            &[("route", "/v1/payments/confirm")]
        ),
        4.0
    );
    assert_eq!(
        delta(
            &after,
            "coursepay_db_round_trips_count",
            &[("route", "/v1/payments/confirm")]
        ),
        4.0
    );
    assert!(
        delta(
            &after,
            "coursepay_db_round_trips_sum",
            &[("route", "/v1/payments/confirm")]
        ) >= 2.0
    );
    // Toss: the fresh confirm approved, the declined one answered an error; the replay and
    // the tampered amount never reached Toss.
    let toss = "coursepay_toss_calls_total";
    assert_eq!(
        delta(&after, toss, &[("operation", "confirm"), ("outcome", "ok")]),
        1.0
    );
    assert_eq!(
        delta(
            &after,
            toss,
            &[("operation", "confirm"), ("outcome", "api_error")]
        ),
        1.0
    );
    assert_eq!(
        delta(
            &after,
            "coursepay_toss_call_duration_seconds_count",
            &[("operation", "confirm")]
        ),
        2.0
    );
    // Histogram buckets suited to latency, with the 1.5 s edge.
    assert!(text.contains("coursepay_confirm_duration_seconds_bucket{le=\"1.5\"}"));
    assert!(text.contains("coursepay_confirm_duration_seconds_bucket{le=\"0.005\"}"));
    // Gauges and counters other parts set exist from the first scrape.
    for name in [
        "coursepay_circuit_state",
        "coursepay_payments_paused",
        "coursepay_webhook_invalid_signatures_total",
        "coursepay_reconciler_backlog",
        "coursepay_oldest_open_order_age_seconds",
    ] {
        assert!(
            after.keys().any(|k| k.split('{').next() == Some(name)),
            "{name} missing"
        );
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} undescribed"
        );
    }
    for rule in flows::ops::alerts::RULES {
        assert!(
            text.contains(&format!("coursepay_alert_firing{{rule=\"{rule}\"}}")),
            "{rule}"
        );
    }
    // Counters of rare events exist from startup, every label value at 0 or more.
    use flows::ops::metrics::{ConnectionTimeout, purge_labels};
    let has = |name: &str, labels: &[(&str, &str)]| {
        text.lines().any(|l| {
            l.starts_with(&format!("{name}{{"))
                && labels
                    .iter()
                    .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
    };
    for reason in ConnectionTimeout::ALL {
        let name = "coursepay_http_connections_timed_out_total";
        assert!(
            has(name, &[("reason", reason.as_str())]),
            "{name} {reason:?}"
        );
        assert!(text.contains(&format!("# HELP {name} ")));
    }
    for (table, kind) in purge_labels() {
        let name = "coursepay_purged_rows_total";
        assert!(
            has(name, &[("table", table), ("kind", kind)]),
            "{table} {kind}"
        );
        assert!(text.contains(&format!("# HELP {name} ")));
    }

    // Backlog: the open order left by the checkout becomes backlog once it has waited.
    let now = time::OffsetDateTime::now_utc();
    flows::ops::metrics::refresh_backlog(&app.app, now).await;
    let m = parse(&flows::ops::metrics::render());
    assert_eq!(sum(&m, "coursepay_reconciler_backlog", &[]), 0.0);
    flows::ops::metrics::refresh_backlog(&app.app, now + time::Duration::minutes(5)).await;
    let m = parse(&flows::ops::metrics::render());
    assert!(sum(&m, "coursepay_reconciler_backlog", &[]) >= 1.0);
    assert!(sum(&m, "coursepay_oldest_open_order_age_seconds", &[]) >= 300.0);

    // The exposition is valid Prometheus text (promtool is on PATH in CI).
    promtool_check(&text);
}

fn promtool_check(text: &str) {
    use std::io::Write;
    // No silent skip: a lint that cannot run must fail, not pass (CI and scripts/test.sh
    // install Debian's `prometheus` package, which provides promtool).
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool on PATH (apt-get install prometheus)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scraping_metrics_costs_one_statement() {
    let _gate = GATE.read().await;
    let app = common::spawn(common::Backend::Sqlite).await;
    let r = app.get("/healthz", None).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .http
        .get(format!("{}/metrics", app.base))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-db-round-trips"], "1");
}
