//! Refunds through Toss's cancel API, and the one place where a cancellation Toss reports
//! becomes our state.
//!
//! * [`refund`]: the admin refund. A REQUESTED row is written first (with the Idempotency-Key
//!   derived from its id), then Toss is asked to cancel with `refundableAmount` set to our
//!   balance (so a stale balance is refused by Toss, never over-refunded). An answer that is
//!   lost is resolved by looking the payment up and, if Toss shows no cancel, by sending the
//!   cancel again under a *new* key: Toss replays a key's first answer, errors included, for
//!   the key's lifetime, so a same-key retry after an error would only get the error back.
//!   The new key is safe because `refundableAmount` is the balance Toss just reported: had the
//!   first request taken effect after all, Toss refuses the second. Otherwise the refund stays
//!   REQUESTED for [`reconcile_refunds`].
//! * Virtual accounts: a deposited payment can only be refunded to a bank account, which the
//!   admin gives as `refundReceiveAccount` ([`parse_refund_account`]); it is passed to Toss and
//!   kept nowhere else (not stored, never logged). Before the deposit there is nothing to pay
//!   back: [`close_virtual_account`] cancels the whole payment, which closes the account.
//!   A deposit the bank reverses ([`apply_deposit_reversal`]) revokes the enrollment through
//!   the same cancellation record as a refund.
//! * [`apply_provider_cancellation`]: what webhooks, settle-on-read and the reconciler call
//!   (through [`crate::settle::apply_view`]) when Toss says CANCELED/PARTIAL_CANCELED.
//!   Both paths end in `Store::record_cancellation`, so a refund racing a CANCELED webhook is
//!   one refund record.

use crate::App;
use crate::error::{Error, Result};
use crate::event_ctx;
use crate::gateway::{Cancel, Verdict, unavailable, unknown_outcome, verdict};
use crate::settle::{SettleSource, settle_view};
use domain::{
    EnrollmentStatus, ErrorCode, IdempotencyKey, Money, PROVIDER_TOSS, PaymentId, PaymentKey,
    PaymentStatus, RefundId, RefundStatus,
};
use serde_json::Value;
use std::time::Duration;
use store::{
    Cancellation, CancellationRecorded, EventContext, NewRefund, Order, Payment, ProviderCancel,
    Refund, RefundBegin, StoreError,
};
use time::OffsetDateTime;
use toss::{PaymentView, RefundReceiveAccount, is_virtual_account_method};

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
    /// Everything refunded so far (captured − balance: Toss's totalAmount − balanceAmount until
    /// a re-deposit).
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
    refund_to(app, payment_id, reason, amount, None, actor).await
}

const ACCOUNT_FIELD: &str = "refundReceiveAccount";
const MAX_BANK_CHARS: usize = 20;
const MAX_ACCOUNT_DIGITS: usize = 20;
const MAX_HOLDER_CHARS: usize = 60;

/// The refund API's optional `refundReceiveAccount` object: `{bank, accountNumber,
/// holderName}`, Toss's shape. `bank` is a bank code or name (1–20 characters),
/// `accountNumber` 1–20 digits (hyphens allowed and dropped), `holderName` 1–60 characters;
/// no control characters anywhere. Errors name the field, never its value.
pub fn parse_refund_account(value: Option<&Value>) -> Result<Option<RefundReceiveAccount>> {
    let obj = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(obj)) => obj,
        Some(_) => return Err(Error::invalid("refundReceiveAccount: must be an object")),
    };
    if let Some(k) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "bank" | "accountNumber" | "holderName"))
    {
        return Err(Error::invalid(format!(
            "{ACCOUNT_FIELD}: unknown field {:?}",
            k.chars().take(40).collect::<String>()
        )));
    }
    let text = |field: &str, max: usize| -> Result<String> {
        let v = obj
            .get(field)
            .and_then(Value::as_str)
            .map(str::trim)
            .ok_or_else(|| Error::invalid(format!("{ACCOUNT_FIELD}.{field}: must be a string")))?;
        let n = v.chars().count();
        if n == 0 || n > max || v.chars().any(char::is_control) {
            return Err(Error::invalid(format!(
                "{ACCOUNT_FIELD}.{field}: must be 1 to {max} characters without control characters"
            )));
        }
        Ok(v.to_owned())
    };
    let bank = text("bank", MAX_BANK_CHARS)?;
    let holder_name = text("holderName", MAX_HOLDER_CHARS)?;
    let raw_number = text("accountNumber", MAX_ACCOUNT_DIGITS * 2)?;
    let account_number: String = raw_number.chars().filter(|c| *c != '-').collect();
    if account_number.is_empty()
        || account_number.len() > MAX_ACCOUNT_DIGITS
        || !account_number.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(Error::invalid(format!(
            "{ACCOUNT_FIELD}.accountNumber: must be 1 to {MAX_ACCOUNT_DIGITS} digits"
        )));
    }
    Ok(Some(RefundReceiveAccount {
        bank,
        account_number,
        holder_name,
    }))
}

