//! The HTTP surface (API.md). Middleware, outermost first: request context (request id, trace
//! context, round-trip counter, the summary log line) → catch panic → CORS → rate limit →
//! body limit → routes. Auth is an extractor; errors are rendered in [`problem`] only.

pub mod client_ip;
pub mod extract;
pub mod ops_routes;
pub mod problem;
pub mod routes;

use crate::App;
use crate::context::{RequestCtx, valid_request_id};
use crate::error::Error;
use crate::logging::{RequestSummary, request_line};
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use domain::ErrorCode;
use std::time::Instant;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub fn router(app: App) -> Router {
    let cors = cors_layer(&app.config.cors_allowed_origins);
    let api = Router::new()
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(routes::readyz))
        .route("/version", get(routes::version))
        .route("/v1/i18n/{locale}", get(routes::i18n))
        .route("/v1/config", get(routes::public_config))
        .route("/v1/admin/courses", post(routes::create_course))
        .route("/v1/admin/payments/pause", post(ops_routes::pause))
        .route("/v1/admin/payments/resume", post(ops_routes::resume))
        .route("/v1/admin/status", get(ops_routes::status))
        .route("/v1/courses", get(routes::list_courses))
        .route("/v1/courses/{courseId}", get(routes::get_course))
        .route("/v1/checkout", post(routes::checkout))
        .route("/v1/payments/confirm", post(routes::confirm))
        .route("/v1/orders/{orderId}", get(routes::get_order))
        .route("/v1/me/enrollments", get(routes::my_enrollments))
        .route(
            "/v1/enrollments/{enrollmentId}",
            get(routes::get_enrollment),
        )
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .with_state(app.clone());
    let mut r =
        api.layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .layer(middleware::from_fn_with_state(
                app,
                crate::ops::ratelimit::limit,
            ));
    if let Some(cors) = cors {
        r = r.layer(cors);
    }
    r.layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn(observe))
}

fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter(|o| o.as_str() != "*")
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    let origin = if origins.iter().any(|o| o == "*") {
        // Only reachable in development: production configuration refuses "*".
        AllowOrigin::any()
    } else if allowed.is_empty() {
        return None;
    } else {
        AllowOrigin::list(allowed)
    };
    Some(
        CorsLayer::new()
            .allow_origin(origin)
            .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
            .allow_headers([
                HeaderName::from_static("authorization"),
                HeaderName::from_static("content-type"),
                HeaderName::from_static("x-request-id"),
                HeaderName::from_static("idempotency-key"),
                HeaderName::from_static("traceparent"),
            ])
            .expose_headers([
                HeaderName::from_static("x-request-id"),
                HeaderName::from_static("idempotent-replayed"),
                HeaderName::from_static("retry-after"),
            ])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    // The payload may hold anything (even data from the request); it is not logged.
    tracing::error!("handler panicked");
    let mut e = Error::new(ErrorCode::Internal);
    e.internal = Some("panic".into());
    e.into_response()
}

/// Request id, trace context, round trips and the one summary log line per request.
async fn observe(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| valid_request_id(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let traceparent = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .filter(|v| crate::context::trace_id_of(v).is_some())
        .map(str::to_owned);
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let ctx = RequestCtx::new(request_id.clone(), traceparent);
    let mut resp = ctx.scope(next.run(req)).await;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    if let Ok(v) = HeaderValue::from_str(&ctx.roundtrips().to_string()) {
        resp.headers_mut().insert("x-db-round-trips", v);
    }
    request_line(RequestSummary {
        ctx: &ctx,
        method: &method,
        path: &path,
        route: route.as_deref(),
        http_status: resp.status().as_u16(),
        latency_ms: started.elapsed().as_millis() as u64,
    });
    resp
}
