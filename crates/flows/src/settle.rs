//! Turning what Toss says into our state. Every path that learns a payment's fate — the
//! confirm call, settle-on-read, the reconciler, webhooks — goes through [`settle_view`] (money
//! captured → payment + enrollment) or [`resolve_order`] (ask Toss about an open order, then act
//! through the same functions). There is no other place where money becomes an enrollment.

use crate::App;
use crate::error::{Error, Result};
use crate::event_ctx;
use crate::gateway::{Verdict, unavailable, unknown_outcome, verdict};
use crate::ops::metrics::ConfirmOutcome;
use crate::refunds::CloseReason;
use domain::{ErrorCode, IdempotencyKey, OrderStatus, PROVIDER_TOSS, PaymentKey, PaymentStatus};
use std::time::Duration;
use store::{ClaimOutcome, ClaimRequest, EventContext, Order, Settled, Settlement};
use time::OffsetDateTime;
use toss::PaymentView;

/// Toss lets a payment be confirmed within 10 minutes of the buyer authenticating.
pub const CONFIRM_WINDOW: Duration = Duration::from_secs(10 * 60);

/// Which path learned a payment's fate. Stored with the settlement or cancellation it causes
/// (as [`as_str`](Self::as_str)) and logged; [`apply_view`]'s confirm grace depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettleSource {
    /// The buyer's `POST /v1/payments/confirm`.
    Confirm,
    /// The buyer reading their own order (`GET /v1/orders/{id}`).
    OwnerRead,
    /// A webhook delivery (acted on through a fresh lookup).
    Webhook,
    /// The reconciler's pass over open orders and requested refunds.
    Reconciler,
    /// The provider's answer to our refund.
    Refund,
    /// The lookup after a refund whose outcome was unknown.
    RefundLookup,
    /// The lookup after the provider called our view of a payment stale.
    RefundSync,
    /// The operator's cancel of an order (`POST /v1/admin/orders/{orderId}/cancel`), recorded
    /// under the role that may ask for it.
    OperatorCancel,
}

impl SettleSource {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Confirm => "confirm",
            Self::OwnerRead => "settle-on-read",
            Self::Webhook => "webhook",
            Self::Reconciler => "reconciler",
            Self::Refund => "refund",
            Self::RefundLookup => "refund-lookup",
            Self::RefundSync => "refund-sync",
            Self::OperatorCancel => "service_role",
        }
    }
}

impl std::fmt::Display for SettleSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The provider says this order's payment is captured: record it. Checks Toss's answer against
/// the order first (same orderId, totalAmount equal to the server-side amount); a mismatch is
/// never settled — it is logged for an operator and answered as an internal error.
pub async fn settle_view(
    app: &App,
    order: &Order,
    view: &PaymentView,
    source: SettleSource,
    ev: &EventContext,
) -> Result<Settled> {
    if view.order_id != order.order_id {
        tracing::error!(order_id = %order.order_id, provider_order_id = %view.order_id, "provider answered for another order");
        return Err(Error::internal("provider answered for another order"));
    }
    if view.total_amount != order.amount {
        tracing::error!(order_id = %order.order_id, order_amount = order.amount.won(), provider_amount = view.total_amount.won(), "provider amount differs from order amount; not settled");
        return Err(Error::internal(
            "provider amount differs from the order amount",
        ));
    }
    if !view.status.is_captured() {
        return Err(Error::internal(format!(
            "settle called with status {}",
            view.status
        )));
    }
    let settled = app
        .store
        .settle(Settlement {
            order_id: order.order_id.clone(),
            payment_key: view.payment_key.clone(),
            amount: view.total_amount,
            status: view.status,
            method: view.method.clone(),
            approved_at: view.approved_at.unwrap_or_else(OffsetDateTime::now_utc),
            secret: view.secret.clone(),
            source: source.as_str().to_owned(),
            ctx: ev.clone(),
        })
        .await?;
    crate::context::record(|f| {
        f.provider = Some(PROVIDER_TOSS);
        f.provider_tx_id = Some(view.payment_key.to_string());
        f.enrollment_id = Some(settled.enrollment_id.to_string());
        f.course_id = Some(settled.order.course_id.to_string());
        f.order_id = Some(settled.order.order_id.to_string());
    });
    if settled.newly_settled {
        tracing::info!(target: "coursepay::settle", order_id = %order.order_id, %source, enrollment_id = %settled.enrollment_id, "payment settled");
    }
    Ok(settled)
}