/// [`refund`] with the buyer's bank account, which Toss requires to refund a deposited
/// virtual-account payment (and which is refused for any other payment).
pub async fn refund_to(
    app: &App,
    payment_id: PaymentId,
    reason: &str,
    amount: Option<Money>,
    account: Option<RefundReceiveAccount>,
    actor: &str,
) -> Result<RefundOutput> {
    crate::context::record(|f| f.provider = Some(PROVIDER_TOSS));
    // An account for a payment that cannot take one is refused before anything is written.
    // (Only requests carrying an account pay for this read: a card refund stays at two
    // database round trips.)
    if account.is_some()
        && let Some(p) = app.store.get_payment(payment_id).await?
        && !p.method.as_deref().is_some_and(is_virtual_account_method)
    {
        return Err(Error::invalid(
            "refundReceiveAccount: only for virtual-account payments",
        ));
    }
    let ev = event_ctx(actor.to_owned());
    let refund_id = RefundId::new();
    let key = IdempotencyKey::for_refund(&refund_id.0);
    let new_refund = NewRefund {
        id: refund_id,
        payment_id,
        amount,
        reason: reason.to_owned(),
        idempotency_key: key.clone(),
        requested_by: actor.to_owned(),
        ctx: ev.clone(),
    };
    let mut begun = app.store.begin_refund(new_refund.clone()).await?;
    // A virtual-account refund whose answer was lost waits (REQUESTED) for a lookup, and only
    // this request carries the bank account it needs to be sent again: settle the lost one
    // with Toss now instead of refusing until the reconciler gives up on it.
    if account.is_some()
        && let RefundBegin::NotAllowed {
            in_progress: true,
            payment,
            ..
        } = &begun
    {
        match supersede_lost_refund(app, payment, amount, &ev).await? {
            Superseded::Retry => begun = app.store.begin_refund(new_refund).await?,
            Superseded::AlreadyDone(out) => return Ok(out),
        }
    }
    let (refund, payment) = match begun {
        RefundBegin::PaymentNotFound => return Err(Error::new(ErrorCode::PaymentNotFound)),
        RefundBegin::NotAllowed {
            payment,
            available,
            in_progress,
        } => {
            record_payment(&payment);
            return Err(not_allowed(&payment, available, in_progress));
        }
        RefundBegin::Begun { refund, payment } => (refund, payment),
    };
    record_payment(&payment);
    // A virtual-account payment without the account to pay back to: Toss would refuse it, so
    // it is not sent. The refund row (just written) is closed as FAILED with this code, which
    // keeps the refused request on record and frees the payment for a request with an account.
    if account.is_none()
        && payment
            .method
            .as_deref()
            .is_some_and(is_virtual_account_method)
    {
        app.store
            .fail_refund(refund.id, "REFUND_ACCOUNT_REQUIRED", &ev)
            .await?;
        return Err(Error::invalid(
            "refundReceiveAccount: required to refund a virtual-account payment",
        ));
    }
    send_cancel(app, &payment, &refund, amount, account.as_ref(), key, &ev).await
}

/// Why a refund was not begun, for the client.
fn not_allowed(payment: &Payment, available: Money, in_progress: bool) -> Error {
    let detail = if in_progress {
        "another refund of this payment is waiting for the provider; try again later".to_owned()
    } else if !matches!(
        payment.status,
        PaymentStatus::Done | PaymentStatus::PartialCanceled
    ) {
        format!("payment is {}; nothing to refund", payment.status)
    } else {
        format!("amount: at most {} can be refunded", available.won())
    };
    Error::new(ErrorCode::RefundNotAllowed).with_detail(detail)
}

