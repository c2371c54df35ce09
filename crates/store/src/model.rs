//! Rows as the rest of coursepay sees them: already parsed into domain types.

use domain::{
    CourseId, EnrollmentId, EnrollmentStatus, Money, OrderId, OrderStatus, PaymentId, PaymentKey,
    PaymentStatus, UserId,
};
use time::OffsetDateTime;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Course {
    pub id: CourseId,
    pub title: String,
    pub price: Money,
    /// Always "PUBLISHED" today; kept as a column so unpublishing needs no migration.
    pub status: String,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct NewCourse {
    pub id: CourseId,
    pub title: String,
    pub price: Money,
    pub now: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub order_id: OrderId,
    pub user_id: UserId,
    pub course_id: CourseId,
    pub amount: Money,
    pub order_name: String,
    pub status: OrderStatus,
    /// Set by the claim step: the payment key this order is being / was confirmed with.
    pub payment_key: Option<PaymentKey>,
    pub payment_id: Option<PaymentId>,
    pub enrollment_id: Option<EnrollmentId>,
    pub approved_at: Option<OffsetDateTime>,
    /// Provider's error code for FAILED orders.
    pub failure_code: Option<String>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct NewOrder {
    pub order_id: OrderId,
    pub user_id: UserId,
    pub course_id: CourseId,
    pub amount: Money,
    pub order_name: String,
    pub now: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub ctx: EventContext,
}

/// Who caused a state change, for the event log (DESIGN: who, what, when, request id).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventContext {
    /// "user:<uuid>", "service_role", "reconciler", "webhook", "system".
    pub actor: String,
    pub request_id: Option<String>,
    pub now: Option<OffsetDateTime>,
}

impl EventContext {
    pub fn new(actor: impl Into<String>, request_id: Option<String>, now: OffsetDateTime) -> Self {
        Self {
            actor: actor.into(),
            request_id,
            now: Some(now),
        }
    }
    pub fn at(&self) -> OffsetDateTime {
        self.now.unwrap_or_else(OffsetDateTime::now_utc)
    }
}

#[derive(Debug, Clone)]
pub struct ClaimRequest {
    pub order_id: OrderId,
    pub user_id: UserId,
    pub amount: Money,
    pub payment_key: PaymentKey,
    pub ctx: EventContext,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The order is now CONFIRMING and belongs to this caller's confirm.
    Claimed(Order),
    /// Nothing changed; the order as it was, plus whether the user already has an ENROLLED
    /// enrollment for its course (through this order or another) or another order of theirs
    /// for the course is CONFIRMING/PAID.
    NotClaimed {
        order: Order,
        enrolled_elsewhere: bool,
    },
    NotFound,
}

/// What the provider told us about a captured payment, handed to [`crate::Store::settle`].
#[derive(Debug, Clone)]
pub struct Settlement {
    pub order_id: OrderId,
    pub payment_key: PaymentKey,
    /// Toss's totalAmount. The caller has checked it equals the order's amount.
    pub amount: Money,
    pub status: PaymentStatus,
    pub method: Option<String>,
    pub approved_at: OffsetDateTime,
    /// Virtual-account deposit secret from the confirm answer (compared on DEPOSIT_CALLBACK).
    pub secret: Option<String>,
    /// "confirm", "settle-on-read", "reconciler", "webhook".
    pub source: String,
    pub ctx: EventContext,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    pub order: Order,
    pub payment_id: PaymentId,
    pub enrollment_id: EnrollmentId,
    pub approved_at: OffsetDateTime,
    /// False when this payment had already been settled (a replay, or a race lost to another
    /// path); the result is the first settle's.
    pub newly_settled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrollment {
    pub id: EnrollmentId,
    pub user_id: UserId,
    pub course_id: CourseId,
    pub status: EnrollmentStatus,
    pub enrolled_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub id: PaymentId,
    pub provider: String,
    /// Toss's paymentKey.
    pub provider_tx_id: String,
    pub order_id: OrderId,
    pub user_id: UserId,
    pub course_id: CourseId,
    pub enrollment_id: Option<EnrollmentId>,
    pub amount: Money,
    /// What can still be refunded (Toss's balanceAmount).
    pub balance: Money,
    pub status: PaymentStatus,
    pub method: Option<String>,
    pub secret: Option<String>,
    pub approved_at: OffsetDateTime,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: i64,
    pub order_id: Option<OrderId>,
    pub payment_id: Option<PaymentId>,
    /// e.g. "order.created", "order.claimed", "order.released", "order.failed", "payment.settled".
    pub kind: String,
    pub from_status: Option<String>,
    pub to_status: Option<String>,
    pub actor: String,
    pub request_id: Option<String>,
    pub detail: serde_json::Value,
    pub at: OffsetDateTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUse {
    Fresh,
    SameRequest,
    DifferentRequest,
}

/// The payments pause switch (seed §6), one row shared by every instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentControls {
    pub paused: bool,
    pub reason: Option<String>,
    pub updated_at: OffsetDateTime,
    pub updated_by: String,
}