/// Confirm a claimed (CONFIRMING) order with Toss and settle it. The Idempotency-Key is derived
/// from the order, so this is safe to call again after any failure, from any instance.
///
/// An unknown outcome (timeout, 5xx, reset, ALREADY_PROCESSED_PAYMENT) is resolved by looking
/// the payment up; if that does not settle it either, the order stays CONFIRMING for the
/// reconciler and the caller gets a retryable 504/503. Nothing is ever guessed.
///
/// Toss stores a key's first answer, errors included, and replays it for the key's lifetime,
/// so a retry with the same key after an error can never succeed. Recovery therefore never
/// depends on it: only after a lookup has shown the payment still unapproved (IN_PROGRESS) is
/// the confirm sent again, and then under a new key. That cannot charge twice: Toss approves a
/// paymentKey at most once (a second confirm is ALREADY_PROCESSED_PAYMENT, resolved by lookup).
pub async fn confirm_with_provider(
    app: &App,
    order: &Order,
    payment_key: &PaymentKey,
    source: SettleSource,
    ev: &EventContext,
) -> Result<Settled> {
    let _in_flight = app.confirming.enter(&order.order_id);
    let mut key = IdempotencyKey::for_confirm(&order.order_id);
    crate::context::record(|f| {
        f.provider = Some(PROVIDER_TOSS);
        f.provider_tx_id = Some(payment_key.to_string());
    });
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let result = app
            .gateway()
            .confirm(payment_key, &order.order_id, order.amount, &key)
            .await;
        let err = match result {
            Ok(view) if view.status.is_captured() => {
                return settle_view(app, order, &view, source, ev).await;
            }
            Ok(view) => {
                // e.g. WAITING_FOR_DEPOSIT (virtual account): money has not moved yet; the
                // deposit webhook or the reconciler settles it.
                tracing::info!(order_id = %order.order_id, status = %view.status, "confirm answered without capture");
                if view.status == PaymentStatus::WaitingForDeposit
                    && let Some(secret) = &view.secret
                {
                    // What the DEPOSIT_CALLBACK webhook must carry to be believed.
                    app.store
                        .record_deposit_secret(&order.order_id, secret)
                        .await?;
                }
                return Err(Error::new(ErrorCode::ConfirmInProgress)
                    .with_provider_code(view.status.as_str()));
            }
            Err(e) => e,
        };
        match verdict(&err, &format!("order_id={}", order.order_id)) {
            Verdict::Refused(code) => return refused(app, order, &code, ev).await,
            Verdict::NotSent => {
                // The request certainly did not charge: hand the order back to the buyer.
                app.store.release_order(&order.order_id, ev).await?;
                return Err(unavailable(&err));
            }
            Verdict::Unknown => {
                match lookup_and_settle(app, order, payment_key, source, ev).await? {
                    Resolution::Settled(s) => return Ok(s),
                    Resolution::StillInProgress if attempt < 3 => {
                        // Not approved: whatever the key answered is not the approval, and
                        // a stored error would be replayed forever. Ask again under a new key.
                        key = fresh_confirm_key(&order.order_id)?;
                        tokio::time::sleep(Duration::from_millis(150 * u64::from(attempt))).await;
                        continue;
                    }
                    Resolution::StillInProgress | Resolution::Unknown => {
                        return Err(unknown_outcome(&err));
                    }
                    Resolution::Final(e) => return Err(e),
                }
            }
        }
    }
}

/// A confirm key for a retry after a lookup showed no approval: the order's key plus a random
/// part (a key is at most 300 characters; an orderId at most 64).
fn fresh_confirm_key(order_id: &domain::OrderId) -> Result<IdempotencyKey> {
    let base = IdempotencyKey::for_confirm(order_id);
    IdempotencyKey::parse(&format!(
        "{}-{}",
        base.as_str(),
        uuid::Uuid::new_v4().simple()
    ))
    .map_err(|e| Error::internal(format!("confirm retry key: {e}")))
}

