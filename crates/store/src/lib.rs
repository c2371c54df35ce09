//! Persistence: one [`Store`] trait, two backends (PostgreSQL for production, SQLite as the
//! embedded default) with the same schema and constraints, and one conformance suite
//! (`tests/conformance.rs`) that runs against both.
//!
//! The trait is shaped by the confirm flow's round-trip budget (seed §5: ≤ 3): each method is
//! one database round trip on PostgreSQL (data-modifying CTEs), and one transaction on SQLite.
//! Every statement sent is counted in [`roundtrips`] so tests and metrics can see the cost.
//!
//! Where money turns into an enrollment there is exactly one method, [`Store::settle`]; every
//! path (confirm, settle-on-read, reconciler, webhooks) ends there.

mod call;
mod error;
pub mod model;
pub mod pgconns;
pub mod pgschema;
pub mod postgres;
pub mod roundtrips;
mod row;
mod shared;
mod sql;
pub mod sqlite;
pub mod testing;
mod writer;

pub use error::SQLITE_FOREIGN_KEY;
pub use model::*;
pub use pgschema::PgSettings;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

use async_trait::async_trait;
use domain::{AttemptId, CourseId, EnrollmentId, OrderId, PaymentId, RefundId, UserId};
use std::sync::Arc;
use time::OffsetDateTime;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// `create_order` for a course the user already has (ENROLLED).
    #[error("user is already enrolled in this course")]
    AlreadyEnrolled,
    /// `create_order` for a user who already holds `max_open_per_user` unpaid orders.
    #[error("user holds too many unpaid orders")]
    TooManyOpenOrders,
    /// A named constraint refused the write; the name says which invariant held.
    #[error("constraint {0} violated")]
    Constraint(String),
    /// Row that must exist does not (e.g. settle for an unknown order).
    #[error("not found")]
    NotFound,
    /// The database could not be reached or timed out: retryable, nothing was decided.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else from the driver. Logged, shown to clients as E_INTERNAL.
    #[error("database error: {0}")]
    Other(String),
}

