//! The PostgreSQL connections the store's own statements run on: a small pool of its own.
//!
//! sqlx's pool pings every connection as it goes back (a `Sync` round trip, in a task it
//! spawns for the purpose), whatever the options say: per confirm that was two round trips and
//! two task wake-ups beside the two statements, about a tenth of the service's CPU per confirm
//! (docs/benchmarks.md). The ping is there for connections left mid-statement by a dropped
//! future; this pool knows which those are instead: a lease goes back only when the statement
//! it ran came to an end (a row, or the server's own error). A lease dropped mid-statement, or
//! after an I/O or protocol error, is closed. What else a pool does is kept: at most
//! `max_connections` at once, a bounded wait for one ([`ACQUIRE_TIMEOUT`], then a retryable
//! error), a ping before reusing one idle longer than [`RECHECK_IDLE_AFTER`], and connections
//! retired after [`MAX_LIFETIME`] or [`IDLE_TIMEOUT`] idle, as sqlx's defaults do.
//!
//! Migrations and tests keep using an sqlx pool ([`crate::postgres::PgStore::pool`]).

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A request waiting longer than this for a connection is better answered with a retryable 503
/// than left hanging.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection idle longer than this is pinged before use. Under load connections come back
/// within milliseconds and skip it; after a quiet spell (when a pooler, firewall or server
/// restart may have dropped them) each is checked first.
pub const RECHECK_IDLE_AFTER: Duration = Duration::from_secs(1);

/// Connections are replaced after this long (sqlx's default), so server-side memory a session
/// gathers is given back and a failover's new primary is reached by every connection in time.
pub const MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// A connection unused this long is closed (sqlx's default).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// The statement every new connection runs first: its `search_path` and statement timeout
/// (as statements, not startup parameters, so poolers that drop those still apply them).
pub(crate) const SETUP: &str =
    "SELECT set_config('search_path', $1, false), set_config('statement_timeout', $2, false)";

/// The pool: cheap to clone, shared by every call of one store.
#[derive(Clone)]
pub struct PgConns {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PgConns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConns")
            .field("max", &self.inner.max)
            .field("idle", &self.idle_count())
            .finish()
    }
}

struct Inner {
    options: PgConnectOptions,
    /// `search_path` and `statement_timeout` values for [`SETUP`], if it is run.
    setup: Option<(String, String)>,
    max: u32,
    acquire_timeout: Duration,
    permits: Arc<Semaphore>,
    /// Most recently returned last: reuse takes the warmest, the reaper the coldest.
    idle: Mutex<Vec<Idle>>,
    closed: AtomicBool,
}

struct Idle {
    conn: PgConnection,
    born: Instant,
    since: Instant,
}

/// One connection lent out. Dereferences to the connection; goes back to the pool on drop only
/// if [`Lease::finished`] was called after the last statement started on it.
pub struct Lease {
    conn: Option<PgConnection>,
    born: Instant,
    /// Whether the connection is between statements (see the module docs).
    settled: bool,
    pool: Arc<Inner>,
    _permit: OwnedSemaphorePermit,
}