/// Send a begun refund to Toss until its outcome is known: recorded, refused, certainly not
/// sent, or left REQUESTED for the reconciler after the retries.
async fn send_cancel(
    app: &App,
    payment: &Payment,
    refund: &Refund,
    amount: Option<Money>,
    account: Option<&RefundReceiveAccount>,
    key: IdempotencyKey,
    ev: &EventContext,
) -> Result<RefundOutput> {
    let payment_key = PaymentKey::parse(&payment.provider_tx_id)
        .map_err(|e| Error::internal(format!("stored payment key: {e}")))?;
    let mut attempt = 0u32;
    let mut key = key;
    let mut balance = payment.balance;
    loop {
        attempt += 1;
        let result = app
            .gateway()
            .cancel(Cancel {
                payment_key: &payment_key,
                reason: &refund.reason,
                amount,
                refundable: Some(balance),
                account,
                key: &key,
            })
            .await;
        let err = match result {
            Ok(view) => {
                let rec = record_view(app, payment, &view, SettleSource::Refund, ev).await?;
                return finish(app, payment, &rec).await;
            }
            Err(e) => e,
        };
        match verdict(&err, &format!("refund_id={}", refund.id)) {
            Verdict::Refused(code) => {
                app.store.fail_refund(refund.id, &code, ev).await?;
                if STALE_VIEW_CODES.contains(&code.as_str()) {
                    sync_payment(app, payment, &payment_key, ev).await;
                }
                tracing::info!(target: "coursepay::refund", refund_id = %refund.id, code = %code, "provider refused the refund");
                return Err(Error::new(ErrorCode::RefundNotAllowed)
                    .with_provider_code(code)
                    .with_detail("the provider refused this refund"));
            }
            Verdict::NotSent => {
                // Certainly never reached Toss: nothing to wait for, a new request may follow.
                let code = err.code().unwrap_or("PG_UNREACHABLE").to_owned();
                app.store.fail_refund(refund.id, &code, ev).await?;
                return Err(unavailable(&err));
            }
            Verdict::Unknown => {
                match lookup_refund(app, payment, &payment_key, refund, ev).await? {
                    Looked::Settled(rec) => return finish(app, payment, &rec).await,
                    // Toss shows no such cancel: the key's answer was not a refund, and a
                    // stored error would be replayed. Ask again under a new key, with the
                    // balance Toss just reported.
                    Looked::NotThere(view) if attempt <= CANCEL_RETRIES => {
                        key = fresh_refund_key(&refund.idempotency_key)?;
                        balance = view.balance_amount;
                        tokio::time::sleep(Duration::from_millis(150 * u64::from(attempt))).await;
                        continue;
                    }
                    // Toss could not be asked: the first request may still be running, so
                    // only the same key is safe.
                    Looked::Failed if attempt <= CANCEL_RETRIES => {
                        tokio::time::sleep(Duration::from_millis(150 * u64::from(attempt))).await;
                        continue;
                    }
                    Looked::NotThere(_) | Looked::Failed => {}
                }
                tracing::warn!(target: "coursepay::refund", refund_id = %refund.id, error = %err, "refund outcome unknown; left REQUESTED for the reconciler");
                return Err(unknown_outcome(&err));
            }
        }
    }
}

enum Superseded {
    /// Toss shows no cancel for the lost refund: it is FAILED (`REFUND_SUPERSEDED`) and the
    /// new request may begin.
    Retry,
    /// Toss did carry the lost refund out (recorded now, DONE): nothing is sent again.
    AlreadyDone(RefundOutput),
}

