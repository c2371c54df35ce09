//! coursepay's business flows: plain async functions over [`App`], testable without HTTP.
//! Handlers (crate `coursepay-api`) parse input, call one of these and render the result; the
//! reconciler, the webhook route and the CLI call the same functions. No HTTP framework is a
//! dependency of this crate.
//!
//! Where things are:
//! - the confirm flow: [`confirm::confirm`]; the one function that settles an order:
//!   [`settle`]; checkout, refunds, exams, enrollments, catalog: the module of that name;
//!   what an authentic webhook delivery does: [`webhook_events`]; the background reconciler:
//!   [`reconcile`];
//! - the state every flow takes: [`App`]; the flows' one error type: [`Error`] (its codes are
//!   the catalog `domain::ErrorCode`); the per-request context: [`context`];
//! - the store trait is `store::Store` (crate `coursepay-store`);
//! - [`config`], [`auth`], [`database`], [`logging`]: configuration, JWT verification, opening
//!   the store, the JSON log lines;
//! - [`gateway`]: every Toss call (breaker, metrics, trace) and what a failed one means;
//! - [`ops`]: metrics, alerts, the Toss circuit breaker, the pause switch, rate-limit state;
//! - [`webhook_auth`]: whether a webhook delivery is believed at all (signatures, replay guard,
//!   invalid-signature throttle).

pub mod app;
pub mod auth;
pub mod config;
pub mod context;
pub mod database;
pub mod error;
pub mod logging;
pub mod ops;
pub mod webhook_auth;

pub mod catalog;
pub mod checkout;
pub mod confirm;
pub mod enrollments;
pub mod exams;
pub mod gateway;
pub mod reconcile;
pub mod refunds;
pub mod settle;
pub mod webhook_events;

pub use app::App;
pub use error::Error;

use store::EventContext;
use time::OffsetDateTime;

/// Event context for the current request (or background work).
pub fn event_ctx(actor: impl Into<String>) -> EventContext {
    EventContext::new(
        actor,
        crate::context::request_id(),
        OffsetDateTime::now_utc(),
    )
}
