//! The HTTP contract as an OpenAPI 3.1 document, generated from the code: operations from
//! [`operations`], schemas from [`schemas`], and every error answer from the error catalog
//! ([`domain::ErrorCode`]) with the codes each operation can give ([`ERRORS`]). Served at
//! `GET /openapi.json` and rendered at `GET /docs`; a copy is committed as
//! `docs/openapi.json` and a test fails when the two differ. Regenerate the copy with
//! `scripts/openapi.sh`.

pub(crate) mod operations;
pub mod schemas;

use axum::http::Method;
use domain::{ErrorCode, Locale};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::{LazyLock, OnceLock};
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "coursepay",
        description = "Payment confirmation and enrollment for course platforms selling through \
            Toss Payments. The payment flow is checkout → the provider's payment window → \
            confirm → order. Errors are RFC 9457 problem details whose `code` clients branch on; \
            `docs/api.md` in the repository explains the flow, the idempotency and replay rules \
            and webhook signing.",
        license(name = "MIT OR Apache-2.0")
    ),
    paths(
        operations::healthz,
        operations::readyz,
        operations::version,
        operations::metrics,
        operations::openapi,
        operations::docs,
        operations::i18n,
        operations::public_config,
        operations::create_course,
        operations::list_courses,
        operations::get_course,
        operations::checkout,
        operations::confirm,
        operations::get_order,
        operations::refund_payment,
        operations::cancel_order,
        operations::toss_webhook,
        operations::my_enrollments,
        operations::get_enrollment,
        operations::start_exam_attempt,
        operations::submit_exam_attempt,
        operations::pause_payments,
        operations::resume_payments,
        operations::admin_status,
        operations::config_report,
        operations::recent_logs,
        operations::dev_token,
    ),
    components(schemas(schemas::Problem, schemas::ErrorCode)),
    tags(
        (name = "payments", description = "Checkout, confirm, orders"),
        (name = "catalog", description = "Courses on sale"),
        (name = "enrollments", description = "What a buyer owns: enrollments and exam attempts"),
        (name = "admin", description = "Service-role operations: courses, refunds, the payments switch"),
        (name = "webhooks", description = "Deliveries from the payment provider"),
        (name = "config", description = "Public configuration and messages for clients"),
        (name = "operations", description = "Health, readiness, metrics, version, this document"),
    )
)]
struct ApiDoc;

use ErrorCode as E;

/// Codes every authenticated operation can give.
const USER_AUTH: &[ErrorCode] = &[E::Unauthorized, E::Forbidden];
/// Codes every operation with a JSON body can give.
const BODY: &[ErrorCode] = &[E::InvalidRequest, E::PayloadTooLarge];
/// Codes every operation can give: the rate limit, the request timeout and a server fault.
const EVERYWHERE: &[ErrorCode] = &[E::RateLimited, E::RequestTimeout, E::Internal];