/// The refund of `payment` still REQUESTED because Toss's answer was lost, met by a new request
/// that carries the refund account again. A lookup decides, never a guess: a cancel Toss shows
/// is recorded (the lost refund is DONE, and the new request answers it when it asked for the
/// same amount); no such cancel means it did not happen, so it is closed as FAILED and the new
/// request goes ahead. Even if the lost request still took effect later, the new one cannot
/// refund twice: it carries `refundableAmount` = the balance Toss just reported, which that
/// cancel would have changed.
async fn supersede_lost_refund(
    app: &App,
    payment: &Payment,
    amount: Option<Money>,
    ev: &EventContext,
) -> Result<Superseded> {
    let Some(lost) = app
        .store
        .payment_refunds(payment.id)
        .await?
        .into_iter()
        .find(|r| r.status == RefundStatus::Requested)
    else {
        // It settled in the meantime: the new request begins normally.
        return Ok(Superseded::Retry);
    };
    let payment_key = PaymentKey::parse(&payment.provider_tx_id)
        .map_err(|e| Error::internal(format!("stored payment key: {e}")))?;
    match lookup_refund(app, payment, &payment_key, &lost, ev).await? {
        Looked::Settled(rec) => {
            tracing::info!(target: "coursepay::refund", refund_id = %lost.id, "the refund whose answer was lost was carried out; not sent again");
            let same = match amount {
                Some(a) => a == lost.amount,
                None => rec.payment.balance == Money::ZERO,
            };
            if same {
                Ok(Superseded::AlreadyDone(finish(app, payment, &rec).await?))
            } else {
                Err(Error::new(ErrorCode::RefundNotAllowed).with_detail(format!(
                    "an earlier refund of {} was carried out by the provider meanwhile; check the balance and ask again",
                    lost.amount.won()
                )))
            }
        }
        Looked::NotThere(_) => {
            app.store
                .fail_refund(lost.id, "REFUND_SUPERSEDED", ev)
                .await?;
            tracing::info!(target: "coursepay::refund", refund_id = %lost.id, "refund whose answer was lost is not at the provider; superseded by a new request");
            Ok(Superseded::Retry)
        }
        // Toss could not be asked: the lost request may yet take effect; try again shortly.
        Looked::Failed => Err(Error::new(ErrorCode::PgUnavailable).with_retry_after(5)),
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

/// The refund's answer, from committed state. When this call revoked the enrollment it is
/// REFUNDED for certain; otherwise the status the recording statement read may predate a
/// concurrent writer (a CANCELED webhook that revoked it while the statement waited for the
/// payment's row lock reads as ENROLLED under PostgreSQL's statement snapshot), so it is read
/// again.
async fn finish(app: &App, payment: &Payment, rec: &CancellationRecorded) -> Result<RefundOutput> {
    // A replayed confirm must not answer ENROLLED for a refunded order.
    app.replays.forget(&payment.order_id);
    crate::context::record(|f| f.status = Some(rec.payment.status.to_string()));
    let enrollment_status = match rec.payment.enrollment_id {
        Some(_) if rec.enrollment_revoked => Some(EnrollmentStatus::Refunded),
        Some(id) => app.store.get_enrollment(id).await?.map(|e| e.status),
        None => None,
    };
    Ok(RefundOutput {
        payment_id: rec.payment.id,
        status: rec.payment.status,
        refunded_amount: rec.refunded_amount(),
        enrollment_status,
    })
}

fn cancellation(view: &PaymentView, source: SettleSource, ev: &EventContext) -> Cancellation {
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
        source: source.as_str().to_owned(),
        ctx: ev.clone(),
    }
}

/// Record Toss's view of a payment we have a row for.
async fn record_view(
    app: &App,
    payment: &Payment,
    view: &PaymentView,
    source: SettleSource,
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
        tracing::info!(target: "coursepay::refund", payment_id = %payment.id, %source, status = %rec.payment.status, revoked = rec.enrollment_revoked, "cancellation recorded");
    }
    warn_left_out(&rec, source);
    Ok(rec)
}

/// Cancels the balance does not account for are left unrecorded by the store (their money is
/// on record under another key, or Toss's balance does not show it gone): an operator checks.
fn warn_left_out(rec: &CancellationRecorded, source: SettleSource) {
    if rec.cancels_left_out > 0 {
        tracing::warn!(target: "coursepay::refund", payment_id = %rec.payment.id, source = source.as_str(), left_out = rec.cancels_left_out, balance = rec.payment.balance.won(), "provider reported cancels its balance does not account for; not recorded as refunds");
    }
}

/// What a lookup after an unknown cancel outcome found.
enum Looked {
    /// Toss shows the cancel: the refund is DONE.
    Settled(CancellationRecorded),
    /// Toss answered and shows no such cancel (its view, already recorded).
    NotThere(PaymentView),
    /// Toss could not be asked.
    Failed,
}

/// After an unknown cancel outcome: ask Toss and record what it says.
async fn lookup_refund(
    app: &App,
    payment: &Payment,
    payment_key: &PaymentKey,
    refund: &Refund,
    ev: &EventContext,
) -> Result<Looked> {
    let looked = app.gateway().payment(payment_key).await;
    let view = match looked {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(refund_id = %refund.id, error = %e, "lookup after unknown cancel outcome failed");
            return Ok(Looked::Failed);
        }
    };
    let rec = record_view(app, payment, &view, SettleSource::RefundLookup, ev).await?;
    let now = app.store.get_refund(refund.id).await?;
    Ok(match now {
        Some(r) if r.status == RefundStatus::Done => Looked::Settled(rec),
        _ => Looked::NotThere(view),
    })
}

/// A cancel key for a retry after a lookup showed no such cancel: the refund's own key plus a
/// random part (keys are at most 300 characters; a refund's is 48).
fn fresh_refund_key(stored: &str) -> Result<IdempotencyKey> {
    let base: String = stored.chars().take(200).collect();
    IdempotencyKey::parse(&format!("{base}-{}", uuid::Uuid::new_v4().simple()))
        .map_err(|e| Error::internal(format!("refund retry key: {e}")))
}

