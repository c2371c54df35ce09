//! A faithful in-memory fake of the Toss Payments API (version 2022-11-16), usable in-process
//! (an axum [`Router`]) and standalone ([`serve`]).
//!
//! It answers Toss's paths with Toss's bodies, error codes and HTTP statuses, so the real
//! `toss` client and everything above it run unchanged against it, and it adds the controls a
//! test needs to reach the cases a real sandbox cannot produce on demand: a buyer finishing the
//! payment window, a forced decline, a clock to move past the confirm window, injected network
//! faults, and webhook delivery with retries.
//!
//! Components, each module documenting which Toss behaviour it mirrors and what it chose where
//! Toss's documentation is silent:
//! - `api`: the `/v1` routes and the pipeline around them (Basic auth, test codes, faults,
//!   idempotency);
//! - `ledger`: the payments and their state machine (confirm, cancel, expiry);
//! - `idempotency`: the `Idempotency-Key` store (errors are stored and replayed too);
//! - `throttle`: `FORBIDDEN_CONSECUTIVE_REQUEST` for lookups polled too fast;
//! - `faults`: injected 5xx, hangs, delays and dropped connections;
//! - `latency`: Toss's own processing time, drawn from a configurable distribution;
//! - `webhooks`: PAYMENT_STATUS_CHANGED / DEPOSIT_CALLBACK delivery and Toss's retry schedule;
//! - `codes`: Toss's error codes, statuses and Korean/English messages;
//! - `clock`: the movable sandbox clock and Toss's timestamp formats;
//! - `control` and `checkout`: the `/sandbox` routes and the HTML payment window.
//!
//! Routes, all relative to the router's root (the server nests it at `/toss-sandbox`):
//!
//! | Route | |
//! |---|---|
//! | `POST /v1/payments/confirm` | Toss confirm |
//! | `GET /v1/payments/{paymentKey}` | Toss lookup |
//! | `GET /v1/payments/orders/{orderId}` | Toss lookup by order |
//! | `POST /v1/payments/{paymentKey}/cancel` | Toss cancel (full or partial) |
//! | `POST /sandbox/payments`, `GET /sandbox/payments` | create an authenticated payment / list all |
//! | `POST /sandbox/payments/{paymentKey}/deposit` | a virtual account receives its money |
//! | `POST /sandbox/payments/{paymentKey}/reverse-deposit` | the bank takes a deposit back |
//! | `POST /sandbox/throttle` | `{"lookupsPerSecond": n \| null}`: lookup throttling |
//! | `GET /sandbox/checkout` (+ `POST …/approve`, `…/decline`, `…/cancel`) | HTML payment window |
//! | `POST /sandbox/faults`, `DELETE /sandbox/faults` | inject / clear faults |
//! | `POST /sandbox/clock`, `GET /sandbox/clock` | move / read the sandbox clock |
//! | `GET /sandbox/stats` | call counters |
//! | `POST /sandbox/webhooks`, `GET /sandbox/webhooks` | webhook settings / deliveries |
//! | `GET /sandbox/requests` | the last API requests' traceparent and Idempotency-Key |
//! | `GET /sandbox/openapi.json` | this API as an OpenAPI 3.1 document (`openapi`) |

mod api;
mod checkout;
mod clock;
mod codes;
mod control;
mod faults;
mod idempotency;
mod latency;
mod ledger;
pub mod openapi;
mod requests;
mod throttle;
mod webhooks;

pub use codes::SandboxError;
pub use faults::{Fault, FaultMode, Operation};
pub use latency::LatencyModel;
pub use ledger::CreatePayment;
pub use requests::SeenRequest;
pub use webhooks::{Delivery, DeliveryStatus};

use axum::Router;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use time::OffsetDateTime;
use toss::wire::{CancelRequest, ConfirmRequest, Payment};

