//! Per-request context: request id, trace context, the fields of the request's summary log
//! line, and the database round-trip counter.
//!
//! It lives in a task-local so flows can record what they learn (the provider transaction id,
//! the enrollment id, ...) without every function taking a logger argument, and [`spawn`]
//! carries it into the detached task that finishes a confirm after a client disconnects, so
//! that work is still logged and counted against the request that started it.

use serde::Serialize;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use store::roundtrips::Counter;

#[derive(Debug, Default, Clone, Serialize)]
pub struct LogFields {
    pub function_name: Option<&'static str>,
    pub provider: Option<&'static str>,
    pub provider_tx_id: Option<String>,
    pub enrollment_id: Option<String>,
    pub course_id: Option<String>,
    pub user_id: Option<String>,
    pub order_id: Option<String>,
    pub status: Option<String>,
    pub error_code: Option<&'static str>,
    /// Set by the confirm flow when it has finished and counted itself
    /// (`crate::ops::metrics::record_confirm`): the middleware then counts nothing more.
    #[serde(skip)]
    pub confirm_outcome: Option<crate::ops::metrics::ConfirmOutcome>,
}

#[derive(Debug)]
struct Inner {
    request_id: String,
    traceparent: Option<String>,
    trace_id: Option<String>,
    fields: Mutex<LogFields>,
    roundtrips: Counter,
    started: Instant,
    /// Detached tasks ([`spawn`]) of this request still running: the request's summary line
    /// waits for them when the client leaves, so it carries what the work really did.
    detached: tokio::sync::watch::Sender<usize>,
}

#[derive(Debug, Clone)]
pub struct RequestCtx(Arc<Inner>);

tokio::task_local! {
    static CTX: RequestCtx;
}

impl RequestCtx {
    pub fn new(request_id: String, traceparent: Option<String>) -> Self {
        let trace_id = traceparent.as_deref().and_then(trace_id_of);
        Self(Arc::new(Inner {
            request_id,
            traceparent,
            trace_id,
            fields: Mutex::new(LogFields::default()),
            roundtrips: Counter::new(),
            started: Instant::now(),
            detached: tokio::sync::watch::Sender::new(0),
        }))
    }

    /// A context for work no request started (reconciler, CLI).
    pub fn background(name: &'static str) -> Self {
        let ctx = Self::new(format!("bg-{}", uuid::Uuid::now_v7().simple()), None);
        ctx.record(|f| f.function_name = Some(name));
        ctx
    }

    pub fn request_id(&self) -> &str {
        &self.0.request_id
    }
    pub fn traceparent(&self) -> Option<&str> {
        self.0.traceparent.as_deref()
    }
    pub fn trace_id(&self) -> Option<&str> {
        self.0.trace_id.as_deref()
    }
    /// Time since the request arrived.
    pub fn elapsed(&self) -> Duration {
        self.0.started.elapsed()
    }
    /// Whether a detached task of this request is still running.
    pub fn detached_running(&self) -> bool {
        *self.0.detached.borrow() > 0
    }
    /// Wait until every detached task of this request has finished.
    pub async fn detached_done(&self) {
        let mut rx = self.0.detached.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }
    pub fn roundtrips(&self) -> u32 {
        self.0.roundtrips.get()
    }
    /// Read the fields in place (the summary line borrows them instead of cloning each one).
    pub fn with_fields<T>(&self, f: impl FnOnce(&LogFields) -> T) -> T {
        let guard = self
            .0
            .fields
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&guard)
    }
    pub fn record(&self, f: impl FnOnce(&mut LogFields)) {
        if let Ok(mut guard) = self.0.fields.lock() {
            f(&mut guard);
        }
    }

    /// Run `fut` with this context (and its round-trip counter) current.
    pub fn scope<F: Future>(&self, fut: F) -> impl Future<Output = F::Output> + use<F> {
        CTX.scope(self.clone(), self.0.roundtrips.scope(fut))
    }
}

/// The current request's context, if any.
pub fn current() -> Option<RequestCtx> {
    CTX.try_with(|c| c.clone()).ok()
}

/// Record into the current request's log fields (no-op outside a request).
pub fn record(f: impl FnOnce(&mut LogFields)) {
    if let Some(ctx) = current() {
        ctx.record(f);
    }
}

pub fn request_id() -> Option<String> {
    current().map(|c| c.request_id().to_owned())
}

/// Spawn `fut` as a detached task that keeps the current request context. Dropping the
/// returned handle does not cancel it: that is how a confirm finishes after the client left.
pub fn spawn<F>(fut: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    // Boxed once, here: a confirm's future is kilobytes, and every layer below (the wrapper,
    // the two task-local scopes, tokio's task cell) would otherwise copy all of it.
    let fut = Box::pin(fut);
    match current() {
        Some(ctx) => {
            ctx.0.detached.send_modify(|n| *n += 1);
            tokio::spawn(async move {
                // Counted down however the task ends (a panic included).
                let _running = Detached(ctx.clone());
                ctx.scope(fut).await
            })
        }
        None => tokio::spawn(fut),
    }
}

struct Detached(RequestCtx);

impl Drop for Detached {
    fn drop(&mut self) {
        self.0.0.detached.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// The trace id of a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`), if well formed.
pub fn trace_id_of(traceparent: &str) -> Option<String> {
    let parts: Vec<&str> = traceparent.trim().split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    match parts.as_slice() {
        [version, trace, span, flags]
            if hex(version, 2)
                && *version != "ff"
                && hex(trace, 32)
                && hex(span, 16)
                && hex(flags, 2)
                && trace.bytes().any(|b| b != b'0')
                && span.bytes().any(|b| b != b'0') =>
        {
            Some(trace.to_ascii_lowercase())
        }
        _ => None,
    }
}

/// A client-supplied X-Request-Id is kept only when it is short and harmless in a log line.
pub fn valid_request_id(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_parsing() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            trace_id_of(tp).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(
            trace_id_of("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            None
        );
        assert_eq!(trace_id_of("garbage"), None);
        assert_eq!(
            trace_id_of("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            None
        );
    }

    #[test]
    fn request_id_rules() {
        assert!(valid_request_id("abc-123:x.y_z"));
        assert!(!valid_request_id(""));
        assert!(!valid_request_id(&"a".repeat(129)));
        assert!(!valid_request_id("a b"));
        assert!(!valid_request_id("a\nb"));
    }

    #[tokio::test]
    async fn spawned_work_keeps_the_context() {
        let ctx = RequestCtx::new("r1".into(), None);
        let seen = ctx
            .scope(async { spawn(async { request_id() }).await.ok().flatten() })
            .await;
        assert_eq!(seen.as_deref(), Some("r1"));
    }
}
