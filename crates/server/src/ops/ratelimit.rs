//! Rate limits (seed §11: per IP and user): GCRA via `governor`, keyed by (client IP, user id
//! or "anon"), one limiter for most routes and a stricter one for checkout and confirm. Over
//! the limit: 429 `E_RATE_LIMITED` with `Retry-After`.
//!
//! Applied as middleware inside CORS (so a browser can read the 429). The user comes from the
//! bearer token when it verifies; an invalid token is simply "anon" here — the auth extractor
//! answers it later. Limits are per instance (in memory): with N instances a client gets up to
//! N times the limit, which is the usual trade for not adding a shared store to every request.

use crate::App;
use crate::auth::Principal;
use crate::config::RateLimit;
use crate::error::Error;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use domain::{ErrorCode, UserId};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    ip: IpAddr,
    who: Who,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Who {
    Anon,
    Service,
    User(UserId),
}

pub struct RateLimits {
    general: Option<DefaultKeyedRateLimiter<Key>>,
    strict: Option<DefaultKeyedRateLimiter<Key>>,
    checks: AtomicU64,
}

fn limiter(limit: Option<RateLimit>) -> Option<DefaultKeyedRateLimiter<Key>> {
    let limit = limit?;
    let per_second = NonZeroU32::new(limit.per_second)?;
    let burst = NonZeroU32::new(limit.burst).unwrap_or(per_second);
    Some(DefaultKeyedRateLimiter::keyed(
        Quota::per_second(per_second).allow_burst(burst),
    ))
}

/// The routes held to the stricter limit: the ones that create orders or move money.
fn is_strict(path: &str) -> bool {
    matches!(path, "/v1/checkout" | "/v1/payments/confirm")
}

impl RateLimits {
    pub fn new(general: Option<RateLimit>, strict: Option<RateLimit>) -> Self {
        Self {
            general: limiter(general),
            strict: limiter(strict),
            checks: AtomicU64::new(0),
        }
    }

    /// Ok, or how many whole seconds to wait.
    fn check(&self, path: &str, key: &Key) -> Result<(), u64> {
        let limiter = if is_strict(path) {
            &self.strict
        } else {
            &self.general
        };
        let Some(limiter) = limiter else {
            return Ok(());
        };
        // Forget idle keys now and then so the map does not grow with every address seen.
        if self.checks.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            if let Some(l) = &self.general {
                l.retain_recent();
            }
            if let Some(l) = &self.strict {
                l.retain_recent();
            }
        }
        limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }
}

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

/// The middleware.
pub async fn limit(State(app): State<App>, req: Request, next: Next) -> Response {
    if app.limits.general.is_none() && app.limits.strict.is_none() {
        return next.run(req).await;
    }
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let ip = crate::http::client_ip::client_ip(peer, req.headers(), &app.config.trusted_proxies);
    let key = Key {
        ip,
        who: who(&app, &req),
    };
    match app.limits.check(req.uri().path(), &key) {
        Ok(()) => next.run(req).await,
        Err(wait) => {
            crate::context::record(|f| f.function_name = Some("rate-limited"));
            tracing::info!(target: "coursepay::ratelimit", client_ip = %ip, path = req.uri().path(), "rate limited");
            Error::new(ErrorCode::RateLimited)
                .with_retry_after(wait.max(1))
                .into_response()
        }
    }
}
