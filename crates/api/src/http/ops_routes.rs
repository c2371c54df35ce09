//! Operator endpoints (docs/api.md, "Operations"): the payments pause switch, the status page and
//! the Prometheus scrape.

use crate::App;
use crate::error::Result;
use crate::http::extract::{JsonObject, ServiceRole};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use store::PaymentControls;
use time::format_description::well_known::Rfc3339;

fn controls_json(c: &PaymentControls) -> Value {
    json!({
        "paymentsPaused": c.paused, "pauseReason": c.reason,
        "updatedAt": c.updated_at.format(&Rfc3339).unwrap_or_default(),
        "updatedBy": c.updated_by,
    })
}

/// `POST /v1/admin/payments/pause {"reason"}`.
pub async fn pause(
    State(app): State<App>,
    _: ServiceRole,
    body: JsonObject,
) -> Result<Json<Value>> {
    let reason = body.text(domain::TextField::PauseReason)?;
    let c = app
        .pause
        .set(&app, true, Some(&reason), "service_role")
        .await?;
    Ok(Json(controls_json(&c)))
}

/// `POST /v1/admin/payments/resume`.
pub async fn resume(State(app): State<App>, _: ServiceRole) -> Result<Json<Value>> {
    let c = app.pause.set(&app, false, None, "service_role").await?;
    Ok(Json(controls_json(&c)))
}

/// `GET /v1/admin/status`: pause switch, circuit, alerts, reconciler backlog.
pub async fn status(State(app): State<App>, _: ServiceRole) -> Result<Json<Value>> {
    let controls = app.store.payment_controls().await?;
    let (state, failures) = app.breaker.snapshot();
    let (backlog, oldest_age) =
        crate::flows::reconcile::backlog(&app, time::OffsetDateTime::now_utc()).await?;
    let last_run = app
        .reconciler
        .last_run_at()
        .and_then(|t| t.format(&Rfc3339).ok());
    let stuck = crate::flows::refunds::stuck_refunds(&app).await?;
    let oldest_stuck = stuck
        .iter()
        .map(|r| r.created_at)
        .min()
        .and_then(|t| t.format(&Rfc3339).ok());
    Ok(Json(json!({
        "paymentsPaused": controls.paused,
        "pauseReason": controls.reason,
        "circuit": {"state": state.as_str(), "consecutiveFailures": failures},
        "alerts": crate::ops::alerts::alerts_snapshot(),
        "refunds": {
            "slaSeconds": crate::flows::refunds::REFUND_SLA.as_secs(),
            "stuck": stuck.len(),
            "oldestStuckCreatedAt": oldest_stuck,
        },
        "reconciler": {
            "backlog": backlog,
            "oldestOpenOrderAgeSeconds": oldest_age,
            "lastRunAt": last_run,
        },
    })))
}

/// `GET /metrics`: the Prometheus text exposition.
pub async fn metrics(State(app): State<App>) -> Response {
    let mut resp = crate::ops::metrics::scrape(&app).await.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}
