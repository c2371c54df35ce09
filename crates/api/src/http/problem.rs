//! The one place an [`Error`] becomes an HTTP answer: RFC 9457 problem+json with the catalog's
//! code, status and retryable flag, and the request id. Internal causes go to the log only.
//! `title` follows the request's language ([`crate::http::locale`]).

use crate::error::Error;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub const PROBLEM_JSON: &str = "application/problem+json";

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let code = self.code;
        crate::context::record(|f| f.error_code = Some(code.as_str()));
        if let Some(cause) = &self.internal {
            tracing::error!(error_code = code.as_str(), cause = %cause, "request failed");
        }
        let status =
            StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        // In the request's language (Accept-Language; Korean by default). `code` never changes.
        let title = code.message(crate::http::locale::current());
        let mut body = json!({
            "type": format!("urn:coursepay:error:{}", code.as_str()),
            "title": title,
            "status": code.http_status(),
            "detail": self.detail.clone().unwrap_or_else(|| title.to_owned()),
            "code": code.as_str(),
            "requestId": crate::context::request_id(),
            "retryable": code.retryable(),
        });
        if let Some(pc) = &self.provider_code {
            body["providerCode"] = json!(pc);
        }
        let mut resp = (status, body.to_string()).into_response();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}
