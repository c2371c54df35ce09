//! Webhook authenticity (docs/api.md, "Webhooks"): what decides whether a request on
//! `POST /v1/webhooks/toss` is believed at all, before any of its content is looked at.
//!
//! - [`signature`]: the X-Signature and Toss signature schemes, pure functions over raw bytes;
//! - [`throttle`]: the per-IP limit on invalid signatures;
//! - [`replay`]: accepted signatures remembered for 10 minutes (database or Redis).
//!
//! What an authentic delivery then does is [`crate::webhook_events`]; the route is
//! `http::webhook` in coursepay-api.

pub mod replay;
pub mod signature;
pub mod throttle;

use crate::config::Config;
use secrecy::ExposeSecret;

/// The per-instance webhook state held by [`crate::App`].
pub struct Webhooks {
    pub throttle: throttle::Throttle,
    pub replay: replay::ReplayGuard,
}

/// The invalid-signature counter (seed §6: a rising count means forgery attempts).
pub const INVALID_SIGNATURES_METRIC: &str = "coursepay_webhook_invalid_signatures_total";

/// Describe this module's metrics to whatever recorder is installed (Prometheus needs HELP).
pub fn describe_metrics() {
    metrics::describe_counter!(
        INVALID_SIGNATURES_METRIC,
        "Webhook deliveries refused as not authentic (bad or missing signature, stale timestamp, wrong deposit secret, unsigned forgeries)"
    );
}

impl Webhooks {
    pub fn new(config: &Config) -> Self {
        describe_metrics();
        Self {
            throttle: throttle::Throttle::new(
                config.webhook_invalid_sig_limit,
                config.webhook_invalid_sig_window,
            ),
            replay: replay::ReplayGuard::new(config.redis_url.as_ref()),
        }
    }
}

/// The secrets an X-Signature may be made with right now: current first, then the previous
/// one while a rotation is under way.
pub fn active_secrets(config: &Config) -> Vec<&[u8]> {
    let mut v = vec![config.webhook_secret.expose_secret().as_bytes()];
    if let Some(p) = &config.webhook_secret_previous {
        v.push(p.expose_secret().as_bytes());
    }
    v
}
