//! The confirm flow (docs/architecture.md, "Request lifecycle of a confirm"): claim in one round trip, answer every
//! non-claim from the order as found, call Toss with an order-derived Idempotency-Key, settle in
//! one round trip through the one settle function.
//!
//! [`confirm`] does the work and says what it was ([`ConfirmOutcome`]: enrolled, a replay, an
//! error — and whether that error merely repeats a confirm that had already ended); the HTTP
//! handler runs it to completion (`context::to_completion`) so a client that disconnects
//! mid-confirm does not cancel it, and counts that outcome.

use crate::App;
use crate::error::{Error, Result};
use crate::event_ctx;
use crate::ops::metrics::ConfirmOutcome;
use crate::settle::{SettleSource, confirm_with_provider};
use domain::{
    CourseId, EnrollmentId, ErrorCode, Money, OrderId, OrderStatus, PaymentId, PaymentKey, UserId,
};
use std::time::{Duration, Instant};
use store::{ClaimOutcome, ClaimRequest, Order};
use time::OffsetDateTime;

/// A parsed confirm request: everything in it is well formed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmInput {
    pub payment_key: PaymentKey,
    pub order_id: OrderId,
    pub amount: Money,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmOutput {
    pub enrollment_id: EnrollmentId,
    pub payment_id: PaymentId,
    pub order_id: OrderId,
    pub course_id: CourseId,
    pub amount: Money,
    pub approved_at: OffsetDateTime,
    pub replayed: bool,
}

impl ConfirmOutput {
    fn from_paid(order: &Order, replayed: bool) -> Result<Self> {
        match (order.enrollment_id, order.payment_id) {
            (Some(enrollment_id), Some(payment_id)) => Ok(ConfirmOutput {
                enrollment_id,
                payment_id,
                order_id: order.order_id.clone(),
                course_id: order.course_id,
                amount: order.amount,
                approved_at: order.approved_at.unwrap_or(order.updated_at),
                replayed,
            }),
            _ => Err(Error::internal("PAID order without payment/enrollment ids")),
        }
    }
}

/// A confirm's error, and whether it was answered from an order whose confirm had already
/// ended (then this request called nobody: a declined order's repeat is no new decline).
struct Refusal {
    error: Error,
    from_state: bool,
}

impl<E: Into<Error>> From<E> for Refusal {
    fn from(error: E) -> Self {
        Refusal {
            error: error.into(),
            from_state: false,
        }
    }
}

/// Run one buyer's confirm: its answer and what it counts as.
pub async fn confirm(
    app: &App,
    user: UserId,
    input: ConfirmInput,
) -> (Result<ConfirmOutput>, ConfirmOutcome) {
    match run(app, user, input).await {
        Ok(out) => {
            let outcome = if out.replayed {
                ConfirmOutcome::Replayed
            } else {
                ConfirmOutcome::Enrolled
            };
            (Ok(out), outcome)
        }
        Err(Refusal { error, from_state }) => {
            let outcome = if from_state {
                ConfirmOutcome::repeated(error.code)
            } else {
                ConfirmOutcome::Error(error.code)
            };
            (Err(error), outcome)
        }
    }
}

