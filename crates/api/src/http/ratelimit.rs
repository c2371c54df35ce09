//! The rate limit (seed §11): keys each request by (client IP, user id or "anon")
//! and asks the limiters in `flows::ops::ratelimit` whether it may pass. Over the limit: 429
//! `E_RATE_LIMITED` with `Retry-After`. The user comes from the bearer token when it verifies;
//! an invalid token is simply "anon" here — the auth extractor answers it later.

use crate::App;
use crate::auth::Principal;
use crate::error::Error;
use axum::extract::{ConnectInfo, Request};
use domain::ErrorCode;
use flows::ops::ratelimit::{Key, Who};
use std::net::SocketAddr;

fn who(app: &App, req: &Request) -> Who {
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    match token.map(|t| app.jwt.verify_cached(t.trim())) {
        Some(Ok(Principal::User(u))) => Who::User(u),
        Some(Ok(Principal::Service)) => Who::Service,
        _ => Who::Anon,
    }
}

/// The check, made by the request-timeout middleware before the route runs (one middleware
/// instead of two: each `from_fn` layer clones everything beneath it on every request).
/// `Err` is the 429 to answer.
pub fn check(app: &App, req: &Request) -> Result<(), Error> {
    if !app.limits.enabled() {
        return Ok(());
    }
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let ip = super::client_ip::client_ip(peer, req.headers(), &app.config.trusted_proxies);
    let key = Key {
        ip,
        who: who(app, req),
    };
    app.limits.check(req.uri().path(), &key).map_err(|wait| {
        crate::context::record(|f| f.function_name = Some("rate-limited"));
        tracing::info!(target: "coursepay::ratelimit", client_ip = %ip, path = req.uri().path(), "rate limited");
        Error::new(ErrorCode::RateLimited).with_retry_after(wait.max(1))
    })
}
