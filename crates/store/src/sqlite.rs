//! The SQLite backend (the embedded default): one file in WAL mode, same schema and
//! constraint names as PostgreSQL.
//!
//! SQLite has no data-modifying CTEs, so each state change is a few statements that must stand
//! or fall together: a write job. SQLite lets one writer at a time hold the file, so every
//! write goes through one writer task that owns the one write connection ([`crate::writer`]):
//! jobs queue on it first come first served, instead of polling the file lock with
//! `busy_timeout`'s growing sleeps, and the jobs that queued while a transaction ran are
//! group-committed in the next one (a savepoint each, one COMMIT and one fsync for all),
//! answered only after that COMMIT. Readers use a pool of their own and, in WAL mode, never
//! wait for the writer. Transactions start with `BEGIN IMMEDIATE`, so another process writing
//! the same file (the CLI, say) is queued on `busy_timeout` instead of failing to upgrade a
//! shared lock (SQLITE_BUSY, the SQLite form of a deadlock). Inside a job nobody else writes,
//! so a read followed by a write sees no races; that is why this file needs none of the re-run
//! logic the PostgreSQL backend has. Nothing outside the database (a Toss call) ever runs
//! inside a job: the flows call the store, not the other way round.
//!
//! Timestamps are TEXT, RFC 3339 in UTC with exactly six fractional digits
//! (`2026-01-02T03:04:05.123456Z`, see [`ts`]): fixed width, so text order is time order and
//! SQL comparisons (`expires_at > $now`) are correct. Microseconds, like PostgreSQL.

use crate::call::{Call, Tx};
use crate::error::from_sqlite;
use crate::model::*;
use crate::row::{self, Columns, bad_column};
use crate::sql::*;
use crate::writer::{Atomic, BoxFuture, Writer};
use crate::{Backend, Result, Store, StoreError};
use async_trait::async_trait;
use domain::transition::DUPLICATE_PAYMENT;
use domain::{
    AttemptId, CourseId, EnrollmentId, EnrollmentStatus, Money, OrderEvent, OrderId, OrderStatus,
    PaymentId, PaymentStatus, RefundId, RefundStatus, UserId,
};
use serde_json::json;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Decode, Row, Sqlite, Type, query};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};
use uuid::Uuid;

/// The migrations this binary carries. A database migrated by a newer release (one more
/// migration applied) is accepted: every migration is written to stay compatible with the
/// previous release's binary, so rolling back one release never needs a down-migration.
static MIGRATOR: Migrator = Migrator {
    ignore_missing: true,
    ..sqlx::migrate!("./migrations/sqlite")
};

/// How long a writer waits for another writer's transaction before giving up with
/// [`StoreError::Unavailable`].
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A timestamp as stored in SQLite. The one place that writes the format.
pub fn ts(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

fn parse_ts(col: &str, s: &str) -> Result<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|e| bad_column(col, e))
}

#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Readers.
    pool: SqlitePool,
    /// The one writer (its connection is `pool`'s own for an in-memory database).
    writer: Writer,
    /// A temporary directory holding the database file, removed when the last clone of the
    /// store is dropped (test stores only; see [`crate::testing`]).
    _dir: Option<Arc<tempfile::TempDir>>,
}

impl SqliteStore {
    /// Open (creating if needed) a database file: a path, or a `sqlite:` URL. WAL journal,
    /// foreign keys on, FULL sync (a committed payment survives a power cut), 10 s busy
    /// timeout. `sqlite::memory:` gives a private in-memory database on a single connection.
    pub async fn open(path_or_url: &str) -> Result<SqliteStore> {
        let options = if path_or_url.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(path_or_url)
                .map_err(|e| StoreError::Other(format!("bad SQLite URL: {e}")))?
        } else {
            SqliteConnectOptions::new().filename(path_or_url)
        };
        let in_memory = path_or_url.contains(":memory:") || path_or_url.contains("mode=memory");
        let options = options
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .synchronous(SqliteSynchronous::Full);
        if in_memory {
            // Every connection to ":memory:" is its own database: keep exactly one, forever.
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options)
                .await
                .map_err(from_sqlite)?;
            return Ok(Self::from_pool(pool));
        }
        let options = options.journal_mode(SqliteJournalMode::Wal);
        // The writer task's one connection (see [`crate::writer`]).
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            // Only the writer task uses it, and a failed batch closes it: no ping per batch.
            .test_before_acquire(false)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(BUSY_TIMEOUT + Duration::from_secs(5))
            .connect_with(options.clone())
            .await
            .map_err(from_sqlite)?;
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(BUSY_TIMEOUT + Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(from_sqlite)?;
        Ok(SqliteStore {
            pool,
            writer: Writer::spawn(writer),
            _dir: None,
        })
    }

    /// A store that reads through `pool` and writes through a writer task borrowing one of its
    /// connections per batch. Call inside a Tokio runtime (the writer is a task).
    pub fn from_pool(pool: SqlitePool) -> SqliteStore {
        SqliteStore {
            writer: Writer::spawn(pool.clone()),
            pool,
            _dir: None,
        }
    }

    /// Keep `dir` (holding the database file) alive as long as the store.
    pub(crate) fn with_dir(mut self, dir: tempfile::TempDir) -> SqliteStore {
        self._dir = Some(Arc::new(dir));
        self
    }

    /// The underlying pool, for operations outside the trait (tests, admin tooling).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

fn get<'r, T>(row: &'r SqliteRow, col: &str) -> Result<T>
where
    T: Decode<'r, Sqlite> + Type<Sqlite>,
{
    row.try_get(col).map_err(|e| bad_column(col, e))
}

