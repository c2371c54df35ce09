//! The edge: accepting connections and speaking HTTP with the limits that make the service safe
//! to expose (`EdgeLimits` in the configuration).
//!
//! - **Connection cap**: at most `HTTP_MAX_CONNECTIONS` connections are served at once; the
//!   accept loop waits for a free slot, so further clients wait in the kernel's queue instead of
//!   costing memory and file descriptors.
//! - **Header-read timeout**: a connection must deliver a request's complete headers within
//!   `HTTP_HEADER_READ_TIMEOUT_SECONDS`, counted from the accept (first request) or from the
//!   first byte of the next request on a kept-alive connection. Half-open and dribbling
//!   ("slowloris") connections are closed when it passes.
//! - **Keep-alive idle timeout**: a connection with no request in flight and no byte received
//!   for `HTTP_KEEPALIVE_TIMEOUT_SECONDS` is closed. On HTTP/2, where the client sends control
//!   frames (pings, settings acknowledgements, window updates) between requests, it is counted
//!   from the last answer: only a request keeps the connection open.
//! - **Graceful shutdown**: when `shutdown` resolves the listener is closed, every connection
//!   is told to finish its in-flight request and close, and after `SHUTDOWN_GRACE_SECONDS` the
//!   rest are cut.
//!
//! (The per-request timeout is a middleware of the router, so its answer is a problem+json
//! written by the same code as every other error.)
//!
//! Each connection tracks its phase — awaiting headers, requests in flight, idle — in a
//! [`ConnState`]: the socket wrapper sees bytes arrive, the service wrapper sees requests start
//! and end, and the connection's task sleeps until the current phase's deadline. That task
//! polls hyper's connection through [`OwnWakes`], so the wake-ups hyper gives its own task
//! while it runs cost an immediate second poll, not a yield that rouses another worker.

use crate::config::EdgeLimits;
use crate::ops::metrics::ConnectionTimeout;
use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt;

/// What a connection is doing, and until when it may keep doing it.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for (the rest of) a request's headers.
    AwaitingHeaders { deadline: Instant },
    /// This many requests are being answered: no deadline (the request timeout bounds them).
    InFlight(usize),
    /// Kept alive between requests.
    Idle { deadline: Instant },
}

/// The phase, the deadline the connection's task is sleeping until (None: it waits for a
/// change without a timer), and whether that task is inside its poll of the connection.
#[derive(Debug, Clone, Copy)]
struct Tracked {
    phase: Phase,
    armed: Option<Instant>,
    /// The connection's task is polling hyper's connection: a change made now comes from that
    /// very poll (HTTP/1: bytes read, a request started or answered) and is read when the poll
    /// returns, so it needs no wake-up. A wake-up of the running task would make tokio re-queue
    /// it as a yield and rouse a parked worker for nothing, once per request.
    polling: bool,
    /// The connection speaks HTTP/2 (known from its first request). Its bytes are not all
    /// requests: the client acknowledges settings, answers and sends pings and opens flow-control
    /// windows between requests, so bytes on an idle HTTP/2 connection do not start a header
    /// deadline (a request does, when hyper has read its HEADERS), nor do they keep it alive.
    multiplexed: bool,
}

impl Phase {
    fn deadline(self) -> Option<(Instant, ConnectionTimeout)> {
        match self {
            Phase::AwaitingHeaders { deadline } => Some((deadline, ConnectionTimeout::Header)),
            Phase::Idle { deadline } => Some((deadline, ConnectionTimeout::Idle)),
            Phase::InFlight(_) => None,
        }
    }
}

struct ConnState {
    tracked: Mutex<Tracked>,
    changed: Notify,
    limits: EdgeLimits,
}

impl ConnState {
    fn new(limits: EdgeLimits) -> Self {
        ConnState {
            tracked: Mutex::new(Tracked {
                phase: Phase::AwaitingHeaders {
                    deadline: Instant::now() + limits.header_read_timeout,
                },
                armed: None,
                polling: false,
                multiplexed: false,
            }),
            changed: Notify::new(),
            limits,
        }
    }

    /// Change the phase. The connection's task is woken only when it is not polling the
    /// connection (the change comes from another task: an HTTP/2 request runs in its own) and
    /// the new deadline comes before the one it sleeps until: a later deadline or none is
    /// found when that timer fires (re-read there). Both are decided under the lock that
    /// [`ConnState::after_poll`] takes, so a change is either seen there or wakes the task.
    /// (hyper's HTTP/2 connection is in practice polled again once a stream ends, answered or
    /// cancelled, but it does not promise that, so the wake-up stays.)
    fn update(&self, f: impl FnOnce(Phase) -> Phase) {
        self.modify(|t| t.phase = f(t.phase));
    }