/// Best effort: bring our payment in line with Toss's after Toss said our view is stale.
async fn sync_payment(app: &App, payment: &Payment, payment_key: &PaymentKey, ev: &EventContext) {
    let looked = app.gateway().payment(payment_key).await;
    match looked {
        Ok(view) if view.status.is_captured() => {
            if let Err(e) = record_view(app, payment, &view, SettleSource::RefundSync, ev).await {
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
    source: SettleSource,
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
        tracing::info!(target: "coursepay::refund", order_id = %order.order_id, %source, status = %rec.payment.status, revoked = rec.enrollment_revoked, "provider cancellation recorded");
    }
    warn_left_out(&rec, source);
    Ok(rec)
}

/// Toss says the deposit of `order`'s virtual-account payment was reversed (a fresh lookup shows
/// WAITING_FOR_DEPOSIT for a paid order): the money went back to the buyer's bank, so the
/// course goes too. Recorded as a full cancellation of what was left — one refund row keyed by
/// the reversal's transaction key, payment WAITING_FOR_DEPOSIT (it can take a deposit again,
/// see `settle::apply_view`), enrollment and order REFUNDED — through
/// the same store call as every refund, so repeats (webhook retries, the reconciler) are
/// no-ops.
pub async fn apply_deposit_reversal(
    app: &App,
    order: &Order,
    view: &PaymentView,
    source: SettleSource,
    ev: &EventContext,
) -> Result<()> {
    if view.order_id != order.order_id || view.total_amount != order.amount {
        return Err(Error::internal(
            "reversal view does not match the order; not recorded",
        ));
    }
    let Some(payment) = app.store.payment_for_order(&order.order_id).await? else {
        return Ok(());
    };
    if payment.provider_tx_id != view.payment_key.as_str() || payment.balance == Money::ZERO {
        return Ok(());
    }
    let tx = view
        .last_transaction_key
        .clone()
        .unwrap_or_else(|| view.payment_key.to_string());
    let rec = app
        .store
        .record_cancellation(Cancellation {
            payment_key: view.payment_key.clone(),
            status: view.status,
            balance: Money::ZERO,
            cancels: vec![ProviderCancel {
                transaction_key: format!("deposit-reversal-{tx}"),
                amount: payment.balance,
                reason: "deposit reversed by the bank".to_owned(),
            }],
            source: source.as_str().to_owned(),
            ctx: ev.clone(),
        })
        .await?;
    app.replays.forget(&order.order_id);
    if rec.enrollment_revoked {
        tracing::warn!(target: "coursepay::refund", order_id = %order.order_id, %source, "virtual-account deposit reversed; enrollment revoked");
    }
    Ok(())
}

/// Why an issued, unpaid virtual account is being closed; decides what becomes of the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Its due date passed without a deposit: the open order EXPIRES.
    DuePassed,
    /// The order already ended here (expired, failed) while Toss kept its account open: the
    /// account must not take money for an order nobody will be enrolled by.
    OrderEnded,
    /// An operator canceled the order: an open order FAILS with `ORDER_CANCELED`.
    Canceled,
}

impl CloseReason {
    fn cancel_reason(self) -> &'static str {
        match self {
            CloseReason::DuePassed => "virtual account not paid by its due date",
            CloseReason::OrderEnded => "order ended before the deposit",
            CloseReason::Canceled => "order canceled before the deposit",
        }
    }

    /// The status and code an *open* order takes once its account is closed.
    fn order_outcome(self) -> (domain::OrderStatus, &'static str) {
        match self {
            CloseReason::DuePassed | CloseReason::OrderEnded => {
                (domain::OrderStatus::Expired, ACCOUNT_CLOSED)
            }
            CloseReason::Canceled => (domain::OrderStatus::Failed, ORDER_CANCELED),
        }
    }
}

/// The failure code of an order whose unpaid virtual account was closed.
pub const ACCOUNT_CLOSED: &str = "VIRTUAL_ACCOUNT_CLOSED";
/// The failure code of an order an operator canceled.
pub const ORDER_CANCELED: &str = "ORDER_CANCELED";

/// What [`close_virtual_account`] achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// Toss shows the account closed (CANCELED without a deposit), now or from before.
    Closed,
    /// The deposit arrived first: the payment was settled instead — money is never turned
    /// away by closing its account.
    Deposited,
    /// Toss could not be asked or did not say: nothing changed; the next pass tries again.
    Unknown,
}

