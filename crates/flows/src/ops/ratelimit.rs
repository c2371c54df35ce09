//! Rate limits (seed §11: per IP and user): GCRA via `governor`, keyed by (client IP, user id
//! or "anon"), one limiter for most routes and a stricter one for checkout and confirm. Over
//! the limit: 429 `E_RATE_LIMITED` with `Retry-After`.
//!
//! This is the limiters' state, held in [`crate::App`]; the middleware that applies it
//! (coursepay-api) is applied inside CORS (so a browser can read the 429). The user comes from the
//! bearer token when it verifies; an invalid token is simply "anon" here — the auth extractor
//! answers it later. Limits are per instance (in memory): with N instances a client gets up to
//! N times the limit, which is the usual trade for not adding a shared store to every request.

use crate::config::RateLimit;
use domain::UserId;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub ip: IpAddr,
    pub who: Who,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Who {
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

    /// Whether any limit is configured (none: the middleware does nothing).
    pub fn enabled(&self) -> bool {
        self.general.is_some() || self.strict.is_some()
    }

    /// Ok, or how many whole seconds to wait.
    pub fn check(&self, path: &str, key: &Key) -> Result<(), u64> {
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
