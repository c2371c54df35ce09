//! Bad input never changes data and never gets a 500; no secret reaches a log. Table-driven.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestApp;
use domain::OrderStatus;
use reqwest::StatusCode;
use serde_json::{Value, json};

store::per_backend!(
    |b| common::spawn(b).await;
    confirm_bad_bodies_are_400_and_change_nothing,
    tokens_and_ownership_are_enforced,
    routing_errors_are_problems,
    no_secret_reaches_the_logs,
    cors_preflight_allows_listed_origins_only,
    problem_titles_follow_accept_language,
    free_text_refuses_control_characters_alike_on_every_store,
);

async fn confirm_bad_bodies_are_400_and_change_nothing(app: TestApp) {
    let p = app.paid_in_window(10_000).await;
    let pk = p.payment_key.as_str();
    let oid = p.order_id.as_str();
    let long_key = "k".repeat(201);
    let cases: Vec<(&str, Vec<u8>, StatusCode, &str, &str)> = vec![
        ("malformed json", b"{\"paymentKey\": ".to_vec(), StatusCode::BAD_REQUEST, "E_INVALID_REQUEST", "body"),
        ("not an object", b"[1,2,3]".to_vec(), StatusCode::BAD_REQUEST, "E_INVALID_REQUEST", "body"),
        ("empty body", Vec::new(), StatusCode::BAD_REQUEST, "E_INVALID_REQUEST", "body"),
        ("amount as string", json!({"paymentKey": pk, "orderId": oid, "amount": "10000"}).to_string().into_bytes(), StatusCode::BAD_REQUEST, "E_INVALID_REQUEST", "amount"),
        ("negative amount", json!({"paymentKey": pk, "orderId": oid, "amount": -10000}).to_string().into_bytes(), StatusCode::BAD_REQUEST, "E_INVALID_REQUEST", "amount"),
        ("zero amount", json!({"paymentKey": pk, "orderId": oid, "amount": 0}).to_string().into_bytes(), StatusCode::BAD_REQUEST, "E_INVALID_REQUEST", "amount"),
        ("fractional amount", format!(r#"{{"paymentKey":"{pk}","orderId":"{oid}","amount":10000.5}}"#).into_bytes(), StatusCode::BAD_REQUEST, "E_INVALID_REQUEST", "amount"),
        ("2^63 amount", format!(r#"{{"paymentKey":"{pk}","orderId":"{oid}","amount":9223372036854775808}}"#).into_bytes(), StatusCode::BAD_REQUEST, "E_INVALID_REQUEST", "amount"),
        ("huge amount", format!(r#"{{"paymentKey":"{pk}","orderId":"{oid}","amount":1e300}}"#).into_bytes(), StatusCode::BAD_REQUEST, "E_INVALID_REQUEST", "amount"),
        ("missing amount", json!({"paymentKey": pk, "orderId": oid}).to_string().into_bytes(), StatusCode::BAD_REQUEST, "E_INVALID_REQUEST", "amount"),
        ("null paymentKey", json!({"paymentKey": null, "orderId": oid, "amount": 10000}).to_string().into_bytes(), StatusCode::BAD_REQUEST, "E_INVALID_REQUEST", "paymentKey"),
        ("paymentKey too long", json!({"paymentKey": long_key, "orderId": oid, "amount": 10000}).to_string().into_bytes(), StatusCode::BAD_REQUEST, "E_INVALID_REQUEST", "paymentKey"),
        ("orderId as number", json!({"paymentKey": pk, "orderId": 12345678, "amount": 10000}).to_string().into_bytes(), StatusCode::BAD_REQUEST, "E_INVALID_REQUEST", "orderId"),
        ("orderId too short", json!({"paymentKey": pk, "orderId": "abc", "amount": 10000}).to_string().into_bytes(), StatusCode::BAD_REQUEST, "E_INVALID_REQUEST", "orderId"),
        ("orderId too long", json!({"paymentKey": pk, "orderId": "o".repeat(65), "amount": 10000}).to_string().into_bytes(), StatusCode::BAD_REQUEST, "E_INVALID_REQUEST", "orderId"),
        ("orderId with slash", json!({"paymentKey": pk, "orderId": "../../etc/passwd", "amount": 10000}).to_string().into_bytes(), StatusCode::BAD_REQUEST, "E_INVALID_REQUEST", "orderId"),
        ("orderId with quote", json!({"paymentKey": pk, "orderId": "abc' OR 1=1 --", "amount": 10000}).to_string().into_bytes(), StatusCode::BAD_REQUEST, "E_INVALID_REQUEST", "orderId"),
        ("orderId hangul", json!({"paymentKey": pk, "orderId": "주문번호-123456", "amount": 10000}).to_string().into_bytes(), StatusCode::BAD_REQUEST, "E_INVALID_REQUEST", "orderId"),
        ("body over 64 KiB", json!({"paymentKey": pk, "orderId": oid, "amount": 10000, "pad": "x".repeat(70 * 1024)}).to_string().into_bytes(), StatusCode::PAYLOAD_TOO_LARGE, "E_PAYLOAD_TOO_LARGE", "body"),
        ("unknown order", json!({"paymentKey": pk, "orderId": "ord_doesnotexist", "amount": 10000}).to_string().into_bytes(), StatusCode::NOT_FOUND, "E_ORDER_NOT_FOUND", ""),
    ];
    for (name, body, status, code, field) in cases {
        let r = app
            .post_raw("/v1/payments/confirm", Some(&p.token), body, &[])
            .await;
        assert_eq!(r.status, status, "{name}: {:?}", r.body);
        assert_eq!(r.code(), code, "{name}");
        assert!(r.is_problem(), "{name}: problem+json");
        assert_eq!(r.body["status"], status.as_u16(), "{name}");
        assert!(r.body["requestId"].is_string(), "{name}");
        assert!(
            r.body["detail"].as_str().unwrap_or("").contains(field),
            "{name}: detail should name {field}: {:?}",
            r.body["detail"]
        );
    }
    assert_eq!(app.confirm_calls().await, 0);
    assert_eq!(app.order(oid).await.status, OrderStatus::Pending);
    assert!(app.store.list_enrollments(p.user).await.unwrap().is_empty());

    // Bad admin input.
    let admin = app.admin_token();
    for body in [
        json!({"title": "x", "price": 99}),
        json!({"title": "x", "price": 100_000_001}),
        json!({"title": "x", "price": 1.5}),
        json!({"title": "", "price": 1000}),
        json!({"title": 5, "price": 1000}),
        json!({"price": 1000}),
    ] {
        let r = app.post("/v1/admin/courses", Some(&admin), &body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(r.code(), "E_INVALID_REQUEST");
    }
    // Bad checkout input.
    for body in [
        json!({}),
        json!({"courseId": "nope"}),
        json!({"courseId": 7}),
    ] {
        let r = app.post("/v1/checkout", Some(&p.token), &body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
    }
    let r = app.get("/v1/orders/bad%20id!", Some(&p.token)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

async fn tokens_and_ownership_are_enforced(app: TestApp) {
    let p = app.paid_in_window(10_000).await;
    let body = json!({"paymentKey": p.payment_key, "orderId": p.order_id, "amount": 10_000});
    let forged =
        flows::auth::JwtKeys::new(&secrecy::SecretString::from("not-the-secret".to_owned()))
            .mint(Some(p.user), 600);
    let expired = app.app.jwt.mint(Some(p.user), -600);
    let admin = app.admin_token();
    let (_, stranger) = app.new_user();
    let cases: Vec<(&str, Option<&str>, StatusCode, &str)> = vec![
        ("missing", None, StatusCode::UNAUTHORIZED, "E_UNAUTHORIZED"),
        (
            "garbage",
            Some("abc.def.ghi"),
            StatusCode::UNAUTHORIZED,
            "E_UNAUTHORIZED",
        ),
        (
            "forged",
            Some(&forged),
            StatusCode::UNAUTHORIZED,
            "E_UNAUTHORIZED",
        ),
        (
            "expired",
            Some(&expired),
            StatusCode::UNAUTHORIZED,
            "E_UNAUTHORIZED",
        ),
        (
            "service role on a user route",
            Some(&admin),
            StatusCode::FORBIDDEN,
            "E_FORBIDDEN",
        ),
        (
            "another user's order",
            Some(&stranger),
            StatusCode::FORBIDDEN,
            "E_FORBIDDEN",
        ),
    ];
    for (name, token, status, code) in cases {
        let r = app.post("/v1/payments/confirm", token, &body).await;
        assert_eq!(r.status, status, "{name}");
        assert_eq!(r.code(), code, "{name}");
    }
    // A user token on an admin route.
    let r = app
        .post(
            "/v1/admin/courses",
            Some(&p.token),
            &json!({"title": "x", "price": 1000}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .post(
            "/v1/admin/courses",
            None,
            &json!({"title": "x", "price": 1000}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Basic instead of Bearer.
    let r = app
        .http
        .get(format!("{}/v1/me/enrollments", app.base))
        .header("authorization", "Basic dGVzdDo=")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.confirm_calls().await, 0);
    assert_eq!(app.order(&p.order_id).await.status, OrderStatus::Pending);
}

async fn routing_errors_are_problems(app: TestApp) {
    let r = app.get("/v1/nope", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "E_NOT_FOUND");
    let r = app.get("/v1/payments/confirm", None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(r.is_problem());
    // X-Request-Id: echoed when valid, replaced when not.
    let ok = app
        .http
        .get(format!("{}/healthz", app.base))
        .header("x-request-id", "client-req-42")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.headers()["x-request-id"], "client-req-42");
    let bad = app
        .http
        .get(format!("{}/healthz", app.base))
        .header("x-request-id", "has spaces and \u{7f}")
        .send()
        .await;
    if let Ok(bad) = bad {
        assert_ne!(bad.headers()["x-request-id"], "has spaces and \u{7f}");
    }
    let i18n_ko = app.get("/v1/i18n/ko", None).await;
    let i18n_en = app.get("/v1/i18n/en", None).await;
    for code in domain::ErrorCode::ALL {
        let key = code.i18n_key();
        assert!(i18n_ko.body[&key].is_string(), "{key} in ko");
        assert!(i18n_en.body[&key].is_string(), "{key} in en");
    }
    assert_eq!(
        app.get("/v1/i18n/fr", None).await.status,
        StatusCode::NOT_FOUND
    );
    let v = app.get("/version", None).await;
    assert!(v.body["version"].is_string() && v.body["gitCommit"].is_string());
    assert_eq!(app.get("/readyz", None).await.status, StatusCode::OK);
}

async fn no_secret_reaches_the_logs(app: TestApp) {
    let buf = flows::logging::capture();
    let p = app.paid_in_window(10_000).await;
    let request_id = format!("secret-test-{}", uuid::Uuid::new_v4().simple());
    let r = app
        .post_raw(
            "/v1/payments/confirm",
            Some(&p.token),
            json!({"paymentKey": p.payment_key, "orderId": p.order_id, "amount": 10_000})
                .to_string()
                .into_bytes(),
            &[("x-request-id", &request_id)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // An error path too.
    app.confirm(&p.token, &p.payment_key, &p.order_id, 1).await;
    let lines = flows::logging::captured_lines(&buf);
    let ours: Vec<&Value> = lines
        .iter()
        .filter(|l| l["request_id"] == request_id.as_str())
        .collect();
    assert_eq!(ours.len(), 1, "exactly one summary line per request");
    let line = ours[0];
    for field in [
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
    ] {
        assert!(line.get(field).is_some(), "field {field} missing: {line}");
    }
    assert_eq!(line["function_name"], "confirm-payment");
    assert_eq!(line["provider_tx_id"], p.payment_key.as_str());
    assert_eq!(line["status"], "ENROLLED");
    assert_eq!(line["user_id"], p.user.to_string());
    let text = String::from_utf8_lossy(&buf.lock().unwrap()).into_owned();
    let mut secrets = app.app.config.secrets();
    secrets.push(p.token.clone());
    secrets.push(app.admin_token());
    for s in secrets {
        assert!(!text.contains(&s), "a secret reached the log");
    }
    assert!(
        !text.contains("Basic "),
        "an Authorization header reached the log"
    );
}

/// Seed §8 CORS: a preflight from a listed origin is answered with the headers the storefront
/// sends (Authorization, Content-Type, X-Request-Id, Idempotency-Key, traceparent); an unlisted
/// origin gets no CORS grant at all.
async fn cors_preflight_allows_listed_origins_only(app: TestApp) {
    let allowed = "http://localhost:5173"; // the development default of CORS_ALLOWED_ORIGINS
    let r = app
        .http
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/v1/payments/confirm", app.base),
        )
        .header("origin", allowed)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,x-request-id,idempotency-key,traceparent",
        )
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let h = r.headers();
    assert_eq!(h["access-control-allow-origin"], allowed);
    let allow_headers = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for needed in [
        "authorization",
        "content-type",
        "x-request-id",
        "idempotency-key",
        "traceparent",
    ] {
        assert!(
            allow_headers.contains(needed),
            "{needed} missing from {allow_headers}"
        );
    }
    assert!(
        h.get("x-request-id").is_some(),
        "preflights carry X-Request-Id too"
    );
    let r = app
        .http
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/v1/payments/confirm", app.base),
        )
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    // A simple request from the listed origin exposes the headers clients read.
    let r = app
        .http
        .get(format!("{}/healthz", app.base))
        .header("origin", allowed)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], allowed);
    let exposed = r.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("x-request-id") && exposed.contains("idempotent-replayed"));
}

/// `title` (and `detail` when it is the code's fixed text) in the request's language, Korean by
/// default; `code` and a field-naming `detail` never change.
async fn problem_titles_follow_accept_language(app: TestApp) {
    use domain::{ErrorCode, Locale};
    let (_, token) = app.new_user();
    let get = |lang: Option<&'static str>, path: &'static str, token: Option<String>| {
        let mut req = app.http.get(format!("{}{}", app.base, path));
        if let Some(l) = lang {
            req = req.header("accept-language", l);
        }
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        async move {
            let r = req.send().await.unwrap();
            let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
            assert!(ct.starts_with("application/problem+json"), "{ct}");
            r.json::<Value>().await.unwrap()
        }
    };
    let unknown_order = "/v1/orders/ord_doesnotexist";
    let cases = [
        (None, Locale::Ko),
        (Some("en"), Locale::En),
        (Some("en-US,en;q=0.9,ko;q=0.8"), Locale::En),
        (Some("ko-KR,ko;q=0.9,en;q=0.8"), Locale::Ko),
        (Some("fr-FR"), Locale::Ko),
        (Some("fr, en;q=0.5"), Locale::En),
    ];
    for (lang, want) in cases {
        let b = get(lang, unknown_order, Some(token.clone())).await;
        assert_eq!(b["code"], "E_ORDER_NOT_FOUND", "{lang:?}");
        let text = ErrorCode::OrderNotFound.message(want);
        assert_eq!(b["title"], text, "{lang:?}: {b}");
        assert_eq!(b["detail"], text, "{lang:?}: {b}");
    }
    // Refusals by an extractor (no token) and by the router follow it too.
    let b = get(Some("en"), unknown_order, None).await;
    assert_eq!(b["code"], "E_UNAUTHORIZED");
    assert_eq!(b["title"], ErrorCode::Unauthorized.message(Locale::En));
    let b = get(None, "/v1/no-such-route", None).await;
    assert_eq!(b["title"], ErrorCode::NotFound.message(Locale::Ko));
    // A detail that names the field stays as it is; only the title is translated.
    let r = app
        .post_raw(
            "/v1/checkout",
            Some(&token),
            br#"{"courseId": 7}"#.to_vec(),
            &[("accept-language", "ko")],
        )
        .await;
    assert_eq!(r.code(), "E_INVALID_REQUEST");
    assert_eq!(
        r.body["title"],
        ErrorCode::InvalidRequest.message(Locale::Ko)
    );
    assert!(
        r.body["detail"].as_str().unwrap().contains("courseId"),
        "{}",
        r.body
    );
}

/// Every free-text field (course title, refund reason, pause reason) refuses NUL and the other
/// control characters with 400 E_INVALID_REQUEST naming the field, and changes nothing — the
/// same answer on SQLite (which would store a NUL) and PostgreSQL (which refuses one in
/// `text`). Valid Unicode is stored and read back unchanged on both.
async fn free_text_refuses_control_characters_alike_on_every_store(app: TestApp) {
    let admin = app.admin_token();
    let p = app.paid_in_window(10_000).await;
    let paid = app
        .confirm(&p.token, &p.payment_key, &p.order_id, 10_000)
        .await;
    assert_eq!(paid.status, StatusCode::OK, "{:?}", paid.body);
    let payment_id = paid.body["paymentId"].as_str().unwrap().to_owned();
    let refund_path = format!("/v1/payments/{payment_id}/refund");
    let courses_before = app.get("/v1/courses", None).await.body["items"]
        .as_array()
        .map(Vec::len);

    let bad = [
        "a\u{0}b",
        "\u{0}",
        "trailing NUL\u{0}",
        "line\nbreak",
        "tab\tinside",
        "\u{1b}[31mred",
        "del\u{7f}",
        "c1\u{85}next",
        "bell\u{7}",
    ];
    // (path, field); the course also needs a price.
    let fields = [
        ("/v1/admin/courses", "title"),
        ("/v1/admin/payments/pause", "reason"),
        (refund_path.as_str(), "reason"),
    ];
    let body = |field: &str, v: &str| match field {
        "title" => json!({"title": v, "price": 10_000}),
        _ => json!({ field: v }),
    };
    for (path, field) in fields {
        for value in bad {
            let r = app.post(path, Some(&admin), &body(field, value)).await;
            assert_eq!(
                r.status,
                StatusCode::BAD_REQUEST,
                "{path} {value:?}: {:?}",
                r.body
            );
            assert_eq!(r.code(), "E_INVALID_REQUEST", "{path} {value:?}");
            assert!(r.is_problem());
            let detail = r.body["detail"].as_str().unwrap_or("");
            assert!(
                detail.starts_with(&format!("{field}: ")) && detail.contains("control"),
                "{path} {value:?}: {detail}"
            );
        }
        let r = app
            .post(path, Some(&admin), &body(field, &"가".repeat(501)))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {:?}", r.body);
        assert!(r.body["detail"].as_str().unwrap().starts_with(field));
        let r = app.post(path, Some(&admin), &body(field, "   ")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {:?}", r.body);
    }
    // Nothing changed: no course, not paused, not refunded, Toss never asked to cancel.
    let courses_after = app.get("/v1/courses", None).await.body["items"]
        .as_array()
        .map(Vec::len);
    assert_eq!(courses_before, courses_after);
    let status = app.get("/v1/admin/status", Some(&admin)).await;
    assert_eq!(status.body["paymentsPaused"], false, "{:?}", status.body);
    assert_eq!(app.order(&p.order_id).await.status, OrderStatus::Paid);
    assert!(
        app.sandbox
            .requests()
            .iter()
            .all(|r| !r.path.ends_with("/cancel")),
        "no cancel reached Toss"
    );

    // Clean Unicode round-trips unchanged (trimmed) on both stores.
    let title = "러스트 입문 — Rust 101 🦀";
    let r = app
        .post(
            "/v1/admin/courses",
            Some(&admin),
            &json!({"title": format!("  {title} "), "price": 10_000}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap();
    let got = app.get(&format!("/v1/courses/{id}"), None).await;
    assert_eq!(got.body["title"], title);
    let r = app
        .post(
            "/v1/admin/payments/pause",
            Some(&admin),
            &json!({"reason": "점검 중 ✋"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["pauseReason"], "점검 중 ✋");
    let r = app
        .post("/v1/admin/payments/resume", Some(&admin), &json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
}