    /// [`ConnState::update`], for a change of more than the phase made under the same lock.
    fn modify(&self, f: impl FnOnce(&mut Tracked)) {
        let wake = match self.tracked.lock() {
            Ok(mut t) => {
                f(&mut t);
                !t.polling
                    && match (t.phase.deadline(), t.armed) {
                        (Some((deadline, _)), Some(armed)) => deadline < armed,
                        (Some(_), None) => true,
                        (None, _) => false,
                    }
            }
            Err(_) => true,
        };
        if wake {
            self.changed.notify_one();
        }
    }

    /// Bytes arrived: an idle HTTP/1 connection starts a request, whose headers are now timed.
    fn received(&self) {
        let starts_request = self
            .tracked
            .lock()
            .is_ok_and(|t| matches!(t.phase, Phase::Idle { .. }) && !t.multiplexed);
        if starts_request {
            let deadline = Instant::now() + self.limits.header_read_timeout;
            self.update(|p| match p {
                Phase::Idle { .. } => Phase::AwaitingHeaders { deadline },
                other => other,
            });
        }
    }

    fn request_started(self: &Arc<Self>, version: hyper::Version) -> InFlightGuard {
        self.modify(|t| {
            t.multiplexed |= version == hyper::Version::HTTP_2;
            t.phase = match t.phase {
                Phase::InFlight(n) => Phase::InFlight(n + 1),
                _ => Phase::InFlight(1),
            };
        });
        InFlightGuard(self.clone())
    }

    /// The current deadline and what passing it means, or None while requests are in flight.
    fn deadline(&self) -> Option<(Instant, ConnectionTimeout)> {
        self.tracked.lock().ok().and_then(|t| t.phase.deadline())
    }

    /// The connection's task is about to poll the connection.
    fn before_poll(&self) {
        if let Ok(mut t) = self.tracked.lock() {
            t.polling = true;
        }
    }

    /// The poll returned: the deadline the connection's task sleeps until from now on (see
    /// [`ConnState::update`]).
    fn after_poll(&self) -> Option<(Instant, ConnectionTimeout)> {
        let mut t = self.tracked.lock().ok()?;
        t.polling = false;
        let deadline = t.phase.deadline();
        t.armed = deadline.map(|(at, _)| at);
        deadline
    }
}

/// Ends a request's in-flight phase even when hyper drops the request's future (the client
/// went away).
struct InFlightGuard(Arc<ConnState>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let deadline = Instant::now() + self.0.limits.keepalive_timeout;
        self.0.update(|p| match p {
            Phase::InFlight(n) if n > 1 => Phase::InFlight(n - 1),
            _ => Phase::Idle { deadline },
        });
    }
}

