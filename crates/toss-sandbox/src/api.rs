//! The Toss-compatible `/v1` routes and the request pipeline every one of them goes through.
//!
//! Mirrored from Toss's authorization guide, idempotency guide and test-code docs:
//! - `Authorization: Basic base64(secretKey + ":")`: no header or an unknown key is 401
//!   `UNAUTHORIZED_KEY`; a header that is not Basic, not base64 or lacks the colon is 403
//!   `INCORRECT_BASIC_AUTH_FORMAT`;
//! - `TossPayments-Test-Code: <CODE>` with a test key fails the call with that code and its
//!   status, changing nothing (live keys ignore it);
//! - `Idempotency-Key` on POSTs (see [`crate::idempotency`]): the first answer is stored and
//!   replayed for the key's lifetime *whatever it was* — a test-code error and a 5xx included,
//!   as Toss's idempotency guide says (and it warns against changing the key after an error);
//! - lookups: an unknown paymentKey is 404 `NOT_FOUND_PAYMENT`, an unknown orderId 404
//!   `NOT_FOUND` (the lookup reference lists both; which one Toss picks per route is not
//!   stated, so the sandbox uses both and a client must accept both); polling too fast is 403
//!   `FORBIDDEN_CONSECUTIVE_REQUEST` (see [`crate::throttle`]).
//!
//! Sandbox choices: the order is fault-before-processing reset, auth, idempotency key,
//! throttle (GETs), test code, fault-before-processing 5xx, fault wait, execution,
//! fault-after-processing; answers from the test code, a 5xx fault before processing, the
//! execution and a 5xx fault *after* processing (the answer the caller saw, not the approval
//! behind it) are stored under the key; auth failures, an invalid key and dropped connections
//! before processing are not (the request never got past Toss's front door); the password
//! part of the Basic credentials (after the first colon) is ignored; every request is counted
//! in the stats before anything can fail, so `confirmCalls` includes replays, auth failures
//! and faults.

use crate::codes::{Lang, SandboxError};
use crate::faults::{Fault, FaultMode, Operation};
use crate::idempotency::{self, Begin, Scope};
use crate::ledger::to_json_in;
use crate::{Sandbox, State};
use axum::body::{Body, Bytes};
use axum::extract::{Path, State as AxumState};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;
use toss::wire::{CancelRequest, ConfirmRequest, Payment};

/// A complete answer, kept as bytes so an idempotent replay is byte-identical to the original.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    status: StatusCode,
    body: Bytes,
}

impl Answer {
    pub(crate) fn new(status: StatusCode, body: Vec<u8>) -> Self {
        Answer {
            status,
            body: Bytes::from(body),
        }
    }

    pub(crate) fn json(status: StatusCode, value: &impl serde::Serialize) -> Self {
        // Serializing plain data structures (no maps with non-string keys) cannot fail.
        Answer::new(status, serde_json::to_vec(value).unwrap_or_default())
    }

    pub(crate) fn error(err: &SandboxError, lang: Lang) -> Self {
        let status = StatusCode::from_u16(err.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        Answer::json(status, &err.body(lang))
    }

    fn payment(result: Result<Payment, SandboxError>, lang: Lang) -> Self {
        match result {
            Ok(p) => Answer::json(StatusCode::OK, &to_json_in(&p, lang)),
            Err(e) => Answer::error(&e, lang),
        }
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            self.body,
        )
            .into_response()
    }
}

pub(crate) fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, SandboxError> {
    serde_json::from_slice(body).map_err(|e| {
        SandboxError::invalid(
            format!("요청 본문을 해석할 수 없습니다: {e}"),
            format!("Malformed request body: {e}"),
        )
    })
}

/// Checks the Basic credentials and returns the secret key they carry.
pub(crate) fn authenticate(
    headers: &HeaderMap,
    accepted: &[String],
) -> Result<String, SandboxError> {
    let format = || SandboxError::new("INCORRECT_BASIC_AUTH_FORMAT");
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(SandboxError::new("UNAUTHORIZED_KEY"));
    };
    let value = value.to_str().map_err(|_| format())?;
    let (scheme, token) = value.trim().split_once(' ').ok_or_else(format)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(format());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .map_err(|_| format())?;
    let decoded = String::from_utf8(decoded).map_err(|_| format())?;
    let (key, _password) = decoded.split_once(':').ok_or_else(format)?;
    let known = if accepted.is_empty() {
        key.starts_with("test_sk_") || key.starts_with("test_gsk_")
    } else {
        // Every configured key is compared, in constant time, so timing reveals nothing.
        accepted
            .iter()
            .fold(false, |hit, k| ct_eq(k.as_bytes(), key.as_bytes()) | hit)
    };
    if known {
        Ok(key.to_owned())
    } else {
        Err(SandboxError::new("UNAUTHORIZED_KEY"))
    }
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn test_code(headers: &HeaderMap, api_key: &str) -> Option<SandboxError> {
    if !api_key.starts_with("test_") {
        return None;
    }
    let code = headers.get("tosspayments-test-code")?.to_str().ok()?.trim();
    (!code.is_empty()).then(|| SandboxError::new(code))
}

