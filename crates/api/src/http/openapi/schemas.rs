//! The request and response bodies of the HTTP API as schema types. Handlers build their JSON
//! by hand; these types only describe it (the fuzz run in `scripts/test.sh` checks every answer
//! against them, and response types refuse unknown fields so an added field shows up there).
//! Component names are the type names: the storefront's TypeScript types are generated from
//! them, so renaming one is a breaking change for clients.

#![allow(dead_code)]

use serde::Serialize;
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

/// The demo course `coursepay serve` creates in development, so the examples work as they are.
const COURSE_ID: &str = "00000000-0000-4000-8000-00000000c0a1";
const USER_ID: &str = "6f1c2b8e-4a3d-4e5f-9a7b-1c2d3e4f5a6b";
const ENROLLMENT_ID: &str = "0190a5f5-1111-7c3d-8e9f-0a1b2c3d4e5f";
const PAYMENT_ID: &str = "0190a5f5-2222-7c3d-8e9f-0a1b2c3d4e5f";
const ATTEMPT_ID: &str = "0190a5f5-3333-7c3d-8e9f-0a1b2c3d4e5f";
const ORDER_ID: &str = "ord_0190a5f5a1b2c3d4e5f6a7b8c9d0e1f2";

/// A string enum whose values come from a list kept elsewhere in the code (the domain's status
/// lists), so the document cannot disagree with them.
macro_rules! string_enum_schema {
    ($(#[$doc:meta])* $name:ident, $values:expr, $description:literal) => {
        $(#[$doc])*
        #[derive(Serialize)]
        pub struct $name;
        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some($description))
                    .enum_values(Some($values))
                    .into()
            }
        }
        impl ToSchema for $name {}
    };
}

string_enum_schema!(
    OrderStatus,
    domain::OrderStatus::ALL.iter().map(|s| s.as_str()),
    "An order's state. PENDING and CONFIRMING are settled with the provider when read; PAID \
     means the enrollment exists."
);
string_enum_schema!(
    EnrollmentStatus,
    domain::EnrollmentStatus::ALL.iter().map(|s| s.as_str()),
    "ENROLLED gives access to the course; REFUNDED revokes it."
);
string_enum_schema!(
    PaymentStatus,
    domain::PaymentStatus::ALL.iter().map(|s| s.as_str()),
    "The payment's status as the provider (Toss Payments) spells it."
);
string_enum_schema!(
    ErrorCode,
    domain::ErrorCode::ALL.iter().map(|c| c.as_str()),
    "Every error code the API answers with. Clients branch on it, never on `detail`."
);
string_enum_schema!(Currency, ["KRW"], "Always KRW; amounts are integer won.");

/// An RFC 9457 problem: every error answer, with `Content-Type: application/problem+json`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({
    "type": "urn:coursepay:error:E_AMOUNT_MISMATCH",
    "title": "The amount does not match the order. Nothing was charged.",
    "status": 400,
    "detail": "The amount does not match the order. Nothing was charged.",
    "code": "E_AMOUNT_MISMATCH",
    "requestId": "0190a5f6-aaaa-7bbb-8ccc-ddddeeeeffff",
    "retryable": false
}))]
pub struct Problem {
    /// `urn:coursepay:error:<code>`.
    #[serde(rename = "type")]
    kind: String,
    /// Short text in the language asked for with `Accept-Language` (ko or en).
    title: String,
    /// The HTTP status, repeated.
    status: u16,
    /// What exactly was wrong (for a bad request: the field and why). For people, not programs.
    detail: String,
    code: ErrorCode,
    /// The request's `X-Request-Id`, to quote when asking for support.
    request_id: String,
    /// Whether the same request may succeed later (show a retry button).
    retryable: bool,
    /// The provider's own error code, on `E_PAYMENT_REJECTED`.
    #[schema(example = "REJECT_CARD_PAYMENT")]
    provider_code: Option<String>,
}

