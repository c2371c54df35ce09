//! The application state every flow takes: store, Toss client, configuration, keys, caches.
//! Built once by the CLI (or a test) from concrete parts; flows see only this.

use crate::auth::JwtKeys;
use crate::config::Config;
use crate::confirm::ConfirmOutput;
use domain::{OrderId, PaymentKey, UserId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use store::DynStore;
use toss::TossClient;

#[derive(Clone)]
pub struct App(Arc<AppInner>);

pub struct AppInner {
    pub store: DynStore,
    /// The raw client: flows call Toss through [`App::gateway`] (breaker, metrics, trace).
    pub toss: TossClient,
    pub config: Config,
    pub jwt: JwtKeys,
    pub replays: ReplayCache,
    pub webhooks: crate::webhook_auth::Webhooks,
    pub breaker: crate::ops::breaker::Breaker,
    pub pause: crate::ops::pause::PauseSwitch,
    pub limits: crate::ops::ratelimit::RateLimits,
    pub reconciler: crate::reconcile::ReconcilerStatus,
    /// Orders whose confirm this instance is sending to Toss right now.
    pub confirming: InFlight,
    /// Flipped by SIGTERM/SIGINT: `/readyz` turns 503 and background loops stop.
    pub shutdown: crate::ops::shutdown::Shutdown,
}

impl std::ops::Deref for App {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

impl App {
    pub fn new(store: DynStore, toss: TossClient, config: Config) -> Self {
        let jwt = JwtKeys::from_config(&config);
        let webhooks = crate::webhook_auth::Webhooks::new(&config);
        let breaker = crate::ops::breaker::Breaker::new(config.circuit_cooldown);
        let limits =
            crate::ops::ratelimit::RateLimits::new(config.rate_limit, config.rate_limit_confirm);
        App(Arc::new(AppInner {
            store,
            toss,
            config,
            jwt,
            replays: ReplayCache::new(Duration::from_secs(300), 10_000),
            webhooks,
            breaker,
            pause: crate::ops::pause::PauseSwitch::new(),
            limits,
            reconciler: crate::reconcile::ReconcilerStatus::default(),
            confirming: InFlight::default(),
            shutdown: crate::ops::shutdown::Shutdown::default(),
        }))
    }
}

/// Orders with a Toss confirm in flight in this instance, so a server-side confirm does not
/// repeat a claimant's call still on its way (the same Idempotency-Key makes a repeat harmless
/// for the money, but it would count one approval twice). Entered before the claim, so no
/// reader sees a claimed order without it; counted, so nested guards nest. Entries leave with
/// their last guard.
#[derive(Default)]
pub struct InFlight(Mutex<HashMap<OrderId, usize>>);

/// Holds an order in [`InFlight`] until dropped.
pub struct InFlightGuard<'a> {
    set: &'a InFlight,
    order_id: OrderId,
}

impl InFlight {
    pub fn enter(&self, order_id: &OrderId) -> InFlightGuard<'_> {
        if let Ok(mut s) = self.0.lock() {
            *s.entry(order_id.clone()).or_default() += 1;
        }
        InFlightGuard {
            set: self,
            order_id: order_id.clone(),
        }
    }
    pub fn contains(&self, order_id: &OrderId) -> bool {
        self.0.lock().is_ok_and(|s| s.contains_key(order_id))
    }
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut s) = self.set.0.lock()
            && let Some(n) = s.get_mut(&self.order_id)
        {
            *n -= 1;
            if *n == 0 {
                s.remove(&self.order_id);
            }
        }
    }
}

/// The paymentKey cache of seed §3: a successful confirm's answer, so an identical repeat is
/// answered with zero database round trips. Per instance and short-lived: it only ever holds
/// answers that the database already made durable, so losing it costs one round trip, never
/// correctness.
pub struct ReplayCache {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<OrderId, CachedConfirm>>,
}

#[derive(Clone)]
struct CachedConfirm {
    user: UserId,
    payment_key: PaymentKey,
    output: ConfirmOutput,
    at: Instant,
}

impl ReplayCache {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(
        &self,
        order: &OrderId,
        user: UserId,
        payment_key: &PaymentKey,
    ) -> Option<ConfirmOutput> {
        let map = self.entries.lock().ok()?;
        let hit = map.get(order)?;
        (hit.user == user && &hit.payment_key == payment_key && hit.at.elapsed() < self.ttl)
            .then(|| hit.output.clone())
    }

    pub fn put(&self, user: UserId, payment_key: PaymentKey, output: ConfirmOutput) {
        if let Ok(mut map) = self.entries.lock() {
            if map.len() >= self.capacity {
                let ttl = self.ttl;
                map.retain(|_, v| v.at.elapsed() < ttl);
                if map.len() >= self.capacity {
                    map.clear();
                }
            }
            map.insert(
                output.order_id.clone(),
                CachedConfirm {
                    user,
                    payment_key,
                    output,
                    at: Instant::now(),
                },
            );
        }
    }

    /// Forget an order (its payment was refunded: a replayed confirm must not say ENROLLED).
    pub fn forget(&self, order: &OrderId) {
        if let Ok(mut map) = self.entries.lock() {
            map.remove(order);
        }
    }
}
