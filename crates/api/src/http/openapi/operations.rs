//! One `#[utoipa::path]` per route of [`crate::http::router`]: method, path, operation id,
//! parameters, request body and success answers. Error answers are not written here: they are
//! derived from the error catalog with the list of codes each operation can give
//! ([`super::ERRORS`]). The functions are markers for the macro; the handlers live in
//! `routes.rs`, `lms.rs`, `ops_routes.rs` and `webhook.rs`. The operation id also names the
//! route's requests in the summary log line, in kebab case ([`super::operation_name`]).
//!
//! Adding a route: write its marker here, name it in `paths(...)` in `super`, and give its
//! error codes in [`super::ERRORS`]; the tests in `super` fail until all three are done.

#![allow(dead_code)]

use super::schemas::*;

// --- operations ---------------------------------------------------------------------------

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = Health)))]
fn healthz() {}

/// Readiness: the database is reachable and migrated. 503 while the server drains on
/// shutdown or the database is away.
#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "operations",
    responses((status = 200, description = "Ready for traffic", body = Health,
        example = json!({"status": "ready"}))))]
fn readyz() {}

/// The build's version.
#[utoipa::path(get, path = "/version", operation_id = "version", tag = "operations",
    responses((status = 200, description = "Version and build", body = Version)))]
fn version() {}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format",
        content_type = "text/plain; version=0.0.4; charset=utf-8", body = String)))]
fn metrics() {}

/// This document (OpenAPI 3.1). The rendered reference page is `GET /docs`.
#[utoipa::path(get, path = "/openapi.json", operation_id = "openapi", tag = "operations",
    responses((status = 200, description = "The OpenAPI document", body = Object)))]
fn openapi() {}

/// The rendered API reference (Swagger UI, served from the binary). `/docs` redirects to
/// `/docs/`, the page itself.
#[utoipa::path(get, path = "/docs", operation_id = "docs", tag = "operations",
    responses(
        (status = 200, description = "The reference page", content_type = "text/html", body = String),
        (status = 303, description = "Redirect to `/docs/`",
            headers(("Location" = String, description = "`/docs/`"))),
    ))]
fn docs() {}

/// The user-facing message of every error code in one locale.
#[utoipa::path(get, path = "/v1/i18n/{locale}", operation_id = "i18nMessages", tag = "config",
    params(("locale" = String, Path, description = "ko or en (ko-KR and en-US are accepted too)",
        example = "ko")),
    responses((status = 200, description = "Messages by key", body = I18nMessages)))]
fn i18n() {}

/// What the storefront needs to open the payment window.
#[utoipa::path(get, path = "/v1/config", operation_id = "publicConfig", tag = "config",
    responses((status = 200, description = "Public configuration", body = PublicConfig)))]
fn public_config() {}

// --- catalog -----------------------------------------------------------------------------

/// Create a published course.
#[utoipa::path(post, path = "/v1/admin/courses", operation_id = "createCourse", tag = "admin",
    request_body = NewCourse,
    responses((status = 201, description = "Created", body = Course)),
    security(("serviceRole" = [])))]
fn create_course() {}

/// Every published course.
#[utoipa::path(get, path = "/v1/courses", operation_id = "listCourses", tag = "catalog",
    responses((status = 200, description = "Courses", body = CourseList)))]
fn list_courses() {}

/// One course. An id that is not a UUID names no course (404).
#[utoipa::path(get, path = "/v1/courses/{courseId}", operation_id = "getCourse", tag = "catalog",
    params(("courseId" = String, Path, description = "Course id (UUID)")),
    responses((status = 200, description = "The course", body = Course)))]
fn get_course() {}

// --- payments ----------------------------------------------------------------------------

/// Create an order for a course, priced by the server.
#[utoipa::path(post, path = "/v1/checkout", operation_id = "checkout", tag = "payments",
    request_body = CheckoutRequest,
    responses((status = 201, description = "Order created (PENDING until confirmed)", body = Checkout)),
    security(("bearerAuth" = [])))]
fn checkout() {}

