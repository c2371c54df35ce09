//! Per-IP throttle on invalid webhook signatures (seed §6: "signature forgery attempts →
//! IP rate limit"). More than `limit` invalid signatures from one client within `window` and
//! that client gets 429 `E_RATE_LIMITED` (with Retry-After) on the webhook route until the
//! window that began with its first failure ends.
//!
//! Per instance and in memory, like any rate limiter here: behind N instances an attacker gets
//! at most N × limit tries per window, which is still nothing against a 256-bit MAC; the point
//! is to shed the load and make the attempt visible. IPv6 clients are keyed by their /64, the
//! block one subscriber usually controls. The clock is injectable so tests need not wait.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// Entries kept before expired ones are swept (bounds memory under a spray of addresses).
const SWEEP_AT: usize = 50_000;

pub struct Throttle {
    limit: u32,
    window: Duration,
    clock: Mutex<Clock>,
    seen: Mutex<HashMap<IpAddr, Entry>>,
}

#[derive(Clone, Copy)]
struct Entry {
    started: Instant,
    failures: u32,
}

fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl Throttle {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            clock: Mutex::new(Arc::new(Instant::now)),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Replace the clock (tests).
    pub fn set_clock(&self, clock: Clock) {
        *self.clock.lock().unwrap_or_else(PoisonError::into_inner) = clock;
    }

    fn now(&self) -> Instant {
        let clock = self
            .clock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        clock()
    }

    /// `Some(retry_after_seconds)` while `ip` is blocked.
    pub fn blocked(&self, ip: IpAddr) -> Option<u64> {
        let now = self.now();
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let e = seen.get(&key(ip))?;
        let ends = e.started + self.window;
        (e.failures > self.limit && now < ends)
            .then(|| (ends - now).as_secs_f64().ceil().max(1.0) as u64)
    }

    /// Count one invalid signature from `ip`. Returns `Some(retry_after)` when this one crossed
    /// the limit (the caller answers 429 instead of 401).
    pub fn record_invalid(&self, ip: IpAddr) -> Option<u64> {
        let now = self.now();
        let window = self.window;
        {
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            if seen.len() >= SWEEP_AT {
                seen.retain(|_, e| now < e.started + window);
            }
            let e = seen.entry(key(ip)).or_insert(Entry {
                started: now,
                failures: 0,
            });
            if now >= e.started + window {
                *e = Entry {
                    started: now,
                    failures: 0,
                };
            }
            e.failures = e.failures.saturating_add(1);
        }
        self.blocked(ip)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn manual() -> (Clock, Arc<AtomicU64>) {
        let base = Instant::now();
        let offset = Arc::new(AtomicU64::new(0));
        let o = offset.clone();
        (
            Arc::new(move || base + Duration::from_millis(o.load(Ordering::SeqCst))),
            offset,
        )
    }

    #[test]
    fn blocks_after_limit_then_recovers_after_window() {
        let t = Throttle::new(3, Duration::from_secs(60));
        let (clock, offset) = manual();
        t.set_clock(clock);
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        let other: IpAddr = "203.0.113.8".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(t.record_invalid(ip), None);
        }
        assert_eq!(t.blocked(ip), None);
        assert_eq!(t.record_invalid(ip), Some(60));
        assert_eq!(t.blocked(other), None);
        offset.store(59_500, Ordering::SeqCst);
        assert_eq!(t.blocked(ip), Some(1));
        offset.store(60_000, Ordering::SeqCst);
        assert_eq!(t.blocked(ip), None);
        assert_eq!(t.record_invalid(ip), None, "a new window starts from zero");
    }

    #[test]
    fn ipv6_is_keyed_by_its_64() {
        let t = Throttle::new(1, Duration::from_secs(60));
        t.record_invalid("2001:db8:1:2::1".parse().unwrap());
        t.record_invalid("2001:db8:1:2::2".parse().unwrap());
        assert!(t.blocked("2001:db8:1:2::ffff".parse().unwrap()).is_some());
        assert!(t.blocked("2001:db8:1:3::1".parse().unwrap()).is_none());
    }
}
