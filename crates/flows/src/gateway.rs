//! The one way to Toss. Every call the flows make goes through [`Gateway`], which applies the
//! same four things to each: the request's trace context (`traceparent`), the Toss call metrics
//! (operation, outcome, latency), a debug trace line, and the circuit breaker (a provider
//! failure counts against it, any answer from Toss proves it is up). A call made any other way
//! would skip all four, so the flows never touch `App::toss` directly.
//!
//! [`verdict`] is the other half: what a Toss error means for a money-moving call (confirm or
//! cancel), decided once for both.

use crate::App;
use crate::error::Error;
use domain::{ErrorCode, IdempotencyKey, Money, OrderId, PaymentKey};
use std::future::Future;
use std::time::Instant;
use toss::{CallContext, Operation, Outcome, PaymentView, RefundReceiveAccount, TossError};

type TossResult = Result<PaymentView, TossError>;

/// The Toss client seen through the breaker, the metrics and the trace. Made by
/// [`App::gateway`]; cheap (a reference).
pub struct Gateway<'a> {
    app: &'a App,
}

impl App {
    /// Every Toss call of the flows starts here.
    pub fn gateway(&self) -> Gateway<'_> {
        Gateway { app: self }
    }
}

impl Gateway<'_> {
    /// `POST /v1/payments/confirm` at Toss.
    pub async fn confirm(
        &self,
        payment_key: &PaymentKey,
        order_id: &OrderId,
        amount: Money,
        key: &IdempotencyKey,
    ) -> TossResult {
        let ctx = call_ctx();
        let call = self
            .app
            .toss
            .confirm(payment_key, order_id, amount, key, &ctx);
        self.observe(Operation::Confirm, call).await
    }

    /// The payment as Toss has it now, by paymentKey.
    pub async fn payment(&self, payment_key: &PaymentKey) -> TossResult {
        let ctx = call_ctx();
        let call = self.app.toss.get_payment(payment_key, &ctx);
        self.observe(Operation::Lookup, call).await
    }

    /// The payment as Toss has it now, by orderId.
    pub async fn payment_of_order(&self, order_id: &OrderId) -> TossResult {
        let ctx = call_ctx();
        let call = self.app.toss.get_payment_by_order(order_id, &ctx);
        self.observe(Operation::Lookup, call).await
    }

    /// A lookup that waits while the circuit is open instead of adding to an outage: for work
    /// that Toss retries or the reconciler repeats anyway (webhook deliveries). While open it
    /// never reaches Toss and answers [`TossError::Connect`] (certainly not sent), which is
    /// neither counted as a call nor fed to the breaker.
    pub async fn payment_unless_open(&self, by: Lookup<'_>) -> TossResult {
        if self.app.breaker.is_open() {
            tracing::debug!(target: "coursepay::toss", operation = Operation::Lookup.as_str(), "circuit open; Toss not asked");
            return Err(TossError::Connect(CIRCUIT_OPEN.to_owned()));
        }
        match by {
            Lookup::Key(key) => self.payment(key).await,
            Lookup::Order(order_id) => self.payment_of_order(order_id).await,
        }
    }

    /// Cancel (refund) `amount` of a payment, or all of it (`None`); `refundable` is the
    /// balance we expect Toss to hold, `account` the buyer's account for a virtual-account
    /// payment.
    pub async fn cancel(&self, cancel: Cancel<'_>) -> TossResult {
        let ctx = call_ctx();
        let call = self.app.toss.cancel_to_account(
            cancel.payment_key,
            cancel.reason,
            cancel.amount,
            cancel.refundable,
            cancel.account,
            cancel.key,
            &ctx,
        );
        self.observe(Operation::Cancel, call).await
    }

    /// Time one call, count it, trace it and feed the breaker.
    async fn observe(&self, op: Operation, call: impl Future<Output = TossResult>) -> TossResult {
        let started = Instant::now();
        let result = call.await;
        let elapsed = started.elapsed();
        crate::ops::metrics::record_toss_call(
            op.as_str(),
            crate::ops::metrics::toss_outcome(&result),
            elapsed,
        );
        let outcome = match &result {
            Ok(v) => v.status.as_str().to_owned(),
            Err(TossError::Api { code, .. }) => code.clone(),
            Err(e) => format!("{:?}", e.outcome()),
        };
        tracing::debug!(
            target: "coursepay::toss",
            operation = op.as_str(),
            outcome = %outcome,
            latency_ms = elapsed.as_millis() as u64,
            "toss call"
        );
        self.app
            .breaker
            .record(matches!(&result, Err(e) if e.is_provider_failure()));
        result
    }
}

/// The detail of the error a lookup answers while the circuit is open.
pub const CIRCUIT_OPEN: &str = "circuit open: Toss not asked";

/// Which payment a lookup asks about.
#[derive(Clone, Copy)]
pub enum Lookup<'a> {
    Key(&'a PaymentKey),
    Order(&'a OrderId),
}

/// One cancel request.
pub struct Cancel<'a> {
    pub payment_key: &'a PaymentKey,
    pub reason: &'a str,
    pub amount: Option<Money>,
    pub refundable: Option<Money>,
    pub account: Option<&'a RefundReceiveAccount>,
    pub key: &'a IdempotencyKey,
}

/// The request's trace context for Toss.
fn call_ctx() -> CallContext {
    CallContext {
        traceparent: crate::context::current().and_then(|c| c.traceparent().map(str::to_owned)),
    }
}

/// What a failed confirm or cancel means, the same for both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Toss definitively refused: nothing was charged or refunded. Toss's code.
    Refused(String),
    /// The request certainly never took effect (Toss or the path to it is down, or it refused
    /// our credentials — logged as an error): safe to give up or try again later.
    NotSent,
    /// Not known whether it took effect: only a lookup can tell.
    Unknown,
}

/// Classify a failed money-moving call. `subject` names what it was for in the log
/// (`order_id=…`, `refund_id=…`).
pub fn verdict(err: &TossError, subject: &str) -> Verdict {
    match err.outcome() {
        Outcome::Refused => Verdict::Refused(err.code().unwrap_or("REFUSED").to_owned()),
        Outcome::Misconfigured => {
            tracing::error!(subject, code = ?err.code(), "Toss refused our credentials: check TOSS_SECRET_KEY");
            Verdict::NotSent
        }
        Outcome::Unavailable => Verdict::NotSent,
        Outcome::AlreadyProcessed | Outcome::Unknown => Verdict::Unknown,
    }
}

/// The answer for a call that certainly did not take effect: 503, try again shortly.
pub fn unavailable(err: &TossError) -> Error {
    let e = Error::new(ErrorCode::PgUnavailable).with_retry_after(5);
    match err.code() {
        Some(code) => e.with_provider_code(code),
        None => e,
    }
}

/// The answer for a call whose outcome is unknown: 504 after a timeout or a broken
/// connection, else 503; either way retryable, and the reconciler finishes the work.
pub fn unknown_outcome(err: &TossError) -> Error {
    match err {
        TossError::Timeout | TossError::Network(_) => {
            Error::new(ErrorCode::PgTimeout).with_retry_after(5)
        }
        _ => unavailable(err),
    }
}