/// Confirm a payment the buyer approved in the payment window, and enroll.
///
/// The amount is compared with the order's before the provider is called. Repeating a
/// successful confirm answers the same body with `replayed: true` and nothing is charged
/// again. The same confirm while another one of the order still runs (the buyer's other tab,
/// or the server confirming a payment the buyer left) waits for it, up to one provider
/// timeout, and answers its result with `replayed: true`; only if it is still running then
/// does it get 409 `E_CONFIRM_IN_PROGRESS`.
#[utoipa::path(post, path = "/v1/payments/confirm", operation_id = "confirmPayment", tag = "payments",
    params(("Idempotency-Key" = Option<String>, Header,
        description = "Optional, 1 to 300 visible ASCII characters. The same key with a different \
        body is refused (422 `E_IDEMPOTENCY_KEY_REUSED`).")),
    request_body = ConfirmRequest,
    responses((status = 200, description = "Paid and enrolled (or a replay of that answer)",
        body = ConfirmResult,
        headers(("Idempotent-Replayed" = String,
            description = "`true` when the answer repeats an earlier successful confirm")))),
    security(("bearerAuth" = [])))]
fn confirm() {}

/// An order of the caller. A PENDING or CONFIRMING order is first settled with the provider,
/// so a buyer who closed the tab after paying finds the enrollment.
#[utoipa::path(get, path = "/v1/orders/{orderId}", operation_id = "getOrder", tag = "payments",
    params(("orderId" = String, Path, description = "6 to 64 characters of [A-Za-z0-9_-]")),
    responses((status = 200, description = "The order", body = Order)),
    security(("bearerAuth" = [])))]
fn get_order() {}

/// Refund a payment, fully or partly, through the provider.
#[utoipa::path(post, path = "/v1/payments/{paymentId}/refund", operation_id = "refundPayment",
    tag = "admin",
    params(("paymentId" = String, Path, description = "Payment id (UUID)")),
    request_body = RefundRequest,
    responses((status = 200, description = "Refunded", body = RefundResult)),
    security(("serviceRole" = [])))]
fn refund_payment() {}

/// Cancel an unpaid order. The provider is asked first; if it issued the order a virtual
/// account still waiting for its deposit, the order ends and the account is closed (a full
/// cancel before the deposit), so no money can arrive for it any more. A paid order is
/// refunded instead, through its payment. Repeating the request answers the order as it is.
#[utoipa::path(post, path = "/v1/admin/orders/{orderId}/cancel", operation_id = "cancelOrder",
    tag = "admin",
    params(("orderId" = String, Path, description = "6 to 64 characters of [A-Za-z0-9_-]")),
    responses((status = 200, description = "The order has ended", body = OrderCanceled)),
    security(("serviceRole" = [])))]
fn cancel_order() {}

/// A webhook from Toss Payments (or a signing relay in front of it).
///
/// Authenticity, in this order: an `X-Signature` (HMAC-SHA256 of `<X-Timestamp>.<raw body>`
/// with the webhook secret); Toss's own `tosspayments-webhook-signature`; an unsigned delivery
/// only when the server is configured to accept them. Whatever the body says, the payment is
/// read again from the provider before anything changes.
#[utoipa::path(post, path = "/v1/webhooks/toss", operation_id = "tossWebhook", tag = "webhooks",
    params(
        ("X-Timestamp" = Option<String>, Header, description = "Unix seconds, within 300 s of the server's clock"),
        ("X-Signature" = Option<String>, Header,
            description = "`v1=<lowercase hex HMAC-SHA256>`; several comma-separated values allowed"),
        ("tosspayments-webhook-signature" = Option<String>, Header,
            description = "Toss's signature on payout/seller events"),
        ("tosspayments-webhook-transmission-time" = Option<String>, Header,
            description = "Signed together with the body by Toss's scheme"),
        ("tosspayments-webhook-transmission-id" = Option<String>, Header,
            description = "A delivery already processed is answered 200 without processing it again"),
    ),
    request_body = TossWebhook,
    responses((status = 200, description = "Authentic; processed or already processed", body = WebhookReceived)))]
fn toss_webhook() {}

