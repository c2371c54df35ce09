//! The storefront (`web/`) served by the service itself, and its development sign-in.
//!
//! - The built storefront (`web/dist`) is embedded at compile time (see `build.rs`), so the
//!   binary shows the shop at `/` with no npm step. Content-hashed files under `/assets/` are
//!   cached for a year as immutable; `index.html` is `no-cache` (revalidated every time, so a
//!   deploy is picked up at once) and carries the Content-Security-Policy.
//! - Every other GET path that is not an API path falls back to `index.html` (the storefront
//!   routes in the browser). API paths (`/v1`, `/toss-sandbox`, `/metrics`, ...) and missing
//!   `/assets/` files keep their 404 problem+json.
//! - `POST /v1/dev/token`: a token for a (new or given) user, for the one-click development
//!   sign-in. The route is not mounted when `COURSEPAY_ENV=production`.

use crate::App;
use crate::config::Config;
use crate::error::{Error, Result};
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use domain::UserId;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));
}

/// First path segments that belong to the API or operations, never to the storefront.
const RESERVED: &[&str] = &[
    "v1",
    "toss-sandbox",
    "metrics",
    "healthz",
    "readyz",
    "version",
    "openapi.json",
    "docs",
    "assets",
];

/// Lifetime of a development token (one working day).
const DEV_TOKEN_TTL_SECONDS: i64 = 12 * 3600;

/// An embedded file by its path below `web/dist` (`index.html`, `assets/index-abc123.js`).
pub fn asset(path: &str) -> Option<&'static [u8]> {
    embedded::ASSETS
        .binary_search_by(|(p, _)| (*p).cmp(path))
        .ok()
        .and_then(|i| embedded::ASSETS.get(i))
        .map(|(_, body)| *body)
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") | Some("mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("json") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The page's Content-Security-Policy: only its own origin, plus Toss's SDK when a real client
/// key is configured (no sandbox) and the Supabase project when Supabase sign-in is used.
pub fn content_security_policy(config: &Config) -> String {
    let mut script = vec!["'self'"];
    let mut connect = vec!["'self'".to_owned()];
    let mut frame = vec![];
    if !config.uses_sandbox() {
        // The Toss SDK v2 loads its script from js.tosspayments.com, talks to *.tosspayments.com
        // and opens the payment window in an iframe from there.
        script.push("https://js.tosspayments.com");
        connect.push("https://*.tosspayments.com".to_owned());
        frame.push("https://*.tosspayments.com");
    }
    if let Some(url) = &config.supabase_url {
        connect.push(url.trim_end_matches('/').to_owned());
    }
    let frame_src = if frame.is_empty() {
        "'none'".to_owned()
    } else {
        frame.join(" ")
    };
    format!(
        "default-src 'self'; script-src {}; style-src 'self'; img-src 'self' data:; \
         font-src 'self'; connect-src {}; frame-src {frame_src}; form-action 'self'; \
         base-uri 'none'; object-src 'none'; frame-ancestors 'none'",
        script.join(" "),
        connect.join(" ")
    )
}

fn is_reserved(path: &str) -> bool {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    RESERVED.contains(&first)
}

fn file_response(path: &str, body: &'static [u8], head: bool) -> Response {
    let immutable = path.starts_with("assets/");
    let cache = if immutable {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let len = body.len();
    let body = if head {
        Body::empty()
    } else {
        Body::from(body)
    };
    let mut resp = (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type(path)),
            (header::CACHE_CONTROL, cache),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response();
    if let Ok(len) = HeaderValue::from_str(&len.to_string()) {
        resp.headers_mut().insert(header::CONTENT_LENGTH, len);
    }
    resp
}

/// The router's fallback: storefront files and routes for GET/HEAD, 404 problem+json for
/// everything else (unknown API paths, other methods, missing assets).
pub async fn fallback(State(app): State<App>, method: Method, uri: Uri) -> Response {
    let head = method == Method::HEAD;
    if !(method == Method::GET || head) {
        return super::routes::not_found().await.into_response();
    }
    let path = uri.path().trim_start_matches('/');
    if !path.is_empty()
        && let Some(body) = asset(path)
    {
        crate::context::record(|f| f.function_name = Some("storefront-asset"));
        return file_response(path, body, head);
    }
    if is_reserved(uri.path()) || path.contains('.') {
        return super::routes::not_found().await.into_response();
    }
    let Some(index) = asset("index.html") else {
        // Built without the storefront (web/dist missing).
        return super::routes::not_found().await.into_response();
    };
    crate::context::record(|f| f.function_name = Some("storefront"));
    let mut resp = file_response("index.html", index, head);
    if let Ok(csp) = HeaderValue::from_str(&content_security_policy(&app.config)) {
        resp.headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    resp.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("strict-origin-when-cross-origin"),
    );
    resp
}

/// `POST /v1/dev/token` `{"userId"?}` → `{"accessToken", "tokenType", "userId", "expiresAt"}`:
/// a user token signed with the development JWT secret, for a new user or the one given (to
/// sign in again as the same buyer). Mounted only outside production.
pub async fn dev_token(State(app): State<App>, body: Bytes) -> Result<Response> {
    let user = if body.iter().all(u8::is_ascii_whitespace) {
        UserId::new()
    } else {
        let value: Value = serde_json::from_slice(&body)
            .map_err(|_| Error::invalid("body: must be a JSON object"))?;
        let Value::Object(map) = value else {
            return Err(Error::invalid("body: must be a JSON object"));
        };
        match map.get("userId") {
            None | Some(Value::Null) => UserId::new(),
            Some(Value::String(s)) => {
                UserId::parse(s).map_err(|_| Error::invalid("userId: must be a UUID"))?
            }
            Some(_) => return Err(Error::invalid("userId: must be a UUID")),
        }
    };
    crate::context::record(|f| f.user_id = Some(user.to_string()));
    let token = app.jwt.mint(Some(user), DEV_TOKEN_TTL_SECONDS);
    let expires = time::OffsetDateTime::now_utc() + time::Duration::seconds(DEV_TOKEN_TTL_SECONDS);
    Ok((
        StatusCode::OK,
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({
            "accessToken": token,
            "tokenType": "bearer",
            "userId": user,
            "expiresAt": expires.format(&Rfc3339).unwrap_or_default(),
        })),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_paths_are_not_storefront_routes() {
        for p in [
            "/v1/nope",
            "/toss-sandbox/x",
            "/metrics",
            "/healthz",
            "/openapi.json",
            "/docs",
            "/assets/missing.js",
        ] {
            assert!(is_reserved(p), "{p}");
        }
        for p in ["/", "/courses/abc", "/me", "/payments/success", "/v1x"] {
            assert!(!is_reserved(p), "{p}");
        }
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(
            content_type("assets/a-1.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type("assets/a-1.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("x"), "application/octet-stream");
    }

    #[test]
    fn csp_allows_toss_only_without_the_sandbox() {
        let mut c = Config::development();
        let dev = content_security_policy(&c);
        assert!(dev.contains("script-src 'self';"), "{dev}");
        assert!(dev.contains("frame-src 'none'"), "{dev}");
        assert!(!dev.contains("tosspayments"), "{dev}");
        c.toss_api_base = Some("https://api.tosspayments.com".into());
        c.supabase_url = Some("https://abc.supabase.co/".into());
        let live = content_security_policy(&c);
        assert!(
            live.contains("script-src 'self' https://js.tosspayments.com;"),
            "{live}"
        );
        assert!(live.contains("https://abc.supabase.co;"), "{live}");
        assert!(!live.contains("'unsafe-inline'"), "{live}");
    }
}
