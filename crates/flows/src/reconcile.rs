//! The reconciler: settles orders left open (PENDING/CONFIRMING) by asking Toss, through
//! [`resolve_order`] — the same code as settle-on-read and webhooks. IN_PROGRESS inside the
//! 10-minute window → server-side confirm with the order's Idempotency-Key; DONE → settle;
//! ABORTED/EXPIRED, or nothing at Toss past the window → FAILED/EXPIRED.
//!
//! Ended (FAILED/EXPIRED) orders whose virtual account Toss may still hold open are looked at
//! too ([`store::Store::lease_account_checks`]) and their account closed, so a lost webhook
//! cannot leave an account taking money for an order that enrolls nobody.
//!
//! Safe with several instances: each pass leases the orders it works on
//! ([`store::Store::lease_open_orders`], `FOR UPDATE SKIP LOCKED` on PostgreSQL), so two
//! instances never work on one order at once; a crashed instance's leases simply expire. And
//! even if two paths did meet on an order (a confirm racing the reconciler), the order-derived
//! Idempotency-Key and the one settle statement make the second a no-op.

use crate::App;
use crate::error::Result;
use crate::refunds::AccountLook;
use crate::settle::{SettleSource, resolve_order};
use domain::OrderStatus;
use std::sync::Mutex;
use std::time::Duration;
use store::Order;
use time::OffsetDateTime;

/// A PENDING order past its expiry cannot be claimed any more, so no confirm of ours can
/// charge it: after this many lookups since its expiry it is expired without asking Toss again.
pub const LOOKUPS_AFTER_EXPIRY: i64 = 3;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Orders this pass leased and looked at (at most `RECONCILE_BUDGET`).
    pub leased: usize,
    /// Abandoned checkouts expired without a lookup ([`LOOKUPS_AFTER_EXPIRY`]).
    pub abandoned: usize,
    pub paid: usize,
    pub failed: usize,
    pub expired: usize,
    /// Still PENDING/CONFIRMING afterwards (Toss unreachable, buyer not done yet, paused).
    pub still_open: usize,
    pub errors: usize,
    /// Refunds stuck in REQUESTED that this pass settled (DONE or FAILED) with Toss.
    pub refunds_settled: usize,
    /// Virtual accounts of ended orders this pass found still open at Toss and closed.
    pub accounts_closed: usize,
    /// The circuit was open: Toss was not asked this pass.
    pub skipped_circuit_open: bool,
    /// Toss answered FORBIDDEN_CONSECUTIVE_REQUEST (polled too fast): the pass stopped asking
    /// and left the rest of its orders to the next one.
    pub throttled: bool,
}

/// When this instance's reconciler last completed a pass (admin status, metrics).
#[derive(Default)]
pub struct ReconcilerStatus {
    last_run_at: Mutex<Option<OffsetDateTime>>,
}

impl ReconcilerStatus {
    pub fn last_run_at(&self) -> Option<OffsetDateTime> {
        self.last_run_at.lock().ok().and_then(|g| *g)
    }
    fn ran(&self, at: OffsetDateTime) {
        if let Ok(mut g) = self.last_run_at.lock() {
            *g = Some(at);
        }
    }
}

/// How long an order must have been untouched before the reconciler takes it, so it does not
/// race a confirm in flight for nothing: one Toss timeout or one reconcile interval, whichever
/// is shorter. (Racing would be safe anyway — same Idempotency-Key, one settle statement.)
pub fn grace(app: &App) -> Duration {
    app.config.toss_timeout.min(app.config.reconcile_interval)
}

/// How long a lease holds: longer than one pass's work on an order (a lookup plus a confirm
/// with its retries), so a live instance never loses an order mid-work.
pub fn lease_for(app: &App) -> Duration {
    app.config.toss_timeout * 4 + app.config.reconcile_interval
}

