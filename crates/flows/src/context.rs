//! Per-request context: request id, trace context, the fields of the request's summary log
//! line, and the database round-trip counter.
//!
//! It lives in a task-local so flows can record what they learn (the provider transaction id,
//! the enrollment id, ...) without every function taking a logger argument, and
//! [`to_completion`] carries it into the detached task that finishes a confirm after a client
//! disconnects, so that work is still logged and counted against the request that started it.

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
    /// Detached work ([`to_completion`]) of this request still running: the request's summary line
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
    /// Whether detached work of this request ([`to_completion`]) is still running.
    pub fn detached_running(&self) -> bool {
        *self.0.detached.borrow() > 0
    }
    /// Wait until all detached work of this request has finished.
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

/// Run `fut` to its end even if the request is dropped: that is how a confirm finishes after the
/// client left. While the caller awaits it, `fut` is polled in place, in the request's own task
/// (no task of its own, so no hand-over between threads on the way in and out); if the
/// caller's future is dropped first, what is left of `fut` is spawned as a detached task that
/// keeps the request context. Until `fut` ends, the request counts it as running detached work
/// ([`RequestCtx::detached_running`]), so its summary line can wait for it.
pub fn to_completion<F>(fut: F) -> ToCompletion<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let ctx = current();
    if let Some(ctx) = &ctx {
        ctx.0.detached.send_modify(|n| *n += 1);
    }
    ToCompletion {
        // Boxed once, here: a confirm's future is kilobytes, and moving it into a task (or
        // through the layers below) would otherwise copy all of it.
        fut: Some(Box::pin(fut)),
        running: ctx.map(Detached),
        polling: false,
    }
}

/// See [`to_completion`].
pub struct ToCompletion<T: 'static> {
    /// `None` once it has ended.
    fut: Option<std::pin::Pin<Box<dyn Future<Output = T> + Send>>>,
    /// Counts the work as the request's detached work until dropped.
    running: Option<Detached>,
    /// Set while `fut` is being polled: a drop then comes from a panic inside it, and a
    /// future that panicked is not polled again.
    polling: bool,
}

impl<T: 'static> Future for ToCompletion<T> {
    type Output = T;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<T> {
        let this = &mut *self;
        let fut = this.fut.as_mut().expect("polled after it ended");
        this.polling = true;
        let out = fut.as_mut().poll(cx);
        this.polling = false;
        if out.is_ready() {
            this.fut = None;
            this.running = None;
        }
        out
    }
}

impl<T: 'static> Drop for ToCompletion<T> {
    fn drop(&mut self) {
        let (Some(fut), false) = (self.fut.take(), self.polling) else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return; // the runtime is shutting down: nothing can run it
        };
        let running = self.running.take();
        rt.spawn(async move {
            match running {
                Some(running) => {
                    let ctx = running.0.clone();
                    ctx.scope(fut).await;
                    drop(running);
                }
                None => {
                    fut.await;
                }
            }
        });
    }
}
/// One piece of a request's detached work, counted until dropped (however it ends, a panic
/// included).
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

    /// Awaited to its end, the work runs in the request's own task and is no longer counted
    /// once it returns.
    #[tokio::test]
    async fn work_awaited_to_its_end_runs_in_place() {
        let ctx = RequestCtx::new("req-inline".into(), None);
        let request_task = tokio::spawn(ctx.clone().scope(async {
            let work = to_completion(async {
                tokio::task::yield_now().await;
                (
                    current().map(|c| c.request_id().to_owned()),
                    tokio::task::id(),
                )
            });
            assert!(current().unwrap().detached_running());
            (work.await, tokio::task::id())
        }));
        let ((request_id, work_task), handler_task) = request_task.await.unwrap();
        assert_eq!(request_id.as_deref(), Some("req-inline"));
        assert_eq!(work_task, handler_task, "no task of its own");
        assert!(!ctx.detached_running());
    }

    /// Dropped mid-way (the client left), the rest runs detached, under the request's context,
    /// and the request can wait for it.
    #[tokio::test]
    async fn work_dropped_mid_way_finishes_detached() {
        let ctx = RequestCtx::new("req-gone".into(), None);
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        ctx.clone()
            .scope(async move {
                let mut work = std::pin::pin!(to_completion(async move {
                    wait.await.unwrap();
                    let _ = done_tx.send(current().map(|c| c.request_id().to_owned()));
                }));
                // Polled once (it waits on `go`), then dropped, as a server drops a request.
                assert!(futures::poll!(work.as_mut()).is_pending());
            })
            .await;
        assert!(ctx.detached_running(), "the rest is still running");
        go.send(()).unwrap();
        assert_eq!(done_rx.await.unwrap().as_deref(), Some("req-gone"));
        tokio::time::timeout(Duration::from_secs(5), ctx.detached_done())
            .await
            .expect("the detached rest ends and stops being counted");
    }

    /// A panic inside the work reaches the caller (the HTTP layer turns it into a 500); the
    /// panicked future is not run again and stops being counted.
    #[tokio::test]
    async fn a_panic_in_the_work_is_the_callers() {
        let ctx = RequestCtx::new("req-panic".into(), None);
        let caught = tokio::spawn(ctx.clone().scope(async {
            to_completion(async {
                panic!("boom");
            })
            .await
        }))
        .await;
        assert!(caught.unwrap_err().is_panic());
        assert!(!ctx.detached_running());
    }

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
}