#[derive(Clone)]
pub struct SandboxConfig {
    /// Secret keys accepted in Basic auth. Empty = accept any key starting with "test_sk_" or
    /// "test_gsk_".
    pub secret_keys: Vec<String>,
    /// Where to POST webhooks (None = don't deliver). Changeable at runtime.
    pub webhook_url: Option<String>,
    /// Secret for the X-Signature header on delivered webhooks.
    pub webhook_secret: Option<String>,
    /// Base delay of the retry schedule (Toss: 1, 4, 16, 64, 256, 1024, 4096 minutes; the
    /// sandbox uses the same ratios times this base, default 1 s).
    pub webhook_retry_base: Duration,
    /// How long a "timeout" fault hangs before answering (default 30 s).
    pub timeout_fault_hang: Duration,
    /// Lookups of one payment allowed per second before 403 FORBIDDEN_CONSECUTIVE_REQUEST
    /// (None = no throttling, the default: Toss documents no rate).
    pub lookups_per_second: Option<u32>,
    /// Toss's processing time added to every `/v1` call (None = answer at once, the default).
    pub latency: Option<LatencyModel>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            secret_keys: Vec::new(),
            webhook_url: None,
            webhook_secret: None,
            webhook_retry_base: Duration::from_secs(1),
            timeout_fault_hang: Duration::from_secs(30),
            lookups_per_second: None,
            latency: None,
        }
    }
}

impl std::fmt::Debug for SandboxConfig {
    // Keys and the webhook secret are credentials: show how many, never what.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxConfig")
            .field(
                "secret_keys",
                &format_args!("[{} redacted]", self.secret_keys.len()),
            )
            .field("webhook_url", &self.webhook_url)
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("webhook_retry_base", &self.webhook_retry_base)
            .field("timeout_fault_hang", &self.timeout_fault_hang)
            .field("lookups_per_second", &self.lookups_per_second)
            .field("latency", &self.latency)
            .finish()
    }
}

/// Counters since start (`GET /sandbox/stats`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Every confirm request that reached the sandbox: replays, errors and faulted ones too.
    pub confirm_calls: u64,
    pub cancel_calls: u64,
    /// Both lookup routes.
    pub lookup_calls: u64,
    /// Confirms that approved a payment (not replays, not errors, not forced declines).
    pub confirms_executed: u64,
    /// Cancels that changed a balance.
    pub cancels_executed: u64,
    /// Webhook events that got a 200.
    pub webhooks_delivered: u64,
    /// Webhook attempts that did not get a 200 (each retry counts).
    pub webhooks_failed: u64,
}

impl Stats {
    fn count(&mut self, op: Operation) {
        match op {
            Operation::Confirm => self.confirm_calls += 1,
            Operation::Lookup => self.lookup_calls += 1,
            Operation::Cancel => self.cancel_calls += 1,
        }
    }
}

/// Everything mutable, behind one lock so a request's bookkeeping (count it, take its fault,
/// claim its idempotency key) happens atomically.
pub(crate) struct State {
    clock: clock::Clock,
    ledger: ledger::Ledger,
    idempotency: idempotency::Store,
    faults: faults::Faults,
    throttle: throttle::Throttle,
    stats: Stats,
    webhook_url: Option<String>,
    webhook_secret: Option<String>,
    deliveries: Vec<Delivery>,
}

impl State {
    fn confirm(
        &mut self,
        req: &ConfirmRequest,
        now: OffsetDateTime,
    ) -> Result<Payment, SandboxError> {
        let result = self.ledger.confirm(req, now);
        if result.is_ok() {
            self.stats.confirms_executed += 1;
        }
        result
    }

    fn cancel(
        &mut self,
        payment_key: &str,
        req: &CancelRequest,
        now: OffsetDateTime,
    ) -> Result<Payment, SandboxError> {
        let result = self.ledger.cancel(payment_key, req, now);
        if result.is_ok() {
            self.stats.cancels_executed += 1;
        }
        result
    }
}