/// The error codes of each operation (by operation id), besides [`EVERYWHERE`]. The document's
/// error answers are built from this list and the catalog (status, title, ko/en messages).
pub const ERRORS: &[(&str, &[&[ErrorCode]])] = &[
    ("healthz", &[]),
    ("readyz", &[&[E::ServiceUnavailable]]),
    ("version", &[]),
    ("metrics", &[]),
    ("openapi", &[]),
    ("docs", &[]),
    ("i18nMessages", &[&[E::NotFound]]),
    ("publicConfig", &[]),
    ("createCourse", &[USER_AUTH, BODY, &[E::ServiceUnavailable]]),
    ("listCourses", &[&[E::ServiceUnavailable]]),
    ("getCourse", &[&[E::CourseNotFound, E::ServiceUnavailable]]),
    (
        "checkout",
        &[
            USER_AUTH,
            BODY,
            &[
                E::CourseNotFound,
                E::AlreadyEnrolled,
                E::TooManyOpenOrders,
                E::ServiceUnavailable,
            ],
        ],
    ),
    (
        "confirmPayment",
        &[
            USER_AUTH,
            BODY,
            &[
                E::AmountMismatch,
                E::OrderNotFound,
                E::OrderExpired,
                E::AlreadyEnrolled,
                E::ConfirmInProgress,
                E::PaymentRejected,
                E::PgUnavailable,
                E::PgTimeout,
                E::PaymentsPaused,
                E::IdempotencyKeyReused,
                E::ServiceUnavailable,
            ],
        ],
    ),
    (
        "getOrder",
        &[
            USER_AUTH,
            &[E::InvalidRequest, E::OrderNotFound, E::ServiceUnavailable],
        ],
    ),
    (
        "refundPayment",
        &[
            USER_AUTH,
            BODY,
            &[
                E::PaymentNotFound,
                E::RefundNotAllowed,
                E::PgUnavailable,
                E::PgTimeout,
                E::ServiceUnavailable,
            ],
        ],
    ),
    (
        "cancelOrder",
        &[
            USER_AUTH,
            &[
                E::InvalidRequest,
                E::OrderNotFound,
                E::OrderNotCancelable,
                E::ConfirmInProgress,
                E::PgUnavailable,
                E::PgTimeout,
                E::ServiceUnavailable,
            ],
        ],
    ),
    (
        "tossWebhook",
        &[
            BODY,
            &[
                E::WebhookInvalidSig,
                E::WebhookReplayed,
                E::PgUnavailable,
                E::PgTimeout,
                E::ServiceUnavailable,
            ],
        ],
    ),
    ("listMyEnrollments", &[USER_AUTH, &[E::ServiceUnavailable]]),
    (
        "getEnrollment",
        &[USER_AUTH, &[E::EnrollmentNotFound, E::ServiceUnavailable]],
    ),
    (
        "startExamAttempt",
        &[
            USER_AUTH,
            &[
                E::EnrollmentNotFound,
                E::NotEnrolled,
                E::AttemptLimitReached,
                E::ServiceUnavailable,
            ],
        ],
    ),
    (
        "submitExamAttempt",
        &[
            USER_AUTH,
            BODY,
            &[
                E::AttemptNotFound,
                E::AttemptAlreadySubmitted,
                E::ServiceUnavailable,
            ],
        ],
    ),
    (
        "pausePayments",
        &[USER_AUTH, BODY, &[E::ServiceUnavailable]],
    ),
    ("resumePayments", &[USER_AUTH, &[E::ServiceUnavailable]]),
    ("adminStatus", &[USER_AUTH, &[E::ServiceUnavailable]]),
    ("configReport", &[USER_AUTH]),
    ("recentLogs", &[USER_AUTH, &[E::InvalidRequest]]),
    ("devToken", &[BODY]),
];

/// The error codes an operation can give, in catalog order.
pub fn errors_of(operation_id: &str) -> Option<Vec<ErrorCode>> {
    let (_, groups) = ERRORS.iter().find(|(id, _)| *id == operation_id)?;
    Some(
        ErrorCode::ALL
            .iter()
            .copied()
            .filter(|c| EVERYWHERE.contains(c) || groups.iter().any(|g| g.contains(c)))
            .collect(),
    )
}

/// The document, built once per process.
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(build)
}

/// The document as committed in `docs/openapi.json` (pretty-printed, newline at the end).
pub fn document_text() -> String {
    let mut s = serde_json::to_string_pretty(document()).unwrap_or_default();
    s.push('\n');
    s
}

const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options"];

/// Where the rendered reference is served: the page at `/docs/` and its assets below it.
const DOCS_PATH: &str = "/docs";

/// The name the summary log line gives the operation a route serves: its operation id in kebab
/// case (`confirmPayment` → `confirm-payment`), so this document is the one list of operations
/// and their names. `None` for a route the document does not have. HEAD is answered by the GET
/// route, and the reference page with its assets (`/docs/`, `/docs/{*rest}`) is the one `docs`
/// operation the document describes at `/docs`.
pub fn operation_name(method: &Method, route: &str) -> Option<&'static str> {
    let method = if method == Method::HEAD {
        Method::GET
    } else {
        method.clone()
    };
    let route = match route.strip_prefix(DOCS_PATH) {
        Some(rest) if rest.starts_with('/') => DOCS_PATH,
        _ => route,
    };
    name_in_document(&method.as_str().to_ascii_lowercase(), route)
}

/// The log name of the operation `P` (a marker of [`operations`]) describes.
pub fn name_of<P: utoipa::Path>() -> Option<&'static str> {
    let method = serde_json::to_value(P::methods().first()?).ok()?;
    name_in_document(method.as_str()?, &P::path())
}

/// `method` in lower case, as the document writes it.
fn name_in_document(method: &str, path: &str) -> Option<&'static str> {
    /// path → method → name.
    static NAMES: LazyLock<HashMap<String, HashMap<String, String>>> =
        LazyLock::new(operation_names);
    NAMES.get(path)?.get(method).map(String::as_str)
}

