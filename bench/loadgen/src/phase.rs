//! Running one kind of request many times, at a fixed rate or as fast as it goes, and what the
//! run measured.

use futures::future::BoxFuture;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one request reported.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    pub latency: Duration,
    pub ok: bool,
    /// `X-Db-Round-Trips` of the answer, if it had one.
    pub round_trips: Option<u32>,
}

/// How requests are sent.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// Open loop: request i is due at start + i/rate whatever came back before, and its latency
    /// counts from when it was due, so a stall shows in the percentiles instead of slowing the
    /// sender down (no coordinated omission).
    Rate(f64),
    /// Closed loop: this many requests in flight, each worker sending its next as soon as the
    /// previous answer arrived.
    Max(usize),
}

impl std::fmt::Display for Pace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pace::Rate(r) => write!(f, "{r:.0}/s"),
            Pace::Max(c) => write!(f, "max@{c}"),
        }
    }
}

/// One request of a phase: item `i` of the prepared work.
pub type Job = Arc<dyn Fn(usize) -> BoxFuture<'static, Sample> + Send + Sync>;

/// Runs `job(0..n)` at `pace`; returns the samples (in completion order) and the wall time.
pub async fn run(n: usize, pace: Pace, job: Job) -> (Vec<Sample>, Duration) {
    let started = Instant::now();
    let samples = match pace {
        Pace::Rate(rate) => {
            let mut tasks = Vec::with_capacity(n);
            for i in 0..n {
                let due = started + Duration::from_secs_f64(i as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
                let job = job.clone();
                tasks.push(tokio::spawn(async move {
                    let mut s = job(i).await;
                    // From when it was due, not from when the sender got round to it.
                    s.latency = due.elapsed();
                    s
                }));
            }
            let mut out = Vec::with_capacity(n);
            for t in tasks {
                out.push(t.await.unwrap_or_default());
            }
            out
        }
        Pace::Max(workers) => {
            let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let mut tasks = Vec::new();
            for _ in 0..workers.max(1) {
                let (next, job) = (next.clone(), job.clone());
                tasks.push(tokio::spawn(async move {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= n {
                            break out;
                        }
                        out.push(job(i).await);
                    }
                }));
            }
            let mut out = Vec::with_capacity(n);
            for t in tasks {
                out.extend(t.await.unwrap_or_default());
            }
            out
        }
    };
    (samples, started.elapsed())
}

/// Times one request future and reads its round-trip header.
pub async fn timed(req: reqwest::RequestBuilder) -> Sample {
    let started = Instant::now();
    match req.send().await {
        Ok(resp) => {
            let ok = resp.status().is_success();
            let round_trips = resp
                .headers()
                .get("x-db-round-trips")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
            // The body is part of the answer: read it before stopping the clock.
            let ok = ok && resp.bytes().await.is_ok();
            Sample {
                latency: started.elapsed(),
                ok,
                round_trips,
            }
        }
        Err(_) => Sample {
            latency: started.elapsed(),
            ok: false,
            round_trips: None,
        },
    }
}

/// The figures of one phase.
#[derive(Debug, Clone)]
pub struct Summary {
    pub requests: usize,
    pub errors: usize,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
    /// Mean `X-Db-Round-Trips` over the answers that carried it.
    pub round_trips: Option<f64>,
}

impl Summary {
    pub fn of(samples: &[Sample], wall: Duration) -> Summary {
        let mut ms: Vec<f64> = samples
            .iter()
            .map(|s| s.latency.as_secs_f64() * 1000.0)
            .collect();
        ms.sort_by(f64::total_cmp);
        let rts: Vec<f64> = samples
            .iter()
            .filter_map(|s| s.round_trips.map(f64::from))
            .collect();
        Summary {
            requests: samples.len(),
            errors: samples.iter().filter(|s| !s.ok).count(),
            per_second: samples.len() as f64 / wall.as_secs_f64().max(1e-9),
            p50_ms: percentile(&ms, 0.50),
            p95_ms: percentile(&ms, 0.95),
            p99_ms: percentile(&ms, 0.99),
            mean_ms: ms.iter().sum::<f64>() / ms.len().max(1) as f64,
            round_trips: (!rts.is_empty()).then(|| rts.iter().sum::<f64>() / rts.len() as f64),
        }
    }
}

/// Nearest-rank percentile of sorted values (NaN when there are none).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.50), 50.0);
        assert_eq!(percentile(&v, 0.95), 95.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
        assert!(percentile(&[], 0.5).is_nan());
    }

    #[test]
    fn summary_counts_errors_and_averages_round_trips() {
        let s = |ms, ok, rt| Sample {
            latency: Duration::from_millis(ms),
            ok,
            round_trips: rt,
        };
        let sum = Summary::of(
            &[
                s(10, true, Some(2)),
                s(20, false, None),
                s(30, true, Some(3)),
            ],
            Duration::from_secs(2),
        );
        assert_eq!((sum.requests, sum.errors), (3, 1));
        assert_eq!(sum.per_second, 1.5);
        assert_eq!(sum.round_trips, Some(2.5));
        assert_eq!(sum.p50_ms, 20.0);
    }

    #[tokio::test]
    async fn every_item_runs_exactly_once_in_both_paces() {
        for pace in [Pace::Rate(10_000.0), Pace::Max(7)] {
            let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
            let s2 = seen.clone();
            let job: Job = Arc::new(move |i| {
                let seen = s2.clone();
                Box::pin(async move {
                    seen.lock().map(|mut v| v.push(i)).ok();
                    Sample {
                        ok: true,
                        ..Sample::default()
                    }
                })
            });
            let (samples, _) = run(50, pace, job).await;
            assert_eq!(samples.len(), 50);
            let mut v = seen.lock().map(|v| v.clone()).unwrap_or_default();
            v.sort_unstable();
            assert_eq!(v, (0..50).collect::<Vec<_>>(), "{pace}");
        }
    }
}
