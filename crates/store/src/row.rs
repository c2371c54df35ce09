//! Reading rows into the model, once for both backends. The two drivers differ only in how a
//! column is read (SQLite keeps timestamps as text, JSON as text), so each implements
//! [`Columns`] and the model decoders below are shared.

use crate::model::{
    Course, Enrollment, Event, ExamAttempt, Order, Payment, PaymentControls, Refund,
};
use crate::{Result, StoreError};
use domain::{
    AttemptId, CourseId, EnrollmentId, EnrollmentStatus, Money, OrderId, OrderStatus, PaymentId,
    PaymentKey, PaymentStatus, RefundId, RefundStatus, UserId,
};
use std::fmt::Display;
use std::str::FromStr;
use time::OffsetDateTime;
use uuid::Uuid;

pub(crate) fn bad_column(col: &str, err: impl Display) -> StoreError {
    StoreError::Other(format!("reading column {col}: {err}"))
}

/// Typed column access; every error names the column.
pub(crate) trait Columns {
    fn uuid(&self, col: &str) -> Result<Uuid>;
    fn opt_uuid(&self, col: &str) -> Result<Option<Uuid>>;
    fn text(&self, col: &str) -> Result<String>;
    fn opt_text(&self, col: &str) -> Result<Option<String>>;
    fn int(&self, col: &str) -> Result<i64>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>>;
    fn flag(&self, col: &str) -> Result<bool>;
    fn ts(&self, col: &str) -> Result<OffsetDateTime>;
    fn opt_ts(&self, col: &str) -> Result<Option<OffsetDateTime>>;
    fn json(&self, col: &str) -> Result<serde_json::Value>;

    fn money(&self, col: &str) -> Result<Money> {
        Money::new(self.int(col)?).map_err(|e| bad_column(col, e))
    }

    fn parsed<T: FromStr>(&self, col: &str) -> Result<T>
    where
        T::Err: Display,
    {
        self.text(col)?.parse().map_err(|e| bad_column(col, e))
    }
}

pub(crate) fn order_id(r: &impl Columns) -> Result<OrderId> {
    OrderId::parse(&r.text("order_id")?).map_err(|e| bad_column("order_id", e))
}

pub(crate) fn course(r: &impl Columns) -> Result<Course> {
    Ok(Course {
        id: CourseId(r.uuid("id")?),
        title: r.text("title")?,
        price: r.money("price")?,
        status: r.text("status")?,
        created_at: r.ts("created_at")?,
    })
}

pub(crate) fn order(r: &impl Columns) -> Result<Order> {
    let order_id = r.text("order_id")?;
    let payment_key = match r.opt_text("payment_key")? {
        Some(k) => Some(PaymentKey::parse(&k).map_err(|e| bad_column("payment_key", e))?),
        None => None,
    };
    Ok(Order {
        order_id: OrderId::parse(&order_id).map_err(|e| bad_column("order_id", e))?,
        user_id: UserId(r.uuid("user_id")?),
        course_id: CourseId(r.uuid("course_id")?),
        amount: r.money("amount")?,
        order_name: r.text("order_name")?,
        status: r.parsed::<OrderStatus>("status")?,
        payment_key,
        payment_id: r.opt_uuid("payment_id")?.map(PaymentId),
        enrollment_id: r.opt_uuid("enrollment_id")?.map(EnrollmentId),
        approved_at: r.opt_ts("approved_at")?,
        failure_code: r.opt_text("failure_code")?,
        created_at: r.ts("created_at")?,
        expires_at: r.ts("expires_at")?,
        updated_at: r.ts("updated_at")?,
    })
}

pub(crate) fn enrollment(r: &impl Columns) -> Result<Enrollment> {
    Ok(Enrollment {
        id: EnrollmentId(r.uuid("id")?),
        user_id: UserId(r.uuid("user_id")?),
        course_id: CourseId(r.uuid("course_id")?),
        status: r.parsed::<EnrollmentStatus>("status")?,
        enrolled_at: r.ts("enrolled_at")?,
        updated_at: r.ts("updated_at")?,
    })
}

pub(crate) fn payment(r: &impl Columns) -> Result<Payment> {
    let order_id = r.text("order_id")?;
    Ok(Payment {
        id: PaymentId(r.uuid("id")?),
        provider: r.text("provider")?,
        provider_tx_id: r.text("provider_tx_id")?,
        order_id: OrderId::parse(&order_id).map_err(|e| bad_column("order_id", e))?,
        user_id: UserId(r.uuid("user_id")?),
        course_id: CourseId(r.uuid("course_id")?),
        enrollment_id: r.opt_uuid("enrollment_id")?.map(EnrollmentId),
        amount: r.money("amount")?,
        balance: r.money("balance")?,
        status: r.parsed::<PaymentStatus>("status")?,
        method: r.opt_text("method")?,
        secret: r.opt_text("secret")?,
        approved_at: r.ts("approved_at")?,
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
    })
}

pub(crate) fn event(r: &impl Columns) -> Result<Event> {
    let order_id = match r.opt_text("order_id")? {
        Some(o) => Some(OrderId::parse(&o).map_err(|e| bad_column("order_id", e))?),
        None => None,
    };
    Ok(Event {
        id: r.int("id")?,
        order_id,
        payment_id: r.opt_uuid("payment_id")?.map(PaymentId),
        kind: r.text("kind")?,
        from_status: r.opt_text("from_status")?,
        to_status: r.opt_text("to_status")?,
        actor: r.text("actor")?,
        request_id: r.opt_text("request_id")?,
        detail: r.json("detail")?,
        at: r.ts("at")?,
    })
}

/// A refund whose columns carry `prefix` (statements that return a payment and a refund in
/// one row name the refund's columns `r_id`, `r_amount`, …).
pub(crate) fn refund(r: &impl Columns, prefix: &str) -> Result<Refund> {
    let c = |name: &str| format!("{prefix}{name}");
    Ok(Refund {
        id: RefundId(r.uuid(&c("id"))?),
        payment_id: PaymentId(r.uuid(&c("payment_id"))?),
        amount: r.money(&c("amount"))?,
        reason: r.text(&c("reason"))?,
        status: r.parsed::<RefundStatus>(&c("status"))?,
        transaction_key: r.opt_text(&c("transaction_key"))?,
        idempotency_key: r.text(&c("idempotency_key"))?,
        requested_by: r.text(&c("requested_by"))?,
        created_at: r.ts(&c("created_at"))?,
        updated_at: r.ts(&c("updated_at"))?,
    })
}

/// An exam attempt joined with its enrollment's `user_id`.
pub(crate) fn attempt(r: &impl Columns) -> Result<ExamAttempt> {
    let score = match r.opt_int("score")? {
        Some(v) => Some(i32::try_from(v).map_err(|e| bad_column("score", e))?),
        None => None,
    };
    Ok(ExamAttempt {
        id: AttemptId(r.uuid("id")?),
        enrollment_id: EnrollmentId(r.uuid("enrollment_id")?),
        user_id: UserId(r.uuid("user_id")?),
        score,
        started_at: r.ts("started_at")?,
        submitted_at: r.opt_ts("submitted_at")?,
    })
}

pub(crate) fn controls(r: &impl Columns) -> Result<PaymentControls> {
    Ok(PaymentControls {
        paused: r.flag("paused")?,
        reason: r.opt_text("reason")?,
        updated_at: r.ts("updated_at")?,
        updated_by: r.text("updated_by")?,
    })
}