/// Toss definitively refused the confirm: nothing was charged.
async fn refused(app: &App, order: &Order, code: &str, ev: &EventContext) -> Result<Settled> {
    match code {
        "NOT_FOUND_PAYMENT_SESSION" => {
            app.store
                .fail_order(&order.order_id, OrderStatus::Expired, Some(code), ev)
                .await?;
            Err(Error::new(ErrorCode::OrderExpired).with_provider_code(code))
        }
        // A payment key Toss does not know: the client sent a wrong one. The order is still
        // payable with the right key.
        "NOT_FOUND_PAYMENT" => {
            app.store.release_order(&order.order_id, ev).await?;
            Err(Error::new(ErrorCode::PaymentRejected).with_provider_code(code))
        }
        _ => {
            app.store
                .fail_order(&order.order_id, OrderStatus::Failed, Some(code), ev)
                .await?;
            Err(Error::new(ErrorCode::PaymentRejected).with_provider_code(code))
        }
    }
}

enum Resolution {
    Settled(Settled),
    StillInProgress,
    /// The lookup itself failed: we still do not know.
    Unknown,
    /// The payment ended without capture; the error to answer.
    Final(Error),
}

async fn lookup_and_settle(
    app: &App,
    order: &Order,
    payment_key: &PaymentKey,
    source: SettleSource,
    ev: &EventContext,
) -> Result<Resolution> {
    let looked = app.gateway().payment(payment_key).await;
    let view = match looked {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(order_id = %order.order_id, error = %e, "lookup after unknown confirm outcome failed");
            return Ok(Resolution::Unknown);
        }
    };
    if view.order_id != order.order_id {
        // The key belongs to another order; this confirm cannot have charged our order.
        app.store.release_order(&order.order_id, ev).await?;
        return Ok(Resolution::Final(Error::invalid(
            "paymentKey: does not belong to this order",
        )));
    }
    match view.status {
        s if s.is_captured() => Ok(Resolution::Settled(
            settle_view(app, order, &view, source, ev).await?,
        )),
        PaymentStatus::InProgress | PaymentStatus::Ready => Ok(Resolution::StillInProgress),
        PaymentStatus::WaitingForDeposit => Ok(Resolution::Final(
            Error::new(ErrorCode::ConfirmInProgress).with_provider_code(view.status.as_str()),
        )),
        PaymentStatus::Expired => {
            app.store
                .fail_order(&order.order_id, OrderStatus::Expired, Some("EXPIRED"), ev)
                .await?;
            Ok(Resolution::Final(Error::new(ErrorCode::OrderExpired)))
        }
        _ => {
            app.store
                .fail_order(
                    &order.order_id,
                    OrderStatus::Failed,
                    Some(view.status.as_str()),
                    ev,
                )
                .await?;
            Ok(Resolution::Final(
                Error::new(ErrorCode::PaymentRejected).with_provider_code(view.status.as_str()),
            ))
        }
    }
}

/// Settle an open (PENDING/CONFIRMING) order by asking Toss about it by orderId: the code behind
/// `GET /v1/orders/{id}`, the reconciler and webhooks.
///
/// - DONE (or later) → settle.
/// - IN_PROGRESS with the order's amount, inside Toss's window → confirm server-side (claiming a
///   PENDING order first, so only one path confirms), with the order's Idempotency-Key.
/// - ABORTED / EXPIRED → FAILED / EXPIRED. Nothing at Toss and the order past its expiry →
///   EXPIRED.
/// - Toss unreachable → unchanged (answered from what we have; tried again later).
///
/// Returns the order as it is afterwards.
pub async fn resolve_order(app: &App, order: Order, source: SettleSource) -> Result<Order> {
    if !order.status.is_open() {
        return Ok(order);
    }
    let ev = event_ctx(source.as_str());
    let looked = app.gateway().payment_of_order(&order.order_id).await;
    match looked {
        Ok(view) => apply_view(app, &order, &view, source, &ev).await?,
        // Toss's lookup answers NOT_FOUND_PAYMENT or NOT_FOUND for a payment it does not know.
        Err(e) if e.is_not_found() => {
            // Nothing was ever authenticated. Past the order's life plus Toss's confirm window
            // nothing can arrive any more.
            if OffsetDateTime::now_utc() > order.expires_at + CONFIRM_WINDOW {
                app.store
                    .fail_order(&order.order_id, OrderStatus::Expired, None, &ev)
                    .await?;
            }
        }
        Err(e) => {
            tracing::warn!(order_id = %order.order_id, error = %e, "could not resolve order with provider");
        }
    }
    Ok(app.store.get_order(&order.order_id).await?.unwrap_or(order))
}

