//! Operations: what lets an operator see and steer the running service — Prometheus metrics
//! ([`metrics`]), the in-process evaluator of the seed's alert rules ([`alerts`]), the Toss
//! circuit breaker ([`breaker`]), the payments pause switch ([`pause`]) and the rate limits
//! ([`ratelimit`]). Each is a small piece of state held in [`crate::App`] and consulted by the
//! flows and the router; none of them changes how a payment is settled.

pub mod alerts;
pub mod breaker;
pub mod config_report;
pub mod metrics;
pub mod pause;
pub mod ratelimit;
pub mod recent;
pub mod retention;
pub mod shutdown;
