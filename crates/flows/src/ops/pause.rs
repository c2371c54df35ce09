//! The payments pause switch (seed §6 "일시 결제 중단 toggling", rollback "confirm 함수
//! disable"). Stored in the database (`payment_controls`) so every instance obeys it; each
//! instance re-reads it at most once per [`PauseSwitch::MAX_AGE`], so a pause takes effect
//! everywhere within a second.
//!
//! What "paused" means — no NEW charges, no LOST ones:
//! - checkout and confirm answer 503 `E_PAYMENTS_PAUSED` before touching anything;
//! - settle-on-read, the reconciler (and webhooks) still settle payments Toss reports DONE:
//!   that money has moved and the buyer gets the course;
//! - but they do NOT start a server-side confirm of a payment Toss holds as IN_PROGRESS (the
//!   buyer authenticated, we never confirmed): confirming would be a new charge. Toss keeps
//!   such a payment confirmable for 10 minutes, so a pause shorter than that loses nothing;
//!   after a longer pause those payments expire at Toss without any charge and the orders end
//!   EXPIRED.

use crate::App;
use crate::error::{Error, Result};
use domain::ErrorCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use store::{DynStore, PaymentControls};

pub struct PauseSwitch {
    cached: Mutex<Option<(Instant, PaymentControls)>>,
}

impl Default for PauseSwitch {
    fn default() -> Self {
        Self::new()
    }
}

impl PauseSwitch {
    /// How stale an instance's view of the switch may be.
    pub const MAX_AGE: Duration = Duration::from_secs(1);

    pub fn new() -> Self {
        Self {
            cached: Mutex::new(None),
        }
    }

    fn fresh(&self) -> Option<PaymentControls> {
        let g = self.cached.lock().ok()?;
        g.as_ref()
            .filter(|(at, _)| at.elapsed() < Self::MAX_AGE)
            .map(|(_, c)| c.clone())
    }

    fn put(&self, c: &PaymentControls) {
        if let Ok(mut g) = self.cached.lock() {
            *g = Some((Instant::now(), c.clone()));
        }
    }

    /// The switch as stored, at most [`Self::MAX_AGE`] old.
    ///
    /// The refresh runs in its own task, outside the request's round-trip counter: it is one
    /// read per instance per second, not part of any request's database budget (seed §5).
    pub async fn current(&self, store: &DynStore) -> Result<PaymentControls> {
        if let Some(c) = self.fresh() {
            return Ok(c);
        }
        let store = store.clone();
        let read = tokio::spawn(async move { store.payment_controls().await })
            .await
            .map_err(|e| Error::internal(format!("pause switch read: {e}")))??;
        self.put(&read);
        Ok(read)
    }

    pub async fn is_paused(&self, store: &DynStore) -> Result<bool> {
        Ok(self.current(store).await?.paused)
    }

    /// Flip the switch (and log who did it, with the reason) and update this instance at once.
    pub async fn set(
        &self,
        app: &App,
        paused: bool,
        reason: Option<&domain::FreeText>,
        actor: &str,
    ) -> Result<PaymentControls> {
        let ev = crate::event_ctx(actor);
        let reason = reason.map(domain::FreeText::as_str);
        let c = app.store.set_payments_paused(paused, reason, &ev).await?;
        self.put(&c);
        if paused {
            tracing::warn!(target: "coursepay::ops", event = "payments.paused", actor, reason = reason.unwrap_or(""), "payments.paused");
        } else {
            tracing::info!(target: "coursepay::ops", event = "payments.resumed", actor, "payments.resumed");
        }
        Ok(c)
    }
}

/// Refuse new charges while paused: the first thing checkout and confirm do.
pub async fn ensure_not_paused(app: &App) -> Result<()> {
    if app.pause.is_paused(&app.store).await? {
        return Err(Error::new(ErrorCode::PaymentsPaused).with_retry_after(60));
    }
    Ok(())
}
