//! Handlers: parse, call one flow, render. No business logic here.

use crate::App;
use crate::error::{Error, Result};
use crate::flows::{self, confirm::ConfirmInput};
use crate::http::extract::{AuthUser, JsonObject, ServiceRole};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use domain::{CourseId, EnrollmentId, ErrorCode, IdempotencyKey, Locale, OrderId, PaymentKey};
use serde_json::{Value, json};
use store::{Course, Enrollment, KeyUse, Order};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The log name of an answer no operation gives (the fallbacks). Routed requests are named by
/// the request middleware, from the OpenAPI document.
fn name(n: &'static str) {
    crate::context::record(|f| f.function_name = Some(n));
}

fn ts(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn course_json(c: &Course) -> Value {
    json!({
        "id": c.id, "title": c.title, "price": c.price.won(), "currency": "KRW",
        "status": c.status,
    })
}

fn enrollment_json(e: &Enrollment) -> Value {
    json!({
        "id": e.id, "userId": e.user_id, "courseId": e.course_id,
        "status": e.status.as_str(), "enrolledAt": ts(e.enrolled_at),
    })
}

fn parse_path<T>(
    raw: &str,
    parse: impl Fn(&str) -> std::result::Result<T, domain::ParseError>,
    field: &str,
) -> Result<T> {
    parse(raw).map_err(|e| Error::invalid(format!("{field}: {}", e.reason)))
}

pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

pub async fn readyz(State(app): State<App>) -> Result<Json<Value>> {
    if app.shutdown.is_draining() {
        return Err(Error::new(ErrorCode::ServiceUnavailable)
            .with_detail("shutting down: send new requests to another instance"));
    }
    app.store
        .ready()
        .await
        .map_err(|e| Error::from(store::StoreError::Unavailable(e.to_string())))?;
    Ok(Json(json!({"status": "ready"})))
}

pub async fn version() -> Json<Value> {
    Json(json!({
        "version": crate::build::VERSION,
        "gitCommit": crate::build::GIT_COMMIT,
        "buildTime": crate::build::BUILD_TIME,
    }))
}

pub async fn i18n(Path(locale): Path<String>) -> Result<Json<Value>> {
    let locale = Locale::parse(&locale)
        .ok_or_else(|| Error::new(ErrorCode::NotFound).with_detail("locale: ko or en"))?;
    let map: serde_json::Map<String, Value> = ErrorCode::ALL
        .iter()
        .map(|c| (c.i18n_key(), json!(c.message(locale))))
        .collect();
    Ok(Json(Value::Object(map)))
}

/// Public storefront configuration: the client key and where the payment window is.
pub async fn public_config(State(app): State<App>) -> Json<Value> {
    Json(json!({
        "tossClientKey": app.config.toss_client_key,
        "sandbox": app.config.uses_sandbox(),
        "sandboxCheckoutPath": app.config.uses_sandbox().then_some("/toss-sandbox/sandbox/checkout"),
    }))
}

pub async fn create_course(
    State(app): State<App>,
    _: ServiceRole,
    body: JsonObject,
) -> Result<Response> {
    let title = body.text(domain::TextField::CourseTitle)?;
    let price = flows::catalog::parse_price(body.int("price")?)?;
    let course = flows::catalog::create_course(&app, title, price).await?;
    Ok((StatusCode::CREATED, Json(course_json(&course))).into_response())
}

pub async fn list_courses(State(app): State<App>) -> Result<Json<Value>> {
    let courses = flows::catalog::list_courses(&app).await?;
    Ok(Json(
        json!({"items": courses.iter().map(course_json).collect::<Vec<_>>()}),
    ))
}

pub async fn get_course(State(app): State<App>, Path(id): Path<String>) -> Result<Json<Value>> {
    let id = CourseId::parse(&id).map_err(|_| Error::new(ErrorCode::CourseNotFound))?;
    Ok(Json(course_json(
        &flows::catalog::get_course(&app, id).await?,
    )))
}

fn order_json(o: &Order) -> Value {
    json!({
        "orderId": o.order_id, "courseId": o.course_id, "amount": o.amount.won(),
        "currency": "KRW", "orderName": o.order_name, "customerKey": o.user_id,
        "status": o.status.as_str(), "expiresAt": ts(o.expires_at),
        "enrollmentId": o.enrollment_id,
    })
}

pub async fn checkout(
    State(app): State<App>,
    AuthUser(user): AuthUser,
    body: JsonObject,
) -> Result<Response> {
    let course_id = CourseId::parse(body.str("courseId")?)
        .map_err(|_| Error::invalid("courseId: must be a UUID"))?;
    let order = flows::checkout::checkout(&app, user, course_id).await?;
    Ok((StatusCode::CREATED, Json(order_json(&order))).into_response())
}

pub async fn confirm(
    State(app): State<App>,
    AuthUser(user): AuthUser,
    headers: HeaderMap,
    body: JsonObject,
) -> Result<Response> {
    let input = ConfirmInput {
        payment_key: parse_path(body.str("paymentKey")?, PaymentKey::parse, "paymentKey")?,
        order_id: parse_path(body.str("orderId")?, OrderId::parse, "orderId")?,
        amount: body.amount("amount")?,
    };
    if let Some(raw) = headers.get("idempotency-key") {
        let key = raw
            .to_str()
            .ok()
            .and_then(|s| IdempotencyKey::parse(s).ok())
            .ok_or_else(|| Error::invalid("Idempotency-Key: 1 to 300 visible ASCII characters"))?;
        let fingerprint = format!(
            "{}|{}|{}",
            input.order_id,
            input.payment_key,
            input.amount.won()
        );
        let now = OffsetDateTime::now_utc();
        let used = app
            .store
            .remember_idempotency_key(
                &format!("confirm:{user}"),
                key.as_str(),
                &fingerprint,
                now,
                now + time::Duration::days(15),
            )
            .await?;
        if used == KeyUse::DifferentRequest {
            return Err(Error::new(ErrorCode::IdempotencyKeyReused));
        }
    }
    // To completion: if the client disconnects, the handler future is dropped but the confirm
    // runs on, detached, and is counted with its real outcome and logged under this request.
    let task_app = app.clone();
    let out = crate::context::to_completion(async move {
        let (answer, outcome) = flows::confirm::confirm(&task_app, user, input).await;
        crate::http::confirm_finished(outcome);
        answer
    })
    .await?;
    let body = json!({
        "enrollmentId": out.enrollment_id, "paymentId": out.payment_id,
        "orderId": out.order_id, "courseId": out.course_id, "amount": out.amount.won(),
        "status": "ENROLLED", "approvedAt": ts(out.approved_at), "replayed": out.replayed,
    });
    let mut resp = Json(body).into_response();
    if out.replayed {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(resp)
}

pub async fn get_order(
    State(app): State<App>,
    AuthUser(user): AuthUser,
    Path(order_id): Path<String>,
) -> Result<Json<Value>> {
    let order_id = parse_path(&order_id, OrderId::parse, "orderId")?;
    let order = flows::enrollments::get_order(&app, user, &order_id).await?;
    Ok(Json(json!({
        "orderId": order.order_id, "courseId": order.course_id, "amount": order.amount.won(),
        "status": order.status.as_str(), "enrollmentId": order.enrollment_id,
    })))
}

pub async fn my_enrollments(
    State(app): State<App>,
    AuthUser(user): AuthUser,
) -> Result<Json<Value>> {
    let items = flows::enrollments::my_enrollments(&app, user).await?;
    Ok(Json(
        json!({"items": items.iter().map(enrollment_json).collect::<Vec<_>>()}),
    ))
}

pub async fn get_enrollment(
    State(app): State<App>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let id = EnrollmentId::parse(&id).map_err(|_| Error::new(ErrorCode::EnrollmentNotFound))?;
    Ok(Json(enrollment_json(
        &flows::enrollments::get_enrollment(&app, user, id).await?,
    )))
}

pub async fn not_found() -> Error {
    name("not-found");
    Error::new(ErrorCode::NotFound)
}

pub async fn method_not_allowed() -> Error {
    name("method-not-allowed");
    Error::new(ErrorCode::MethodNotAllowed)
}
