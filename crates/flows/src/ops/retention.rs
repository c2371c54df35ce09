//! Retention: expired idempotency keys and one-time tokens (webhook replay marks, Toss
//! transmission ids) are deleted in the background, in small batches so a large backlog never
//! holds locks or the database for long. Expired rows are already ignored by the code that
//! reads them; the purge only keeps the tables from growing forever.
//!
//! Kept forever on purpose: orders, payments, refunds, enrollments, exam attempts and the
//! payment event log — the money trail an operator, an accountant or a dispute needs.

use crate::App;
use crate::error::Result;
use std::time::Duration;
use time::OffsetDateTime;

/// Rows deleted per table per statement.
pub const BATCH: i64 = 500;
/// At most this many batches per run; the next run continues.
const MAX_BATCHES: usize = 200;

/// Delete everything expired at `now`, batch by batch; stops early when shutdown begins.
/// Returns the number of rows deleted.
pub async fn purge_once(app: &App, now: OffsetDateTime) -> Result<u64> {
    let mut total = 0;
    for _ in 0..MAX_BATCHES {
        let purged = app.store.purge_expired(now, BATCH).await?;
        let mut more = false;
        for p in &purged {
            if p.rows > 0 {
                crate::ops::metrics::record_purged(p.table, &p.kind, p.rows);
            }
            total += p.rows;
            more |= p.rows >= BATCH as u64;
        }
        if !more || app.shutdown.is_draining() {
            break;
        }
        // Let other work at the database between batches.
        tokio::task::yield_now().await;
    }
    if total > 0 {
        tracing::info!(target: "coursepay::retention", rows = total, "expired rows purged");
    }
    Ok(total)
}

/// The background loop `coursepay serve` starts: a purge every `PURGE_INTERVAL_SECONDS`, until
/// shutdown begins.
pub fn spawn(app: App) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let interval = app.config.edge.purge_interval.max(Duration::from_secs(1));
        let stop = app.shutdown.wait();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = &mut stop => break,
            }
            if let Err(e) = purge_once(&app, OffsetDateTime::now_utc()).await {
                tracing::warn!(target: "coursepay::retention", code = %e.code, error = ?e.internal, "purge failed");
            }
        }
    })
}