impl PgConns {
    /// A pool of at most `max` connections, made on demand with `options`, then given
    /// `search_path` and `statement_timeout` by [`SETUP`] if `setup` holds their values. Starts
    /// its reaper on the current runtime, if there is one.
    pub(crate) fn new(
        options: PgConnectOptions,
        setup: Option<(String, String)>,
        max: u32,
        acquire_timeout: Duration,
    ) -> Self {
        let max = max.max(1);
        let inner = Arc::new(Inner {
            options,
            setup,
            max,
            acquire_timeout,
            permits: Arc::new(Semaphore::new(max as usize)),
            idle: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        });
        // Outside a runtime (a store built for a synchronous caller) idle connections are
        // only retired when next taken; inside one, the reaper closes them on time.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(reap(Arc::downgrade(&inner)));
        }
        PgConns { inner }
    }

    /// A connection: an idle one (pinged first if it sat longer than [`RECHECK_IDLE_AFTER`]) or
    /// a new one. Waits at most the pool's acquire timeout in all ([`ACQUIRE_TIMEOUT`] for a
    /// store's own pool).
    pub async fn acquire(&self) -> Result<Lease, sqlx::Error> {
        tokio::time::timeout(self.inner.acquire_timeout, self.acquire_inner())
            .await
            .unwrap_or(Err(sqlx::Error::PoolTimedOut))
    }

    async fn acquire_inner(&self) -> Result<Lease, sqlx::Error> {
        let inner = &self.inner;
        let permit = Arc::clone(&inner.permits)
            .acquire_owned()
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        loop {
            if inner.closed.load(Ordering::Acquire) {
                return Err(sqlx::Error::PoolClosed);
            }
            let Some(mut idle) = inner.idle.lock().expect("pool lock").pop() else {
                break;
            };
            if idle.born.elapsed() >= MAX_LIFETIME || idle.since.elapsed() >= IDLE_TIMEOUT {
                retire(idle.conn);
                continue;
            }
            if idle.since.elapsed() > RECHECK_IDLE_AFTER && idle.conn.ping().await.is_err() {
                continue; // dropped: the socket is gone anyway
            }
            return Ok(Lease::new(idle.conn, idle.born, Arc::clone(inner), permit));
        }
        let mut conn = inner.options.connect().await?;
        if let Some((search_path, timeout_ms)) = &inner.setup {
            sqlx::query(SETUP)
                .bind(search_path)
                .bind(timeout_ms)
                .execute(&mut conn)
                .await?;
        }
        Ok(Lease::new(conn, Instant::now(), Arc::clone(inner), permit))
    }

    /// Close every idle connection and refuse new leases; leases out now are closed when
    /// dropped.
    pub async fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.permits.close();
        let idle = std::mem::take(&mut *self.inner.idle.lock().expect("pool lock"));
        for i in idle {
            let _ = i.conn.close().await;
        }
    }

    /// Connections idle in the pool now.
    pub fn idle_count(&self) -> usize {
        self.inner.idle.lock().expect("pool lock").len()
    }
}

impl Lease {
    fn new(
        conn: PgConnection,
        born: Instant,
        pool: Arc<Inner>,
        permit: OwnedSemaphorePermit,
    ) -> Self {
        Lease {
            conn: Some(conn),
            born,
            settled: true,
            pool,
            _permit: permit,
        }
    }

    /// The connection, for one statement: until [`Lease::finished`] says how it ended, the
    /// connection counts as mid-statement and is closed, not reused, if the lease is dropped.
    pub fn start(&mut self) -> &mut PgConnection {
        self.settled = false;
        self.conn
            .as_mut()
            .expect("a lease holds its connection until dropped")
    }

    /// The statement started with [`Lease::start`] came to an end with this result. A result,
    /// "no row" or the server's refusal of the statement leaves the connection between
    /// statements (sqlx reads on to the server's ready message, now or before the next
    /// statement). Anything else may not (I/O, protocol), and neither does an error the server
    /// sends as it ends the session (class 08, shutdown 57P01–03): that connection is not reused.
    pub fn finished<T>(&mut self, result: &Result<T, sqlx::Error>) {
        self.settled = match result {
            Ok(_) | Err(sqlx::Error::RowNotFound) => true,
            Err(e) => e.as_database_error().is_some_and(|db| {
                let code = db.code().unwrap_or_default();
                !(code.starts_with("08") || code.starts_with("57P"))
            }),
        };
    }
}

impl Deref for Lease {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        self.conn
            .as_ref()
            .expect("a lease holds its connection until dropped")
    }
}

/// Direct use (tests, admin statements) is treated like [`Lease::start`] without a
/// [`Lease::finished`]: such a lease's connection is not reused.
impl DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.start()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        let pool = &self.pool;
        if !self.settled
            || pool.closed.load(Ordering::Acquire)
            || self.born.elapsed() >= MAX_LIFETIME
        {
            if self.settled {
                retire(conn);
            }
            // A connection left mid-statement is dropped as it is: its socket closes, and the
            // server ends the session and rolls back whatever it had open.
            return;
        }
        pool.idle.lock().expect("pool lock").push(Idle {
            conn,
            born: self.born,
            since: Instant::now(),
        });
    }
}

/// Close a healthy connection politely (a `Terminate` message), off the caller's path.
fn retire(conn: PgConnection) {
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(5), conn.close()).await;
        });
    }
}

/// Close connections idle longer than [`IDLE_TIMEOUT`], until the pool is gone.
async fn reap(pool: Weak<Inner>) {
    let mut tick = tokio::time::interval(IDLE_TIMEOUT / 10);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(pool) = pool.upgrade() else { return };
        let stale: Vec<Idle> = {
            let mut idle = pool.idle.lock().expect("pool lock");
            let keep = idle
                .iter()
                .position(|i| i.since.elapsed() < IDLE_TIMEOUT)
                .unwrap_or(idle.len());
            idle.drain(..keep).collect()
        };
        for i in stale {
            retire(i.conn);
        }
    }
}
