//! Counts database round trips per request (seed §5: "average DB round trips ≤ 3").
//!
//! A round trip is one statement sent to the database; inside a SQLite transaction every
//! statement (BEGIN and COMMIT included) counts, so the figure is honest about SQLite needing
//! a transaction where PostgreSQL needs one CTE. The counter is a task-local so concurrent
//! requests do not mix; code outside a [`scope`] is simply not counted.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

tokio::task_local! {
    static COUNTER: Arc<AtomicU32>;
}

/// A shareable counter; clone it into a spawned task to keep counting there.
#[derive(Debug, Clone, Default)]
pub struct Counter(Arc<AtomicU32>);

impl Counter {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn get(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }
    /// Run `f` with this counter active.
    pub fn scope<F: Future>(&self, f: F) -> impl Future<Output = F::Output> + use<F> {
        COUNTER.scope(self.0.clone(), f)
    }
}

/// Record `n` statements sent. Called by the backends next to each query.
pub fn add(n: u32) {
    let _ = COUNTER.try_with(|c| c.fetch_add(n, Ordering::Relaxed));
}

/// The counter of the current task, if any (to hand to a spawned task).
pub fn current() -> Option<Counter> {
    COUNTER.try_with(|c| Counter(c.clone())).ok()
}

/// The slow-statement threshold (`SLOW_QUERY_MS`, default 200 ms), read once per process.
pub fn slow_threshold() -> std::time::Duration {
    static THRESHOLD: std::sync::OnceLock<std::time::Duration> = std::sync::OnceLock::new();
    *THRESHOLD.get_or_init(|| {
        let ms = std::env::var("SLOW_QUERY_MS")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(200);
        std::time::Duration::from_millis(ms)
    })
}

/// Count one statement (like [`add`]) and time it: the returned guard logs a `slow statement`
/// warning with the statement's name and duration when dropped after more than
/// [`slow_threshold`] (seed §6: "DB deadlock/lock → collect slow logs"). Keep the guard alive
/// for the whole database call (`let _s = statement("claim_order");`). On SQLite the guard of a
/// method spans its transaction and the wait for the one writer connection, so a queue or lock
/// wait shows up under the method's name.
#[must_use = "the statement is timed until the guard is dropped"]
pub fn statement(name: &'static str) -> Timed {
    add(1);
    timer(name)
}

/// Time a call without counting it (its statements are counted one by one, e.g. a SQLite
/// transaction's BEGIN, statements and COMMIT).
#[must_use = "the call is timed until the guard is dropped"]
pub fn timer(name: &'static str) -> Timed {
    Timed {
        name,
        started: std::time::Instant::now(),
    }
}

pub struct Timed {
    name: &'static str,
    started: std::time::Instant,
}

impl Drop for Timed {
    fn drop(&mut self) {
        log_if_slow(self.name, self.started.elapsed(), slow_threshold());
    }
}

fn log_if_slow(name: &'static str, took: std::time::Duration, threshold: std::time::Duration) {
    if took >= threshold {
        tracing::warn!(
            target: "coursepay::db",
            statement = name,
            duration_ms = took.as_millis() as u64,
            threshold_ms = threshold.as_millis() as u64,
            "slow statement"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Duration;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn slow_statements_are_logged_with_name_and_duration() {
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            log_if_slow(
                "claim_order",
                Duration::from_millis(250),
                Duration::from_millis(200),
            );
            log_if_slow(
                "get_order",
                Duration::from_millis(3),
                Duration::from_millis(200),
            );
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 1, "{out}");
        assert_eq!(lines[0]["fields"]["statement"], "claim_order");
        assert_eq!(lines[0]["fields"]["duration_ms"], 250);
        assert_eq!(lines[0]["level"], "WARN");
    }

    #[test]
    fn statement_counts_and_timer_does_not() {
        let c = Counter::new();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(c.scope(async {
            let _a = statement("a");
            let _b = timer("b");
        }));
        assert_eq!(c.get(), 1);
    }
}
