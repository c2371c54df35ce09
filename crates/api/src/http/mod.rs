//! The HTTP surface (docs/api.md). Middleware, outermost first: request context (request id,
//! trace context, round-trip counter, the summary log line) → locale (Accept-Language,
//! [`locale`]) → catch panic → CORS → rate limit and request timeout → body limit → routes.
//! Auth is an extractor; errors are rendered in [`problem`] only. The `observe` middleware also
//! records the request's metrics and feeds confirms to the alert evaluator.

pub mod client_ip;
pub mod extract;
pub mod lms;
pub mod locale;
pub mod metric_series;
pub mod openapi;
pub mod ops_routes;
pub mod preflight_routes;
pub mod problem;
pub mod ratelimit;
pub mod routes;
pub mod web;
pub mod webhook;

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
use std::sync::LazyLock;
use std::time::Instant;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub fn router(app: App) -> Router {
    metric_series::register();
    let cors = cors_layer(&app.config.cors_allowed_origins);
    let mut api = Router::new()
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(routes::readyz))
        .route("/version", get(routes::version))
        .route("/metrics", get(ops_routes::metrics))
        .route("/v1/i18n/{locale}", get(routes::i18n))
        .route("/v1/config", get(routes::public_config))
        .route("/v1/admin/courses", post(routes::create_course))
        .route("/v1/admin/payments/pause", post(ops_routes::pause))
        .route("/v1/admin/payments/resume", post(ops_routes::resume))
        .route("/v1/admin/status", get(ops_routes::status))
        .route(
            "/v1/admin/config-report",
            get(preflight_routes::config_report),
        )
        .route("/v1/admin/logs/recent", get(preflight_routes::recent_logs))
        .route("/v1/courses", get(routes::list_courses))
        .route("/v1/courses/{courseId}", get(routes::get_course))
        .route("/v1/checkout", post(routes::checkout))
        .route("/v1/payments/confirm", post(routes::confirm))
        .route("/v1/orders/{orderId}", get(routes::get_order))
        .route("/v1/me/enrollments", get(routes::my_enrollments))
        .route("/v1/webhooks/toss", post(webhook::toss))
        .route(
            "/v1/enrollments/{enrollmentId}",
            get(routes::get_enrollment),
        )
        .route("/v1/payments/{paymentId}/refund", post(lms::refund_payment))
        .route("/v1/admin/orders/{orderId}/cancel", post(lms::cancel_order))
        .route(
            "/v1/enrollments/{enrollmentId}/exam-attempts",
            post(lms::start_exam_attempt),
        )
        .route(
            "/v1/exam-attempts/{attemptId}/submit",
            post(lms::submit_exam_attempt),
        )
        .merge(openapi::router())
        .fallback(web::fallback)
        .method_not_allowed_fallback(routes::method_not_allowed);
    if app.config.env != crate::config::Environment::Production {
        api = api.route("/v1/dev/token", post(web::dev_token));
    }
    let api = api.with_state(app.clone());
    with_layers(
        api,
        tower::ServiceBuilder::new()
            .option_layer(cors)
            .layer(middleware::from_fn_with_state(app, admit))
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES)),
    )
}

/// The outermost middleware (panic catcher inside the request context and summary line) on
/// `router`'s routes. `router` uses it; tests wrap their own routes (a panicking handler) with
/// it to check what a panic logs.
pub fn layers(router: Router) -> Router {
    with_layers(router, tower::layer::util::Identity::new())
}

/// `router`'s routes inside the request context and summary line, then the panic catcher,
/// then `inner`. One `Router::layer` call for the whole stack: axum wraps each route in a box
/// per call and clones those boxes, nested, on every request, so four calls cost each request
/// dozens of allocations (the CORS layer's lists among them) that one call does not
/// (docs/benchmarks.md).
fn with_layers<L>(router: Router, inner: L) -> Router
where
    L: tower::Layer<axum::routing::Route> + Clone + Send + Sync + 'static,
    L::Service: tower::Service<Request, Response = Response, Error = std::convert::Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    <L::Service as tower::Service<Request>>::Future: Send + 'static,
{
    crate::ops::metrics::install();
    router.layer(
        tower::ServiceBuilder::new()
            .layer(middleware::from_fn(observe))
            .layer(CatchPanicLayer::custom(panic_response))
            .layer(inner),
    )
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

/// Request id, trace context, round trips and the one summary log line per request; inside
/// it, the request's locale ([`locale::scope`]).
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
    let auth_hash = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .map(|v| crate::logging::credential_hash(v.as_bytes()));
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let ctx = RequestCtx::new(request_id.clone(), traceparent);
    // Named before the handler runs, so that requests an extractor refuses (401, 400, 413)
    // carry the name too.
    if let Some(name) = route
        .as_deref()
        .and_then(|r| openapi::operation_name(req.method(), r))
    {
        ctx.record(|f| f.function_name = Some(name));
    }
    let mut in_flight = InFlight {
        ctx: ctx.clone(),
        started,
        method,
        path,
        route,
        auth_hash,
        done: false,
    };
    let locale = locale::of(req.headers());
    let mut resp = ctx.scope(locale::scope(locale, next.run(req))).await;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    if let Ok(v) = HeaderValue::from_str(&ctx.roundtrips().to_string()) {
        resp.headers_mut().insert("x-db-round-trips", v);
    }
    in_flight.finish(
        resp.status().as_u16(),
        resp.headers().contains_key("idempotent-replayed"),
    );
    resp
}