fn close_key(order: &Order) -> Result<IdempotencyKey> {
    IdempotencyKey::parse(&format!("coursepay-close-{}", order.order_id.as_str()))
        .map_err(|e| Error::internal(format!("close key: {e}")))
}

/// Close `order`'s issued, unpaid virtual account at Toss: a full cancel, which before the
/// deposit needs no refund account and leaves the payment CANCELED (a deposit sent afterwards
/// is refused by the bank). Then an open order ends as `why` says.
///
/// Idempotent and safe from every path at once: the cancel's key is derived from the order, and
/// whatever the cancel answers, a lookup decides — CANCELED is closed (by us or before), DONE
/// means the money arrived first and is settled through the one settle function, still
/// WAITING_FOR_DEPOSIT after an error means the key's answer was not the close (Toss replays a
/// key's first answer, errors included), so the cancel is sent once more under a new key.
pub async fn close_virtual_account(
    app: &App,
    order: &Order,
    view: &PaymentView,
    why: CloseReason,
    source: SettleSource,
    ev: &EventContext,
) -> Result<Closed> {
    if view.order_id != order.order_id {
        return Err(Error::internal("payment belongs to another order"));
    }
    let mut key = close_key(order)?;
    for attempt in 1..=2u32 {
        let result = app
            .gateway()
            .cancel(Cancel {
                payment_key: &view.payment_key,
                reason: why.cancel_reason(),
                amount: None,
                refundable: Some(view.balance_amount),
                account: None,
                key: &key,
            })
            .await;
        let err = match result {
            Ok(v) if v.is_closed_unpaid_account() => {
                return account_closed(app, order, why, source, ev).await;
            }
            Ok(v) => {
                tracing::warn!(order_id = %order.order_id, status = %v.status, "closing a virtual account answered an unexpected status");
                return Ok(Closed::Unknown);
            }
            Err(e) => e,
        };
        if verdict(&err, &format!("order_id={}", order.order_id)) == Verdict::NotSent {
            // Certainly never reached Toss: nothing changed there.
            tracing::warn!(order_id = %order.order_id, error = %err, "could not close an unpaid virtual account");
            return Ok(Closed::Unknown);
        }
        // Refused or unknown: what is true now is what Toss's lookup says.
        let looked = app.gateway().payment(&view.payment_key).await;
        let now = match looked {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(order_id = %order.order_id, error = %e, "lookup after closing a virtual account failed");
                return Ok(Closed::Unknown);
            }
        };
        match now.status {
            _ if now.is_closed_unpaid_account() => {
                return account_closed(app, order, why, source, ev).await;
            }
            s if s.is_captured() => {
                // The deposit won the race: record the money (the order is paid, or for an
                // order that had ended, the payment is kept for an operator to refund).
                tracing::warn!(order_id = %order.order_id, code = ?err.code(), "virtual account deposited before it could be closed; settling");
                crate::settle::apply_view(app, order, &now, source, ev).await?;
                return Ok(Closed::Deposited);
            }
            PaymentStatus::WaitingForDeposit if attempt == 1 => {
                key = fresh_refund_key(key.as_str())?;
            }
            _ => {
                tracing::warn!(order_id = %order.order_id, status = %now.status, code = ?err.code(), "virtual account could not be closed");
                return Ok(Closed::Unknown);
            }
        }
    }
    Ok(Closed::Unknown)
}

/// What the reconciler's look at an ended order's virtual account found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountLook {
    /// Toss held the account open; this look closed it.
    Closed,
    /// Nothing is open at Toss (closed before, the deposit recorded, no account): no more looks.
    NothingOpen,
    /// Toss could not be asked or the close did not go through: look again later.
    Unknown,
}

