//! Operations: what lets an operator see and steer the running service — Prometheus metrics
//! ([`metrics`]) and the in-process evaluator of the seed's alert rules ([`alerts`]).

pub mod alerts;
pub mod metrics;