/// A course on sale.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"id": COURSE_ID, "title": "Course A", "price": 10000, "currency": "KRW", "status": "PUBLISHED"}))]
pub struct Course {
    id: uuid::Uuid,
    title: String,
    /// Integer KRW.
    #[schema(minimum = 100, maximum = 100_000_000)]
    price: i64,
    currency: Currency,
    /// Always PUBLISHED today.
    #[schema(example = "PUBLISHED")]
    status: String,
}

/// `POST /v1/admin/courses`.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"title": "Course A", "price": 10000}))]
pub struct NewCourse {
    /// 1 to 200 characters, no control characters.
    #[schema(min_length = 1, max_length = 200)]
    title: String,
    /// Integer KRW.
    #[schema(minimum = 100, maximum = 100_000_000)]
    price: i64,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CourseList {
    items: Vec<Course>,
}

/// `POST /v1/checkout`: the server prices the order; the client never sends a price.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"courseId": COURSE_ID}))]
pub struct CheckoutRequest {
    course_id: uuid::Uuid,
}

/// A new order, to open the payment window with (`orderId`, `amount`, `orderName`,
/// `customerKey`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({
    "orderId": ORDER_ID, "courseId": COURSE_ID, "amount": 10000, "currency": "KRW",
    "orderName": "Course A", "customerKey": USER_ID, "status": "PENDING",
    "expiresAt": "2026-11-30T10:30:00Z", "enrollmentId": null
}))]
pub struct Checkout {
    /// 6 to 64 characters of `[A-Za-z0-9_-]` (the provider's rule).
    #[schema(pattern = "^[A-Za-z0-9_-]{6,64}$")]
    order_id: String,
    course_id: uuid::Uuid,
    amount: i64,
    currency: Currency,
    order_name: String,
    /// The buyer's id, as the payment window's customerKey.
    customer_key: uuid::Uuid,
    status: OrderStatus,
    #[schema(format = DateTime)]
    expires_at: String,
    #[schema(required)]
    enrollment_id: Option<uuid::Uuid>,
}

/// `POST /v1/payments/confirm`: what the payment window's success redirect carried.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"paymentKey": "tgen_20261130abcdef", "orderId": ORDER_ID, "amount": 10000}))]
pub struct ConfirmRequest {
    /// The provider's payment key, 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    payment_key: String,
    #[schema(pattern = "^[A-Za-z0-9_-]{6,64}$")]
    order_id: String,
    /// Must equal the order's amount, or nothing is charged (`E_AMOUNT_MISMATCH`).
    #[schema(minimum = 1)]
    amount: i64,
}

/// A paid order and the enrollment it bought.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({
    "enrollmentId": ENROLLMENT_ID, "paymentId": PAYMENT_ID, "orderId": ORDER_ID,
    "courseId": COURSE_ID, "amount": 10000, "status": "ENROLLED",
    "approvedAt": "2026-11-30T10:01:02Z", "replayed": false
}))]
pub struct ConfirmResult {
    enrollment_id: uuid::Uuid,
    payment_id: uuid::Uuid,
    order_id: String,
    course_id: uuid::Uuid,
    amount: i64,
    /// Always ENROLLED.
    #[schema(example = "ENROLLED")]
    status: String,
    #[schema(format = DateTime)]
    approved_at: String,
    /// True when this answer repeats an earlier successful confirm (also header
    /// `Idempotent-Replayed: true`); nothing was charged again.
    replayed: bool,
}

/// An order as its owner sees it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"orderId": ORDER_ID, "courseId": COURSE_ID, "amount": 10000, "status": "PAID", "enrollmentId": ENROLLMENT_ID}))]
pub struct Order {
    order_id: String,
    course_id: uuid::Uuid,
    amount: i64,
    status: OrderStatus,
    /// Set once the order is PAID.
    #[schema(required)]
    enrollment_id: Option<uuid::Uuid>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"id": ENROLLMENT_ID, "userId": USER_ID, "courseId": COURSE_ID, "status": "ENROLLED", "enrolledAt": "2026-11-30T10:01:02Z"}))]