/// The reconciler's pass over ended orders whose virtual account Toss may still hold open
/// (`Store::lease_account_checks`): the order ended here, but the webhook that would have made
/// us close its account may be lost. Toss is asked what exists for the order and it is acted on
/// like a webhook would: an open account is closed ([`close_virtual_account`], reason
/// [`CloseReason::OrderEnded`]); captured money is settled, never turned away
/// (`settle::apply_view`).
pub async fn look_at_ended_account(
    app: &App,
    order: &Order,
    source: SettleSource,
    ev: &EventContext,
) -> Result<AccountLook> {
    use domain::OrderStatus;
    // The deposit was recorded (the order was paid after all) or the order is not ended.
    if order.payment_id.is_some()
        || !matches!(order.status, OrderStatus::Failed | OrderStatus::Expired)
    {
        return Ok(AccountLook::NothingOpen);
    }
    let view = match app.gateway().payment_of_order(&order.order_id).await {
        Ok(view) => view,
        Err(e) if e.is_not_found() => return Ok(AccountLook::NothingOpen),
        Err(e) => {
            tracing::warn!(target: "coursepay::reconcile", order_id = %order.order_id, error = %e, "could not look up the virtual account of an ended order");
            return Ok(AccountLook::Unknown);
        }
    };
    if view.order_id != order.order_id {
        return Err(Error::internal("provider answered for another order"));
    }
    if view.status != PaymentStatus::WaitingForDeposit {
        crate::settle::apply_view(app, order, &view, source, ev).await?;
        return Ok(AccountLook::NothingOpen);
    }
    Ok(
        match close_virtual_account(app, order, &view, CloseReason::OrderEnded, source, ev).await? {
            Closed::Closed => AccountLook::Closed,
            Closed::Deposited => AccountLook::NothingOpen,
            Closed::Unknown => AccountLook::Unknown,
        },
    )
}

/// The account is closed at Toss: end the order if it is still open.
async fn account_closed(
    app: &App,
    order: &Order,
    why: CloseReason,
    source: SettleSource,
    ev: &EventContext,
) -> Result<Closed> {
    let (to, code) = why.order_outcome();
    let moved = app
        .store
        .fail_order(&order.order_id, to, Some(code), ev)
        .await?;
    tracing::info!(target: "coursepay::refund", order_id = %order.order_id, %source, reason = ?why, order_ended = moved, "unpaid virtual account closed");
    Ok(Closed::Closed)
}

/// What an operator's cancel of an order did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderCanceled {
    pub order: Order,
    /// Toss shows the order's virtual account closed (by this request or before).
    pub account_closed: bool,
}

/// The operator's cancel of an unpaid order (`POST /v1/admin/orders/{orderId}/cancel`). Toss is
/// asked what exists for the order first, and only what cannot take money is ended:
///
/// - an issued virtual account (WAITING_FOR_DEPOSIT): the order FAILS with `ORDER_CANCELED`,
///   then the account is closed ([`close_virtual_account`]); a deposit that wins the race is
///   settled instead and the request answered `E_ORDER_NOT_CANCELABLE` (refund it);
/// - captured money (DONE, or any cancel of captured money) is settled, never canceled here:
///   `E_ORDER_NOT_CANCELABLE` — a paid order is refunded through its payment;
/// - a CONFIRMING order whose payment Toss does not show (yet) may have a confirm in flight:
///   `E_CONFIRM_IN_PROGRESS`, try again;
/// - anything else (nothing at Toss, a payment window never confirmed, ABORTED, EXPIRED, an
///   account already closed) ends the order without a Toss call that could charge. A
///   buyer-authenticated payment of a FAILED order is never confirmed (only open orders are).
///
/// Repeating the request is harmless: an ended order answers as it is.
pub async fn cancel_order(
    app: &App,
    order_id: &domain::OrderId,
    actor: &str,
) -> Result<OrderCanceled> {
    use domain::OrderStatus;
    let order = app
        .store
        .get_order(order_id)
        .await?
        .ok_or_else(|| Error::new(ErrorCode::OrderNotFound))?;
    crate::context::record(|f| {
        f.provider = Some(PROVIDER_TOSS);
        f.order_id = Some(order.order_id.to_string());
        f.course_id = Some(order.course_id.to_string());
        f.user_id = Some(order.user_id.to_string());
    });
    let paid = |status: OrderStatus| {
        Error::new(ErrorCode::OrderNotCancelable)
            .with_detail(format!("order is {status}: refund its payment instead"))
    };
    if matches!(order.status, OrderStatus::Paid | OrderStatus::Refunded) {
        return Err(paid(order.status));
    }
    let ev = event_ctx(actor.to_owned());
    let looked = app.gateway().payment_of_order(&order.order_id).await;
    let mut account_closed = false;
    match looked {
        Ok(view) if view.order_id != order.order_id => {
            return Err(Error::internal("provider answered for another order"));
        }
        Ok(view) if view.is_closed_unpaid_account() => {
            account_closed = true;
            end_order(app, &order, &ev).await?;
        }
        Ok(view) if view.status == PaymentStatus::WaitingForDeposit => {
            crate::context::record(|f| f.provider_tx_id = Some(view.payment_key.to_string()));
            // The order ends first, so the close's own webhooks (which can arrive before the
            // cancel's answer) find it canceled, and an account that cannot be closed now is
            // closed when Toss next reports it for the ended order. A deposit that still wins
            // is settled all the same: money is never dropped for an ended order.
            end_order(app, &order, &ev).await?;
            match close_virtual_account(
                app,
                &order,
                &view,
                CloseReason::Canceled,
                SettleSource::OperatorCancel,
                &ev,
            )
            .await?
            {
                Closed::Closed => account_closed = true,
                Closed::Deposited => {
                    let now = app.store.get_order(&order.order_id).await?;
                    return Err(paid(now.map_or(OrderStatus::Paid, |o| o.status)));
                }
                Closed::Unknown => {
                    return Err(Error::new(ErrorCode::PgUnavailable)
                        .with_retry_after(5)
                        .with_detail("the virtual account could not be closed yet; try again"));
                }
            }
        }
        Ok(view) if view.status.is_captured() => {
            crate::settle::apply_view(app, &order, &view, SettleSource::OperatorCancel, &ev)
                .await?;
            let now = app.store.get_order(&order.order_id).await?;
            return Err(paid(now.map_or(OrderStatus::Paid, |o| o.status)));
        }
        // Our confirm is running (the order is claimed, Toss has not approved yet).
        Ok(view)
            if order.status == OrderStatus::Confirming
                && matches!(
                    view.status,
                    PaymentStatus::InProgress | PaymentStatus::Ready
                ) =>
        {
            return Err(Error::new(ErrorCode::ConfirmInProgress)
                .with_detail("a confirm of this order is running; try again"));
        }
        Ok(_) => end_order(app, &order, &ev).await?,
        Err(e) if e.is_not_found() => {
            if order.status == OrderStatus::Confirming {
                return Err(Error::new(ErrorCode::ConfirmInProgress).with_detail(
                    "a confirm of this order may still reach the provider; try again",
                ));
            }
            end_order(app, &order, &ev).await?;
        }
        Err(e) => return Err(unavailable(&e)),
    }
    let order = app.store.get_order(&order.order_id).await?.unwrap_or(order);
    crate::context::record(|f| f.status = Some(order.status.to_string()));
    Ok(OrderCanceled {
        order,
        account_closed,
    })
}