async fn run(app: &App, user: UserId, input: ConfirmInput) -> Result<ConfirmOutput, Refusal> {
    crate::context::record(|f| {
        f.user_id = Some(user.to_string());
        f.order_id = Some(input.order_id.to_string());
        f.provider = Some(domain::PROVIDER_TOSS);
        f.provider_tx_id = Some(input.payment_key.to_string());
    });
    if let Some(mut hit) = app.replays.get(&input.order_id, user, &input.payment_key) {
        if hit.amount != input.amount {
            return Err(Error::new(ErrorCode::AmountMismatch).into());
        }
        hit.replayed = true;
        record_output(&hit);
        return Ok(hit);
    }

    // Before the claim: a refused confirm leaves the order exactly as it was (PENDING, payable
    // once payments resume or Toss recovers).
    let refused = match crate::ops::pause::ensure_not_paused(app).await {
        Err(e) => Some(e),
        Ok(()) => match app.breaker.admit() {
            crate::ops::breaker::Admission::Refused(wait) => Some(
                Error::new(ErrorCode::PgUnavailable)
                    .with_detail("the payment provider is failing; try again shortly")
                    .with_retry_after(wait.as_secs().max(1)),
            ),
            _ => None,
        },
    };
    if let Some(err) = refused {
        // A paid order's replay needs neither new charges nor Toss: answer it even now, so a
        // buyer retrying a confirm that succeeded never sees "unavailable" for a paid course.
        return match app.store.get_order(&input.order_id).await? {
            Some(order)
                if order.status == OrderStatus::Paid
                    && order.user_id == user
                    && order.amount == input.amount
                    && order.payment_key.as_ref() == Some(&input.payment_key) =>
            {
                let out = ConfirmOutput::from_paid(&order, true)?;
                record_output(&out);
                Ok(out)
            }
            _ => Err(err.into()),
        };
    }
    let ev = event_ctx(format!("user:{user}"));
    // Before the claim: from the moment the order reads CONFIRMING, a server-side confirm
    // sees this one in flight.
    let _in_flight = app.confirming.enter(&input.order_id);
    let outcome = app
        .store
        .claim_order(ClaimRequest {
            order_id: input.order_id.clone(),
            user_id: user,
            amount: input.amount,
            payment_key: input.payment_key.clone(),
            ctx: ev.clone(),
        })
        .await?;
    let order = match outcome {
        ClaimOutcome::Claimed(order) => order,
        ClaimOutcome::NotFound => return Err(Error::new(ErrorCode::OrderNotFound).into()),
        ClaimOutcome::NotClaimed {
            order,
            enrolled_elsewhere,
        } => {
            let order = if order.status == OrderStatus::Confirming
                && order.user_id == user
                && order.amount == input.amount
            {
                await_other_confirm(app, order).await?
            } else {
                order
            };
            return answer_unclaimed(app, user, &input, &order, enrolled_elsewhere).map_err(
                |error| Refusal {
                    error,
                    from_state: true,
                },
            );
        }
    };
    crate::context::record(|f| f.course_id = Some(order.course_id.to_string()));

    // This request claimed the order and called Toss: it performed the charge, so it is never a
    // replay, even when a webhook, the reconciler or settle-on-read wrote the settlement while
    // Toss's answer was on its way (`newly_settled` says who wrote the rows, not who charged).
    let settled =
        confirm_with_provider(app, &order, &input.payment_key, SettleSource::Confirm, &ev).await?;
    let output = ConfirmOutput::from_paid(&settled.order, false)?;
    app.replays.put(user, input.payment_key, output.clone());
    record_output(&output);
    Ok(output)
}

/// Another confirm holds the order — a server-side one (settle-on-read, the reconciler) or the
/// buyer's other tab: wait for it to end, so this request answers its result (a replay: it
/// charged nothing) rather than a 409 the buyer must retry. Bounded by one Toss timeout; an
/// order still held after that (a confirm whose outcome is unknown) keeps answering 409.
async fn await_other_confirm(app: &App, mut order: Order) -> Result<Order> {
    let deadline = Instant::now() + app.config.toss_timeout;
    let mut pause = Duration::from_millis(25);
    while order.status == OrderStatus::Confirming && Instant::now() < deadline {
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(400));
        match app.store.get_order(&order.order_id).await? {
            Some(now) => order = now,
            None => break,
        }
    }
    Ok(order)
}

fn record_output(out: &ConfirmOutput) {
    crate::context::record(|f| {
        f.enrollment_id = Some(out.enrollment_id.to_string());
        f.course_id = Some(out.course_id.to_string());
        f.status = Some("ENROLLED".into());
    });
}

/// The claim did not happen; explain why from the order as it was found. The order of the
/// checks matters: ownership first (never reveal another user's order), then the amount
/// (a tampered amount is reported as such even on a paid order), then state.
fn answer_unclaimed(
    app: &App,
    user: UserId,
    input: &ConfirmInput,
    order: &Order,
    enrolled_elsewhere: bool,
) -> Result<ConfirmOutput> {
    crate::context::record(|f| f.course_id = Some(order.course_id.to_string()));
    if order.user_id != user {
        return Err(Error::new(ErrorCode::Forbidden));
    }
    if order.amount != input.amount {
        return Err(Error::new(ErrorCode::AmountMismatch).with_detail(format!(
            "amount: {} does not match the order",
            input.amount.won()
        )));
    }
    match order.status {
        OrderStatus::Paid if order.payment_key.as_ref() == Some(&input.payment_key) => {
            let out = ConfirmOutput::from_paid(order, true)?;
            app.replays.put(
                user,
                input.payment_key.clone(),
                ConfirmOutput {
                    replayed: false,
                    ..out.clone()
                },
            );
            record_output(&out);
            Ok(out)
        }
        OrderStatus::Paid => Err(Error::new(ErrorCode::AlreadyEnrolled)),
        OrderStatus::Confirming => {
            Err(Error::new(ErrorCode::ConfirmInProgress).with_retry_after(1))
        }
        OrderStatus::Pending if enrolled_elsewhere => Err(Error::new(ErrorCode::AlreadyEnrolled)),
        OrderStatus::Pending | OrderStatus::Expired => Err(Error::new(ErrorCode::OrderExpired)),
        OrderStatus::Failed => {
            let mut e = Error::new(ErrorCode::PaymentRejected);
            if let Some(code) = &order.failure_code {
                e = e.with_provider_code(code.clone());
            }
            Err(e)
        }
        OrderStatus::Refunded => Err(Error::new(ErrorCode::AlreadyEnrolled)
            .with_detail("this order was paid and refunded; start a new checkout")),
    }
}
