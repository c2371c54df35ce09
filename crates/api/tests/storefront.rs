//! The storefront served by the service itself (embedded `web/dist`) and its development
//! sign-in, over real HTTP: cache headers, the Content-Security-Policy, the browser-route
//! fallback that never swallows an API 404, and a dev token that is absent in production.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Backend, TestApp};
use reqwest::StatusCode;
use serde_json::json;

store::per_backend!(
    |b| common::spawn(b).await;
    index_and_browser_routes_get_the_page_with_csp,
    hashed_assets_are_immutable_and_missing_ones_are_problems,
    api_paths_keep_their_problem_404s,
    dev_token_signs_in_a_buyer,
);

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

async fn raw_get(app: &TestApp, path: &str) -> reqwest::Response {
    app.http
        .get(format!("{}{}", app.base, path))
        .send()
        .await
        .unwrap()
}

async fn index_and_browser_routes_get_the_page_with_csp(app: TestApp) {
    let mut first: Option<String> = None;
    for path in [
        "/",
        "/me",
        "/courses/00000000-0000-4000-8000-00000000c0a1",
        "/payments/success?paymentKey=x&orderId=y&amount=1",
        "/payments/fail?code=REJECT_CARD_COMPANY",
    ] {
        let r = raw_get(&app, path).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(header(&r, "content-type"), "text/html; charset=utf-8");
        assert_eq!(header(&r, "cache-control"), "no-cache", "{path}");
        let csp = header(&r, "content-security-policy").to_owned();
        assert!(csp.contains("default-src 'self'"), "{csp}");
        assert!(
            csp.contains("script-src 'self';"),
            "sandbox mode: no Toss SDK: {csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        let body = r.text().await.unwrap();
        assert!(body.contains(r#"<div id="app"></div>"#), "{body}");
        match &first {
            None => first = Some(body),
            Some(b) => assert_eq!(&body, b, "every browser route is the same page"),
        }
    }
    // HEAD answers the headers without a body.
    let r = app
        .http
        .head(format!("{}/me", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.bytes().await.unwrap().is_empty());
}

async fn hashed_assets_are_immutable_and_missing_ones_are_problems(app: TestApp) {
    let index = raw_get(&app, "/").await.text().await.unwrap();
    let script = index
        .split("src=\"/")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("index.html references its script");
    assert!(
        script.starts_with("assets/") && script.ends_with(".js"),
        "{script}"
    );
    let r = raw_get(&app, &format!("/{script}")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "content-type"), "text/javascript; charset=utf-8");
    assert_eq!(
        header(&r, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(header(&r, "x-content-type-options"), "nosniff");
    assert!(r.bytes().await.unwrap().len() > 1000);

    for missing in ["/assets/index-00000000.js", "/favicon.ico", "/robots.txt"] {
        let r = app.get(missing, None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{missing}");
        assert!(r.is_problem(), "{missing}");
        assert_eq!(r.code(), "E_NOT_FOUND");
    }
}

async fn api_paths_keep_their_problem_404s(app: TestApp) {
    for path in [
        "/v1/nope",
        "/v1",
        "/toss-sandbox/nope",
        "/metrics/x",
        "/healthz/x",
        "/version/x",
        "/openapi.json/x",
    ] {
        let r = app.get(path, None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert!(r.is_problem(), "{path}");
        assert_eq!(r.code(), "E_NOT_FOUND", "{path}");
    }
    // Other methods on a browser route are not the page either.
    let r = app.post("/me", None, &json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.is_problem());
    // The real operations routes still answer.
    let r = raw_get(&app, "/metrics").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(header(&r, "content-type").starts_with("text/plain"));
}

async fn dev_token_signs_in_a_buyer(app: TestApp) {
    let r = app.post("/v1/dev/token", None, &json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.headers.get("cache-control").unwrap(), "no-store");
    let token = r.body["accessToken"].as_str().unwrap().to_owned();
    let user = r.body["userId"].as_str().unwrap().to_owned();
    assert!(r.body["expiresAt"].as_str().unwrap().ends_with('Z'));
    // The token is a working user token: the buyer can check out.
    let course = app.create_course(10_000).await;
    let order = app.checkout(&token, &course).await;
    assert_eq!(order["customerKey"], user.as_str());
    let r = app.get("/v1/me/enrollments", Some(&token)).await;
    assert_eq!(r.status, StatusCode::OK);

    // Signing in again as the same buyer keeps the user id (a new token, same orders).
    let r = app
        .post("/v1/dev/token", None, &json!({"userId": user}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["userId"], user.as_str());
    let again = r.body["accessToken"].as_str().unwrap();
    let r = app
        .get(
            &format!("/v1/orders/{}", order["orderId"].as_str().unwrap()),
            Some(again),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);

    // An empty body is a new user; a bad one is a 400 naming the field.
    let r = app.post_raw("/v1/dev/token", None, Vec::new(), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_ne!(r.body["userId"], user.as_str());
    for bad in [json!({"userId": "nope"}), json!({"userId": 5}), json!([1])] {
        let r = app.post("/v1/dev/token", None, &bad).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(r.code(), "E_INVALID_REQUEST");
    }
}

#[tokio::test]
async fn dev_token_does_not_exist_in_production() {
    let app = common::spawn_with(Backend::Sqlite, |c| {
        c.env = flows::config::Environment::Production;
    })
    .await;
    let r = app.post("/v1/dev/token", None, &json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
    assert!(r.is_problem());
    assert_eq!(r.code(), "E_NOT_FOUND");
    assert!(r.body.get("accessToken").is_none());
    // The storefront itself is still served.
    let r = raw_get(&app, "/").await;
    assert_eq!(r.status(), StatusCode::OK);
}
