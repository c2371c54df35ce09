//! What an authentic webhook delivery does (docs/webhooks.md). Its body is never trusted:
//! it only names a payment, which is re-read from Toss (by paymentKey for
//! PAYMENT_STATUS_CHANGED, by orderId for DEPOSIT_CALLBACK) and handed to
//! [`apply_view`] — the same dispatch settle-on-read and the reconciler use. Because that acts
//! on Toss's *current* state, deliveries arriving out of order (DONE and ABORTED 45 ms apart)
//! cannot move an order backwards.
//!
//! DEPOSIT_CALLBACK has no `eventType` in Toss's body and is recognised by its shape; it comes
//! when a virtual account is issued, deposited, cancelled and when a deposit is reversed, and
//! every one of them is handled the same way: the `secret` is compared (with the one from the
//! confirm answer, or Toss's own when the callback beat that answer), then the payment is
//! re-read by orderId and acted on — a reversed deposit revokes the course through
//! [`apply_view`] like a cancellation.
//!
//! Toss retries a delivery until it gets a 200, with the same
//! `tosspayments-webhook-transmission-id`. The id is claimed (`remember_once`) before
//! processing, so concurrent duplicates process once; if processing fails the claim is
//! released (`forget_once`) and the error is answered, so Toss's retry is processed.

use crate::App;
use crate::error::{Error, Result};
use crate::event_ctx;
use crate::gateway::Lookup;
use crate::settle::{SettleSource, apply_view};
use domain::{ErrorCode, OrderId, PaymentKey};
use serde_json::Value;
use store::Order;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use toss::{PaymentView, TossError};

/// `one_time_tokens.kind` of processed Toss transmission ids.
pub const TRANSMISSION_KIND: &str = "toss-transmission";
/// Toss retries for 1+4+16+64+256+1024+4096 minutes (≈ 3.8 days); remember ids a week.
pub const TRANSMISSION_TTL: time::Duration = time::Duration::days(7);
const MAX_TRANSMISSION_ID: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Processed {
    /// The named payment was looked up and acted on.
    Applied,
    /// This transmission id was already processed (a Toss retry): nothing done.
    Duplicate,
    /// Authentic but nothing of ours to act on (unknown event type, an order we do not have).
    Ignored,
    /// Toss does not know the payment the delivery names: nothing done. From an unsigned
    /// sender this is a forgery, and the handler counts it like an invalid signature.
    UnknownPayment,
}

/// Process one authentic delivery (its signature, if any, already checked).
pub async fn process(app: &App, transmission_id: Option<&str>, body: &[u8]) -> Result<Processed> {
    let event: Value = serde_json::from_slice(body)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| Error::invalid("body: must be a JSON object"))?;
    let Some(id) = transmission_id else {
        return dispatch(app, &event).await;
    };
    if id.is_empty() || id.len() > MAX_TRANSMISSION_ID || !id.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(Error::invalid(
            "tosspayments-webhook-transmission-id: 1 to 200 visible ASCII characters",
        ));
    }
    let now = OffsetDateTime::now_utc();
    if !app
        .store
        .remember_once(TRANSMISSION_KIND, id, now, now + TRANSMISSION_TTL)
        .await?
    {
        tracing::info!(target: "coursepay::webhook", transmission_id = id, "transmission already processed");
        return Ok(Processed::Duplicate);
    }
    let result = dispatch(app, &event).await;
    if result.is_err()
        && let Err(e) = app.store.forget_once(TRANSMISSION_KIND, id).await
    {
        // The retry will then be answered as a duplicate; the reconciler still settles the
        // order from Toss's state, so nothing is lost, only later.
        tracing::warn!(target: "coursepay::webhook", transmission_id = id, error = %e, "could not release transmission id after a failure");
    }
    result
}

fn event_type(event: &Value) -> Option<&str> {
    event.get("eventType").and_then(Value::as_str)
}

async fn dispatch(app: &App, event: &Value) -> Result<Processed> {
    crate::context::record(|f| f.provider = Some(domain::PROVIDER_TOSS));
    match event_type(event) {
        Some("PAYMENT_STATUS_CHANGED") => payment_status_changed(app, event).await,
        Some("DEPOSIT_CALLBACK") => deposit_callback(app, event).await,
        // Toss's DEPOSIT_CALLBACK body has no eventType: recognise it by its shape.
        None if event.get("secret").is_some() && event.get("orderId").is_some() => {
            deposit_callback(app, event).await
        }
        other => {
            tracing::info!(target: "coursepay::webhook", event_type = other.unwrap_or("<none>"), "webhook event type not handled; ignored");
            Ok(Processed::Ignored)
        }
    }
}

