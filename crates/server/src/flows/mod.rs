//! The flows: plain async functions over [`crate::App`], testable without HTTP. Handlers parse
//! input, call one of these and render the result; the reconciler, the webhook handler and the
//! CLI call the same functions.

pub mod catalog;
pub mod checkout;
pub mod confirm;
pub mod enrollments;
pub mod exams;
pub mod reconcile;
pub mod refunds;
pub mod settle;
pub mod webhook;

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