/// The socket, reporting received bytes to its [`ConnState`].
struct Watched {
    inner: TcpStream,
    state: Arc<ConnState>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.received();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Counts the connection in the open-connections gauge while it lives.
struct OpenConnection;

impl OpenConnection {
    fn new() -> Self {
        crate::ops::metrics::record_connection(1.0);
        OpenConnection
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        crate::ops::metrics::record_connection(-1.0);
    }
}

async fn serve_connection(
    stream: TcpStream,
    remote: SocketAddr,
    router: Router,
    limits: EdgeLimits,
    mut stop: watch::Receiver<bool>,
) {
    let _open = OpenConnection::new();
    let _ = stream.set_nodelay(true);
    let state = Arc::new(ConnState::new(limits));
    let io = TokioIo::new(Watched {
        inner: stream,
        state: state.clone(),
    });
    let svc_state = state.clone();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(remote));
        let guard = svc_state.request_started(req.version());
        let answer = router.clone().oneshot(req.map(axum::body::Body::new));
        async move {
            let resp = answer.await;
            drop(guard);
            resp
        }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let mut conn = pin!(builder.serve_connection(io, service));
    let mut stop = pin!(stop.wait_for(|s| *s));
    let mut stopping = false;
    let mut changed = pin!(state.changed.notified());
    // Re-armed, not re-created, as the phase moves; its first deadline is replaced before it
    // is first polled.
    let mut timer = pin!(tokio::time::sleep_until(Instant::now()));
    let own_wakes = OwnWakes::new();
    // One poll function rather than a `select!`: the phase changes that the connection's own
    // poll makes are read right after it, without waking this task (see `Tracked::polling`).
    let ended = std::future::poll_fn(|cx| {
        loop {
            if !stopping && stop.as_mut().poll(cx).is_ready() {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            state.before_poll();
            let polled = own_wakes.poll(conn.as_mut(), cx);
            let deadline = state.after_poll();
            if polled.is_ready() {
                return Poll::Ready(None);
            }
            if changed.as_mut().poll(cx).is_ready() {
                // Another task moved the phase: take the next notification, re-arm.
                changed.set(state.changed.notified());
                continue;
            }
            let Some((at, _)) = deadline else {
                return Poll::Pending;
            };
            if timer.deadline() != at {
                timer.as_mut().reset(at);
            }
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            // Re-read: a request may have started at the very deadline.
            if let Some((at, reason)) = state.deadline()
                && Instant::now() >= at
            {
                return Poll::Ready(Some(reason));
            }
        }
    })
    .await;
    if let Some(reason) = ended {
        crate::ops::metrics::record_connection_timeout(reason);
        tracing::debug!(target: "coursepay::edge", client = %remote, reason = reason.as_str(), "connection closed: timeout");
        // Returning drops the connection, which closes the socket.
    }
}

/// Polls a future so that the wake-ups it gives itself while being polled cost no more than a
/// second poll at once.
///
/// hyper's HTTP/1 connection wakes itself when the handler, running inside it, takes a chunk
/// of the request's body (its body channel tells the sender there is room): once per request
/// that has a body. tokio takes a task woken while it runs for a task that yields: it queues
/// it behind the others and rouses a parked worker to steal it, which wakes another thread,
/// finds nothing to do and parks it again (two futex calls and two context switches per
/// request on an idle server). Wrapped here, such a wake only marks the future for another
/// poll; a wake from anywhere else (the socket, a timer, another task) reaches the task as
/// before.
struct OwnWakes {
    shared: Arc<OwnWakesShared>,
    waker: Waker,
}

struct OwnWakesShared {
    /// [`OWN_IDLE`], [`OWN_POLLING`] or [`OWN_WOKEN`].
    state: AtomicU8,
    /// The task's own waker, for wakes that come while the future is not being polled.
    task: Mutex<Option<Waker>>,
}

const OWN_IDLE: u8 = 0;
const OWN_POLLING: u8 = 1;
const OWN_WOKEN: u8 = 2;
/// Polls in a row before a future that keeps waking itself is left to the scheduler (as a
/// yield), so one connection cannot hold a worker.
const OWN_REPOLLS: usize = 16;

impl std::task::Wake for OwnWakesShared {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        match self.state.compare_exchange(
            OWN_POLLING,
            OWN_WOKEN,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            // Being polled: the poller sees OWN_WOKEN when the poll returns.
            Ok(_) | Err(OWN_WOKEN) => {}
            Err(_) => {
                let task = self.task.lock().ok().and_then(|t| t.clone());
                if let Some(task) = task {
                    task.wake();
                }
            }
        }
    }
}

impl OwnWakes {
    fn new() -> Self {
        let shared = Arc::new(OwnWakesShared {
            state: AtomicU8::new(OWN_IDLE),
            task: Mutex::new(None),
        });
        let waker = Waker::from(shared.clone());
        OwnWakes { shared, waker }
    }

