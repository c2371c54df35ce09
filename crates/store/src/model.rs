//! Rows as the rest of coursepay sees them: already parsed into domain types.

use domain::{
    AttemptId, CourseId, EnrollmentId, EnrollmentStatus, IdempotencyKey, Money, OrderId,
    OrderStatus, PaymentId, PaymentKey, PaymentStatus, RefundId, RefundStatus, UserId,
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
    /// Refuse with [`crate::StoreError::TooManyOpenOrders`] when the user already holds this
    /// many unpaid (PENDING, unexpired) orders. None: no limit.
    pub max_open_per_user: Option<u32>,
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
    /// The path that learned of the payment ("confirm", "settle-on-read", "reconciler",
    /// "webhook", ...: the flows' `SettleSource`), kept in the event's detail.
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
    /// Everything this payment captured: the order's amount, plus the order's amount again for
    /// each deposit after a reversed one (`domain::transition::is_redeposit`), so it can exceed
    /// the order's amount and Toss's totalAmount. `amount − balance` is the sum of the payment's
    /// DONE refunds (the reversals among them).
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

// --- refunds and exams -----------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    pub id: RefundId,
    pub payment_id: PaymentId,
    pub amount: Money,
    pub reason: String,
    pub status: RefundStatus,
    /// Toss's cancel transactionKey, once Toss's answer (or a lookup) showed the cancel.
    pub transaction_key: Option<String>,
    /// The Idempotency-Key sent with the cancel (`coursepay-refund-<id>`), or
    /// `toss-cancel-<transactionKey>` for a cancel made outside coursepay (Toss's console).
    pub idempotency_key: String,
    pub requested_by: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// A refund request about to be sent to Toss, for [`crate::Store::begin_refund`].
#[derive(Debug, Clone)]
pub struct NewRefund {
    pub id: RefundId,
    pub payment_id: PaymentId,
    /// None = everything that remains refundable.
    pub amount: Option<Money>,
    pub reason: String,
    pub idempotency_key: IdempotencyKey,
    pub requested_by: String,
    pub ctx: EventContext,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundBegin {
    /// The REQUESTED row is durable; `payment` is the payment as it was when it was written
    /// (its balance is what Toss must also report: send it as refundableAmount).
    Begun {
        refund: Refund,
        payment: Payment,
    },
    /// Nothing written. `available` is what could be refunded now (balance minus refunds still
    /// waiting for Toss); `in_progress` is true when another refund of this payment is REQUESTED.
    NotAllowed {
        payment: Payment,
        available: Money,
        in_progress: bool,
    },
    PaymentNotFound,
}

/// One entry of Toss's `cancels[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderCancel {
    pub transaction_key: String,
    pub amount: Money,
    pub reason: String,
}

/// The provider's current view of a payment's cancellations, for
/// [`crate::Store::record_cancellation`].
#[derive(Debug, Clone)]
pub struct Cancellation {
    pub payment_key: PaymentKey,
    /// Toss's status, for the record; the store goes by `balance` (which only ever drops), so
    /// an out-of-order view can never move the payment backwards.
    pub status: PaymentStatus,
    /// Toss's balanceAmount.
    pub balance: Money,
    /// Toss's cancels[], in Toss's (chronological) order.
    pub cancels: Vec<ProviderCancel>,
    /// The path that learned of the cancellation ("refund", "webhook", "reconciler", ...: the
    /// flows' `SettleSource`), kept in the event's detail.
    pub source: String,
    pub ctx: EventContext,
}

impl Cancellation {
    /// The cancels both backends decide on: each transaction key once (its first entry: a
    /// report naming one twice is Toss's mistake, and counting it twice would take room from
    /// another cancel), zero amounts left out (nothing moved), in Toss's order.
    pub fn distinct_cancels(&self) -> Vec<&ProviderCancel> {
        let mut seen = std::collections::HashSet::new();
        self.cancels
            .iter()
            .filter(|x| !x.amount.is_zero() && seen.insert(x.transaction_key.as_str()))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancellationRecorded {
    /// The payment after recording.
    pub payment: Payment,
    /// Refund rows this call inserted or moved REQUESTED → DONE.
    pub refunds_recorded: u32,
    /// Cancels new to coursepay that were not recorded because the balance does not show
    /// their money gone (`domain::transition::cancels_to_record`): worth an operator's look.
    pub cancels_left_out: u32,
    /// This call revoked the enrollment (the payment became fully cancelled).
    pub enrollment_revoked: bool,
    /// The enrollment's status afterwards (None when the payment has no enrollment).
    pub enrollment_status: Option<EnrollmentStatus>,
}

impl CancellationRecorded {
    /// What was paid back so far: captured − balance (Toss's totalAmount − balanceAmount until
    /// a re-deposit; a reversed deposit counts).
    pub fn refunded_amount(&self) -> Money {
        self.payment
            .amount
            .checked_sub(self.payment.balance)
            .unwrap_or(Money::ZERO)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExamAttempt {
    pub id: AttemptId,
    pub enrollment_id: EnrollmentId,
    /// The enrollment's owner (for the flows' owner check).
    pub user_id: UserId,
    pub score: Option<i32>,
    pub started_at: OffsetDateTime,
    pub submitted_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptStart {
    Started(ExamAttempt),
    EnrollmentNotFound,
    /// The enrollment is not ENROLLED (refunded).
    NotEnrolled,
    /// `used` attempts were already started; the limit allows no more.
    LimitReached {
        used: i64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptSubmit {
    Submitted(ExamAttempt),
    NotFound,
    /// Someone submitted it first; nothing changed.
    AlreadySubmitted,
}

/// The payments pause switch (seed §6), one row shared by every instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentControls {
    pub paused: bool,
    pub reason: Option<String>,
    pub updated_at: OffsetDateTime,
    pub updated_by: String,
}

/// Rows one retention batch deleted: from `table`, of `kind` (one-time tokens) or `-`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgedRows {
    pub table: &'static str,
    pub kind: String,
    pub rows: u64,
}

impl PurgedRows {
    /// The tables a purge reports, and the `kind` of idempotency keys (which have none).
    pub const IDEMPOTENCY_KEYS: &'static str = "idempotency_keys";
    pub const ONE_TIME_TOKENS: &'static str = "one_time_tokens";
    pub const NO_KIND: &'static str = "-";
}