pub struct Enrollment {
    id: uuid::Uuid,
    user_id: uuid::Uuid,
    course_id: uuid::Uuid,
    status: EnrollmentStatus,
    #[schema(format = DateTime)]
    enrolled_at: String,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollmentList {
    items: Vec<Enrollment>,
}

/// An exam attempt; `score` and `submittedAt` are null until it is submitted.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"id": ATTEMPT_ID, "enrollmentId": ENROLLMENT_ID, "startedAt": "2026-11-30T11:00:00Z", "score": 87, "submittedAt": "2026-11-30T11:40:00Z"}))]
pub struct ExamAttempt {
    id: uuid::Uuid,
    enrollment_id: uuid::Uuid,
    #[schema(format = DateTime)]
    started_at: String,
    #[schema(required, minimum = 0, maximum = 100)]
    score: Option<i64>,
    #[schema(required, format = DateTime)]
    submitted_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"score": 87}))]
pub struct ExamSubmission {
    #[schema(minimum = 0, maximum = 100)]
    score: i64,
}

/// `POST /v1/payments/{paymentId}/refund`: without `amount`, everything left is refunded.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"reason": "Customer asked within 7 days", "amount": 5000}))]
pub struct RefundRequest {
    /// 1 to 200 characters (the provider's limit), no control characters.
    #[schema(min_length = 1, max_length = 200)]
    reason: String,
    #[schema(minimum = 1)]
    amount: Option<i64>,
    /// Required for a virtual-account payment whose deposit was made (the provider pays the
    /// refund into this account); refused for card payments. Never stored or logged.
    refund_receive_account: Option<RefundReceiveAccount>,
}

/// The buyer's bank account for refunding a deposited virtual-account payment.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"bank": "20", "accountNumber": "1002345678901", "holderName": "김토스"}))]
pub struct RefundReceiveAccount {
    /// The provider's bank code.
    bank: String,
    /// Digits only.
    account_number: String,
    holder_name: String,
}

/// A development token (`POST /v1/dev/token`; absent when `COURSEPAY_ENV=production`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DevToken {
    /// A bearer token of the user (HS256, 12 hours).
    access_token: String,
    #[schema(example = "bearer")]
    token_type: String,
    user_id: uuid::Uuid,
    #[schema(format = DateTime)]
    expires_at: String,
}

/// The request of `POST /v1/dev/token`: an existing user's id, or nothing for a new user.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DevTokenRequest {
    user_id: Option<uuid::Uuid>,
}

/// The last request summary lines of this instance, oldest first, with person and credential
/// fields redacted.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecentLogs {
    items: Vec<serde_json::Value>,
    /// The fields replaced by "[redacted]".
    redacted_fields: Vec<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"paymentId": PAYMENT_ID, "status": "PARTIAL_CANCELED", "refundedAmount": 5000, "enrollmentStatus": "ENROLLED"}))]
pub struct RefundResult {
    payment_id: uuid::Uuid,
    /// CANCELED (nothing left) or PARTIAL_CANCELED.
    status: PaymentStatus,
    /// Everything refunded so far.
    refunded_amount: i64,
    /// REFUNDED after a full refund.
    #[schema(required)]
    enrollment_status: Option<EnrollmentStatus>,
}

/// An order an operator canceled.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"orderId": ORDER_ID, "status": "FAILED", "failureCode": "ORDER_CANCELED", "accountClosed": true}))]
pub struct OrderCanceled {
    order_id: String,
    /// FAILED (canceled here) or EXPIRED (had ended before).
    status: OrderStatus,
    /// `ORDER_CANCELED`, or the code the order had ended with before.
    #[schema(required)]
    failure_code: Option<String>,
    /// The provider shows the order's virtual account closed (none was issued: false).
    account_closed: bool,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"reason": "Provider incident"}))]
pub struct PauseRequest {
    /// 1 to 500 characters.
    #[schema(min_length = 1, max_length = 500)]
    reason: String,
}