fn operation_names() -> HashMap<String, HashMap<String, String>> {
    let mut names: HashMap<String, HashMap<String, String>> = HashMap::new();
    for (path, item) in document()["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            if let Some(id) = op["operationId"].as_str() {
                names
                    .entry(path.clone())
                    .or_default()
                    .insert(method.clone(), kebab_case(id));
            }
        }
    }
    names
}

/// `confirmPayment` → `confirm-payment`.
fn kebab_case(camel: &str) -> String {
    let mut s = String::with_capacity(camel.len() + 4);
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            s.push('-');
        }
        s.push(c.to_ascii_lowercase());
    }
    s
}

fn build() -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    add_components(&mut doc);
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (_, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (method, op) in item.iter_mut() {
                if METHODS.contains(&method.as_str()) {
                    complete_operation(op);
                }
            }
        }
    }
    add_links(&mut doc);
    doc
}

fn add_components(doc: &mut Value) {
    let components = doc["components"]
        .as_object_mut()
        .expect("utoipa always writes components");
    components.insert(
        "securitySchemes".into(),
        json!({
            "bearerAuth": {
                "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "A user's access token (Supabase Auth or any issuer sharing the \
                    server's keys): `role: authenticated`, `sub` = the user id (UUID), `exp`. \
                    HS256 with the server's JWT secret, or ES256/RS256 with a key of the \
                    project's JWKS. The user id always comes from the token."
            },
            "serviceRole": {
                "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "An operator credential: a JWT with `role: service_role` (such as \
                    Supabase's service-role key) or a Supabase secret API key (`sb_secret_…`). \
                    A user token gets 403 `E_FORBIDDEN`."
            }
        }),
    );
    components.insert(
        "parameters".into(),
        json!({
            "X-Request-Id": {
                "name": "X-Request-Id", "in": "header", "required": false,
                "description": "Kept and echoed when it matches `[A-Za-z0-9._:-]{1,128}`; \
                    otherwise the server makes a fresh one.",
                "schema": {"type": "string", "maxLength": 128}
            },
            "traceparent": {
                "name": "traceparent", "in": "header", "required": false,
                "description": "W3C trace context; propagated to the payment provider call.",
                "schema": {"type": "string"}
            }
        }),
    );
    components.insert(
        "headers".into(),
        json!({
            "X-Request-Id": {
                "description": "The request's id (the client's valid X-Request-Id or a fresh one). \
                    Also in problem bodies as `requestId` and in the server's log line.",
                "schema": {"type": "string"}
            },
            "Retry-After": {
                "description": "Seconds to wait before retrying.",
                "schema": {"type": "integer", "minimum": 0}
            }
        }),
    );
}

/// Header parameters, the `X-Request-Id` response header and the error answers.
fn complete_operation(op: &mut Value) {
    let Some(id) = op["operationId"].as_str().map(str::to_owned) else {
        return;
    };
    let params = op
        .as_object_mut()
        .and_then(|o| {
            o.entry("parameters")
                .or_insert_with(|| json!([]))
                .as_array_mut()
        })
        .map(|p| {
            p.push(json!({"$ref": "#/components/parameters/X-Request-Id"}));
            p.push(json!({"$ref": "#/components/parameters/traceparent"}));
        });
    debug_assert!(params.is_some());
    let Some(responses) = op["responses"].as_object_mut() else {
        return;
    };
    for (status, problem) in error_responses(errors_of(&id).unwrap_or_default()) {
        responses.insert(status, problem);
    }
    for (_, response) in responses.iter_mut() {
        if let Some(r) = response.as_object_mut() {
            r.entry("headers")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .map(|h| {
                    h.insert(
                        "X-Request-Id".into(),
                        json!({"$ref": "#/components/headers/X-Request-Id"}),
                    )
                });
        }
    }
}

