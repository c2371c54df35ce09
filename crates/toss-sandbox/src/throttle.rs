//! Toss's lookup throttling: polling a payment too often is answered 403
//! `FORBIDDEN_CONSECUTIVE_REQUEST` ("반복적인 요청은 허용되지 않습니다"), listed in the lookup
//! API's error table.
//!
//! Toss documents no rate. The sandbox counts lookups per resource (the request path, so a
//! payment looked up by paymentKey and by orderId counts twice) in a sliding one-second window
//! of real time and refuses the ones over the configured limit. It is off unless configured
//! (`SandboxConfig::lookups_per_second`, `POST /sandbox/throttle`): with no documented number,
//! any default would be invented, and a test that wants throttling says how much.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub(crate) struct Throttle {
    limit: Option<u32>,
    seen: HashMap<String, VecDeque<Instant>>,
}

impl Throttle {
    pub(crate) fn set_limit(&mut self, limit: Option<u32>) {
        self.limit = limit.filter(|l| *l > 0);
        self.seen.clear();
    }

    /// Counts one lookup of `resource`; true when it is over the limit (refuse it). Refused
    /// lookups count too, as they would at a server that throttles by arrival.
    pub(crate) fn over(&mut self, resource: &str, now: Instant) -> bool {
        let Some(limit) = self.limit else {
            return false;
        };
        let q = self.seen.entry(resource.to_owned()).or_default();
        while q.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
            q.pop_front();
        }
        q.push_back(now);
        let over = q.len() > limit as usize;
        if self.seen.len() > 10_000 {
            // Bound the memory: forget resources not looked up within the window.
            self.seen
                .retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < WINDOW));
        }
        over
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn limit_per_resource_in_a_sliding_second() {
        let mut t = Throttle::default();
        let t0 = Instant::now();
        assert!(!(0..100).any(|_| t.over("/a", t0)), "off by default");
        t.set_limit(Some(2));
        assert!(!t.over("/a", t0));
        assert!(!t.over("/a", t0));
        assert!(t.over("/a", t0));
        assert!(!t.over("/b", t0), "another payment has its own budget");
        assert!(!t.over("/a", t0 + WINDOW + Duration::from_millis(1)));
    }
}
