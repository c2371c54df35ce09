//! Refunds through Toss's cancel API, and the one place where a cancellation Toss reports
//! becomes our state.
//!
//! * [`refund`]: the admin refund. A REQUESTED row is written first (with the Idempotency-Key
//!   derived from its id), then Toss is asked to cancel with `refundableAmount` set to our
//!   balance (so a stale balance is refused by Toss, never over-refunded). An answer that is
//!   lost is resolved by looking the payment up and, if Toss shows no cancel, by retrying with
//!   the same key; otherwise the refund stays REQUESTED for [`reconcile_refunds`].
//! * [`apply_provider_cancellation`]: what webhooks, settle-on-read and the reconciler call
//!   (through [`crate::flows::settle::apply_view`]) when Toss says CANCELED/PARTIAL_CANCELED.
//!   Both paths end in `Store::record_cancellation`, so a refund racing a CANCELED webhook is
//!   one refund record.

use crate::App;
use crate::error::{Error, Result};
use crate::flows::event_ctx;
use crate::flows::settle::{call_ctx, note_call, settle_view, unavailable, unknown_outcome};
use domain::{
    EnrollmentStatus, ErrorCode, IdempotencyKey, Money, PROVIDER_TOSS, PaymentId, PaymentKey,
    PaymentStatus, RefundId, RefundStatus,
};
use std::time::Duration;
use store::{
    Cancellation, CancellationRecorded, EventContext, NewRefund, Order, Payment, ProviderCancel,
    Refund, RefundBegin, StoreError,
};
use time::OffsetDateTime;
use toss::{Operation, Outcome, PaymentView};

/// How long a refund may stay REQUESTED before it counts as stuck (README "Refunds"): the
/// reconciler re-checks older ones and the operator is told about them.
pub const REFUND_SLA: Duration = Duration::from_secs(10 * 60);

/// Extra cancel calls (same Idempotency-Key) after an unknown outcome that a lookup could not
/// resolve, before the request is answered 503/504 and left to the reconciler.
const CANCEL_RETRIES: u32 = 2;

