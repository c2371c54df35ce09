//! Rules both backends apply the same way, outside SQL.

use crate::model::{KeyUse, Order, Settled, Settlement};
use crate::{Result, StoreError};
use domain::{EnrollmentId, OrderId, OrderStatus, PaymentId};
use sqlx::migrate::Migrator;
use time::OffsetDateTime;

/// `ready()`: every migration this binary carries has been applied successfully.
pub(crate) fn check_applied(migrator: &Migrator, applied: &[i64]) -> Result<()> {
    let missing: Vec<i64> = migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| m.version)
        .filter(|v| !applied.contains(v))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Other(format!(
            "database schema is behind: migrations {missing:?} not applied"
        )))
    }
}

/// The event kind for `fail_order`, which only moves orders to FAILED or EXPIRED.
pub(crate) fn fail_event_kind(to: OrderStatus) -> Result<&'static str> {
    match to {
        OrderStatus::Failed => Ok("order.failed"),
        OrderStatus::Expired => Ok("order.expired"),
        other => Err(StoreError::Other(format!(
            "fail_order can move an order to FAILED or EXPIRED, not {other}"
        ))),
    }
}

/// Settle records captured money only: an enrollment must never come from a payment the
/// provider has not captured (DESIGN: no enrollment without an approved payment).
pub(crate) fn check_settlement(s: &Settlement) -> Result<()> {
    if !s.status.is_captured() {
        return Err(StoreError::Other(format!(
            "settle called for order {} with uncaptured payment status {}",
            s.order_id, s.status
        )));
    }
    if s.amount.is_zero() {
        return Err(StoreError::Other(format!(
            "settle called for order {} with a zero amount",
            s.order_id
        )));
    }
    Ok(())
}

/// The answer to a settle of a payment that is already recorded.
pub(crate) fn replayed_settlement(
    order: Order,
    requested: &OrderId,
    payment_id: PaymentId,
    payment_order_id: &str,
    payment_enrollment: Option<EnrollmentId>,
    approved_at: OffsetDateTime,
) -> Result<Settled> {
    if payment_order_id != requested.as_str() {
        // This payment key is recorded for another order: the caller mixed them up.
        return Err(StoreError::Constraint(
            "payments_provider_tx_key".to_owned(),
        ));
    }
    let enrollment_id = payment_enrollment
        .or(order.enrollment_id)
        .ok_or_else(|| StoreError::Other(format!("payment {payment_id} has no enrollment")))?;
    Ok(Settled {
        order,
        payment_id,
        enrollment_id,
        approved_at,
        newly_settled: false,
    })
}

pub(crate) fn key_use(seen_fingerprint: &str, fingerprint: &str) -> KeyUse {
    if seen_fingerprint == fingerprint {
        KeyUse::SameRequest
    } else {
        KeyUse::DifferentRequest
    }
}

/// What a purge deleted, per table and kind, from the idempotency keys' count and the kinds of
/// the one-time tokens deleted.
pub(crate) fn purged(idempotency_keys: u64, token_kinds: Vec<String>) -> Vec<crate::PurgedRows> {
    let mut out = vec![crate::PurgedRows {
        table: crate::PurgedRows::IDEMPOTENCY_KEYS,
        kind: crate::PurgedRows::NO_KIND.to_owned(),
        rows: idempotency_keys,
    }];
    let mut by_kind: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    for k in token_kinds {
        *by_kind.entry(k).or_default() += 1;
    }
    out.extend(by_kind.into_iter().map(|(kind, rows)| crate::PurgedRows {
        table: crate::PurgedRows::ONE_TIME_TOKENS,
        kind,
        rows,
    }));
    out
}
