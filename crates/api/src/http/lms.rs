//! Handlers for the LMS side (docs/api.md, "Enrollments and exams", "Refunds"): parse, call one flow,
//! render. The refund runs to completion like a confirm (`context::to_completion`): once Toss may
//! have been asked, a client that disconnects must not cut the recording of its answer short.

use crate::App;
use crate::error::{Error, Result};
use crate::flows;
use crate::http::extract::{AuthUser, JsonObject, ServiceRole};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use domain::{AttemptId, EnrollmentId, ErrorCode, OrderId, PaymentId, TextField};
use serde_json::{Value, json};
use store::ExamAttempt;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

fn ts(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

pub async fn refund_payment(
    State(app): State<App>,
    _: ServiceRole,
    Path(payment_id): Path<String>,
    body: JsonObject,
) -> Result<Json<Value>> {
    // An id that is not a UUID names no payment.
    let payment_id =
        PaymentId::parse(&payment_id).map_err(|_| Error::new(ErrorCode::PaymentNotFound))?;
    let reason = body.text(TextField::RefundReason)?;
    let amount = match body.opt_int("amount")? {
        None => None,
        Some(_) => Some(body.amount("amount")?),
    };
    // Only for deposited virtual-account payments; validated, never logged.
    let account = flows::refunds::parse_refund_account(body.0.get("refundReceiveAccount"))?;
    let task_app = app.clone();
    let out = crate::context::to_completion(async move {
        flows::refunds::refund_to(
            &task_app,
            payment_id,
            reason.as_str(),
            amount,
            account,
            "service_role",
        )
        .await
    })
    .await?;
    Ok(Json(json!({
        "paymentId": out.payment_id,
        "status": out.status.as_str(),
        "refundedAmount": out.refunded_amount.won(),
        "enrollmentStatus": out.enrollment_status.map(|s| s.as_str()),
    })))
}

/// `POST /v1/admin/orders/{orderId}/cancel`: end an unpaid order, closing its virtual account
/// at Toss if one was issued. Detached like a refund: Toss may be asked to cancel.
pub async fn cancel_order(
    State(app): State<App>,
    _: ServiceRole,
    Path(order_id): Path<String>,
) -> Result<Json<Value>> {
    let order_id =
        OrderId::parse(&order_id).map_err(|e| Error::invalid(format!("orderId: {}", e.reason)))?;
    let task_app = app.clone();
    let out = crate::context::to_completion(async move {
        flows::refunds::cancel_order(&task_app, &order_id, "service_role").await
    })
    .await?;
    Ok(Json(json!({
        "orderId": out.order.order_id,
        "status": out.order.status.as_str(),
        "failureCode": out.order.failure_code,
        "accountClosed": out.account_closed,
    })))
}

fn attempt_json(a: &ExamAttempt) -> Value {
    json!({
        "id": a.id, "enrollmentId": a.enrollment_id, "startedAt": ts(a.started_at),
        "score": a.score, "submittedAt": a.submitted_at.map(ts),
    })
}

pub async fn start_exam_attempt(
    State(app): State<App>,
    AuthUser(user): AuthUser,
    Path(enrollment_id): Path<String>,
) -> Result<Response> {
    let enrollment_id = EnrollmentId::parse(&enrollment_id)
        .map_err(|_| Error::new(ErrorCode::EnrollmentNotFound))?;
    let attempt = flows::exams::start_attempt(&app, user, enrollment_id).await?;
    Ok((StatusCode::CREATED, Json(attempt_json(&attempt))).into_response())
}

pub async fn submit_exam_attempt(
    State(app): State<App>,
    AuthUser(user): AuthUser,
    Path(attempt_id): Path<String>,
    body: JsonObject,
) -> Result<Json<Value>> {
    let attempt_id =
        AttemptId::parse(&attempt_id).map_err(|_| Error::new(ErrorCode::AttemptNotFound))?;
    let score = flows::exams::parse_score(body.int("score")?)?;
    let attempt = flows::exams::submit(&app, user, attempt_id, score).await?;
    Ok(Json(attempt_json(&attempt)))
}