/// End an open order canceled by an operator (an ended one stays as it is).
async fn end_order(app: &App, order: &Order, ev: &EventContext) -> Result<()> {
    app.store
        .fail_order(
            &order.order_id,
            domain::OrderStatus::Failed,
            Some(ORDER_CANCELED),
            ev,
        )
        .await?;
    Ok(())
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
    let stored_key = IdempotencyKey::parse(&refund.idempotency_key)
        .map_err(|e| Error::internal(format!("stored refund key: {e}")))?;
    let key = match lookup_refund(app, &payment, &payment_key, refund, &ev).await? {
        Looked::Settled(_) => return Ok(true),
        // The bank account a virtual-account refund needs is never kept: the reconciler cannot
        // re-send it. Toss shows no such cancel, so the refund did not happen: FAILED, and the
        // operator asks again with the account.
        Looked::NotThere(_)
            if payment
                .method
                .as_deref()
                .is_some_and(is_virtual_account_method) =>
        {
            app.store
                .fail_refund(refund.id, "REFUND_ACCOUNT_NOT_KEPT", &ev)
                .await?;
            return Ok(true);
        }
        // Toss shows no such cancel: a new key (the stored one may replay an error).
        Looked::NotThere(_) => fresh_refund_key(&refund.idempotency_key)?,
        // Toss could not be asked: the first request may still be running; same key.
        Looked::Failed => stored_key,
    };
    // The balance is the one just synced from Toss, i.e. what Toss will check it against.
    let payment = app
        .store
        .get_payment(refund.payment_id)
        .await?
        .unwrap_or(payment);
    let result = app
        .gateway()
        .cancel(Cancel {
            payment_key: &payment_key,
            reason: &refund.reason,
            amount: Some(refund.amount),
            refundable: Some(payment.balance),
            account: None,
            key: &key,
        })
        .await;
    match result {
        Ok(view) => {
            record_view(app, &payment, &view, SettleSource::Reconciler, &ev).await?;
            let now = app.store.get_refund(refund.id).await?;
            Ok(now.is_some_and(|r| r.status != RefundStatus::Requested))
        }
        Err(e) => match verdict(&e, &format!("refund_id={}", refund.id)) {
            Verdict::Refused(code) => {
                app.store.fail_refund(refund.id, &code, &ev).await?;
                Ok(true)
            }
            Verdict::Unknown | Verdict::NotSent => Ok(false),
        },
    }
}
