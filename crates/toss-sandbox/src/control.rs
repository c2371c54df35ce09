//! The `/sandbox` control routes: everything a test or a developer does *to* the fake Toss
//! that the real one does through a buyer, a clock or a bad network. None of this exists at
//! Toss; errors still use Toss's `{"code", "message"}` shape and `INVALID_REQUEST`.
//!
//! Sandbox choices: the control routes need no credentials (they are only ever served on a
//! developer machine or inside the test server); `DELETE /sandbox/faults` answers 204;
//! `POST /sandbox/webhooks` replaces both the URL and the secret (an absent field clears it)
//! and accepts only http(s) URLs.

use crate::api::{Answer, parse_json};
use crate::codes::{Lang, SandboxError};
use crate::faults::Fault;
use crate::ledger::{CreatePayment, to_json};
use crate::{Sandbox, clock};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

pub(crate) async fn create_payment(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let lang = Lang::from_headers(&headers);
    match parse_json::<CreatePayment>(&body).and_then(|req| sandbox.create_payment(req)) {
        Ok(p) => Answer::json(
            StatusCode::CREATED,
            &serde_json::json!({
                "paymentKey": p.payment_key,
                "orderId": p.order_id,
                "amount": p.total_amount,
                "status": p.status,
            }),
        ),
        Err(e) => Answer::error(&e, lang),
    }
}

pub(crate) async fn deposit(
    State(sandbox): State<Sandbox>,
    Path(payment_key): Path<String>,
    headers: HeaderMap,
) -> Answer {
    match sandbox.deposit(&payment_key) {
        Ok(p) => Answer::json(StatusCode::OK, &to_json(&p)),
        Err(e) => Answer::error(&e, Lang::from_headers(&headers)),
    }
}

pub(crate) async fn reverse_deposit(
    State(sandbox): State<Sandbox>,
    Path(payment_key): Path<String>,
    headers: HeaderMap,
) -> Answer {
    match sandbox.reverse_deposit(&payment_key) {
        Ok(p) => Answer::json(StatusCode::OK, &to_json(&p)),
        Err(e) => Answer::error(&e, Lang::from_headers(&headers)),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ThrottleSettings {
    lookups_per_second: Option<u32>,
}

pub(crate) async fn set_throttle(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    match parse_json::<ThrottleSettings>(&body) {
        Ok(t) => {
            sandbox.set_lookup_throttle(t.lookups_per_second);
            Answer::json(
                StatusCode::OK,
                &serde_json::json!({ "lookupsPerSecond": t.lookups_per_second }),
            )
        }
        Err(e) => Answer::error(&e, Lang::from_headers(&headers)),
    }
}

pub(crate) async fn list_payments(State(sandbox): State<Sandbox>) -> Json<Vec<serde_json::Value>> {
    Json(sandbox.payments().iter().map(to_json).collect())
}

pub(crate) async fn add_fault(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    match parse_json::<Fault>(&body) {
        Ok(fault) => {
            sandbox.inject_fault(fault.clone());
            Answer::json(StatusCode::CREATED, &fault)
        }
        Err(e) => Answer::error(&e, Lang::from_headers(&headers)),
    }
}

pub(crate) async fn clear_faults(State(sandbox): State<Sandbox>) -> StatusCode {
    sandbox.clear_faults();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AdvanceClock {
    advance_seconds: i64,
}

pub(crate) async fn advance_clock(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    match parse_json::<AdvanceClock>(&body) {
        Ok(req) => {
            sandbox.advance_clock(req.advance_seconds);
            now(&sandbox)
        }
        Err(e) => Answer::error(&e, Lang::from_headers(&headers)),
    }
}

pub(crate) async fn get_clock(State(sandbox): State<Sandbox>) -> Answer {
    now(&sandbox)
}

fn now(sandbox: &Sandbox) -> Answer {
    let now = sandbox.with_state(|_, now| now);
    Answer::json(
        StatusCode::OK,
        &serde_json::json!({ "now": clock::iso_kst(now) }),
    )
}

pub(crate) async fn stats(State(sandbox): State<Sandbox>) -> Response {
    Json(sandbox.stats()).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WebhookSettings {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    secret: Option<String>,
}

pub(crate) async fn set_webhook(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let lang = Lang::from_headers(&headers);
    let settings = match parse_json::<WebhookSettings>(&body) {
        Ok(s) => s,
        Err(e) => return Answer::error(&e, lang),
    };
    let http = |u: &String| u.starts_with("http://") || u.starts_with("https://");
    if settings.url.as_ref().is_some_and(|u| !http(u)) {
        let e = SandboxError::invalid(
            "url은 http:// 또는 https://로 시작해야 합니다.",
            "url must start with http:// or https://.",
        );
        return Answer::error(&e, lang);
    }
    let signed = settings.secret.is_some();
    sandbox.set_webhook(settings.url.clone(), settings.secret);
    Answer::json(
        StatusCode::OK,
        &serde_json::json!({ "url": settings.url, "signed": signed }),
    )
}

pub(crate) async fn deliveries(State(sandbox): State<Sandbox>) -> Response {
    Json(sandbox.deliveries()).into_response()
}