impl Columns for SqliteRow {
    fn uuid(&self, col: &str) -> Result<Uuid> {
        get(self, col)
    }
    fn opt_uuid(&self, col: &str) -> Result<Option<Uuid>> {
        get(self, col)
    }
    fn text(&self, col: &str) -> Result<String> {
        get(self, col)
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>> {
        get(self, col)
    }
    fn int(&self, col: &str) -> Result<i64> {
        get(self, col)
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>> {
        get(self, col)
    }
    fn flag(&self, col: &str) -> Result<bool> {
        get(self, col)
    }
    fn ts(&self, col: &str) -> Result<OffsetDateTime> {
        let s: String = get(self, col)?;
        parse_ts(col, &s)
    }
    fn opt_ts(&self, col: &str) -> Result<Option<OffsetDateTime>> {
        let s: Option<String> = get(self, col)?;
        s.map(|s| parse_ts(col, &s)).transpose()
    }
    fn json(&self, col: &str) -> Result<serde_json::Value> {
        let s: String = get(self, col)?;
        serde_json::from_str(&s).map_err(|e| bad_column(col, e))
    }
}

/// One row for payment_events.
struct NewEvent<'a> {
    order_id: &'a str,
    payment_id: Option<Uuid>,
    kind: &'a str,
    from_status: Option<&'a str>,
    to_status: Option<&'a str>,
    ctx: &'a EventContext,
    detail: serde_json::Value,
    at: OffsetDateTime,
}

const INSERT_EVENT: &str = "
INSERT INTO payment_events (order_id, payment_id, kind, from_status, to_status, actor,
                            request_id, detail, at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

async fn insert_event(tx: &mut Tx<'_, Sqlite>, ev: NewEvent<'_>) -> Result<()> {
    let q = query(INSERT_EVENT)
        .bind(ev.order_id)
        .bind(ev.payment_id)
        .bind(ev.kind)
        .bind(ev.from_status)
        .bind(ev.to_status)
        .bind(&ev.ctx.actor)
        .bind(ev.ctx.request_id.as_deref())
        .bind(ev.detail.to_string())
        .bind(ts(ev.at));
    tx.exec(q).await?;
    Ok(())
}

const LEASE_PICK: &str = "
SELECT order_id FROM orders
WHERE status IN ('PENDING', 'CONFIRMING')
  AND updated_at < $1
  AND (reconcile_lease_until IS NULL OR reconcile_lease_until <= $2)
ORDER BY CASE
             WHEN status = 'CONFIRMING' THEN 0
             WHEN payment_key IS NOT NULL THEN 1
             WHEN expires_at > $2 THEN 2
             ELSE 3
         END,
         reconcile_lease_until IS NOT NULL, reconcile_lease_until, updated_at, order_id
LIMIT $3";

const LEASE_ORDER: &str = "
UPDATE orders SET reconcile_lease_until = $2, reconcile_lease_owner = $3,
    reconcile_lookups_expired = reconcile_lookups_expired
        + CASE WHEN status = 'PENDING' AND expires_at <= $4 THEN 1 ELSE 0 END
WHERE order_id = $1
RETURNING *";

const SET_PAYMENTS_PAUSED: &str = "
UPDATE payment_controls
SET paused = $1, reason = $2, updated_at = $3, updated_by = $4
WHERE id = 1
RETURNING *";

const INSERT_CONTROL_EVENT: &str = "
INSERT INTO payment_events (order_id, kind, actor, request_id, detail, at)
VALUES (NULL, $1, $2, $3, $4, $5)";

const CREATE_ORDER: &str = "
INSERT INTO orders (order_id, user_id, course_id, amount, order_name, status,
                    created_at, expires_at, updated_at)
SELECT $1, $2, $3, $4, $5, 'PENDING', $6, $7, $6
WHERE NOT EXISTS (
    SELECT 1 FROM enrollments
    WHERE user_id = $2 AND course_id = $3 AND status = 'ENROLLED'
)
AND ($8 IS NULL OR (
    SELECT count(*) FROM orders
    WHERE user_id = $2 AND status = 'PENDING' AND expires_at > $6
) < $8)
RETURNING *";

const PURGE_IDEMPOTENCY_KEYS: &str = "
DELETE FROM idempotency_keys
WHERE rowid IN (SELECT rowid FROM idempotency_keys WHERE expires_at <= $1 LIMIT $2)";

const PURGE_ONE_TIME_TOKENS: &str = "
DELETE FROM one_time_tokens
WHERE rowid IN (SELECT rowid FROM one_time_tokens WHERE expires_at <= $1 LIMIT $2)
RETURNING kind";

/// PENDING → CONFIRMING when everything holds (same conditions as PostgreSQL's claim).
const CLAIM_ORDER: &str = "
UPDATE orders
SET status = 'CONFIRMING', payment_key = $4, updated_at = $5
WHERE order_id = $1
  AND status = 'PENDING'
  AND user_id = $2
  AND amount = $3
  AND expires_at > $5
  AND NOT EXISTS (
      SELECT 1 FROM enrollments e
      WHERE e.user_id = orders.user_id AND e.course_id = orders.course_id
        AND e.status = 'ENROLLED')
  AND NOT EXISTS (
      SELECT 1 FROM orders o
      WHERE o.user_id = orders.user_id AND o.course_id = orders.course_id
        AND o.order_id <> orders.order_id AND o.status IN ('CONFIRMING', 'PAID'))
RETURNING *";

/// The order as found, for a claim that did not happen.
const ORDER_AND_ELSEWHERE: &str = "
SELECT o.*,
       EXISTS (
           SELECT 1 FROM enrollments e
           WHERE e.user_id = o.user_id AND e.course_id = o.course_id
             AND e.status = 'ENROLLED')
       OR EXISTS (
           SELECT 1 FROM orders other
           WHERE other.user_id = o.user_id AND other.course_id = o.course_id
             AND other.order_id <> o.order_id AND other.status IN ('CONFIRMING', 'PAID'))
       AS enrolled_elsewhere
FROM orders o
WHERE o.order_id = $1";

const RELEASE_ORDER: &str = "
UPDATE orders SET status = 'PENDING', updated_at = $2
WHERE order_id = $1 AND status = 'CONFIRMING'
RETURNING payment_key";

/// The event goes first so it can read the status being replaced; the UPDATE follows in the
/// same transaction only if the event row was written.
const FAIL_ORDER_EVENT: &str = "
INSERT INTO payment_events (order_id, payment_id, kind, from_status, to_status, actor,
                            request_id, detail, at)
SELECT order_id, NULL, $2, status, $3, $4, $5, $6, $7
FROM orders
WHERE order_id = $1 AND status IN ('PENDING', 'CONFIRMING')";

/// An order ending with a virtual account issued and no deposit recorded is due for an account
/// check at once (`Store::lease_account_checks`).
const FAIL_ORDER: &str = "
UPDATE orders SET status = $2, failure_code = $3, updated_at = $4,
    account_check_at = CASE WHEN deposit_secret IS NOT NULL AND payment_id IS NULL THEN $4 END
WHERE order_id = $1 AND status IN ('PENDING', 'CONFIRMING')";

/// Everything settle decides on, read under the write lock.
const SETTLE_READ: &str = "
SELECT o.*,
       EXISTS (
           SELECT 1 FROM orders other
           WHERE other.user_id = o.user_id AND other.course_id = o.course_id
             AND other.order_id <> o.order_id AND other.status IN ('CONFIRMING', 'PAID'))
       AS duplicate,
       prior.id AS prior_payment_id,
       prior.order_id AS prior_order_id,
       prior.enrollment_id AS prior_enrollment_id,
       prior.approved_at AS prior_approved_at,
       prior.status AS prior_status,
       EXISTS (
           SELECT 1 FROM payments p
           WHERE p.order_id = o.order_id AND NOT (p.provider = $2 AND p.provider_tx_id = $3))
       AS other_payment
FROM orders o
LEFT JOIN payments prior ON prior.provider = $2 AND prior.provider_tx_id = $3
WHERE o.order_id = $1";

const SETTLE_ENROLL: &str = "
INSERT INTO enrollments (id, user_id, course_id, status, source, enrolled_at, updated_at)
VALUES ($1, $2, $3, 'ENROLLED', 'payment', $4, $4)
ON CONFLICT (user_id, course_id) DO UPDATE
SET status = 'ENROLLED',
    source = 'payment',
    enrolled_at = CASE WHEN enrollments.status = 'ENROLLED' THEN enrollments.enrolled_at
                       ELSE excluded.enrolled_at END,
    updated_at = excluded.updated_at
RETURNING id";

const SETTLE_PAYMENT: &str = "
INSERT INTO payments (id, provider, provider_tx_id, order_id, user_id, course_id,
                      enrollment_id, amount, balance, status, method, secret,
                      approved_at, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10, $11, $12, $13, $13)";

/// A second deposit after a reversal (domain::transition::is_redeposit): the payment captured
/// the amount once more and holds it again.
const REDEPOSIT_PAYMENT: &str = "
UPDATE payments
SET amount = amount + $2, balance = $2, status = $3, approved_at = $4, updated_at = $5
WHERE id = $1
RETURNING *";

const REENROLL: &str = "
UPDATE enrollments
SET status = 'ENROLLED', source = 'payment', enrolled_at = $2, updated_at = $2
WHERE id = $1";

const SETTLE_ORDER: &str = "
UPDATE orders
SET status = $2, failure_code = $3, payment_key = $4, payment_id = $5, enrollment_id = $6,
    approved_at = $7, updated_at = $8
WHERE order_id = $1
RETURNING *";

/// Insert the key or take over an expired row; returns a row only then (Fresh).
const REMEMBER_KEY: &str = "
INSERT INTO idempotency_keys (scope, key, fingerprint, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (scope, key) DO UPDATE
SET fingerprint = excluded.fingerprint,
    created_at = excluded.created_at,
    expires_at = excluded.expires_at
WHERE idempotency_keys.expires_at <= excluded.created_at
RETURNING 1";

const REMEMBER_ONCE: &str = "
INSERT INTO one_time_tokens (kind, token, expires_at)
VALUES ($1, $2, $3)
ON CONFLICT (kind, token) DO UPDATE SET expires_at = excluded.expires_at
WHERE one_time_tokens.expires_at <= $4
RETURNING 1";

const PAYMENT_BY_KEY: &str = "
SELECT * FROM payments WHERE provider = $1 AND provider_tx_id = $2";

const REQUESTED_REFUNDS: &str = "
SELECT * FROM refunds WHERE payment_id = $1 AND status = 'REQUESTED' ORDER BY created_at, id";

const INSERT_REFUND: &str = "
INSERT INTO refunds (id, payment_id, amount, reason, status, transaction_key, idempotency_key,
                     requested_by, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
RETURNING *";

const REFUND_TX_KNOWN: &str = "SELECT count(*) AS n FROM refunds WHERE transaction_key = $1";

const DONE_REFUNDS: &str = "
SELECT COALESCE(sum(amount), 0) AS amount FROM refunds WHERE payment_id = $1 AND status = 'DONE'";

const REFUND_DONE: &str = "
UPDATE refunds SET status = 'DONE', transaction_key = $2, updated_at = $3
WHERE id = $1 AND status = 'REQUESTED'";

const PAYMENT_CANCELED: &str = "
UPDATE payments SET balance = $2, status = $3, updated_at = $4 WHERE id = $1
RETURNING *";

const ORDER_BRIEF: &str = "SELECT status, failure_code FROM orders WHERE order_id = $1";

const REVOKE_ENROLLMENT: &str = "
UPDATE enrollments SET status = 'REFUNDED', updated_at = $2
WHERE id = $1 AND status = 'ENROLLED'";

const REFUND_ORDER: &str = "
UPDATE orders SET status = 'REFUNDED', updated_at = $2
WHERE order_id = $1 AND status IN ('PAID', 'FAILED')";

const ENROLLMENT_STATUS: &str = "SELECT status FROM enrollments WHERE id = $1";

const FAIL_REFUND: &str = "
UPDATE refunds SET status = 'FAILED', updated_at = $2
WHERE id = $1 AND status = 'REQUESTED'
RETURNING payment_id, amount";

const ORDER_OF_PAYMENT: &str = "SELECT order_id FROM payments WHERE id = $1";

const ENROLLMENT_FOR_ATTEMPT: &str = "
SELECT user_id, status, exam_attempts_started FROM enrollments WHERE id = $1";

const BUMP_ATTEMPTS: &str = "
UPDATE enrollments SET exam_attempts_started = exam_attempts_started + 1 WHERE id = $1";

const INSERT_ATTEMPT: &str = "
INSERT INTO exam_attempts (id, enrollment_id, score, started_at, submitted_at)
VALUES ($1, $2, NULL, $3, NULL)";

const SUBMIT_ATTEMPT: &str = "
UPDATE exam_attempts SET score = $2, submitted_at = $3
WHERE id = $1 AND submitted_at IS NULL";

const ATTEMPT_EXISTS: &str = "SELECT count(*) AS n FROM exam_attempts WHERE id = $1";

impl SqliteStore {
    /// A method that only reads.
    fn call(&self, name: &'static str) -> Call<'_, Sqlite> {
        Call::new(&self.pool, name)
    }

    /// A method that writes: `work` runs as one all-or-nothing job on the writer, which
    /// answers once it is committed (an `Err` from `work` rolls its writes back). Timed under
    /// `name` from the queue to the answer.
    async fn write<T, F>(&self, name: &'static str, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'t> FnOnce(Tx<'t, Sqlite>) -> BoxFuture<'t, Result<T>> + Send + 'static,
    {
        let _timed = crate::roundtrips::timer(name);
        self.writer.write(Atomic::Job, work).await
    }

    /// A method whose statements need not stand together (one statement, or independent
    /// ones): on the writer too, but without a transaction of its own (see [`Atomic`]).
    async fn write_statements<T, F>(&self, name: &'static str, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'t> FnOnce(Tx<'t, Sqlite>) -> BoxFuture<'t, Result<T>> + Send + 'static,
    {
        let _timed = crate::roundtrips::timer(name);
        self.writer.write(Atomic::Statement, work).await
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn migrate(&self) -> Result<()> {
        // On a reader connection (the writer's belongs to the writer task, and migrations bring
        // their own transactions); a write batch in flight holds it up on `busy_timeout`.
        MIGRATOR.run(&self.pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(inner)
            | sqlx::migrate::MigrateError::ExecuteMigration(inner, _) => from_sqlite(inner),
            other => StoreError::Other(format!("migration failed: {other}")),
        })
    }

    async fn ready(&self) -> Result<()> {
        let call = self.call("ready");
        let applied = call
            .all(query(APPLIED_MIGRATIONS), |r| r.int("version"))
            .await?;
        crate::shared::check_applied(&MIGRATOR, &applied)
    }

    async fn create_course(&self, new: NewCourse) -> Result<Course> {
        self.write_statements("create_course", move |mut tx| {
            Box::pin(async move {
                let q = query(CREATE_COURSE)
                    .bind(new.id.0)
                    .bind(new.title)
                    .bind(new.price.won())
                    .bind(ts(new.now));
                tx.one(q, row::course).await
            })
        })
        .await
    }

    async fn list_courses(&self) -> Result<Vec<Course>> {
        let call = self.call("list_courses");
        call.all(query(LIST_COURSES), row::course).await
    }

    async fn get_course(&self, id: CourseId) -> Result<Option<Course>> {
        let q = query(GET_COURSE).bind(id.0);
        self.call("get_course").opt(q, row::course).await
    }

    async fn create_order(&self, new: NewOrder) -> Result<Order> {
        self.write("create_order", move |tx| Box::pin(create_order(tx, new)))
            .await
    }

    async fn get_order(&self, order_id: &OrderId) -> Result<Option<Order>> {
        let q = query(GET_ORDER).bind(order_id.as_str());
        self.call("get_order").opt(q, row::order).await
    }

    async fn claim_order(&self, claim: ClaimRequest) -> Result<ClaimOutcome> {
        self.write("claim_order", move |tx| Box::pin(claim_order(tx, claim)))
            .await
    }

    async fn release_order(&self, order_id: &OrderId, ctx: &EventContext) -> Result<bool> {
        let (order_id, ctx) = (order_id.clone(), ctx.clone());
        self.write("release_order", move |tx| {
            Box::pin(release_order(tx, order_id, ctx))
        })
        .await
    }

    async fn fail_order(
        &self,
        order_id: &OrderId,
        to: OrderStatus,
        code: Option<&str>,
        ctx: &EventContext,
    ) -> Result<bool> {
        let (order_id, code, ctx) = (order_id.clone(), code.map(str::to_owned), ctx.clone());
        self.write("fail_order", move |tx| {
            Box::pin(fail_order(tx, order_id, to, code, ctx))
        })
        .await
    }

    async fn settle(&self, s: Settlement) -> Result<Settled> {
        self.write("settle", move |tx| Box::pin(settle(tx, s)))
            .await
    }

    async fn open_orders(&self, older_than: OffsetDateTime, limit: i64) -> Result<Vec<Order>> {
        let q = query(OPEN_ORDERS).bind(ts(older_than)).bind(limit);
        self.call("open_orders").all(q, row::order).await
    }

    async fn list_enrollments(&self, user: UserId) -> Result<Vec<Enrollment>> {
        let q = query(LIST_ENROLLMENTS).bind(user.0);
        self.call("list_enrollments").all(q, row::enrollment).await
    }

    async fn get_enrollment(&self, id: EnrollmentId) -> Result<Option<Enrollment>> {
        let q = query(GET_ENROLLMENT).bind(id.0);
        self.call("get_enrollment").opt(q, row::enrollment).await
    }

    async fn get_payment(&self, id: PaymentId) -> Result<Option<Payment>> {
        let q = query(GET_PAYMENT).bind(id.0);
        self.call("get_payment").opt(q, row::payment).await
    }

    async fn payment_for_order(&self, order_id: &OrderId) -> Result<Option<Payment>> {
        let q = query(PAYMENT_FOR_ORDER).bind(order_id.as_str());
        self.call("payment_for_order").opt(q, row::payment).await
    }

    async fn order_events(&self, order_id: &OrderId) -> Result<Vec<Event>> {
        let q = query(ORDER_EVENTS).bind(order_id.as_str());
        self.call("order_events").all(q, row::event).await
    }

    async fn begin_refund(&self, new: NewRefund) -> Result<RefundBegin> {
        self.write("begin_refund", move |tx| Box::pin(begin_refund(tx, new)))
            .await
    }

    async fn record_cancellation(&self, c: Cancellation) -> Result<CancellationRecorded> {
        self.write("record_cancellation", move |tx| {
            Box::pin(record_cancellation(tx, c))
        })
        .await
    }

    async fn fail_refund(&self, id: RefundId, code: &str, ctx: &EventContext) -> Result<bool> {
        let (code, ctx) = (code.to_owned(), ctx.clone());
        self.write("fail_refund", move |tx| {
            Box::pin(fail_refund(tx, id, code, ctx))
        })
        .await
    }

    async fn get_refund(&self, id: RefundId) -> Result<Option<Refund>> {
        let q = query(GET_REFUND).bind(id.0);
        self.call("get_refund").opt(q, |r| row::refund(r, "")).await
    }

    async fn payment_refunds(&self, payment_id: PaymentId) -> Result<Vec<Refund>> {
        let q = query(PAYMENT_REFUNDS).bind(payment_id.0);
        self.call("payment_refunds")
            .all(q, |r| row::refund(r, ""))
            .await
    }

    async fn stuck_refunds(&self, older_than: OffsetDateTime, limit: i64) -> Result<Vec<Refund>> {
        let q = query(STUCK_REFUNDS).bind(ts(older_than)).bind(limit);
        self.call("stuck_refunds")
            .all(q, |r| row::refund(r, ""))
            .await
    }

    async fn start_attempt(
        &self,
        enrollment_id: EnrollmentId,
        attempt_id: AttemptId,
        max_attempts: u32,
        now: OffsetDateTime,
    ) -> Result<AttemptStart> {
        self.write("start_attempt", move |tx| {
            Box::pin(start_attempt(
                tx,
                enrollment_id,
                attempt_id,
                max_attempts,
                now,
            ))
        })
        .await
    }

    async fn get_attempt(&self, id: AttemptId) -> Result<Option<ExamAttempt>> {
        let q = query(GET_ATTEMPT).bind(id.0);
        self.call("get_attempt").opt(q, row::attempt).await
    }

    async fn submit_attempt(
        &self,
        id: AttemptId,
        score: i32,
        now: OffsetDateTime,
    ) -> Result<AttemptSubmit> {
        self.write("submit_attempt", move |tx| {
            Box::pin(submit_attempt(tx, id, score, now))
        })
        .await
    }

    async fn lease_open_orders(
        &self,
        owner: &str,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        older_than: OffsetDateTime,
        limit: i64,
    ) -> Result<Vec<Order>> {
        let owner = owner.to_owned();
        self.write("lease_open_orders", move |tx| {
            Box::pin(lease_open_orders(
                tx,
                owner,
                now,
                lease_until,
                older_than,
                limit,
            ))
        })
        .await
    }

    async fn abandoned_orders(
        &self,
        now: OffsetDateTime,
        min_lookups: i64,
        limit: i64,
    ) -> Result<Vec<OrderId>> {
        let q = query(ABANDONED_ORDERS)
            .bind(ts(now))
            .bind(min_lookups)
            .bind(limit);
        self.call("abandoned_orders").all(q, row::order_id).await
    }

    async fn open_order_backlog(
        &self,
        now: OffsetDateTime,
    ) -> Result<(i64, Option<OffsetDateTime>)> {
        let q = query(OPEN_ORDER_BACKLOG).bind(ts(now));
        self.call("open_order_backlog")
            .one(q, |r| Ok((r.int("count")?, r.opt_ts("oldest")?)))
            .await
    }

    async fn payment_controls(&self) -> Result<PaymentControls> {
        let call = self.call("payment_controls");
        call.one(query(PAYMENT_CONTROLS), row::controls).await
    }

    async fn set_payments_paused(
        &self,
        paused: bool,
        reason: Option<&str>,
        ctx: &EventContext,
    ) -> Result<PaymentControls> {
        let (reason, ctx) = (reason.map(str::to_owned), ctx.clone());
        self.write("set_payments_paused", move |tx| {
            Box::pin(set_payments_paused(tx, paused, reason, ctx))
        })
        .await
    }

    async fn remember_idempotency_key(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &str,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<KeyUse> {
        let (scope, key, fingerprint) = (scope.to_owned(), key.to_owned(), fingerprint.to_owned());
        self.write_statements("remember_idempotency_key", move |mut tx| {
            Box::pin(async move {
                let q = query(REMEMBER_KEY)
                    .bind(&scope)
                    .bind(&key)
                    .bind(&fingerprint)
                    .bind(ts(now))
                    .bind(ts(expires_at));
                if tx.opt(q, |_| Ok(())).await?.is_some() {
                    return Ok(KeyUse::Fresh);
                }
                // The key is live (rows are never deleted while live, so this read finds it).
                let q = query(KEY_FINGERPRINT).bind(&scope).bind(&key);
                let seen = tx.one(q, |r| r.text("fingerprint")).await?;
                Ok(crate::shared::key_use(&seen, &fingerprint))
            })
        })
        .await
    }

    async fn remember_once(
        &self,
        kind: &str,
        token: &str,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<bool> {
        let (kind, token) = (kind.to_owned(), token.to_owned());
        self.write_statements("remember_once", move |mut tx| {
            Box::pin(async move {
                let q = query(REMEMBER_ONCE)
                    .bind(kind)
                    .bind(token)
                    .bind(ts(expires_at))
                    .bind(ts(now));
                Ok(tx.opt(q, |_| Ok(())).await?.is_some())
            })
        })
        .await
    }

    async fn purge_expired(&self, now: OffsetDateTime, limit: i64) -> Result<Vec<PurgedRows>> {
        self.write_statements("purge_expired", move |mut tx| {
            Box::pin(async move {
                let keys = tx
                    .exec(query(PURGE_IDEMPOTENCY_KEYS).bind(ts(now)).bind(limit))
                    .await?;
                let q = query(PURGE_ONE_TIME_TOKENS).bind(ts(now)).bind(limit);
                let kinds = tx.all(q, |r| r.text("kind")).await?;
                Ok(crate::shared::purged(keys, kinds))
            })
        })
        .await
    }

    async fn forget_once(&self, kind: &str, token: &str) -> Result<()> {
        let (kind, token) = (kind.to_owned(), token.to_owned());
        self.write_statements("forget_once", move |mut tx| {
            Box::pin(async move {
                tx.exec(query(FORGET_ONCE).bind(kind).bind(token)).await?;
                Ok(())
            })
        })
        .await
    }

    async fn record_deposit_secret(&self, order_id: &OrderId, secret: &str) -> Result<bool> {
        let (order_id, secret) = (order_id.clone(), secret.to_owned());
        self.write_statements("record_deposit_secret", move |mut tx| {
            Box::pin(async move {
                let q = query(RECORD_DEPOSIT_SECRET)
                    .bind(order_id.as_str())
                    .bind(secret);
                Ok(tx.opt(q, |_| Ok(())).await?.is_some())
            })
        })
        .await
    }

    async fn deposit_secret(&self, order_id: &OrderId) -> Result<Option<String>> {
        let q = query(DEPOSIT_SECRET).bind(order_id.as_str());
        let secret = self
            .call("deposit_secret")
            .opt(q, |r| r.opt_text("deposit_secret"))
            .await?;
        Ok(secret.flatten())
    }

    async fn lease_account_checks(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: i64,
    ) -> Result<Vec<Order>> {
        self.write_statements("lease_account_checks", move |mut tx| {
            Box::pin(async move {
                let q = query(LEASE_ACCOUNT_CHECKS)
                    .bind(ts(now))
                    .bind(ts(lease_until))
                    .bind(limit);
                tx.all(q, row::order).await
            })
        })
        .await
    }

    async fn account_checked(
        &self,
        order_id: &OrderId,
        again: Option<OffsetDateTime>,
    ) -> Result<()> {
        let order_id = order_id.clone();
        self.write_statements("account_checked", move |mut tx| {
            Box::pin(async move {
                let q = query(ACCOUNT_CHECKED)
                    .bind(order_id.as_str())
                    .bind(again.map(ts));
                tx.exec(q).await?;
                Ok(())
            })
        })
        .await
    }
}

async fn create_order(mut tx: Tx<'_, Sqlite>, new: NewOrder) -> Result<Order> {
    let q = query(CREATE_ORDER)
        .bind(new.order_id.as_str())
        .bind(new.user_id.0)
        .bind(new.course_id.0)
        .bind(new.amount.won())
        .bind(&new.order_name)
        .bind(ts(new.now))
        .bind(ts(new.expires_at))
        .bind(new.max_open_per_user.map(i64::from));
    let Some(order) = tx.opt(q, row::order).await? else {
        let enrolled = match new.max_open_per_user {
            None => true,
            Some(_) => {
                let q = query(ENROLLED_IN).bind(new.user_id.0).bind(new.course_id.0);
                tx.one(q, |r| r.flag("enrolled")).await?
            }
        };
        return Err(if enrolled {
            StoreError::AlreadyEnrolled
        } else {
            StoreError::TooManyOpenOrders
        });
    };
    insert_event(
        &mut tx,
        NewEvent {
            order_id: order.order_id.as_str(),
            payment_id: None,
            kind: "order.created",
            from_status: None,
            to_status: Some(OrderStatus::Pending.as_str()),
            ctx: &new.ctx,
            detail: json!({
                "amount": order.amount.won(),
                "course_id": order.course_id,
            }),
            at: new.ctx.now.unwrap_or(new.now),
        },
    )
    .await?;
    Ok(order)
}

async fn claim_order(mut tx: Tx<'_, Sqlite>, claim: ClaimRequest) -> Result<ClaimOutcome> {
    let now = claim.ctx.at();
    let q = query(CLAIM_ORDER)
        .bind(claim.order_id.as_str())
        .bind(claim.user_id.0)
        .bind(claim.amount.won())
        .bind(claim.payment_key.as_str())
        .bind(ts(now));
    if let Some(order) = tx.opt(q, row::order).await? {
        insert_event(
            &mut tx,
            NewEvent {
                order_id: order.order_id.as_str(),
                payment_id: None,
                kind: "order.claimed",
                from_status: Some(OrderStatus::Pending.as_str()),
                to_status: Some(OrderStatus::Confirming.as_str()),
                ctx: &claim.ctx,
                detail: json!({
                    "payment_key": claim.payment_key.as_str(),
                    "amount": order.amount.won(),
                }),
                at: now,
            },
        )
        .await?;
        return Ok(ClaimOutcome::Claimed(order));
    }
    let q = query(ORDER_AND_ELSEWHERE).bind(claim.order_id.as_str());
    let found = tx
        .opt(q, |r| Ok((row::order(r)?, r.flag("enrolled_elsewhere")?)))
        .await?;
    Ok(match found {
        None => ClaimOutcome::NotFound,
        Some((order, enrolled_elsewhere)) => ClaimOutcome::NotClaimed {
            order,
            enrolled_elsewhere,
        },
    })
}

async fn release_order(
    mut tx: Tx<'_, Sqlite>,
    order_id: OrderId,
    ctx: EventContext,
) -> Result<bool> {
    let now = ctx.at();
    let q = query(RELEASE_ORDER).bind(order_id.as_str()).bind(ts(now));
    let Some(payment_key) = tx.opt(q, |r| r.opt_text("payment_key")).await? else {
        return Ok(false);
    };
    insert_event(
        &mut tx,
        NewEvent {
            order_id: order_id.as_str(),
            payment_id: None,
            kind: "order.released",
            from_status: Some(OrderStatus::Confirming.as_str()),
            to_status: Some(OrderStatus::Pending.as_str()),
            ctx: &ctx,
            detail: json!({ "payment_key": payment_key }),
            at: now,
        },
    )
    .await?;
    Ok(true)
}

async fn fail_order(
    mut tx: Tx<'_, Sqlite>,
    order_id: OrderId,
    to: OrderStatus,
    code: Option<String>,
    ctx: EventContext,
) -> Result<bool> {
    let kind = crate::shared::fail_event_kind(to)?;
    let now = ts(ctx.at());
    let q = query(FAIL_ORDER_EVENT)
        .bind(order_id.as_str())
        .bind(kind)
        .bind(to.as_str())
        .bind(&ctx.actor)
        .bind(ctx.request_id.as_deref())
        .bind(json!({ "code": code }).to_string())
        .bind(&now);
    if tx.exec(q).await? == 0 {
        return Ok(false);
    }
    let q = query(FAIL_ORDER)
        .bind(order_id.as_str())
        .bind(to.as_str())
        .bind(code)
        .bind(&now);
    tx.exec(q).await?;
    Ok(true)
}

async fn settle(mut tx: Tx<'_, Sqlite>, s: Settlement) -> Result<Settled> {
    crate::shared::check_settlement(&s)?;
    let now = s.ctx.at();

    let q = query(SETTLE_READ)
        .bind(s.order_id.as_str())
        .bind(domain::PROVIDER_TOSS)
        .bind(s.payment_key.as_str());
    let Some(found) = tx.opt(q, SettleRead::decode).await? else {
        return Err(StoreError::NotFound);
    };
    if let Some(prior) = found.prior {
        let again = domain::transition::is_redeposit(
            prior.status,
            found.order.status,
            found.duplicate,
            prior.approved_at,
            truncate_to_micros(s.approved_at),
        );
        if again && prior.order_id == s.order_id.as_str() {
            let settled = redeposit(&mut tx, found.order, &prior, &s, now).await?;
            return Ok(settled);
        }
        return crate::shared::replayed_settlement(
            found.order,
            &s.order_id,
            prior.payment_id,
            &prior.order_id,
            prior.enrollment_id,
            prior.approved_at,
        );
    }
    if found.other_payment {
        return Err(StoreError::Constraint("payments_order_id_key".to_owned()));
    }
    let order = found.order;
    let (payment_id, enrollment_id) = insert_settled(&mut tx, &order, &s, now).await?;

    let from_status = order.status;
    let ids = (payment_id, enrollment_id);
    let event = OrderEvent::Settle {
        duplicate: found.duplicate,
    };
    let order = settle_order(&mut tx, order, event, &s, ids, now).await?;

    let kind = if order.status == OrderStatus::Failed {
        "payment.duplicate"
    } else {
        "payment.settled"
    };
    insert_event(
        &mut tx,
        NewEvent {
            order_id: s.order_id.as_str(),
            payment_id: Some(payment_id.0),
            kind,
            from_status: Some(from_status.as_str()),
            to_status: Some(order.status.as_str()),
            ctx: &s.ctx,
            detail: json!({
                "source": s.source,
                "amount": s.amount.won(),
                "method": s.method,
                "payment_key": s.payment_key.as_str(),
            }),
            at: now,
        },
    )
    .await?;

    // The row as stored: timestamps at the database's precision.
    let approved_at = order
        .approved_at
        .unwrap_or_else(|| truncate_to_micros(s.approved_at));
    Ok(Settled {
        order,
        payment_id,
        enrollment_id,
        approved_at,
        newly_settled: true,
    })
}

/// The buyer's enrollment (an existing one is reused) and the payment row of a first
/// settlement. Returns their ids.
async fn insert_settled(
    tx: &mut Tx<'_, Sqlite>,
    order: &Order,
    s: &Settlement,
    now: OffsetDateTime,
) -> Result<(PaymentId, EnrollmentId)> {
    let q = query(SETTLE_ENROLL)
        .bind(EnrollmentId::new().0)
        .bind(order.user_id.0)
        .bind(order.course_id.0)
        .bind(ts(now));
    let enrollment_id = EnrollmentId(tx.one(q, |r| r.uuid("id")).await?);

    let payment_id = PaymentId::new();
    let q = query(SETTLE_PAYMENT)
        .bind(payment_id.0)
        .bind(domain::PROVIDER_TOSS)
        .bind(s.payment_key.as_str())
        .bind(order.order_id.as_str())
        .bind(order.user_id.0)
        .bind(order.course_id.0)
        .bind(enrollment_id.0)
        .bind(s.amount.won())
        .bind(s.status.as_str())
        .bind(s.method.as_deref())
        .bind(s.secret.as_deref())
        .bind(ts(s.approved_at))
        .bind(ts(now));
    tx.exec(q).await?;
    Ok((payment_id, enrollment_id))
}

async fn begin_refund(mut tx: Tx<'_, Sqlite>, new: NewRefund) -> Result<RefundBegin> {
    let now = new.ctx.at();
    let q = query(GET_PAYMENT).bind(new.payment_id.0);
    let Some(payment) = tx.opt(q, row::payment).await? else {
        return Ok(RefundBegin::PaymentNotFound);
    };
    let q = query(REQUESTED_REFUNDS).bind(payment.id.0);
    let requested = tx.all(q, |r| row::refund(r, "")).await?;
    let pending: i64 = requested.iter().map(|r| r.amount.won()).sum();
    let available = (payment.balance.won() - pending).max(0);
    let amount = new.amount.map_or(available, Money::won);
    if !payment.status.is_refundable() || !requested.is_empty() || amount <= 0 || amount > available
    {
        return Ok(RefundBegin::NotAllowed {
            payment,
            available: Money::new(available).map_err(|e| bad_column("balance", e))?,
            in_progress: !requested.is_empty(),
        });
    }
    let q = query(INSERT_REFUND)
        .bind(new.id.0)
        .bind(payment.id.0)
        .bind(amount)
        .bind(&new.reason)
        .bind(RefundStatus::Requested.as_str())
        .bind(None::<String>)
        .bind(new.idempotency_key.as_str())
        .bind(&new.requested_by)
        .bind(ts(now));
    let refund = tx.one(q, |r| row::refund(r, "")).await?;
    insert_event(
        &mut tx,
        NewEvent {
            order_id: payment.order_id.as_str(),
            payment_id: Some(payment.id.0),
            kind: "refund.requested",
            from_status: None,
            to_status: Some(RefundStatus::Requested.as_str()),
            ctx: &new.ctx,
            detail: json!({
                "refund_id": refund.id,
                "amount": amount,
                "reason": new.reason,
                "idempotency_key": new.idempotency_key.as_str(),
            }),
            at: now,
        },
    )
    .await?;
    Ok(RefundBegin::Begun { refund, payment })
}

async fn record_cancellation(
    mut tx: Tx<'_, Sqlite>,
    c: Cancellation,
) -> Result<CancellationRecorded> {
    let q = query(PAYMENT_BY_KEY)
        .bind(domain::PROVIDER_TOSS)
        .bind(c.payment_key.as_str());
    let Some(payment) = tx.opt(q, row::payment).await? else {
        return Err(StoreError::NotFound);
    };
    let now = c.ctx.at();
    let rows = record_refund_rows(&mut tx, &payment, &c, now).await?;
    let (payment, enrollment_revoked) = if c.balance < payment.balance {
        lower_balance(&mut tx, payment, &c, &rows.keys, now).await?
    } else if !rows.keys.is_empty() {
        // Rows recorded while the balance stays: the payment is still marked as changed,
        // as on PostgreSQL (whose statement relies on that to notice a concurrent one).
        let q = query(PAYMENT_CANCELED)
            .bind(payment.id.0)
            .bind(payment.balance.won())
            .bind(payment.status.as_str())
            .bind(ts(now));
        (tx.one(q, row::payment).await?, false)
    } else {
        (payment, false)
    };
    let enrollment_status = match payment.enrollment_id {
        Some(e) => {
            let q = query(ENROLLMENT_STATUS).bind(e.0);
            tx.opt(q, |r| r.parsed::<EnrollmentStatus>("status"))
                .await?
        }
        None => None,
    };
    Ok(CancellationRecorded {
        payment,
        refunds_recorded: u32::try_from(rows.keys.len()).unwrap_or(u32::MAX),
        cancels_left_out: rows.left_out,
        enrollment_revoked,
        enrollment_status,
    })
}

async fn fail_refund(
    mut tx: Tx<'_, Sqlite>,
    id: RefundId,
    code: String,
    ctx: EventContext,
) -> Result<bool> {
    let now = ctx.at();
    let q = query(FAIL_REFUND).bind(id.0).bind(ts(now));
    let failed = tx
        .opt(q, |r| Ok((r.uuid("payment_id")?, r.int("amount")?)))
        .await?;
    let Some((payment_id, amount)) = failed else {
        return Ok(false);
    };
    let q = query(ORDER_OF_PAYMENT).bind(payment_id);
    let order_id = tx.one(q, |r| r.text("order_id")).await?;
    insert_event(
        &mut tx,
        NewEvent {
            order_id: &order_id,
            payment_id: Some(payment_id),
            kind: "refund.failed",
            from_status: Some(RefundStatus::Requested.as_str()),
            to_status: Some(RefundStatus::Failed.as_str()),
            ctx: &ctx,
            detail: json!({ "refund_id": id, "amount": amount, "code": code }),
            at: now,
        },
    )
    .await?;
    Ok(true)
}

async fn start_attempt(
    mut tx: Tx<'_, Sqlite>,
    enrollment_id: EnrollmentId,
    attempt_id: AttemptId,
    max_attempts: u32,
    now: OffsetDateTime,
) -> Result<AttemptStart> {
    let q = query(ENROLLMENT_FOR_ATTEMPT).bind(enrollment_id.0);
    let found = tx
        .opt(q, |r| {
            Ok((
                r.uuid("user_id")?,
                r.parsed::<EnrollmentStatus>("status")?,
                r.int("exam_attempts_started")?,
            ))
        })
        .await?;
    let Some((user_id, status, used)) = found else {
        return Ok(AttemptStart::EnrollmentNotFound);
    };
    if status != EnrollmentStatus::Enrolled {
        return Ok(AttemptStart::NotEnrolled);
    }
    if used >= i64::from(max_attempts) {
        return Ok(AttemptStart::LimitReached { used });
    }
    tx.exec(query(BUMP_ATTEMPTS).bind(enrollment_id.0)).await?;
    let q = query(INSERT_ATTEMPT)
        .bind(attempt_id.0)
        .bind(enrollment_id.0)
        .bind(ts(now));
    tx.exec(q).await?;
    Ok(AttemptStart::Started(ExamAttempt {
        id: attempt_id,
        enrollment_id,
        user_id: UserId(user_id),
        score: None,
        started_at: truncate_to_micros(now),
        submitted_at: None,
    }))
}

async fn submit_attempt(
    mut tx: Tx<'_, Sqlite>,
    id: AttemptId,
    score: i32,
    now: OffsetDateTime,
) -> Result<AttemptSubmit> {
    let q = query(SUBMIT_ATTEMPT).bind(id.0).bind(score).bind(ts(now));
    if tx.exec(q).await? == 0 {
        let exists = tx
            .one(query(ATTEMPT_EXISTS).bind(id.0), |r| r.int("n"))
            .await?;
        return Ok(if exists > 0 {
            AttemptSubmit::AlreadySubmitted
        } else {
            AttemptSubmit::NotFound
        });
    }
    let attempt = tx.one(query(GET_ATTEMPT).bind(id.0), row::attempt).await?;
    Ok(AttemptSubmit::Submitted(attempt))
}

async fn lease_open_orders(
    mut tx: Tx<'_, Sqlite>,
    owner: String,
    now: OffsetDateTime,
    lease_until: OffsetDateTime,
    older_than: OffsetDateTime,
    limit: i64,
) -> Result<Vec<Order>> {
    // BEGIN IMMEDIATE: no other writer between picking and leasing.
    let q = query(LEASE_PICK)
        .bind(ts(older_than))
        .bind(ts(now))
        .bind(limit);
    let picked = tx.all(q, |r| r.text("order_id")).await?;
    let mut leased = Vec::with_capacity(picked.len());
    for order_id in picked {
        let q = query(LEASE_ORDER)
            .bind(&order_id)
            .bind(ts(lease_until))
            .bind(&owner)
            .bind(ts(now));
        leased.push(tx.one(q, row::order).await?);
    }
    Ok(leased)
}

async fn set_payments_paused(
    mut tx: Tx<'_, Sqlite>,
    paused: bool,
    reason: Option<String>,
    ctx: EventContext,
) -> Result<PaymentControls> {
    let q = query(SET_PAYMENTS_PAUSED)
        .bind(paused)
        .bind(reason.as_deref())
        .bind(ts(ctx.at()))
        .bind(&ctx.actor);
    let controls = tx.one(q, row::controls).await?;
    let kind = if paused {
        "payments.paused"
    } else {
        "payments.resumed"
    };
    let q = query(INSERT_CONTROL_EVENT)
        .bind(kind)
        .bind(&ctx.actor)
        .bind(ctx.request_id.as_deref())
        .bind(json!({ "reason": reason }).to_string())
        .bind(ts(ctx.at()));
    tx.exec(q).await?;
    Ok(controls)
}

/// The order's side of a settle, as `domain::transition` says: PAID, or FAILED as a duplicate
/// payment (recorded, left for an operator to refund); a REFUNDED order is left alone.
async fn settle_order(
    tx: &mut Tx<'_, Sqlite>,
    order: Order,
    event: OrderEvent,
    s: &Settlement,
    (payment_id, enrollment_id): (PaymentId, EnrollmentId),
    now: OffsetDateTime,
) -> Result<Order> {
    let from_status = order.status;
    let Some(to_status) = from_status.after(event) else {
        return Ok(order);
    };
    // A duplicate payment is flagged; PAID stays PAID with its code.
    let failure_code = if to_status == OrderStatus::Failed {
        Some(DUPLICATE_PAYMENT.to_owned())
    } else if to_status == from_status {
        order.failure_code.clone()
    } else {
        None
    };
    let q = query(SETTLE_ORDER)
        .bind(s.order_id.as_str())
        .bind(to_status.as_str())
        .bind(failure_code)
        .bind(s.payment_key.as_str())
        .bind(payment_id.0)
        .bind(enrollment_id.0)
        .bind(ts(s.approved_at))
        .bind(ts(now));
    tx.one(q, row::order).await
}

/// The buyer deposited again after the bank took the first deposit back: the same payment row
/// captures the amount once more (its refunds keep the reversal), the same enrollment is
/// ENROLLED again and the order PAID again, as `domain::transition` says.
async fn redeposit(
    tx: &mut Tx<'_, Sqlite>,
    order: Order,
    prior: &PriorPayment,
    s: &Settlement,
    now: OffsetDateTime,
) -> Result<Settled> {
    let enrollment_id = prior.enrollment_id.ok_or_else(|| {
        StoreError::Other(format!("payment {} has no enrollment", prior.payment_id))
    })?;
    let q = query(REDEPOSIT_PAYMENT)
        .bind(prior.payment_id.0)
        .bind(s.amount.won())
        .bind(s.status.as_str())
        .bind(ts(s.approved_at))
        .bind(ts(now));
    let payment = tx.one(q, row::payment).await?;
    tx.exec(query(REENROLL).bind(enrollment_id.0).bind(ts(now)))
        .await?;
    let from_status = order.status;
    let ids = (prior.payment_id, enrollment_id);
    let order = settle_order(tx, order, OrderEvent::Redeposit, s, ids, now).await?;
    insert_event(
        tx,
        NewEvent {
            order_id: s.order_id.as_str(),
            payment_id: Some(prior.payment_id.0),
            kind: "payment.redeposited",
            from_status: Some(from_status.as_str()),
            to_status: Some(order.status.as_str()),
            ctx: &s.ctx,
            detail: json!({
                "source": s.source,
                "amount": s.amount.won(),
                "captured": payment.amount.won(),
                "payment_key": s.payment_key.as_str(),
            }),
            at: now,
        },
    )
    .await?;
    Ok(Settled {
        order,
        payment_id: prior.payment_id,
        enrollment_id,
        approved_at: payment.approved_at,
        newly_settled: true,
    })
}

/// What settle decides on, read under the write lock (SETTLE_READ).
struct SettleRead {
    order: Order,
    duplicate: bool,
    prior: Option<PriorPayment>,
    other_payment: bool,
}

/// The payment already recorded under the settled payment key.
struct PriorPayment {
    payment_id: PaymentId,
    order_id: String,
    enrollment_id: Option<EnrollmentId>,
    approved_at: OffsetDateTime,
    status: PaymentStatus,
}

impl SettleRead {
    fn decode(r: &SqliteRow) -> Result<SettleRead> {
        let prior = match r.opt_uuid("prior_payment_id")? {
            Some(id) => Some(PriorPayment {
                payment_id: PaymentId(id),
                order_id: r.text("prior_order_id")?,
                enrollment_id: r.opt_uuid("prior_enrollment_id")?.map(EnrollmentId),
                approved_at: r.ts("prior_approved_at")?,
                status: r.parsed::<PaymentStatus>("prior_status")?,
            }),
            None => None,
        };
        Ok(SettleRead {
            order: row::order(r)?,
            duplicate: r.flag("duplicate")?,
            prior,
            other_payment: r.flag("other_payment")?,
        })
    }
}

/// What [`record_refund_rows`] wrote: the transaction keys recorded, in Toss's order, and how
/// many new cancels the balance did not account for.
struct RefundRows {
    keys: Vec<String>,
    left_out: u32,
}

/// Refund rows for the cancels that have none yet, as far as the balance accounts for them
/// (`domain::transition::cancels_to_record`, offered as it says: the newest one whose amount
/// equals the REQUESTED refund's first, then the rest newest first). The matched one marks that
/// REQUESTED row DONE (the refund flow and a CANCELED webhook racing each other end as one
/// row); the rest are cancels made outside coursepay and are inserted as DONE.
async fn record_refund_rows(
    tx: &mut Tx<'_, Sqlite>,
    payment: &Payment,
    c: &Cancellation,
    now: OffsetDateTime,
) -> Result<RefundRows> {
    let now = ts(now);
    let mut unknown = Vec::new();
    for cancel in c.distinct_cancels() {
        let q = query(REFUND_TX_KNOWN).bind(&cancel.transaction_key);
        if tx.one(q, |r| r.int("n")).await? == 0 {
            unknown.push(cancel);
        }
    }
    if unknown.is_empty() {
        return Ok(RefundRows {
            keys: Vec::new(),
            left_out: 0,
        });
    }
    let q = query(REQUESTED_REFUNDS).bind(payment.id.0);
    let requested = tx.opt(q, |r| row::refund(r, "")).await?;
    let matched = requested.as_ref().and_then(|req| {
        let i = unknown.iter().rposition(|x| x.amount == req.amount)?;
        Some((i, req.id))
    });
    let mut offered: Vec<usize> = (0..unknown.len()).rev().collect();
    if let Some((m, _)) = matched {
        offered.retain(|&i| i != m);
        offered.insert(0, m);
    }
    let done = tx
        .one(query(DONE_REFUNDS).bind(payment.id.0), |r| r.int("amount"))
        .await?;
    let balance_after = payment.balance.min(c.balance);
    let room = Money::new(payment.amount.won() - balance_after.won() - done).unwrap_or(Money::ZERO);
    let amounts: Vec<Money> = offered.iter().map(|&i| unknown[i].amount).collect();
    let take = domain::transition::cancels_to_record(room, &amounts);
    let mut chosen: Vec<usize> = offered
        .into_iter()
        .zip(take)
        .filter_map(|(i, taken)| taken.then_some(i))
        .collect();
    chosen.sort_unstable();
    let left_out = u32::try_from(unknown.len() - chosen.len()).unwrap_or(u32::MAX);
    let mut keys = Vec::with_capacity(chosen.len());
    for i in chosen {
        let cancel = unknown[i];
        let q = match matched {
            Some((m, refund_id)) if m == i => query(REFUND_DONE)
                .bind(refund_id.0)
                .bind(&cancel.transaction_key)
                .bind(&now),
            _ => query(INSERT_REFUND)
                .bind(RefundId::new().0)
                .bind(payment.id.0)
                .bind(cancel.amount.won())
                .bind(&cancel.reason)
                .bind(RefundStatus::Done.as_str())
                .bind(Some(&cancel.transaction_key))
                .bind(format!("toss-cancel-{}", cancel.transaction_key))
                .bind(format!("external:{}", c.source))
                .bind(&now),
        };
        tx.exec(q).await?;
        keys.push(cancel.transaction_key.clone());
    }
    Ok(RefundRows { keys, left_out })
}

/// The payment's balance drops to Toss's; when this takes it to zero, the order and the
/// enrollment are refunded too. Returns the payment as stored and whether the enrollment was
/// revoked.
async fn lower_balance(
    tx: &mut Tx<'_, Sqlite>,
    payment: Payment,
    c: &Cancellation,
    recorded_keys: &[String],
    now: OffsetDateTime,
) -> Result<(Payment, bool)> {
    let old_balance = payment.balance;
    let old_status = payment.status;
    let new_status = old_status.after_cancel(c.status, c.balance.won());
    let q = query(PAYMENT_CANCELED)
        .bind(payment.id.0)
        .bind(c.balance.won())
        .bind(new_status.as_str())
        .bind(ts(now));
    let payment = tx.one(q, row::payment).await?;
    let kind = if payment.balance.is_zero() {
        "payment.canceled"
    } else {
        "payment.partially_canceled"
    };
    insert_event(
        tx,
        NewEvent {
            order_id: payment.order_id.as_str(),
            payment_id: Some(payment.id.0),
            kind,
            from_status: Some(old_status.as_str()),
            to_status: Some(new_status.as_str()),
            ctx: &c.ctx,
            detail: json!({
                "source": c.source,
                "balance": payment.balance.won(),
                "refunded": payment.amount.won() - payment.balance.won(),
                "transaction_keys": recorded_keys,
            }),
            at: now,
        },
    )
    .await?;
    let revoked = if payment.balance.is_zero() && !old_balance.is_zero() {
        refund_in_full(tx, &payment, c, now).await?
    } else {
        false
    };
    Ok((payment, revoked))
}

/// The payment was cancelled in full: the enrollment is revoked (unless the order is a
/// duplicate payment, whose enrollment is the first order's) and the order becomes REFUNDED.
/// Returns whether the enrollment was revoked.
async fn refund_in_full(
    tx: &mut Tx<'_, Sqlite>,
    payment: &Payment,
    c: &Cancellation,
    now: OffsetDateTime,
) -> Result<bool> {
    let q = query(ORDER_BRIEF).bind(payment.order_id.as_str());
    let (order_status, failure_code) = tx
        .one(q, |r| {
            Ok((
                r.parsed::<OrderStatus>("status")?,
                r.opt_text("failure_code")?,
            ))
        })
        .await?;
    let duplicate =
        order_status == OrderStatus::Failed && failure_code.as_deref() == Some(DUPLICATE_PAYMENT);
    let mut revoked = false;
    if let Some(enrollment) = payment.enrollment_id
        && !duplicate
    {
        let q = query(REVOKE_ENROLLMENT).bind(enrollment.0).bind(ts(now));
        revoked = tx.exec(q).await? > 0;
        if revoked {
            let detail = json!({ "enrollment_id": enrollment, "source": c.source });
            insert_event(
                tx,
                NewEvent {
                    order_id: payment.order_id.as_str(),
                    payment_id: Some(payment.id.0),
                    kind: "enrollment.refunded",
                    from_status: Some(EnrollmentStatus::Enrolled.as_str()),
                    to_status: Some(EnrollmentStatus::Refunded.as_str()),
                    ctx: &c.ctx,
                    detail,
                    at: now,
                },
            )
            .await?;
        }
    }
    let q = query(REFUND_ORDER)
        .bind(payment.order_id.as_str())
        .bind(ts(now));
    if tx.exec(q).await? > 0 {
        insert_event(
            tx,
            NewEvent {
                order_id: payment.order_id.as_str(),
                payment_id: Some(payment.id.0),
                kind: "order.refunded",
                from_status: Some(order_status.as_str()),
                to_status: Some(OrderStatus::Refunded.as_str()),
                ctx: &c.ctx,
                detail: json!({ "source": c.source }),
                at: now,
            },
        )
        .await?;
    }
    Ok(revoked)
}

fn truncate_to_micros(t: OffsetDateTime) -> OffsetDateTime {
    let nanos = t.nanosecond();
    t.replace_nanosecond(nanos - nanos % 1_000).unwrap_or(t)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn timestamps_are_fixed_width_utc() {
        let t = datetime!(2026-01-02 12:04:05.1234567 +09:00);
        assert_eq!(ts(t), "2026-01-02T03:04:05.123456Z");
        assert_eq!(
            ts(datetime!(2026-01-02 03:04:05 UTC)),
            "2026-01-02T03:04:05.000000Z"
        );
        let back = parse_ts("at", &ts(t)).unwrap();
        assert_eq!(back, truncate_to_micros(t));
        // Text order is time order.
        let earlier = datetime!(2026-01-02 03:04:05.9 UTC);
        let later = datetime!(2026-01-02 03:04:06 UTC);
        assert!(ts(earlier) < ts(later));
    }
}
