//! coursepay's domain: the vocabulary every other crate speaks.
//!
//! This crate is pure on purpose (no tokio, sqlx, axum or reqwest): money, identifiers, the
//! order/enrollment/payment state machines and the one error catalog live here so that the
//! store, the Toss client, the HTTP layer and later the CLI's preflight all agree on them.
//!
//! Values are parsed, not validated: a [`Money`], [`OrderId`] or [`PaymentKey`] that exists is
//! known to be well formed, so code further in never re-checks them.

pub mod error;
pub mod ids;
pub mod money;
pub mod status;
pub mod text;
pub mod transition;

pub use error::{ErrorCode, Locale};
pub use ids::{
    AttemptId, CourseId, EnrollmentId, IdempotencyKey, OrderId, ParseError, PaymentId, PaymentKey,
    RefundId, UserId,
};
pub use money::Money;
pub use status::{EnrollmentStatus, OrderStatus, PaymentStatus, RefundStatus};
pub use text::{FreeText, TextError, TextField};
pub use transition::{EnrollmentEvent, OrderEvent, RefundEvent};

/// The only payment provider coursepay speaks to today; stored in `payments.provider` so the
/// UNIQUE(provider, provider_tx_id) constraint stays meaningful if a second one is added.
pub const PROVIDER_TOSS: &str = "toss";
