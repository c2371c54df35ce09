//! `POST /v1/webhooks/toss`: authenticity first, in the order docs/api.md gives, on the raw body bytes —
//! then [`crate::flows::webhook_events::process`]. The IP throttle runs before the body is read, so a
//! blocked sender costs us nothing but this check.

use crate::App;
use crate::error::{Error, Result};
use crate::flows::webhook_events::{Processed, process};
use crate::http::client_ip::client_ip;
use crate::webhook_auth::{active_secrets, signature};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, Request, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use domain::ErrorCode;
use secrecy::ExposeSecret;
use serde_json::json;
use std::net::{IpAddr, SocketAddr};
use time::OffsetDateTime;

/// The value of a header that must appear at most once. A repeated header is refused: two
/// parties could otherwise disagree on which copy was verified.
fn single<'a>(
    headers: &'a HeaderMap,
    name: &str,
) -> std::result::Result<Option<&'a str>, signature::Invalid> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(signature::Invalid::Malformed);
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| signature::Invalid::Malformed)
}

/// Refuse a delivery whose authenticity failed: 401, or 429 once this IP is over the limit.
fn refuse(app: &App, ip: IpAddr, why: &str) -> Error {
    metrics::counter!(crate::webhook_auth::INVALID_SIGNATURES_METRIC).increment(1);
    tracing::warn!(target: "coursepay::webhook", client_ip = %ip, reason = why, "webhook refused: invalid signature");
    match app.webhooks.throttle.record_invalid(ip) {
        Some(retry) => rate_limited(retry),
        None => Error::new(ErrorCode::WebhookInvalidSig),
    }
}

fn rate_limited(retry_after: u64) -> Error {
    Error::new(ErrorCode::RateLimited).with_retry_after(retry_after)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Authenticated {
    Signed,
    /// Unsigned, allowed by `WEBHOOK_VERIFY=lookup`: only the lookup vouches for it.
    Unsigned,
}

/// Steps 1–3 of docs/api.md, "Webhooks".
async fn authenticate(
    app: &App,
    headers: &HeaderMap,
    body: &[u8],
    ip: IpAddr,
) -> Result<(Authenticated, Option<String>)> {
    let bad = |why: signature::Invalid| refuse(app, ip, why.as_str());
    let now = OffsetDateTime::now_utc();
    if headers.contains_key("x-signature") {
        let sig = single(headers, "x-signature").map_err(bad)?.unwrap_or("");
        let ts = single(headers, "x-timestamp")
            .map_err(bad)?
            .ok_or_else(|| bad(signature::Invalid::Malformed))?;
        let accepted = signature::verify_x_signature(
            ts,
            sig,
            body,
            &active_secrets(&app.config),
            now.unix_timestamp(),
        )
        .map_err(bad)?;
        let first = app
            .webhooks
            .replay
            .first_use(app.store.as_ref(), &accepted.replay_key, now)
            .await?;
        if !first {
            tracing::warn!(target: "coursepay::webhook", client_ip = %ip, "webhook signature replayed");
            return Err(Error::new(ErrorCode::WebhookReplayed));
        }
        return Ok((Authenticated::Signed, Some(accepted.replay_key)));
    }
    if headers.contains_key("tosspayments-webhook-signature") {
        let sig = single(headers, "tosspayments-webhook-signature")
            .map_err(bad)?
            .unwrap_or("");
        let time = single(headers, "tosspayments-webhook-transmission-time")
            .map_err(bad)?
            .unwrap_or("");
        let key = app
            .config
            .toss_webhook_security_key
            .as_ref()
            .map(|k| k.expose_secret().as_bytes());
        signature::verify_toss_signature(sig, time, body, key).map_err(bad)?;
        return Ok((Authenticated::Signed, None));
    }
    match app.config.webhook_verify {
        crate::config::WebhookVerify::Lookup => Ok((Authenticated::Unsigned, None)),
        crate::config::WebhookVerify::Signature => Err(refuse(app, ip, "unsigned")),
    }
}

pub async fn toss(State(app): State<App>, req: Request) -> Result<Response> {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let headers = req.headers().clone();
    let ip = client_ip(peer, &headers, &app.config.trusted_proxies);
    if let Some(retry) = app.webhooks.throttle.blocked(ip) {
        return Err(rate_limited(retry));
    }
    let body = Bytes::from_request(req, &()).await.map_err(|rej| {
        if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Error::new(ErrorCode::PayloadTooLarge).with_detail("body: larger than 64 KiB")
        } else {
            Error::invalid("body: could not be read")
        }
    })?;
    let (auth, replay_key) = authenticate(&app, &headers, &body, ip).await?;
    let outcome = match single(&headers, "tosspayments-webhook-transmission-id") {
        Ok(transmission_id) => process(&app, transmission_id, &body)
            .await
            .map_err(Error::from),
        Err(_) => Err(Error::invalid(
            "tosspayments-webhook-transmission-id: given more than once",
        )),
    };
    // Not processed: the same signed request may be sent again and must then be processed.
    if outcome.is_err()
        && let Some(key) = &replay_key
    {
        app.webhooks.replay.forget(app.store.as_ref(), key).await;
    }
    match outcome {
        Ok(outcome) => {
            if outcome != Processed::Applied {
                crate::context::record(|f| f.status = Some("IGNORED".into()));
            }
            // An unsigned delivery naming a payment Toss never issued is a forgery: it costs
            // us a Toss lookup, so it counts against the sender like a bad signature (and the
            // answer stays 200 until the sender is over the limit).
            if outcome == Processed::UnknownPayment && auth == Authenticated::Unsigned {
                let counted = refuse(&app, ip, "unknown_payment_unsigned");
                if counted.code == ErrorCode::RateLimited {
                    return Err(counted);
                }
            }
            Ok((StatusCode::OK, Json(json!({"received": true}))).into_response())
        }
        // A DEPOSIT_CALLBACK with the wrong secret is a forgery attempt like a bad signature.
        Err(e) if e.code == ErrorCode::WebhookInvalidSig => Err(refuse(&app, ip, "deposit_secret")),
        Err(e) => Err(e),
    }
}
