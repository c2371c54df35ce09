//! The last requests to the Toss API routes (`GET /sandbox/requests`): method, path and the two
//! headers a client propagates — `traceparent` and `Idempotency-Key`. Lets tests check what the
//! client sent. The Authorization header is never recorded.

use crate::Sandbox;
use axum::Json;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use serde::{Deserialize, Serialize};

/// How many requests are kept (oldest dropped first).
pub(crate) const KEEP: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeenRequest {
    pub method: String,
    pub path: String,
    pub traceparent: Option<String>,
    pub idempotency_key: Option<String>,
}

pub(crate) async fn record(State(sandbox): State<Sandbox>, req: Request, next: Next) -> Response {
    sandbox.remember(seen(&req));
    next.run(req).await
}

fn seen(req: &Request) -> SeenRequest {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    SeenRequest {
        method: req.method().to_string(),
        path: req.uri().path().to_owned(),
        traceparent: header("traceparent"),
        idempotency_key: header("idempotency-key"),
    }
}

pub(crate) async fn list(State(sandbox): State<Sandbox>) -> Json<Vec<SeenRequest>> {
    Json(sandbox.requests())
}