struct Inner {
    secret_keys: Vec<String>,
    webhook_retry_base: Duration,
    timeout_fault_hang: Duration,
    latency: Option<LatencyModel>,
    /// `None` only if the TLS backend failed to initialise; deliveries then fail visibly.
    http: Option<reqwest::Client>,
    /// A std mutex: it is held for microseconds and never across an `.await`, which is what
    /// lets faults sleep and webhooks send without blocking anyone else.
    state: Mutex<State>,
    /// Kept apart from `state`: recording a request must not contend with the ledger.
    requests: Mutex<VecDeque<requests::SeenRequest>>,
}

/// The sandbox. Cheap to clone; clones share one set of payments.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox").finish_non_exhaustive()
    }
}

impl Sandbox {
    pub fn new(config: SandboxConfig) -> Self {
        let mut throttle = throttle::Throttle::default();
        throttle.set_limit(config.lookups_per_second);
        let http = reqwest::Client::builder()
            .timeout(webhooks::ATTEMPT_TIMEOUT)
            .connect_timeout(Duration::from_secs(2))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| tracing::warn!(error = %e, "sandbox webhook client unavailable"))
            .ok();
        Sandbox {
            inner: Arc::new(Inner {
                secret_keys: config.secret_keys,
                webhook_retry_base: config.webhook_retry_base,
                timeout_fault_hang: config.timeout_fault_hang,
                latency: config.latency,
                http,
                state: Mutex::new(State {
                    clock: clock::Clock::default(),
                    ledger: ledger::Ledger::default(),
                    idempotency: idempotency::Store::default(),
                    faults: faults::Faults::default(),
                    throttle,
                    stats: Stats::default(),
                    webhook_url: config.webhook_url,
                    webhook_secret: config.webhook_secret,
                    deliveries: Vec::new(),
                }),
                requests: Mutex::new(VecDeque::new()),
            }),
        }
    }

    /// All routes, at the router's own root.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/payments/confirm", post(api::confirm))
            .route("/v1/payments/orders/{order_id}", get(api::lookup_by_order))
            .route("/v1/payments/{payment_key}", get(api::lookup))
            .route("/v1/payments/{payment_key}/cancel", post(api::cancel))
            .route_layer(axum::middleware::from_fn_with_state(
                self.clone(),
                requests::record,
            ))
            // Outermost: the wait comes before anything else, like Toss's network and queue.
            .route_layer(axum::middleware::from_fn_with_state(
                self.clone(),
                latency::delay,
            ))
            .route("/sandbox/requests", get(requests::list))
            .route(
                "/sandbox/payments",
                post(control::create_payment).get(control::list_payments),
            )
            .route(
                "/sandbox/payments/{payment_key}/deposit",
                post(control::deposit),
            )
            .route(
                "/sandbox/payments/{payment_key}/reverse-deposit",
                post(control::reverse_deposit),
            )
            .route("/sandbox/throttle", post(control::set_throttle))
            .route("/sandbox/checkout", get(checkout::page))
            .route("/sandbox/checkout/approve", post(checkout::approve))
            .route("/sandbox/checkout/decline", post(checkout::decline))
            .route("/sandbox/checkout/cancel", post(checkout::cancel))
            .route(
                "/sandbox/faults",
                post(control::add_fault).delete(control::clear_faults),
            )
            .route(
                "/sandbox/clock",
                post(control::advance_clock).get(control::get_clock),
            )
            .route("/sandbox/stats", get(control::stats))
            .route("/sandbox/openapi.json", get(openapi::serve))
            .route(
                "/sandbox/webhooks",
                post(control::set_webhook).get(control::deliveries),
            )
            .with_state(self.clone())
    }

    /// Same as `GET /sandbox/stats`.
    pub fn stats(&self) -> Stats {
        self.lock().stats.clone()
    }

    /// Same as `POST /sandbox/payments`: a payment whose buyer has authenticated (IN_PROGRESS).
    pub fn create_payment(&self, req: CreatePayment) -> Result<Payment, SandboxError> {
        self.with_state(|st, now| st.ledger.create(req, now))
    }

    /// Same as `POST /sandbox/payments/{paymentKey}/deposit`: a virtual account waiting for its
    /// deposit receives it (DONE, and a DEPOSIT_CALLBACK webhook).
    pub fn deposit(&self, payment_key: &str) -> Result<Payment, SandboxError> {
        self.with_state(|st, now| st.ledger.deposit(payment_key, now))
    }

    /// Same as `POST /sandbox/payments/{paymentKey}/reverse-deposit`: the bank takes a
    /// virtual-account deposit back (DONE → WAITING_FOR_DEPOSIT, DEPOSIT_CALLBACK and
    /// PAYMENT_STATUS_CHANGED webhooks).
    pub fn reverse_deposit(&self, payment_key: &str) -> Result<Payment, SandboxError> {
        self.with_state(|st, _| st.ledger.reverse_deposit(payment_key))
    }

    /// Same as `POST /sandbox/throttle`: allow `per_second` lookups of one payment per second
    /// (None: no throttling).
    pub fn set_lookup_throttle(&self, per_second: Option<u32>) {
        self.lock().throttle.set_limit(per_second);
    }

    /// Same as `POST /sandbox/faults`.
    pub fn inject_fault(&self, fault: Fault) {
        self.lock().faults.push(fault);
    }

    /// Same as `DELETE /sandbox/faults`.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Same as `POST /sandbox/clock`. Payments whose confirm window this crosses expire (and
    /// their webhooks go out) right away.
    pub fn advance_clock(&self, seconds: i64) {
        self.lock().clock.advance(seconds);
        self.with_state(|_, _| ());
    }

    /// Same as `POST /sandbox/webhooks`; pending retries pick the change up.
    pub fn set_webhook(&self, url: Option<String>, secret: Option<String>) {
        let mut st = self.lock();
        st.webhook_url = url;
        st.webhook_secret = secret;
    }

    /// Every payment the sandbox knows, in creation order, for invariant checks.
    pub fn payments(&self) -> Vec<Payment> {
        self.with_state(|st, _| st.ledger.all())
    }

    /// Same as `GET /sandbox/requests`: the last Toss API requests, oldest first.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.inner
            .requests
            .lock()
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn remember(&self, seen: SeenRequest) {
        if let Ok(mut r) = self.inner.requests.lock() {
            if r.len() >= requests::KEEP {
                r.pop_front();
            }
            r.push_back(seen);
        }
    }

    /// Same as `GET /sandbox/webhooks`.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.lock().deliveries.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind, never a half-applied
        // payment (every mutation is a few field writes), so keep serving.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the state at the sandbox's current time, after applying lazy expiry, then
    /// starts webhook deliveries for whatever changed status (outside the lock).
    fn with_state<R>(&self, f: impl FnOnce(&mut State, OffsetDateTime) -> R) -> R {
        let (result, jobs) = {
            let mut st = self.lock();
            let now = st.clock.now();
            st.ledger.expire_due(now);
            st.idempotency.purge(now);
            let result = f(&mut st, now);
            let changed = st.ledger.take_changed();
            let deposit_events = st.ledger.take_deposit_events();
            let jobs = webhooks::enqueue(&mut st, changed, deposit_events, now);
            (result, jobs)
        };
        webhooks::start(self, jobs);
        result
    }

    fn update(&self, delivery: usize, f: impl FnOnce(&mut Delivery)) {
        if let Some(d) = self.lock().deliveries.get_mut(delivery) {
            f(d);
        }
    }
}

/// Serves the sandbox standalone on `listener` until the process ends. The caller binds the
/// listener, so tests can bind port 0 and know the address before anything runs.
pub async fn serve(listener: tokio::net::TcpListener, sandbox: Sandbox) -> std::io::Result<()> {
    axum::serve(listener, sandbox.router()).await
}