/// Refund codes Toss answers when our view of the payment is behind Toss's (a cancel made
/// elsewhere): after such a refusal the payment is re-read and recorded.
const STALE_VIEW_CODES: &[&str] = &[
    "ALREADY_CANCELED_PAYMENT",
    "ALREADY_REFUND_PAYMENT",
    "NOT_MATCHES_REFUNDABLE_AMOUNT",
    "NOT_CANCELABLE_AMOUNT",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundOutput {
    pub payment_id: PaymentId,
    pub status: PaymentStatus,
    /// Everything refunded so far (Toss's totalAmount − balanceAmount).
    pub refunded_amount: Money,
    pub enrollment_status: Option<EnrollmentStatus>,
}

/// Refund `amount` (None = everything left) of a payment through Toss. `actor` goes to the
/// event log ("service_role").
pub async fn refund(
    app: &App,
    payment_id: PaymentId,
    reason: &str,
    amount: Option<Money>,
    actor: &str,
) -> Result<RefundOutput> {
    crate::context::record(|f| f.provider = Some(PROVIDER_TOSS));
    let ev = event_ctx(actor.to_owned());
    let refund_id = RefundId::new();
    let key = IdempotencyKey::for_refund(&refund_id.0);
    let begun = app
        .store
        .begin_refund(NewRefund {
            id: refund_id,
            payment_id,
            amount,
            reason: reason.to_owned(),
            idempotency_key: key.clone(),
            requested_by: actor.to_owned(),
            ctx: ev.clone(),
        })
        .await?;
    let (refund, payment) = match begun {
        RefundBegin::PaymentNotFound => return Err(Error::new(ErrorCode::PaymentNotFound)),
        RefundBegin::NotAllowed {
            payment,
            available,
            in_progress,
        } => {
            record_payment(&payment);
            let detail = if in_progress {
                "another refund of this payment is waiting for the provider; try again later"
                    .to_owned()
            } else if !matches!(
                payment.status,
                PaymentStatus::Done | PaymentStatus::PartialCanceled
            ) {
                format!("payment is {}; nothing to refund", payment.status)
            } else {
                format!("amount: at most {} can be refunded", available.won())
            };
            return Err(Error::new(ErrorCode::RefundNotAllowed).with_detail(detail));
        }
        RefundBegin::Begun { refund, payment } => (refund, payment),
    };
    record_payment(&payment);
    let payment_key = PaymentKey::parse(&payment.provider_tx_id)
        .map_err(|e| Error::internal(format!("stored payment key: {e}")))?;

    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let started = std::time::Instant::now();
        let result = app
            .toss
            .cancel(
                &payment_key,
                &refund.reason,
                amount,
                Some(payment.balance),
                &key,
                &call_ctx(),
            )
            .await;
        note_call(app, Operation::Cancel, started, &result);
        let err = match result {
            Ok(view) => {
                let rec = record_view(app, &payment, &view, "refund", &ev).await?;
                return Ok(finish(app, &payment, &rec));
            }
            Err(e) => e,
        };
        match err.outcome() {
            Outcome::Refused => {
                let code = err.code().unwrap_or("REFUSED").to_owned();
                app.store.fail_refund(refund.id, &code, &ev).await?;
                if STALE_VIEW_CODES.contains(&code.as_str()) {
                    sync_payment(app, &payment, &payment_key, &ev).await;
                }
                tracing::info!(target: "coursepay::refund", refund_id = %refund.id, code = %code, "provider refused the refund");
                return Err(Error::new(ErrorCode::RefundNotAllowed)
                    .with_provider_code(code)
                    .with_detail("the provider refused this refund"));
            }
            Outcome::Unavailable | Outcome::Misconfigured => {
                if err.outcome() == Outcome::Misconfigured {
                    tracing::error!(refund_id = %refund.id, code = ?err.code(), "Toss refused our credentials: check TOSS_SECRET_KEY");
                }
                // Certainly never reached Toss: nothing to wait for, a new request may follow.
                let code = err.code().unwrap_or("PG_UNREACHABLE").to_owned();
                app.store.fail_refund(refund.id, &code, &ev).await?;
                return Err(unavailable(&err));
            }
            Outcome::Unknown | Outcome::AlreadyProcessed => {
                if let Some(rec) = lookup_refund(app, &payment, &payment_key, &refund, &ev).await? {
                    return Ok(finish(app, &payment, &rec));
                }
                if attempt <= CANCEL_RETRIES {
                    tokio::time::sleep(Duration::from_millis(150 * u64::from(attempt))).await;
                    continue;
                }
                tracing::warn!(target: "coursepay::refund", refund_id = %refund.id, error = %err, "refund outcome unknown; left REQUESTED for the reconciler");
                return Err(unknown_outcome(&err));
            }
        }
    }
}

fn record_payment(p: &Payment) {
    crate::context::record(|f| {
        f.provider = Some(PROVIDER_TOSS);
        f.provider_tx_id = Some(p.provider_tx_id.clone());
        f.order_id = Some(p.order_id.to_string());
        f.course_id = Some(p.course_id.to_string());
        f.enrollment_id = p.enrollment_id.map(|e| e.to_string());
    });
}

fn finish(app: &App, payment: &Payment, rec: &CancellationRecorded) -> RefundOutput {
    // A replayed confirm must not answer ENROLLED for a refunded order.
    app.replays.forget(&payment.order_id);
    crate::context::record(|f| f.status = Some(rec.payment.status.to_string()));
    RefundOutput {
        payment_id: rec.payment.id,
        status: rec.payment.status,
        refunded_amount: rec.refunded_amount(),
        enrollment_status: rec.enrollment_status,
    }
}

fn cancellation(view: &PaymentView, source: &str, ev: &EventContext) -> Cancellation {
    Cancellation {
        payment_key: view.payment_key.clone(),
        status: view.status,
        balance: view.balance_amount,
        cancels: view
            .cancels
            .iter()
            .map(|c| ProviderCancel {
                transaction_key: c.transaction_key.clone(),
                amount: c.amount,
                reason: c.reason.clone(),
            })
            .collect(),
        source: source.to_owned(),
        ctx: ev.clone(),
    }
}