    fn poll<F: Future>(&self, mut fut: Pin<&mut F>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // Stored before the poll: a wake after it (state back to idle) must find this task.
        if let Ok(mut task) = self.shared.task.lock()
            && !task.as_ref().is_some_and(|t| t.will_wake(cx.waker()))
        {
            *task = Some(cx.waker().clone());
        }
        let mut own = Context::from_waker(&self.waker);
        for _ in 0..OWN_REPOLLS {
            self.shared.state.store(OWN_POLLING, Ordering::Release);
            if let Poll::Ready(out) = fut.as_mut().poll(&mut own) {
                self.shared.state.store(OWN_IDLE, Ordering::Release);
                return Poll::Ready(out);
            }
            if self
                .shared
                .state
                .compare_exchange(OWN_POLLING, OWN_IDLE, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return Poll::Pending;
            }
            // Woken while it was being polled: poll again now.
        }
        self.shared.state.store(OWN_IDLE, Ordering::Release);
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Serve `router` on `listener` with `limits` until `shutdown` resolves, then drain: stop
/// accepting, let in-flight requests finish (each connection closes after its answer) and cut
/// what is left after `limits.shutdown_grace`. Returns how many connections were cut.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: EdgeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<usize> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        // Reap finished connections so the set does not grow.
        while conns.try_join_next().is_some() {}
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break, // the semaphore is never closed
            },
        };
        let (stream, remote) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(target: "coursepay::edge", error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let router = router.clone();
        let stop = stop_rx.clone();
        conns.spawn(async move {
            serve_connection(stream, remote, router, limits, stop).await;
            drop(permit);
        });
    }
    drop(listener);
    stop_tx.send_replace(true);
    let in_flight = conns.len();
    if in_flight > 0 {
        tracing::info!(target: "coursepay::shutdown", connections = in_flight, "stopped accepting; finishing in-flight requests");
    }
    let grace = tokio::time::sleep(limits.shutdown_grace);
    tokio::pin!(grace);
    loop {
        tokio::select! {
            next = conns.join_next() => if next.is_none() { return Ok(0) },
            _ = &mut grace => {
                let cut = conns.len();
                tracing::warn!(target: "coursepay::shutdown", connections = cut, "grace period over: closing connections still busy");
                conns.abort_all();
                return Ok(cut);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A task waker that counts its wakes.
    #[derive(Default)]
    struct Counted(AtomicUsize);

    impl std::task::Wake for Counted {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn task() -> (Arc<Counted>, Waker) {
        let counted = Arc::new(Counted::default());
        (counted.clone(), Waker::from(counted))
    }

    /// Pending for `wakes` polls, each time waking itself first; then ready with the polls.
    fn waking_itself(wakes: usize) -> impl Future<Output = usize> {
        let mut polls = 0;
        std::future::poll_fn(move |cx| {
            polls += 1;
            if polls > wakes {
                return Poll::Ready(polls);
            }
            cx.waker().wake_by_ref();
            Poll::Pending
        })
    }

    #[test]
    fn a_wake_during_the_poll_is_a_second_poll_not_a_wake_of_the_task() {
        let (counted, waker) = task();
        let mut cx = Context::from_waker(&waker);
        let own = OwnWakes::new();
        let mut fut = pin!(waking_itself(3));
        assert_eq!(own.poll(fut.as_mut(), &mut cx), Poll::Ready(4));
        assert_eq!(counted.0.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_future_that_keeps_waking_itself_is_left_to_the_scheduler() {
        let (counted, waker) = task();
        let mut cx = Context::from_waker(&waker);
        let own = OwnWakes::new();
        let mut fut = pin!(waking_itself(usize::MAX));
        assert!(own.poll(fut.as_mut(), &mut cx).is_pending());
        assert_eq!(
            counted.0.load(Ordering::SeqCst),
            1,
            "woken once, as a yield"
        );
    }

    #[test]
    fn a_wake_after_the_poll_reaches_the_task() {
        let (counted, waker) = task();
        let mut cx = Context::from_waker(&waker);
        let own = OwnWakes::new();
        let stored: Arc<Mutex<Option<Waker>>> = Arc::default();
        let keep = stored.clone();
        let mut fut = pin!(std::future::poll_fn(move |cx| {
            *keep.lock().unwrap() = Some(cx.waker().clone());
            Poll::<()>::Pending
        }));
        assert!(own.poll(fut.as_mut(), &mut cx).is_pending());
        assert_eq!(counted.0.load(Ordering::SeqCst), 0);
        // From another thread, as a socket's readiness or another task would.
        let later = stored.lock().unwrap().take().unwrap();
        std::thread::spawn(move || later.wake()).join().unwrap();
        assert_eq!(counted.0.load(Ordering::SeqCst), 1);
    }

    /// The task's waker can change between polls (the task moved): a later wake reaches the
    /// newest one.
    #[test]
    fn a_wake_reaches_the_waker_of_the_latest_poll() {
        let (first, first_waker) = task();
        let (second, second_waker) = task();
        let own = OwnWakes::new();
        let stored: Arc<Mutex<Option<Waker>>> = Arc::default();
        let keep = stored.clone();
        let mut fut = pin!(std::future::poll_fn(move |cx| {
            *keep.lock().unwrap() = Some(cx.waker().clone());
            Poll::<()>::Pending
        }));
        assert!(
            own.poll(fut.as_mut(), &mut Context::from_waker(&first_waker))
                .is_pending()
        );
        assert!(
            own.poll(fut.as_mut(), &mut Context::from_waker(&second_waker))
                .is_pending()
        );
        stored.lock().unwrap().take().unwrap().wake();
        assert_eq!(first.0.load(Ordering::SeqCst), 0);
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
    }
}