// --- enrollments and exams ---------------------------------------------------------------

/// The caller's enrollments.
#[utoipa::path(get, path = "/v1/me/enrollments", operation_id = "listMyEnrollments",
    tag = "enrollments",
    responses((status = 200, description = "Enrollments", body = EnrollmentList)),
    security(("bearerAuth" = [])))]
fn my_enrollments() {}

/// One enrollment of the caller.
#[utoipa::path(get, path = "/v1/enrollments/{enrollmentId}", operation_id = "getEnrollment",
    tag = "enrollments",
    params(("enrollmentId" = String, Path, description = "Enrollment id (UUID)")),
    responses((status = 200, description = "The enrollment", body = Enrollment)),
    security(("bearerAuth" = [])))]
fn get_enrollment() {}

/// Start an exam attempt in an ENROLLED enrollment of the caller.
#[utoipa::path(post, path = "/v1/enrollments/{enrollmentId}/exam-attempts",
    operation_id = "startExamAttempt", tag = "enrollments",
    params(("enrollmentId" = String, Path, description = "Enrollment id (UUID)")),
    responses((status = 201, description = "Started", body = ExamAttempt)),
    security(("bearerAuth" = [])))]
fn start_exam_attempt() {}

/// Submit an attempt's score, once.
#[utoipa::path(post, path = "/v1/exam-attempts/{attemptId}/submit",
    operation_id = "submitExamAttempt", tag = "enrollments",
    params(("attemptId" = String, Path, description = "Attempt id (UUID)")),
    request_body = ExamSubmission,
    responses((status = 200, description = "Submitted", body = ExamAttempt)),
    security(("bearerAuth" = [])))]
fn submit_exam_attempt() {}

// --- operator ----------------------------------------------------------------------------

/// Pause payments: confirms answer 503 `E_PAYMENTS_PAUSED` until resumed.
#[utoipa::path(post, path = "/v1/admin/payments/pause", operation_id = "pausePayments",
    tag = "admin", request_body = PauseRequest,
    responses((status = 200, description = "Paused", body = PaymentControls)),
    security(("serviceRole" = [])))]
fn pause_payments() {}

/// Resume payments.
#[utoipa::path(post, path = "/v1/admin/payments/resume", operation_id = "resumePayments",
    tag = "admin",
    responses((status = 200, description = "Resumed", body = PaymentControls)),
    security(("serviceRole" = [])))]
fn resume_payments() {}

/// Pause switch, provider circuit, alerts, refund and reconciler backlogs.
#[utoipa::path(get, path = "/v1/admin/status", operation_id = "adminStatus", tag = "admin",
    responses((status = 200, description = "Status", body = AdminStatus)),
    security(("serviceRole" = [])))]
fn admin_status() {}

/// The yes/no configuration report (`coursepay preflight` reads it): which secrets are set and
/// strong enough, key modes, CORS, breaker settings, the store kind; never a value.
#[utoipa::path(get, path = "/v1/admin/config-report", operation_id = "configReport",
    tag = "admin",
    responses((status = 200, description = "The report: an object of yes/no facts, never a value",
        body = serde_json::Value)),
    security(("serviceRole" = [])))]
fn config_report() {}

/// The last request summary lines of this instance (redacted), for checking the log format.
#[utoipa::path(get, path = "/v1/admin/logs/recent", operation_id = "recentLogs", tag = "admin",
    params(("limit" = Option<u32>, Query, minimum = 1, maximum = 200,
        description = "How many lines (default 50)")),
    responses((status = 200, description = "Lines, oldest first", body = RecentLogs)),
    security(("serviceRole" = [])))]
fn recent_logs() {}

/// Development only: a token for a new (or the given) user, for the storefront's one-click
/// sign-in. The route does not exist when `COURSEPAY_ENV=production`.
#[utoipa::path(post, path = "/v1/dev/token", operation_id = "devToken", tag = "config",
    request_body(content = Option<DevTokenRequest>, description = "Optional: the user"),
    responses((status = 200, description = "A bearer token", body = DevToken)))]
fn dev_token() {}