fn idempotency_key(headers: &HeaderMap) -> Option<Result<String, SandboxError>> {
    let value = headers.get("idempotency-key")?;
    let invalid = || SandboxError::new("INVALID_IDEMPOTENCY_KEY");
    Some(match value.to_str() {
        Ok(k) if !k.is_empty() && k.chars().count() <= idempotency::MAX_KEY_CHARS => {
            Ok(k.to_owned())
        }
        _ => Err(invalid()),
    })
}

fn internal_error(lang: Lang) -> Answer {
    Answer::error(
        &SandboxError::new("FAILED_INTERNAL_SYSTEM_PROCESSING"),
        lang,
    )
}

/// A response whose body fails before its first byte: hyper then aborts the connection, so the
/// caller gets no usable HTTP answer, the way a connection reset looks from the client side.
fn reset() -> Response {
    let failing = futures::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "sandbox fault: connection reset",
        ))
    });
    Response::new(Body::from_stream(failing))
}

/// Releases an idempotency claim if the request is dropped before it executed (the caller
/// disconnected during a fault wait), so the key does not stay "processing" forever.
struct Claim {
    sandbox: Sandbox,
    scope: Option<Scope>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Some(scope) = self.scope.take() {
            self.sandbox.lock().idempotency.abandon(&scope);
        }
    }
}

enum Start {
    Answer(Answer),
    Reset,
    Execute(Claim),
}

/// Runs one `/v1` call through faults, auth, test code and idempotency around `exec`.
async fn handle(
    sandbox: &Sandbox,
    op: Operation,
    method: Method,
    path: &str,
    headers: &HeaderMap,
    exec: impl FnOnce(&mut State, OffsetDateTime, Lang) -> Answer,
) -> Response {
    let lang = Lang::from_headers(headers);
    let (start, fault) = sandbox.with_state(|st, now| {
        st.stats.count(op);
        let fault = st.faults.take(op);
        let start = begin(
            sandbox,
            st,
            now,
            fault.as_ref(),
            &method,
            path,
            headers,
            lang,
        );
        (start, fault)
    });
    let (before, after) = match fault {
        Some(f) if f.after_processing => (None, Some(f)),
        other => (other, None),
    };

    let answer = match start {
        Start::Reset => return reset(),
        Start::Answer(answer) => {
            wait(sandbox, before.as_ref()).await;
            answer
        }
        Start::Execute(mut claim) => {
            wait(sandbox, before.as_ref()).await;
            let lost_to_5xx = after
                .as_ref()
                .is_some_and(|f| f.mode == FaultMode::Status5xx);
            sandbox.with_state(|st, now| {
                let answer = exec(st, now, lang);
                if let Some(scope) = claim.scope.take() {
                    // What the caller will see is what a same-key retry gets back.
                    let stored = if lost_to_5xx {
                        internal_error(lang)
                    } else {
                        answer.clone()
                    };
                    st.idempotency.finish(scope, stored, now);
                }
                answer
            })
        }
    };

    if let Some(fault) = after {
        match fault.mode {
            FaultMode::Status5xx => return internal_error(lang).into_response(),
            FaultMode::Reset => return reset(),
            FaultMode::Timeout | FaultMode::Delay => wait(sandbox, Some(&fault)).await,
        }
    }
    answer.into_response()
}

#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename the list
fn begin(
    sandbox: &Sandbox,
    st: &mut State,
    now: OffsetDateTime,
    fault: Option<&Fault>,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    lang: Lang,
) -> Start {
    let before = fault.filter(|f| !f.after_processing).map(|f| f.mode);
    if before == Some(FaultMode::Reset) {
        return Start::Reset;
    }
    let api_key = match authenticate(headers, &sandbox.inner.secret_keys) {
        Ok(key) => key,
        Err(e) => return Start::Answer(Answer::error(&e, lang)),
    };
    if *method == Method::GET && st.throttle.over(path, std::time::Instant::now()) {
        let e = SandboxError::new("FORBIDDEN_CONSECUTIVE_REQUEST");
        return Start::Answer(Answer::error(&e, lang));
    }
    let forced = test_code(headers, &api_key);
    let mut claimed = None;
    // Toss ignores the header on GETs.
    let key = if *method == Method::POST {
        idempotency_key(headers)
    } else {
        None
    };
    if let Some(key) = key {
        let scope = match key {
            Ok(key) => Scope {
                key,
                api_key,
                path: path.to_owned(),
                method: method.as_str().to_owned(),
            },
            Err(e) => return Start::Answer(Answer::error(&e, lang)),
        };
        match st.idempotency.begin(&scope, now) {
            Begin::Replay(answer) => return Start::Answer(answer),
            Begin::Running => {
                let e = SandboxError::new("IDEMPOTENT_REQUEST_PROCESSING");
                return Start::Answer(Answer::error(&e, lang));
            }
            Begin::Claimed => claimed = Some(scope),
        }
    }
    // From here on the request reached Toss's processing: its answer is the key's answer.
    let early = if let Some(e) = forced {
        Some(Answer::error(&e, lang))
    } else if before == Some(FaultMode::Status5xx) {
        Some(internal_error(lang))
    } else {
        None
    };
    if let Some(answer) = early {
        if let Some(scope) = claimed {
            st.idempotency.finish(scope, answer.clone(), now);
        }
        return Start::Answer(answer);
    }
    Start::Execute(Claim {
        sandbox: sandbox.clone(),
        scope: claimed,
    })
}