fn str_field<'a>(v: &'a Value, path: &[&str]) -> Result<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p).unwrap_or(&Value::Null);
    }
    cur.as_str()
        .ok_or_else(|| Error::invalid(format!("{}: must be a string", path.join("."))))
}

async fn payment_status_changed(app: &App, event: &Value) -> Result<Processed> {
    let key = PaymentKey::parse(str_field(event, &["data", "paymentKey"])?)
        .map_err(|e| Error::invalid(format!("data.paymentKey: {}", e.reason)))?;
    crate::context::record(|f| f.provider_tx_id = Some(key.to_string()));
    let looked = app.gateway().payment_unless_open(Lookup::Key(&key)).await;
    let Some(view) = provider_view(looked)? else {
        return Ok(Processed::UnknownPayment);
    };
    apply_to_our_order(app, &view).await
}

async fn deposit_callback(app: &App, event: &Value) -> Result<Processed> {
    let order_id = OrderId::parse(str_field(event, &["orderId"])?)
        .map_err(|e| Error::invalid(format!("orderId: {}", e.reason)))?;
    let claimed = str_field(event, &["secret"])?;
    crate::context::record(|f| f.order_id = Some(order_id.to_string()));
    let stored = match app.store.deposit_secret(&order_id).await? {
        Some(s) => Some(s),
        None => app
            .store
            .payment_for_order(&order_id)
            .await?
            .and_then(|p| p.secret),
    };
    // Constant time: the secret is what authenticates an unsigned deposit callback.
    let same = |s: &str| bool::from(s.as_bytes().ct_eq(claimed.as_bytes()));
    if stored.as_deref().is_some_and(|s| !same(s)) {
        tracing::warn!(target: "coursepay::webhook", order_id = %order_id, "DEPOSIT_CALLBACK secret does not match the confirm answer");
        return Err(Error::new(ErrorCode::WebhookInvalidSig));
    }
    let looked = app
        .gateway()
        .payment_unless_open(Lookup::Order(&order_id))
        .await;
    let Some(view) = provider_view(looked)? else {
        return Ok(Processed::UnknownPayment);
    };
    // No secret on record yet: Toss sends the issue callback as it answers the confirm, so it
    // can arrive before the confirm answer is stored. Toss's own answer then carries the
    // secret to compare with.
    if stored.is_none() {
        if !view.secret.as_deref().is_some_and(same) {
            tracing::warn!(target: "coursepay::webhook", order_id = %order_id, "DEPOSIT_CALLBACK secret does not match Toss's");
            return Err(Error::new(ErrorCode::WebhookInvalidSig));
        }
        if let Some(secret) = &view.secret {
            app.store.record_deposit_secret(&order_id, secret).await?;
        }
    }
    apply_to_our_order(app, &view).await
}

/// Toss's answer about the named payment: `None` when Toss does not know it (a forged or
/// foreign delivery: nothing to do), an error Toss should retry on when Toss could not say.
fn provider_view(
    looked: std::result::Result<PaymentView, TossError>,
) -> Result<Option<PaymentView>> {
    match looked {
        Ok(v) => Ok(Some(v)),
        // Toss's lookup answers NOT_FOUND_PAYMENT or NOT_FOUND for a payment it does not know.
        Err(e) if e.is_not_found() => {
            tracing::warn!(target: "coursepay::webhook", "webhook names a payment Toss does not know; ignored");
            Ok(None)
        }
        Err(e) => {
            tracing::warn!(target: "coursepay::webhook", error = %e, "payment lookup for webhook failed; asking Toss to retry");
            let mut err = Error::new(ErrorCode::PgUnavailable).with_retry_after(60);
            if let Some(code) = e.code() {
                err = err.with_provider_code(code);
            }
            Err(err)
        }
    }
}

async fn apply_to_our_order(app: &App, view: &PaymentView) -> Result<Processed> {
    let order: Option<Order> = app.store.get_order(&view.order_id).await?;
    let Some(order) = order else {
        tracing::info!(target: "coursepay::webhook", order_id = %view.order_id, "webhook for an order we do not have; ignored");
        return Ok(Processed::Ignored);
    };
    crate::context::record(|f| {
        f.order_id = Some(order.order_id.to_string());
        f.course_id = Some(order.course_id.to_string());
        f.user_id = Some(order.user_id.to_string());
        f.provider_tx_id = Some(view.payment_key.to_string());
    });
    // CANCELED / PARTIAL_CANCELED go through apply_view too: recording the refund there is the
    // refund flow's job, shared with every other path.
    let ev = event_ctx("webhook");
    apply_view(app, &order, view, SettleSource::Webhook, &ev).await?;
    Ok(Processed::Applied)
}