/// One problem+json answer per status, naming its codes with their messages and an example
/// of each.
fn error_responses(codes: Vec<ErrorCode>) -> Vec<(String, Value)> {
    let mut statuses: Vec<u16> = codes.iter().map(|c| c.http_status()).collect();
    statuses.sort_unstable();
    statuses.dedup();
    statuses
        .into_iter()
        .map(|status| {
            let these: Vec<ErrorCode> = codes
                .iter()
                .copied()
                .filter(|c| c.http_status() == status)
                .collect();
            let description = these
                .iter()
                .map(|c| format!("`{}`: {}", c.as_str(), c.message(Locale::En)))
                .collect::<Vec<_>>()
                .join(" ");
            let examples: Map<String, Value> = these
                .iter()
                .map(|c| {
                    (
                        c.as_str().to_owned(),
                        json!({"summary": c.message(Locale::En), "value": problem_example(*c)}),
                    )
                })
                .collect();
            let mut response = json!({
                "description": description,
                "content": {"application/problem+json": {
                    "schema": {"allOf": [
                        {"$ref": "#/components/schemas/Problem"},
                        {"type": "object", "properties": {
                            "status": {"const": status},
                            "code": {"enum": these.iter().map(|c| c.as_str()).collect::<Vec<_>>()}
                        }}
                    ]},
                    "examples": examples
                }}
            });
            if these
                .iter()
                .any(|c| *c == E::RateLimited || *c == E::ServiceUnavailable)
            {
                response["headers"] =
                    json!({"Retry-After": {"$ref": "#/components/headers/Retry-After"}});
            }
            (status.to_string(), response)
        })
        .collect()
}

fn problem_example(code: ErrorCode) -> Value {
    let mut v = json!({
        "type": format!("urn:coursepay:error:{}", code.as_str()),
        "title": code.title(),
        "status": code.http_status(),
        "detail": code.title(),
        "code": code.as_str(),
        "requestId": "0190a5f6-aaaa-7bbb-8ccc-ddddeeeeffff",
        "retryable": code.retryable(),
    });
    if code == E::PaymentRejected {
        v["providerCode"] = json!("REJECT_CARD_PAYMENT");
    }
    v
}

/// Where an answer's values feed the next request (checkout → confirm → order), for readers
/// and for stateful fuzzing.
fn add_links(doc: &mut Value) {
    let links: &[(&str, &str, &str, Value)] = &[
        (
            "/v1/admin/courses",
            "post",
            "201",
            json!({
                "GetCourse": {"operationId": "getCourse",
                    "parameters": {"courseId": "$response.body#/id"}},
                "Checkout": {"operationId": "checkout",
                    "requestBody": {"courseId": "$response.body#/id"}}
            }),
        ),
        (
            "/v1/checkout",
            "post",
            "201",
            json!({
                "ConfirmPayment": {"operationId": "confirmPayment",
                    "description": "The payment window's success redirect carries the provider's \
                        paymentKey with this orderId and amount.",
                    "requestBody": {"orderId": "$response.body#/orderId",
                        "amount": "$response.body#/amount", "paymentKey": "tgen_unknown"}},
                "GetOrder": {"operationId": "getOrder",
                    "parameters": {"orderId": "$response.body#/orderId"}}
            }),
        ),
        (
            "/v1/payments/confirm",
            "post",
            "200",
            json!({
                "GetOrder": {"operationId": "getOrder",
                    "parameters": {"orderId": "$response.body#/orderId"}},
                "GetEnrollment": {"operationId": "getEnrollment",
                    "parameters": {"enrollmentId": "$response.body#/enrollmentId"}},
                "StartExamAttempt": {"operationId": "startExamAttempt",
                    "parameters": {"enrollmentId": "$response.body#/enrollmentId"}},
                "RefundPayment": {"operationId": "refundPayment",
                    "parameters": {"paymentId": "$response.body#/paymentId"}}
            }),
        ),
        (
            "/v1/enrollments/{enrollmentId}/exam-attempts",
            "post",
            "201",
            json!({
                "SubmitExamAttempt": {"operationId": "submitExamAttempt",
                    "parameters": {"attemptId": "$response.body#/id"}}
            }),
        ),
    ];
    for (path, method, status, value) in links {
        if let Some(r) = doc["paths"][*path][*method]["responses"][*status].as_object_mut() {
            r.insert("links".into(), value.clone());
        }
    }
}

/// `GET /openapi.json` and the rendered reference at `GET /docs` (Swagger UI, its assets
/// compiled into the binary).
pub fn router<S: Clone + Send + Sync + 'static>() -> axum::Router<S> {
    utoipa_swagger_ui::SwaggerUi::new(DOCS_PATH)
        .external_url_unchecked("/openapi.json", document().clone())
        .into()
}

#[cfg(test)]
mod tests;