async fn wait(sandbox: &Sandbox, fault: Option<&Fault>) {
    let duration = match fault.map(|f| (f.mode, f)) {
        Some((FaultMode::Timeout, _)) => sandbox.inner.timeout_fault_hang,
        Some((FaultMode::Delay, f)) => f.delay(),
        _ => return,
    };
    tokio::time::sleep(duration).await;
}

pub(crate) async fn confirm(
    AxumState(sandbox): AxumState<Sandbox>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(
        &sandbox,
        Operation::Confirm,
        Method::POST,
        uri.path(),
        &headers,
        |st, now, lang| {
            let result = parse_json::<ConfirmRequest>(&body).and_then(|req| st.confirm(&req, now));
            Answer::payment(result, lang)
        },
    )
    .await
}

pub(crate) async fn cancel(
    AxumState(sandbox): AxumState<Sandbox>,
    Path(payment_key): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(
        &sandbox,
        Operation::Cancel,
        Method::POST,
        uri.path(),
        &headers,
        |st, now, lang| {
            let result = parse_json::<CancelRequest>(&body)
                .and_then(|req| st.cancel(&payment_key, &req, now));
            Answer::payment(result, lang)
        },
    )
    .await
}

pub(crate) async fn lookup(
    AxumState(sandbox): AxumState<Sandbox>,
    Path(payment_key): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    handle(
        &sandbox,
        Operation::Lookup,
        Method::GET,
        uri.path(),
        &headers,
        |st, _, lang| {
            let found = st.ledger.get(&payment_key).cloned();
            Answer::payment(
                found.ok_or_else(|| SandboxError::new("NOT_FOUND_PAYMENT")),
                lang,
            )
        },
    )
    .await
}

pub(crate) async fn lookup_by_order(
    AxumState(sandbox): AxumState<Sandbox>,
    Path(order_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    handle(
        &sandbox,
        Operation::Lookup,
        Method::GET,
        uri.path(),
        &headers,
        |st, _, lang| {
            let found = st.ledger.get_by_order(&order_id).cloned();
            Answer::payment(found.ok_or_else(|| SandboxError::new("NOT_FOUND")), lang)
        },
    )
    .await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, auth.parse().unwrap());
        h
    }

    fn basic(raw: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    #[test]
    fn basic_auth_rules() {
        let code = |h: &HeaderMap, keys: &[String]| {
            authenticate(h, keys).err().map(|e| e.code().to_owned())
        };
        assert_eq!(
            code(&HeaderMap::new(), &[]).as_deref(),
            Some("UNAUTHORIZED_KEY")
        );
        assert_eq!(code(&headers(&basic("test_sk_abc:")), &[]), None);
        assert_eq!(code(&headers(&basic("test_gsk_abc:")), &[]), None);
        assert_eq!(
            code(&headers(&basic("live_sk_abc:")), &[]).as_deref(),
            Some("UNAUTHORIZED_KEY")
        );
        assert_eq!(
            code(&headers(&basic("test_sk_abc")), &[]).as_deref(),
            Some("INCORRECT_BASIC_AUTH_FORMAT")
        );
        assert_eq!(
            code(&headers("Bearer abc"), &[]).as_deref(),
            Some("INCORRECT_BASIC_AUTH_FORMAT")
        );
        assert_eq!(
            code(&headers("Basic !!!"), &[]).as_deref(),
            Some("INCORRECT_BASIC_AUTH_FORMAT")
        );
        let keys = vec!["test_sk_only".to_owned()];
        assert_eq!(code(&headers(&basic("test_sk_only:")), &keys), None);
        assert_eq!(
            code(&headers(&basic("test_sk_other:")), &keys).as_deref(),
            Some("UNAUTHORIZED_KEY")
        );
    }

    #[test]
    fn idempotency_key_length() {
        let mut h = HeaderMap::new();
        assert!(idempotency_key(&h).is_none());
        h.insert("idempotency-key", "k".repeat(300).parse().unwrap());
        assert!(idempotency_key(&h).unwrap().is_ok());
        h.insert("idempotency-key", "k".repeat(301).parse().unwrap());
        assert!(idempotency_key(&h).unwrap().is_err());
    }
}