pub type DynStore = Arc<dyn Store>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    fn backend(&self) -> Backend;

    /// Apply pending migrations (idempotent).
    async fn migrate(&self) -> Result<()>;

    /// Readiness: the database answers and every migration this binary knows is applied.
    async fn ready(&self) -> Result<()>;

    // --- catalog -------------------------------------------------------------------------
    async fn create_course(&self, new: NewCourse) -> Result<Course>;
    /// Published courses, oldest first.
    async fn list_courses(&self) -> Result<Vec<Course>>;
    async fn get_course(&self, id: CourseId) -> Result<Option<Course>>;

    // --- orders --------------------------------------------------------------------------
    /// Insert a PENDING order. Refuses with [`StoreError::AlreadyEnrolled`] when the user has an
    /// ENROLLED enrollment for the course, and with [`StoreError::TooManyOpenOrders`] when they
    /// hold `max_open_per_user` unpaid orders already (both checked in the same
    /// statement/transaction; on PostgreSQL concurrent checkouts of one user can each see the
    /// count before the others' inserts, so the cap is exact only per user and moment, which
    /// the checkout rate limit keeps small).
    async fn create_order(&self, new: NewOrder) -> Result<Order>;

    async fn get_order(&self, order_id: &OrderId) -> Result<Option<Order>>;

    /// The claim step of a confirm, one round trip on PostgreSQL: PENDING → CONFIRMING when the
    /// order belongs to `user_id`, the amount equals the order's, it has not expired, the user
    /// is not already ENROLLED in the course and no other order of theirs for that course is
    /// CONFIRMING or PAID. Otherwise nothing changes and the order is returned as found, with
    /// what the caller needs to answer (replay body, enrolled elsewhere).
    async fn claim_order(&self, claim: ClaimRequest) -> Result<ClaimOutcome>;

    /// CONFIRMING → PENDING: the provider definitely did not charge and the buyer may retry
    /// (e.g. the provider was unreachable before the request left). Returns whether it moved.
    async fn release_order(&self, order_id: &OrderId, ctx: &EventContext) -> Result<bool>;

    /// PENDING/CONFIRMING → FAILED or EXPIRED with the provider's code. Never touches a PAID or
    /// REFUNDED order (returns false then).
    async fn fail_order(
        &self,
        order_id: &OrderId,
        to: domain::OrderStatus,
        code: Option<&str>,
        ctx: &EventContext,
    ) -> Result<bool>;

    /// THE settle function: the provider says this payment is captured, so in one round trip
    /// (one transaction on SQLite): insert the payment (UNIQUE provider+provider_tx_id, so a
    /// second settle of the same payment is a no-op that returns the first result), upsert the
    /// enrollment (UNIQUE user_id+course_id) as ENROLLED, order → PAID, append the event.
    /// Settling an order that is FAILED/EXPIRED still records the payment: money that moved is
    /// never dropped. A virtual-account deposit after a reversal (`transition::is_redeposit`)
    /// is not a replay: the same payment captures the amount again and holds it, the same
    /// enrollment is ENROLLED and the order PAID again.
    async fn settle(&self, s: Settlement) -> Result<Settled>;

    /// Orders still PENDING/CONFIRMING and last touched before `older_than`, oldest first: the
    /// reconciler's backlog.
    async fn open_orders(&self, older_than: OffsetDateTime, limit: i64) -> Result<Vec<Order>>;

    // --- enrollments and payments --------------------------------------------------------
    async fn list_enrollments(&self, user: UserId) -> Result<Vec<Enrollment>>;
    async fn get_enrollment(&self, id: EnrollmentId) -> Result<Option<Enrollment>>;
    async fn get_payment(&self, id: PaymentId) -> Result<Option<Payment>>;
    async fn payment_for_order(&self, order_id: &OrderId) -> Result<Option<Payment>>;

    /// The append-only event log for one order, oldest first.
    async fn order_events(&self, order_id: &OrderId) -> Result<Vec<Event>>;

    // --- refunds and exams ---------------------------------------------------------------
    /// Write a REQUESTED refund before Toss is called, so an answer that gets lost is never
    /// forgotten. Refuses (NotAllowed, nothing written) when the payment is not refundable,
    /// the amount exceeds its balance minus refunds still REQUESTED, or another refund of the
    /// payment is REQUESTED: at most one per payment waits for Toss
    /// (refunds_one_requested_per_payment), so concurrent requests cannot both pass.
    async fn begin_refund(&self, new: NewRefund) -> Result<RefundBegin>;

    /// THE cancellation-recording function, shared by the refund flow, webhooks, settle-on-read
    /// and the reconciler. Given Toss's view of a payment, in one round trip (one transaction on
    /// SQLite): a refund row per cancel keyed by transaction_key (a REQUESTED row of the same
    /// amount becomes DONE instead of a second row) as far as the balance accounts for it
    /// (`domain::transition::cancels_to_record`: the DONE refunds never add up to more than
    /// captured − balance), payments.balance/status (never backwards),
    /// and when the balance reaches zero the enrollment and order REFUNDED with their events —
    /// except for a duplicate payment (order FAILED with DUPLICATE_PAYMENT), whose enrollment
    /// belongs to the first order and is left alone. `NotFound` when the payment is not recorded
    /// (settle it first).
    async fn record_cancellation(&self, c: Cancellation) -> Result<CancellationRecorded>;

    /// REQUESTED → FAILED: Toss refused the cancel definitively (or it certainly never reached
    /// Toss). Returns whether it moved.
    async fn fail_refund(&self, id: RefundId, code: &str, ctx: &EventContext) -> Result<bool>;

    async fn get_refund(&self, id: RefundId) -> Result<Option<Refund>>;

    /// Refunds of a payment, oldest first.
    async fn payment_refunds(&self, payment_id: PaymentId) -> Result<Vec<Refund>>;

    /// Refunds still REQUESTED that were created before `older_than`, oldest first: the refund
    /// SLA's backlog for the reconciler and the operator.
    async fn stuck_refunds(&self, older_than: OffsetDateTime, limit: i64) -> Result<Vec<Refund>>;

    /// Start an exam attempt when the enrollment is ENROLLED and fewer than `max_attempts`
    /// attempts were started for it; atomic under concurrency (20 concurrent starts with a limit
    /// of 3 create exactly 3). The caller checks ownership.
    async fn start_attempt(
        &self,
        enrollment_id: EnrollmentId,
        attempt_id: AttemptId,
        max_attempts: u32,
        now: OffsetDateTime,
    ) -> Result<AttemptStart>;

    async fn get_attempt(&self, id: AttemptId) -> Result<Option<ExamAttempt>>;

    /// Record the score once; a second (or concurrent losing) submit changes nothing.
    async fn submit_attempt(
        &self,
        id: AttemptId,
        score: i32,
        now: OffsetDateTime,
    ) -> Result<AttemptSubmit>;
    // --- operations ----------------------------------------------------------------------
    /// Lease up to `limit` open (PENDING/CONFIRMING) orders last touched before `older_than`
    /// whose lease is free (none, or expired before `now`) to `owner` until `lease_until`.
    /// Orders that can have money behind them come first: CONFIRMING, then PENDING ones a
    /// confirm reached (a payment key), then PENDING ones still payable, then PENDING ones past
    /// their expiry; within a class the least recently leased first, so a large backlog is
    /// worked through in turn. One statement on PostgreSQL (`FOR UPDATE SKIP LOCKED`), one transaction on
    /// SQLite: two concurrent callers never get the same order. Leasing is not a state change
    /// (updated_at and the event log are untouched).
    async fn lease_open_orders(
        &self,
        owner: &str,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        older_than: OffsetDateTime,
        limit: i64,
    ) -> Result<Vec<Order>>;

    /// PENDING orders past their expiry that the reconciler already looked up at least
    /// `min_lookups` times since (each lease of such an order counts one): abandoned checkouts
    /// to expire without asking Toss again. Oldest expiry first.
    async fn abandoned_orders(
        &self,
        now: OffsetDateTime,
        min_lookups: i64,
        limit: i64,
    ) -> Result<Vec<OrderId>>;

    /// The reconciler's backlog: how many orders are open (PENDING/CONFIRMING, created at or
    /// before `now`) and when the oldest of them was created.
    async fn open_order_backlog(
        &self,
        now: OffsetDateTime,
    ) -> Result<(i64, Option<OffsetDateTime>)>;

    /// The payments pause switch as stored.
    async fn payment_controls(&self) -> Result<PaymentControls>;

    /// Pause (`paused = true`, with a reason) or resume payments; appends a
    /// `payments.paused`/`payments.resumed` event (who, reason) to the event log in the same
    /// statement/transaction. Returns the stored switch.
    async fn set_payments_paused(
        &self,
        paused: bool,
        reason: Option<&str>,
        ctx: &EventContext,
    ) -> Result<PaymentControls>;

    // --- idempotency ---------------------------------------------------------------------
    /// Remember a client's Idempotency-Key for `scope` (e.g. "confirm:<user>") with the
    /// fingerprint of its request, until `expires_at`. Answers whether the key is new, was seen
    /// with the same request, or with a different one.
    async fn remember_idempotency_key(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &str,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<KeyUse>;

    /// Remember a one-time token (accepted webhook signature, Toss transmission id) until
    /// `expires_at`. Returns true the first time, false while it is remembered. Expired rows
    /// are ignored and may be purged.
    async fn remember_once(
        &self,
        kind: &str,
        token: &str,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<bool>;

    /// Retention: delete up to `limit` rows whose expiry is at or before `now` from each
    /// expiring table (idempotency keys; one-time tokens: webhook replay marks and transmission
    /// ids). Returns what was deleted per table and kind; fewer than `limit` rows from every
    /// table means nothing expired is left.
    async fn purge_expired(&self, now: OffsetDateTime, limit: i64) -> Result<Vec<PurgedRows>>;

    /// Forget a token [`remember_once`](Store::remember_once) accepted, so it is accepted
    /// again (a webhook whose processing failed must be processed when Toss retries it).
    async fn forget_once(&self, kind: &str, token: &str) -> Result<()>;

    /// Ended (FAILED/EXPIRED) orders whose virtual account Toss may still hold open — the order
    /// ended with an account issued and no deposit recorded — due for a look at `now` (first
    /// when the order ended, then when [`account_checked`](Store::account_checked) said), at
    /// most `limit`, the most overdue first. Each is leased: not due again before
    /// `lease_until`, so two reconcilers never take one order at once and a crashed one's come
    /// back. One statement on both backends, on an index of the due orders only. (An order
    /// paid since it ended comes back once, for the caller to end its checks.)
    async fn lease_account_checks(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: i64,
    ) -> Result<Vec<Order>>;

    /// What a look at an order's virtual account found: `None`, nothing open at Toss (closed,
    /// the deposit recorded, no account), ends the checks; `Some(at)`: look again at `at`.
    async fn account_checked(
        &self,
        order_id: &OrderId,
        again: Option<OffsetDateTime>,
    ) -> Result<()>;

    /// Store the virtual-account `secret` Toss returned with a WAITING_FOR_DEPOSIT confirm, to
    /// check DEPOSIT_CALLBACK deliveries against. Returns whether the order exists.
    async fn record_deposit_secret(&self, order_id: &OrderId, secret: &str) -> Result<bool>;

    /// The secret stored by [`record_deposit_secret`](Store::record_deposit_secret).
    async fn deposit_secret(&self, order_id: &OrderId) -> Result<Option<String>>;
}
