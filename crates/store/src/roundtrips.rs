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
    pub async fn scope<F: Future>(&self, f: F) -> F::Output {
        COUNTER.scope(self.0.clone(), f).await
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
