//! The circuit breaker on Toss calls (seed §6: "5 consecutive 5xx → tell the user, offer a
//! retry").
//!
//! Every Toss call's outcome is recorded ([`Breaker::record`], from `flows::settle`). Five
//! consecutive provider failures (5xx, timeouts, broken connections — never a card decline)
//! open the circuit: confirms are answered 503 `E_PG_UNAVAILABLE` before the order is claimed,
//! so nothing is marked failed and Toss is not called. After the cooldown the circuit is
//! half-open: one probe is let through; its success closes the circuit, its failure re-opens it.
//! A probe that never reports (its request ended before calling Toss) is replaced after
//! another cooldown, so the circuit cannot stay stuck half-open.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Consecutive provider failures that open the circuit.
pub const FAILURE_THRESHOLD: u32 = 5;

/// Time source, injectable so tests can step over the cooldown.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Instant;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

impl CircuitState {
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Closed,
    Open {
        since: Instant,
    },
    /// `probe`: when the one allowed probe was let through, if it was.
    HalfOpen {
        probe: Option<Instant>,
    },
}

struct Inner {
    phase: Phase,
    consecutive_failures: u32,
}

pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
}

/// What a caller may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    /// Refused; try again after this long.
    Refused(Duration),
}

impl Breaker {
    pub fn new(cooldown: Duration) -> Self {
        Self::with_clock(FAILURE_THRESHOLD, cooldown, Arc::new(SystemClock))
    }

    pub fn with_clock(threshold: u32, cooldown: Duration, clock: Arc<dyn Clock>) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            clock,
            inner: Mutex::new(Inner {
                phase: Phase::Closed,
                consecutive_failures: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means a panic elsewhere while holding it; the state is two
        // plain fields and always consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// May a new Toss-bound operation (a confirm) start? In half-open state exactly one caller
    /// is admitted as the probe.
    pub fn admit(&self) -> Admission {
        let now = self.clock.now();
        let mut g = self.lock();
        match g.phase {
            Phase::Closed => Admission::Allowed,
            Phase::Open { since } => {
                let open_for = now.saturating_duration_since(since);
                if open_for >= self.cooldown {
                    g.phase = Phase::HalfOpen { probe: Some(now) };
                    tracing::info!(target: "coursepay::circuit", event = "circuit.half_open", "circuit.half_open");
                    Admission::Allowed
                } else {
                    Admission::Refused(self.cooldown - open_for)
                }
            }
            Phase::HalfOpen { probe: None } => {
                g.phase = Phase::HalfOpen { probe: Some(now) };
                Admission::Allowed
            }
            Phase::HalfOpen { probe: Some(at) } => {
                let waited = now.saturating_duration_since(at);
                if waited >= self.cooldown {
                    // The previous probe never reported: let another one through.
                    g.phase = Phase::HalfOpen { probe: Some(now) };
                    Admission::Allowed
                } else {
                    Admission::Refused(self.cooldown - waited)
                }
            }
        }
    }

    /// True while the circuit is open and cooling down: background work (settle-on-read, the
    /// reconciler) skips Toss then instead of piling onto an outage.
    pub fn is_open(&self) -> bool {
        let now = self.clock.now();
        matches!(self.lock().phase, Phase::Open { since } if now.saturating_duration_since(since) < self.cooldown)
    }

    /// Record one Toss call's outcome: `failed` = a provider failure (5xx, timeout, broken
    /// connection). Any answer from Toss, a decline included, proves it is up.
    pub fn record(&self, failed: bool) {
        let now = self.clock.now();
        let mut g = self.lock();
        if failed {
            g.consecutive_failures = g.consecutive_failures.saturating_add(1);
            let reopen = match g.phase {
                Phase::Closed => g.consecutive_failures >= self.threshold,
                Phase::HalfOpen { .. } => true,
                // Already open: a late failure does not extend the cooldown.
                Phase::Open { .. } => false,
            };
            if reopen {
                g.phase = Phase::Open { since: now };
                tracing::warn!(
                    target: "coursepay::circuit",
                    event = "circuit.opened",
                    consecutive_failures = g.consecutive_failures,
                    cooldown_seconds = self.cooldown.as_secs_f64(),
                    "circuit.opened"
                );
            }
        } else {
            let was_closed = matches!(g.phase, Phase::Closed);
            g.consecutive_failures = 0;
            g.phase = Phase::Closed;
            if !was_closed {
                tracing::info!(target: "coursepay::circuit", event = "circuit.closed", "circuit.closed");
            }
        }
    }

    /// State and consecutive failures, for `GET /v1/admin/status` and metrics.
    pub fn snapshot(&self) -> (CircuitState, u32) {
        let now = self.clock.now();
        let g = self.lock();
        let state = match g.phase {
            Phase::Closed => CircuitState::Closed,
            Phase::Open { since } if now.saturating_duration_since(since) < self.cooldown => {
                CircuitState::Open
            }
            Phase::Open { .. } | Phase::HalfOpen { .. } => CircuitState::HalfOpen,
        };
        (state, g.consecutive_failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Manual(Mutex<Instant>);
    impl Clock for Manual {
        fn now(&self) -> Instant {
            *self.0.lock().unwrap()
        }
    }
    impl Manual {
        fn advance(&self, d: Duration) {
            *self.0.lock().unwrap() += d;
        }
    }

    #[test]
    fn opens_after_exactly_five_and_recovers_through_one_probe() {
        let clock = Arc::new(Manual(Mutex::new(Instant::now())));
        let b = Breaker::with_clock(5, Duration::from_secs(30), clock.clone());
        for _ in 0..4 {
            b.record(true);
        }
        assert_eq!(b.snapshot(), (CircuitState::Closed, 4));
        assert_eq!(b.admit(), Admission::Allowed);
        b.record(true);
        assert_eq!(b.snapshot(), (CircuitState::Open, 5));
        assert!(matches!(b.admit(), Admission::Refused(d) if d == Duration::from_secs(30)));
        assert!(b.is_open());

        clock.advance(Duration::from_secs(30));
        assert_eq!(b.snapshot().0, CircuitState::HalfOpen);
        assert_eq!(b.admit(), Admission::Allowed, "the probe");
        assert!(matches!(b.admit(), Admission::Refused(_)), "only one probe");
        b.record(true);
        assert_eq!(b.snapshot().0, CircuitState::Open, "failed probe re-opens");

        clock.advance(Duration::from_secs(30));
        assert_eq!(b.admit(), Admission::Allowed);
        b.record(false);
        assert_eq!(b.snapshot(), (CircuitState::Closed, 0));
        assert_eq!(b.admit(), Admission::Allowed);
    }

    #[test]
    fn success_resets_the_count() {
        let b = Breaker::new(Duration::from_secs(30));
        for _ in 0..4 {
            b.record(true);
        }
        b.record(false);
        for _ in 0..4 {
            b.record(true);
        }
        assert_eq!(b.snapshot(), (CircuitState::Closed, 4));
    }

    #[test]
    fn a_silent_probe_is_replaced_after_a_cooldown() {
        let clock = Arc::new(Manual(Mutex::new(Instant::now())));
        let b = Breaker::with_clock(1, Duration::from_secs(10), clock.clone());
        b.record(true);
        clock.advance(Duration::from_secs(10));
        assert_eq!(b.admit(), Admission::Allowed);
        assert!(matches!(b.admit(), Admission::Refused(_)));
        clock.advance(Duration::from_secs(10));
        assert_eq!(b.admit(), Admission::Allowed);
    }
}