/// The rate limit ([`ratelimit::check`]), then `HTTP_REQUEST_TIMEOUT_SECONDS`: a request still
/// running after it is answered 503 `E_REQUEST_TIMEOUT` (retryable). Dropping the handler's
/// future is safe: a confirm's work runs on to completion whatever happens to the request
/// (`context::to_completion`).
async fn admit(
    axum::extract::State(app): axum::extract::State<App>,
    req: Request,
    next: Next,
) -> Response {
    if let Err(refused) = ratelimit::check(&app, &req) {
        return refused.into_response();
    }
    match tokio::time::timeout(app.config.edge.request_timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => Error::new(ErrorCode::RequestTimeout)
            .with_retry_after(1)
            .into_response(),
    }
}

pub use crate::ops::metrics::CLIENT_CLOSED;

/// A request being answered. Finishing it writes the summary line and the metrics; if the
/// client disconnects first, the server drops the request's future and `Drop` writes them with
/// [`CLIENT_CLOSED`], so every request still gets exactly one line. A confirm keeps running,
/// detached (`context::to_completion`): its line then waits for it, so it carries the
/// confirm's real status next to the 499, and the confirm counts itself with its real outcome
/// ([`confirm_finished`]).
struct InFlight {
    ctx: RequestCtx,
    started: Instant,
    method: String,
    path: String,
    route: Option<String>,
    auth_hash: Option<String>,
    done: bool,
}

impl InFlight {
    fn finish(&mut self, http_status: u16, replayed: bool) {
        self.done = true;
        let elapsed = self.started.elapsed();
        let (confirm_uncounted, error_code) = self.ctx.with_fields(|f| {
            (
                f.function_name.is_some_and(is_confirm) && f.confirm_outcome.is_none(),
                f.error_code,
            )
        });
        crate::ops::metrics::record_request(
            self.route.as_deref(),
            &self.method,
            http_status,
            elapsed,
            self.ctx.roundtrips(),
        );
        // A confirm whose flow ran (or still runs, past a request timeout) counts itself.
        if confirm_uncounted && !self.ctx.detached_running() {
            let outcome =
                crate::ops::metrics::ConfirmOutcome::of(error_code, http_status, replayed);
            crate::ops::metrics::record_confirm(outcome, Some(elapsed));
        }
        request_line(RequestSummary {
            ctx: &self.ctx,
            method: &self.method,
            path: &self.path,
            route: self.route.as_deref(),
            http_status,
            latency_ms: elapsed.as_millis() as u64,
            auth_hash: self.auth_hash.take(),
        });
    }

    fn client_closed(&mut self) {
        self.ctx.record(|f| {
            f.status.get_or_insert_with(|| "client_closed".to_owned());
        });
        self.finish(CLIENT_CLOSED, false);
    }
}

/// Whether an operation name is the confirm's.
fn is_confirm(name: &str) -> bool {
    static CONFIRM: LazyLock<Option<&str>> =
        LazyLock::new(openapi::name_of::<openapi::operations::__path_confirm>);
    *CONFIRM == Some(name)
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        let runtime = tokio::runtime::Handle::try_current();
        match runtime {
            Ok(rt) if self.ctx.detached_running() => {
                let mut rest = InFlight {
                    ctx: self.ctx.clone(),
                    started: self.started,
                    method: std::mem::take(&mut self.method),
                    path: std::mem::take(&mut self.path),
                    route: self.route.take(),
                    auth_hash: self.auth_hash.take(),
                    done: false,
                };
                rt.spawn(async move {
                    rest.ctx.detached_done().await;
                    rest.client_closed();
                });
            }
            _ => self.client_closed(),
        }
    }
}

/// The confirm flow has finished (in the request, or detached if the client left): count its
/// real outcome with the request's latency, and record it for the summary line — the HTTP
/// layer may never render the answer if the client left.
pub(crate) fn confirm_finished(outcome: crate::ops::metrics::ConfirmOutcome) {
    use crate::ops::metrics::ConfirmOutcome;
    let Some(ctx) = crate::context::current() else {
        crate::ops::metrics::record_confirm(outcome, None);
        return;
    };
    ctx.record(|f| {
        f.confirm_outcome = Some(outcome);
        if let ConfirmOutcome::Error(code) | ConfirmOutcome::Repeated(code) = outcome {
            f.error_code = Some(code.as_str());
            f.status = Some("error".to_owned());
        }
    });
    crate::ops::metrics::record_confirm(outcome, Some(ctx.elapsed()));
}