/// The payments pause switch.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"paymentsPaused": true, "pauseReason": "Provider incident", "updatedAt": "2026-11-30T10:00:00Z", "updatedBy": "service_role"}))]
pub struct PaymentControls {
    payments_paused: bool,
    #[schema(required)]
    pause_reason: Option<String>,
    #[schema(format = DateTime)]
    updated_at: String,
    updated_by: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Circuit {
    /// closed, open or half_open.
    #[schema(example = "closed")]
    state: String,
    consecutive_failures: u32,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    rule: String,
    /// `firing`, `ok`, or `not enough data` while `samples` is below `minSamples` (the rule
    /// cannot fire yet).
    #[schema(example = "ok")]
    state: String,
    /// The volume the rule needs before it can fire (its gate).
    min_samples: u64,
    /// The volume it has now.
    samples: u64,
    /// What `samples` counts, in words.
    gate: String,
    /// Null when there is no value yet.
    #[schema(required)]
    value: Option<f64>,
    #[schema(required)]
    threshold: Option<f64>,
    #[schema(required, format = DateTime)]
    since: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefundBacklog {
    sla_seconds: u64,
    /// Refunds asked of the provider and still unanswered past the SLA.
    stuck: u64,
    #[schema(required, format = DateTime)]
    oldest_stuck_created_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReconcilerStatus {
    /// Orders still open with the provider.
    backlog: i64,
    #[schema(required)]
    oldest_open_order_age_seconds: Option<u64>,
    #[schema(required, format = DateTime)]
    last_run_at: Option<String>,
}

/// The operator's status page. New fields may be added.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminStatus {
    payments_paused: bool,
    #[schema(required)]
    pause_reason: Option<String>,
    circuit: Circuit,
    alerts: Vec<Alert>,
    refunds: RefundBacklog,
    reconciler: ReconcilerStatus,
}

/// The storefront's public configuration.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"tossClientKey": "test_ck_docs", "sandbox": true, "sandboxCheckoutPath": "/toss-sandbox/sandbox/checkout"}))]
pub struct PublicConfig {
    /// The provider's client key for the payment window (public by design).
    toss_client_key: String,
    /// True when payments go to the built-in sandbox.
    sandbox: bool,
    /// Where the sandbox's payment window is, when `sandbox` is true.
    #[schema(required)]
    sandbox_checkout_path: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"status": "ok"}))]
pub struct Health {
    status: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"version": "0.1.0", "gitCommit": "bc24d45", "buildTime": "2026-11-30T09:00:00Z"}))]
pub struct Version {
    version: String,
    /// "unknown" when the build did not record it.
    git_commit: String,
    /// "unknown" when the build did not record it.
    build_time: String,
}

/// A webhook as Toss Payments sends it: a status change (`PAYMENT_STATUS_CHANGED`, ...) or a
/// virtual-account deposit callback. Nothing in it is trusted: the payment it names is read
/// again from the provider before anything changes.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({
    "eventType": "PAYMENT_STATUS_CHANGED",
    "createdAt": "2026-11-30T19:01:02.000000",
    "data": {"paymentKey": "tgen_20261130abcdef", "orderId": ORDER_ID, "status": "DONE"}
}))]
pub struct TossWebhook {
    /// `PAYMENT_STATUS_CHANGED`, `DEPOSIT_CALLBACK`, ...
    event_type: Option<String>,
    created_at: Option<String>,
    /// The payment (Toss's Payment object) for status changes.
    data: Option<serde_json::Value>,
    /// Deposit callbacks carry the payment fields at the top level instead.
    order_id: Option<String>,
    status: Option<String>,
    secret: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"received": true}))]
pub struct WebhookReceived {
    received: bool,
}

/// One message per error code (`ui.payment.error.<code>`), every code in every locale.
pub struct I18nMessages;
impl utoipa::PartialSchema for I18nMessages {
    fn schema() -> RefOr<Schema> {
        let mut o = ObjectBuilder::new()
            .description(Some(
                "One message per error code, keyed `ui.payment.error.<code>`: every code in \
                 every locale.",
            ))
            .additional_properties(Some(ObjectBuilder::new().schema_type(Type::String)));
        for code in domain::ErrorCode::ALL {
            o = o
                .property(
                    code.i18n_key(),
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .examples([code.message(domain::Locale::En)]),
                )
                .required(code.i18n_key());
        }
        o.into()
    }
}
impl ToSchema for I18nMessages {}