/// Record Toss's view of a payment we have a row for.
async fn record_view(
    app: &App,
    payment: &Payment,
    view: &PaymentView,
    source: &str,
    ev: &EventContext,
) -> Result<CancellationRecorded> {
    if view.payment_key.as_str() != payment.provider_tx_id {
        return Err(Error::internal("provider answered for another payment"));
    }
    let rec = app
        .store
        .record_cancellation(cancellation(view, source, ev))
        .await?;
    app.replays.forget(&payment.order_id);
    if rec.refunds_recorded > 0 || rec.enrollment_revoked {
        tracing::info!(target: "coursepay::refund", payment_id = %payment.id, source, status = %rec.payment.status, revoked = rec.enrollment_revoked, "cancellation recorded");
    }
    Ok(rec)
}

/// After an unknown cancel outcome: ask Toss and record what it says. Some(..) when that
/// settled `refund` (DONE), None when Toss shows no such cancel or could not be asked.
async fn lookup_refund(
    app: &App,
    payment: &Payment,
    payment_key: &PaymentKey,
    refund: &Refund,
    ev: &EventContext,
) -> Result<Option<CancellationRecorded>> {
    let started = std::time::Instant::now();
    let looked = app.toss.get_payment(payment_key, &call_ctx()).await;
    note_call(app, Operation::Lookup, started, &looked);
    let view = match looked {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(refund_id = %refund.id, error = %e, "lookup after unknown cancel outcome failed");
            return Ok(None);
        }
    };
    let rec = record_view(app, payment, &view, "refund-lookup", ev).await?;
    let now = app.store.get_refund(refund.id).await?;
    Ok(now.filter(|r| r.status == RefundStatus::Done).map(|_| rec))
}

/// Best effort: bring our payment in line with Toss's after Toss said our view is stale.
async fn sync_payment(app: &App, payment: &Payment, payment_key: &PaymentKey, ev: &EventContext) {
    let started = std::time::Instant::now();
    let looked = app.toss.get_payment(payment_key, &call_ctx()).await;
    note_call(app, Operation::Lookup, started, &looked);
    match looked {
        Ok(view) if view.status.is_captured() => {
            if let Err(e) = record_view(app, payment, &view, "refund-sync", ev).await {
                tracing::warn!(payment_id = %payment.id, error = %e, "could not record the provider's view after a refused refund");
            }
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(payment_id = %payment.id, error = %e, "lookup after a refused refund failed");
        }
    }
}

/// Toss says `order`'s payment is CANCELED/PARTIAL_CANCELED (a fresh lookup, never a webhook
/// body): record it. A payment we never settled (the CANCELED webhook came before any DONE) is
/// settled first, so the money that moved is on record, then its cancellation revokes access.
pub async fn apply_provider_cancellation(
    app: &App,
    order: &Order,
    view: &PaymentView,
    source: &str,
    ev: &EventContext,
) -> Result<CancellationRecorded> {
    if view.order_id != order.order_id {
        return Err(Error::internal("payment belongs to another order"));
    }
    if view.total_amount != order.amount {
        tracing::error!(order_id = %order.order_id, order_amount = order.amount.won(), provider_amount = view.total_amount.won(), "provider amount differs from order amount; cancellation not recorded");
        return Err(Error::internal(
            "provider amount differs from the order amount",
        ));
    }
    let c = cancellation(view, source, ev);
    let rec = match app.store.record_cancellation(c.clone()).await {
        Ok(rec) => rec,
        Err(StoreError::NotFound) => {
            settle_view(app, order, view, source, ev).await?;
            app.store.record_cancellation(c).await?
        }
        Err(e) => return Err(e.into()),
    };
    app.replays.forget(&order.order_id);
    crate::context::record(|f| {
        f.provider = Some(PROVIDER_TOSS);
        f.provider_tx_id = Some(view.payment_key.to_string());
        f.order_id = Some(order.order_id.to_string());
        f.course_id = Some(order.course_id.to_string());
        f.enrollment_id = rec.payment.enrollment_id.map(|e| e.to_string());
    });
    if rec.refunds_recorded > 0 || rec.enrollment_revoked {
        tracing::info!(target: "coursepay::refund", order_id = %order.order_id, source, status = %rec.payment.status, revoked = rec.enrollment_revoked, "provider cancellation recorded");
    }
    Ok(rec)
}