/// One pass. First abandoned checkouts that were looked up [`LOOKUPS_AFTER_EXPIRY`] times
/// since their expiry are expired without a Toss call. Then up to `RECONCILE_BUDGET` open
/// orders older than [`grace`] are leased — those that can have money behind them first (see
/// [`store::Store::lease_open_orders`]) — and resolved one by one. A shutdown stops the pass
/// between two orders; the orders not reached keep their lease until it expires.
pub async fn reconcile_once(app: &App, instance: &str) -> Result<ReconcileReport> {
    let mut report = ReconcileReport::default();
    let now = OffsetDateTime::now_utc();
    let budget = i64::from(app.config.edge.reconcile_budget.max(1));
    let ev = crate::event_ctx("reconciler".to_owned());
    for order_id in app
        .store
        .abandoned_orders(now, LOOKUPS_AFTER_EXPIRY, budget)
        .await?
    {
        if app
            .store
            .fail_order(&order_id, OrderStatus::Expired, Some("ABANDONED"), &ev)
            .await?
        {
            report.abandoned += 1;
        }
    }
    if app.breaker.is_open() {
        report.skipped_circuit_open = true;
        app.reconciler.ran(now);
        return Ok(report);
    }
    let orders = app
        .store
        .lease_open_orders(
            instance,
            now,
            now + lease_for(app),
            now - grace(app),
            budget,
        )
        .await?;
    report.leased = orders.len();
    for order in orders {
        if app.shutdown.is_draining() {
            break;
        }
        // Throttled by Toss: the client backs off (each further refusal doubles the wait);
        // asking about the remaining orders now would only prolong it.
        if app.toss.lookup_backoff().is_some() {
            report.throttled = true;
            report.still_open += 1;
            continue;
        }
        let order_id = order.order_id.clone();
        match resolve_order(app, order, SettleSource::Reconciler).await {
            Ok(o) => match o.status {
                OrderStatus::Paid | OrderStatus::Refunded => report.paid += 1,
                OrderStatus::Failed => report.failed += 1,
                OrderStatus::Expired => report.expired += 1,
                OrderStatus::Pending | OrderStatus::Confirming => report.still_open += 1,
            },
            Err(e) => {
                report.errors += 1;
                tracing::warn!(target: "coursepay::reconcile", order_id = %order_id, code = %e.code, "reconcile of order failed");
            }
        }
        // This order's own lookup may be the one Toss throttled (the pass's last order, too).
        report.throttled |= app.toss.lookup_backoff().is_some();
    }
    if !report.throttled
        && !app.shutdown.is_draining()
        && let Err(e) = close_ended_accounts(app, now, budget, &ev, &mut report).await
    {
        report.errors += 1;
        tracing::warn!(target: "coursepay::reconcile", code = %e.code, "ended-order account pass failed");
    }
    // Refunds whose answer was lost meet Toss here too. Safe on several instances at once:
    // a retried cancel carries the refund's own Idempotency-Key and recording is idempotent.
    match crate::refunds::reconcile_refunds(app, now - grace(app)).await {
        Ok(n) => report.refunds_settled = n,
        Err(e) => {
            report.errors += 1;
            tracing::warn!(target: "coursepay::reconcile", code = %e.code, "refund reconciliation failed");
        }
    }
    app.reconciler.ran(OffsetDateTime::now_utc());
    if report.leased > 0
        || report.refunds_settled > 0
        || report.abandoned > 0
        || report.accounts_closed > 0
    {
        tracing::info!(
            target: "coursepay::reconcile",
            instance,
            leased = report.leased,
            abandoned = report.abandoned,
            paid = report.paid,
            failed = report.failed,
            expired = report.expired,
            still_open = report.still_open,
            errors = report.errors,
            refunds_settled = report.refunds_settled,
            accounts_closed = report.accounts_closed,
            throttled = report.throttled,
            "reconcile pass"
        );
    }
    Ok(report)
}

/// The longest wait between two looks at an ended order's virtual account (see
/// [`account_look_again`]).
const ACCOUNT_LOOK_MAX_WAIT: Duration = Duration::from_secs(60 * 60);