/// Act on what Toss says about `order`'s payment (a fresh lookup, never a webhook body):
/// the one dispatch shared by settle-on-read, the reconciler and webhooks.
///
/// Because it acts on the provider's current state, deliveries that arrive out of order cannot
/// move an order backwards: a late ABORTED for a payment Toss reports DONE is simply DONE, and
/// `fail_order` never touches a PAID order anyway.
pub async fn apply_view(
    app: &App,
    order: &Order,
    view: &PaymentView,
    source: SettleSource,
    ev: &EventContext,
) -> Result<()> {
    if view.order_id != order.order_id {
        return Err(Error::internal("payment belongs to another order"));
    }
    match view.status {
        // A virtual account closed before any deposit (by us, or at Toss's dashboard): no
        // money moved, so nothing is settled or refunded; an open order simply ends.
        PaymentStatus::Canceled if view.is_closed_unpaid_account() => {
            app.store
                .fail_order(
                    &order.order_id,
                    OrderStatus::Expired,
                    Some(crate::refunds::ACCOUNT_CLOSED),
                    ev,
                )
                .await?;
        }
        // Captured and since (partly) refunded: settle first if needed, then record the
        // cancellation — the same function the refund flow ends in.
        PaymentStatus::Canceled | PaymentStatus::PartialCanceled => {
            crate::refunds::apply_provider_cancellation(app, order, view, source, ev).await?;
        }
        // A deposit into an account whose deposit the bank took back (the order REFUNDED)
        // re-enrolls the buyer here too: the store tells a second deposit from a replay
        // (domain::transition::is_redeposit).
        s if s.is_captured() => {
            let settled = settle_view(app, order, view, source, ev).await?;
            // Only a deposit later than the one on record: a view of the reversed deposit
            // itself, looked up before the reversal and applied after it, is a replay.
            if settled.order.status == OrderStatus::Refunded
                && s == PaymentStatus::Done
                && view.is_virtual_account()
                && view.approved_at.is_some_and(|at| at > settled.approved_at)
            {
                // Toss holds money for an order left REFUNDED: another order of the buyer
                // holds the course, so this deposit enrolls nobody and is not automated.
                tracing::error!(target: "coursepay::settle", order_id = %order.order_id, %source, amount = view.balance_amount.won(), "virtual-account deposit after a reversal not re-enrolled (another order holds the course): Toss holds the money, the order is REFUNDED here; an operator must refund it");
            }
        }
        // A deposit the bank took back (DONE → WAITING_FOR_DEPOSIT) on a paid order: the money
        // is gone, so is the course — recorded like a full cancellation.
        PaymentStatus::WaitingForDeposit
            if matches!(order.status, OrderStatus::Paid | OrderStatus::Refunded) =>
        {
            crate::refunds::apply_deposit_reversal(app, order, view, source, ev).await?;
        }
        // The account's due date passed without a deposit: nothing can arrive any more. Close
        // it at Toss (a full cancel before the deposit) so the order ends.
        PaymentStatus::WaitingForDeposit
            if order.status.is_open()
                && view
                    .deposit_due_at
                    .is_some_and(|due| due < OffsetDateTime::now_utc()) =>
        {
            close_account(app, order, view, CloseReason::DuePassed, source, ev).await?;
        }
        // The order ended here (expired, failed, canceled) while Toss still holds its account
        // open: close it, so no money arrives for an order that will not enroll anybody.
        PaymentStatus::WaitingForDeposit
            if matches!(order.status, OrderStatus::Failed | OrderStatus::Expired) =>
        {
            close_account(app, order, view, CloseReason::OrderEnded, source, ev).await?;
        }
        PaymentStatus::InProgress if order.status.is_open() => {
            if buyer_confirms_first(app, order, source, OffsetDateTime::now_utc()) {
                tracing::debug!(order_id = %order.order_id, status = order.status.as_str(), "left to the buyer's confirm for now");
            } else if view.total_amount != order.amount {
                // The buyer authenticated a different amount than we priced: never confirm it.
                tracing::warn!(order_id = %order.order_id, "authenticated amount differs from order; not confirming");
            } else if app.pause.is_paused(&app.store).await? {
                // Paused means no new charges (ops::pause): Toss keeps the payment confirmable
                // for its 10-minute window, so it is confirmed after a short pause and expires
                // uncharged after a long one.
                tracing::info!(order_id = %order.order_id, "payments paused; not confirming an authenticated payment");
            } else {
                confirm_open_order(app, order, &view.payment_key, source, ev).await;
            }
        }
        PaymentStatus::Aborted | PaymentStatus::Expired if order.status.is_open() => {
            let to = if view.status == PaymentStatus::Expired {
                OrderStatus::Expired
            } else {
                OrderStatus::Failed
            };
            app.store
                .fail_order(&order.order_id, to, Some(view.status.as_str()), ev)
                .await?;
        }
        _ => {}
    }
    Ok(())
}

