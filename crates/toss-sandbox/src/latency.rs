//! Toss's own processing time, simulated: a delay before each `/v1` API call is answered.
//!
//! Real Toss answers a confirm in a few hundred milliseconds with a long tail (card networks,
//! 3-D Secure issuers); loopback answers in microseconds. With a model set, the sandbox waits
//! a delay drawn from a log-normal distribution given by its median and 95th percentile — the
//! two figures one can read off a latency dashboard — so a benchmark's end-to-end percentiles
//! and the concurrency an instance needs (Little's law) are those of production, while the
//! service's own time stays visible beside it (`coursepay_toss_call_duration_seconds`).
//!
//! The wait is a timer, not work: it costs no CPU, so CPU per request stays comparable with
//! and without a model. Off by default; `coursepay sandbox --latency 300ms,1s` (or
//! `SANDBOX_LATENCY=300ms,1s`) turns it on. Control routes (`/sandbox/…`) are never delayed.

use crate::Sandbox;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use rand::Rng;
use std::time::Duration;

/// z of the 95th percentile of the standard normal distribution.
const Z95: f64 = 1.644_853_626_951_472_2;

/// No single delay beyond this many times the p95: the tail of a log-normal is unbounded,
/// and a sample of minutes would only measure the caller's timeout.
const MAX_OVER_P95: f64 = 10.0;

/// A log-normal delay: `ln(delay)` is normal with mean `ln(p50)` and the deviation that puts
/// the 95th percentile at `p95`. `p50 == p95` is a fixed delay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyModel {
    p50: Duration,
    p95: Duration,
}

impl LatencyModel {
    /// A model with this median and 95th percentile; `None` unless 0 < p50 ≤ p95.
    pub fn new(p50: Duration, p95: Duration) -> Option<LatencyModel> {
        (!p50.is_zero() && p50 <= p95).then_some(LatencyModel { p50, p95 })
    }

    /// `"off"` (or empty) → `None`; `"300ms,1s"` → p50 300 ms, p95 1 s; `"50ms"` → fixed.
    pub fn parse(s: &str) -> Result<Option<LatencyModel>, String> {
        let s = s.trim();
        if s.is_empty() || s.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let (p50, p95) = match s.split_once(',') {
            Some((a, b)) => (duration(a)?, duration(b)?),
            None => (duration(s)?, duration(s)?),
        };
        LatencyModel::new(p50, p95).map(Some).ok_or_else(|| {
            format!("latency {s:?}: want \"<p50>,<p95>\" with 0 < p50 <= p95, e.g. \"300ms,1s\"")
        })
    }

    pub fn p50(&self) -> Duration {
        self.p50
    }

    pub fn p95(&self) -> Duration {
        self.p95
    }

    /// One delay drawn from the model.
    pub fn sample(&self, rng: &mut impl Rng) -> Duration {
        let mu = self.p50.as_secs_f64().ln();
        let sigma = (self.p95.as_secs_f64() / self.p50.as_secs_f64()).ln() / Z95;
        // Box–Muller; 1 - u keeps ln away from 0.
        let (u1, u2): (f64, f64) = (1.0 - rng.random::<f64>(), rng.random::<f64>());
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        let secs = (mu + sigma * z).exp();
        Duration::from_secs_f64(secs.min(self.p95.as_secs_f64() * MAX_OVER_P95))
    }
}

impl std::fmt::Display for LatencyModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "log-normal, p50 {} ms, p95 {} ms",
            self.p50.as_millis(),
            self.p95.as_millis()
        )
    }
}

/// `"300ms"`, `"1s"`, `"1.5s"`.
fn duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, scale) = if let Some(ms) = s.strip_suffix("ms") {
        (ms, 1e-3)
    } else if let Some(secs) = s.strip_suffix('s') {
        (secs, 1.0)
    } else {
        return Err(format!("latency {s:?}: give a unit, ms or s"));
    };
    number
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0 && *v * scale < 3600.0)
        .map(|v| Duration::from_secs_f64(v * scale))
        .ok_or_else(|| format!("latency {s:?}: not a duration"))
}

/// Middleware on the `/v1` routes: wait a drawn delay, then answer.
pub(crate) async fn delay(State(sandbox): State<Sandbox>, req: Request, next: Next) -> Response {
    if let Some(model) = sandbox.inner.latency {
        let wait = model.sample(&mut rand::rng());
        tokio::time::sleep(wait).await;
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn parses_the_documented_forms_and_refuses_the_rest() {
        let ms = Duration::from_millis;
        assert_eq!(LatencyModel::parse("off"), Ok(None));
        assert_eq!(LatencyModel::parse(""), Ok(None));
        assert_eq!(
            LatencyModel::parse("300ms,1s"),
            Ok(LatencyModel::new(ms(300), ms(1000)))
        );
        assert_eq!(
            LatencyModel::parse(" 1.5s , 2s "),
            Ok(LatencyModel::new(ms(1500), ms(2000)))
        );
        assert_eq!(
            LatencyModel::parse("50ms"),
            Ok(LatencyModel::new(ms(50), ms(50)))
        );
        for bad in ["1s,300ms", "0ms,1s", "300", "fast", "-1s,2s", "300ms,"] {
            assert!(LatencyModel::parse(bad).is_err(), "{bad}");
        }
    }

    /// The drawn delays have the p50 and p95 asked for (a fixed seed: the same draws every
    /// run, so this cannot flake).
    #[test]
    fn samples_have_the_configured_percentiles() {
        let model = LatencyModel::new(Duration::from_millis(300), Duration::from_secs(1))
            .expect("valid model");
        let mut rng = rand::rngs::StdRng::seed_from_u64(15);
        let mut ms: Vec<f64> = (0..20_000)
            .map(|_| model.sample(&mut rng).as_secs_f64() * 1000.0)
            .collect();
        ms.sort_by(f64::total_cmp);
        let (p50, p95) = (ms[ms.len() / 2], ms[ms.len() * 95 / 100]);
        assert!((285.0..315.0).contains(&p50), "p50 {p50}");
        assert!((930.0..1070.0).contains(&p95), "p95 {p95}");
        assert!(ms[ms.len() - 1] <= 10_000.0, "capped at 10 × p95");
    }

    #[test]
    fn equal_percentiles_are_a_fixed_delay() {
        let model = LatencyModel::new(Duration::from_millis(50), Duration::from_millis(50))
            .expect("valid model");
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for _ in 0..100 {
            let d = model.sample(&mut rng).as_secs_f64();
            assert!((d - 0.05).abs() < 1e-9, "{d}");
        }
    }
}