/// When an ended order's account is looked at again after a look that settled nothing: after as
/// long again as the order has been ended, so the looks thin out (at least one reconcile
/// interval, at most [`ACCOUNT_LOOK_MAX_WAIT`]).
fn account_look_again(app: &App, order: &Order, now: OffsetDateTime) -> OffsetDateTime {
    let ended_for = Duration::try_from(now - order.updated_at).unwrap_or(Duration::ZERO);
    let min = app.config.reconcile_interval.min(ACCOUNT_LOOK_MAX_WAIT);
    now + ended_for.clamp(min, ACCOUNT_LOOK_MAX_WAIT)
}

/// Ended orders whose virtual account Toss may still hold open
/// ([`store::Store::lease_account_checks`]) are looked at and closed
/// ([`crate::refunds::look_at_ended_account`]); those Toss could not settle come back later.
/// Stops like the open-order pass: on shutdown, and when Toss throttles lookups.
async fn close_ended_accounts(
    app: &App,
    now: OffsetDateTime,
    budget: i64,
    ev: &store::EventContext,
    report: &mut ReconcileReport,
) -> Result<()> {
    let leased = app
        .store
        .lease_account_checks(now, now + lease_for(app), budget)
        .await?;
    for order in leased {
        if app.shutdown.is_draining() {
            break;
        }
        if app.toss.lookup_backoff().is_some() {
            // The lease brings the rest back once it expires.
            report.throttled = true;
            break;
        }
        let look =
            crate::refunds::look_at_ended_account(app, &order, SettleSource::Reconciler, ev).await;
        let again = match look {
            Ok(AccountLook::Closed) => {
                report.accounts_closed += 1;
                None
            }
            Ok(AccountLook::NothingOpen) => None,
            Ok(AccountLook::Unknown) => Some(account_look_again(app, &order, now)),
            Err(e) => {
                report.errors += 1;
                tracing::warn!(target: "coursepay::reconcile", order_id = %order.order_id, code = %e.code, "look at an ended order's virtual account failed");
                Some(account_look_again(app, &order, now))
            }
        };
        app.store.account_checked(&order.order_id, again).await?;
    }
    Ok(())
}

/// An open order this old is work for the reconciler (a buyer normally confirms within
/// seconds of authenticating); younger ones are payments in progress, not backlog.
pub const BACKLOG_AFTER: Duration = Duration::from_secs(60);

/// The reconciler's backlog at `now`, the one definition the admin status and the metrics
/// gauges show: open (PENDING/CONFIRMING) orders created more than [`BACKLOG_AFTER`] ago, and
/// the age of the oldest of them in seconds.
pub async fn backlog(app: &App, now: OffsetDateTime) -> Result<(i64, Option<u64>)> {
    let (count, oldest) = app.store.open_order_backlog(now - BACKLOG_AFTER).await?;
    let age = oldest.map(|t| (now - t).whole_seconds().max(0) as u64);
    Ok((count, age))
}

/// A random id for this instance's leases.
pub fn instance_id() -> String {
    format!("reconciler-{}", uuid::Uuid::new_v4().simple())
}

/// The background loop `coursepay serve` starts: one pass every `RECONCILE_INTERVAL_SECONDS`
/// (with up to 10% jitter so instances started together spread out). Errors are logged and the
/// loop goes on. It ends when shutdown begins: at once while waiting, or after the order in
/// hand when a pass is running.
pub fn spawn(app: App) -> tokio::task::JoinHandle<()> {
    let instance = instance_id();
    tokio::spawn(async move {
        let interval = app
            .config
            .reconcile_interval
            .max(Duration::from_millis(100));
        let stop = app.shutdown.wait();
        tokio::pin!(stop);
        loop {
            let jitter = interval.mul_f64(rand::random::<f64>() * 0.1);
            tokio::select! {
                _ = tokio::time::sleep(interval + jitter) => {}
                _ = &mut stop => break,
            }
            if let Err(e) = reconcile_once(&app, &instance).await {
                tracing::warn!(target: "coursepay::reconcile", instance = %instance, code = %e.code, error = ?e.internal, "reconcile pass failed");
            }
        }
    })
}