/// [`close_virtual_account`](crate::refunds::close_virtual_account) behind a box: it
/// settles through [`apply_view`] when the deposit wins the race, and async recursion needs
/// one indirection.
fn close_account<'a>(
    app: &'a App,
    order: &'a Order,
    view: &'a PaymentView,
    why: CloseReason,
    source: SettleSource,
    ev: &'a EventContext,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + 'a>> {
    Box::pin(async move {
        crate::refunds::close_virtual_account(app, order, view, why, source, ev).await?;
        Ok(())
    })
}

/// Whether a server-side confirm must leave `order` alone for now:
/// - a PENDING order younger than `SERVER_CONFIRM_GRACE_SECONDS` since checkout, unless the
///   buyer is the one reading it: the buyer's browser confirms within seconds of authenticating,
///   and the request that charges is the one that answers `replayed: false` and counts as the
///   approval, so the reconciler or a webhook must not beat it to Toss. The buyer's own order
///   read is the buyer's request (a tab that died before the success page, seed QA 4): it
///   charges at once and is counted as the approval, and a later confirm answers the replay;
/// - a CONFIRMING order whose claimant's Toss confirm is still on its way in this instance: a
///   second confirm under the same key would only repeat it (and count one approval twice).
///   (Across instances the reconciler's own wait keeps it off orders in flight.)
fn buyer_confirms_first(
    app: &App,
    order: &Order,
    source: SettleSource,
    now: OffsetDateTime,
) -> bool {
    match order.status {
        OrderStatus::Pending => match source {
            SettleSource::OwnerRead => false,
            // Exhaustive on purpose: a new source decides here whether it waits for the buyer.
            SettleSource::Confirm
            | SettleSource::Webhook
            | SettleSource::Reconciler
            | SettleSource::Refund
            | SettleSource::RefundLookup
            | SettleSource::RefundSync
            | SettleSource::OperatorCancel => {
                now < order.created_at + app.config.server_confirm_grace
            }
        },
        OrderStatus::Confirming => app.confirming.contains(&order.order_id),
        _ => false,
    }
}

/// The buyer authenticated but our confirm never happened (tab closed) or never finished:
/// confirm now. Errors are logged, not returned: the order simply stays open. A confirm sent
/// to Toss here is an approval attempt like a buyer's, counted the same way.
async fn confirm_open_order(
    app: &App,
    order: &Order,
    payment_key: &PaymentKey,
    source: SettleSource,
    ev: &EventContext,
) {
    let _in_flight = app.confirming.enter(&order.order_id);
    let claimed = if order.status == OrderStatus::Pending {
        match app
            .store
            .claim_order(ClaimRequest {
                order_id: order.order_id.clone(),
                user_id: order.user_id,
                amount: order.amount,
                payment_key: payment_key.clone(),
                ctx: ev.clone(),
            })
            .await
        {
            Ok(ClaimOutcome::Claimed(o)) => Some(o),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(order_id = %order.order_id, error = %e, "claim for server-side confirm failed");
                None
            }
        }
    } else {
        Some(order.clone())
    };
    let Some(o) = claimed else { return };
    let result = confirm_with_provider(app, &o, payment_key, source, ev).await;
    let outcome = match &result {
        Ok(_) => ConfirmOutcome::Enrolled,
        Err(e) => ConfirmOutcome::Error(e.code),
    };
    crate::ops::metrics::record_confirm(outcome, None);
    if let Err(e) = result {
        tracing::info!(order_id = %order.order_id, code = %e.code, "server-side confirm did not settle");
    }
}