/// Refunds REQUESTED since before now − [`REFUND_SLA`]: what the operator must look at.
pub async fn stuck_refunds(app: &App) -> Result<Vec<Refund>> {
    let older_than = OffsetDateTime::now_utc() - REFUND_SLA;
    Ok(app.store.stuck_refunds(older_than, 100).await?)
}

/// The reconciler's refund pass: every refund REQUESTED since before `older_than` is settled
/// with Toss — looked up and recorded (DONE when Toss shows it), otherwise the cancel is sent
/// again with the refund's own Idempotency-Key (Toss replays the first answer if the first
/// request did arrive), and a definitive refusal marks it FAILED. Returns how many were settled
/// (DONE or FAILED); the rest stay REQUESTED for the next pass.
pub async fn reconcile_refunds(app: &App, older_than: OffsetDateTime) -> Result<usize> {
    let stuck = app.store.stuck_refunds(older_than, 100).await?;
    let mut settled = 0;
    for refund in stuck {
        match reconcile_one(app, &refund).await {
            Ok(true) => settled += 1,
            Ok(false) => {
                tracing::warn!(target: "coursepay::refund", refund_id = %refund.id, created_at = %refund.created_at, "refund still REQUESTED after reconciliation");
            }
            Err(e) => {
                tracing::warn!(target: "coursepay::refund", refund_id = %refund.id, error = %e, "refund reconciliation failed");
            }
        }
    }
    Ok(settled)
}

async fn reconcile_one(app: &App, refund: &Refund) -> Result<bool> {
    let ev = event_ctx("reconciler");
    let payment = app
        .store
        .get_payment(refund.payment_id)
        .await?
        .ok_or_else(|| Error::internal("refund of a payment that does not exist"))?;
    let payment_key = PaymentKey::parse(&payment.provider_tx_id)
        .map_err(|e| Error::internal(format!("stored payment key: {e}")))?;
    if lookup_refund(app, &payment, &payment_key, refund, &ev)
        .await?
        .is_some()
    {
        return Ok(true);
    }
    // Still REQUESTED (the lookup may also have failed): re-send with the same key. The
    // balance is the one just synced from Toss, i.e. what Toss will check it against.
    let payment = app
        .store
        .get_payment(refund.payment_id)
        .await?
        .unwrap_or(payment);
    let key = IdempotencyKey::parse(&refund.idempotency_key)
        .map_err(|e| Error::internal(format!("stored refund key: {e}")))?;
    let started = std::time::Instant::now();
    let result = app
        .toss
        .cancel(
            &payment_key,
            &refund.reason,
            Some(refund.amount),
            Some(payment.balance),
            &key,
            &call_ctx(),
        )
        .await;
    note_call(app, Operation::Cancel, started, &result);
    match result {
        Ok(view) => {
            record_view(app, &payment, &view, "reconciler", &ev).await?;
            let now = app.store.get_refund(refund.id).await?;
            Ok(now.is_some_and(|r| r.status != RefundStatus::Requested))
        }
        Err(e) => match e.outcome() {
            Outcome::Refused => {
                let code = e.code().unwrap_or("REFUSED").to_owned();
                app.store.fail_refund(refund.id, &code, &ev).await?;
                Ok(true)
            }
            Outcome::Unknown
            | Outcome::AlreadyProcessed
            | Outcome::Unavailable
            | Outcome::Misconfigured => Ok(false),
        },
    }
}
