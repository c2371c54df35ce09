//! The SQLite backend (the embedded default): one file in WAL mode, same schema and
//! constraint names as PostgreSQL.
//!
//! SQLite has no data-modifying CTEs, so each state change is one transaction of a few
//! statements. Write transactions start with `BEGIN IMMEDIATE`: the write lock is taken up
//! front, so concurrent writers queue on `busy_timeout` instead of both reading under a shared
//! lock and then failing to upgrade it (SQLITE_BUSY, the SQLite form of a deadlock). Inside
//! the transaction nobody else writes, so a read followed by a write sees no races; that is
//! why this file needs none of the re-run logic the PostgreSQL backend has.
//!
//! Timestamps are TEXT, RFC 3339 in UTC with exactly six fractional digits
//! (`2026-01-02T03:04:05.123456Z`, see [`ts`]): fixed width, so text order is time order and
//! SQL comparisons (`expires_at > $now`) are correct. Microseconds, like PostgreSQL.

use crate::error::from_sqlite;
use crate::model::*;
use crate::row::{self, Columns, bad_column};
use crate::{Backend, Result, Store, StoreError, roundtrips};
use async_trait::async_trait;
use domain::{
    AttemptId, CourseId, EnrollmentId, EnrollmentStatus, Money, OrderId, OrderStatus, PaymentId,
    PaymentStatus, RefundId, RefundStatus, UserId,
};
use serde_json::json;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Decode, Row, Sqlite, SqliteConnection, Transaction, Type};
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
    pool: SqlitePool,
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
        let (options, pool) = if in_memory {
            // Every connection to ":memory:" is its own database: keep exactly one, forever.
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
            (options, pool)
        } else {
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                // Writers queue inside SQLite (busy_timeout); the pool wait adds to that.
                .acquire_timeout(BUSY_TIMEOUT + Duration::from_secs(5));
            (options.journal_mode(SqliteJournalMode::Wal), pool)
        };
        let pool = pool.connect_with(options).await.map_err(from_sqlite)?;
        Ok(Self::from_pool(pool))
    }

    pub fn from_pool(pool: SqlitePool) -> SqliteStore {
        SqliteStore { pool, _dir: None }
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

    async fn begin(&self) -> Result<Transaction<'static, Sqlite>> {
        roundtrips::add(1);
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(from_sqlite)
    }
}

async fn commit(tx: Transaction<'static, Sqlite>) -> Result<()> {
    roundtrips::add(1);
    tx.commit().await.map_err(from_sqlite)
}

async fn rollback(tx: Transaction<'static, Sqlite>) -> Result<()> {
    roundtrips::add(1);
    tx.rollback().await.map_err(from_sqlite)
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

async fn insert_event(conn: &mut SqliteConnection, ev: NewEvent<'_>) -> Result<()> {
    roundtrips::add(1);
    sqlx::query(INSERT_EVENT)
        .bind(ev.order_id)
        .bind(ev.payment_id)
        .bind(ev.kind)
        .bind(ev.from_status)
        .bind(ev.to_status)
        .bind(&ev.ctx.actor)
        .bind(ev.ctx.request_id.as_deref())
        .bind(ev.detail.to_string())
        .bind(ts(ev.at))
        .execute(conn)
        .await
        .map_err(from_sqlite)?;
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

const ABANDONED_ORDERS: &str = "
SELECT order_id FROM orders
WHERE status = 'PENDING' AND expires_at <= $1 AND reconcile_lookups_expired >= $2
ORDER BY expires_at, order_id
LIMIT $3";

const OPEN_ORDER_BACKLOG: &str = "
SELECT count(*) AS count, min(created_at) AS oldest
FROM orders
WHERE status IN ('PENDING', 'CONFIRMING') AND created_at <= $1";

const PAYMENT_CONTROLS: &str = "SELECT * FROM payment_controls WHERE id = 1";

const SET_PAYMENTS_PAUSED: &str = "
UPDATE payment_controls
SET paused = $1, reason = $2, updated_at = $3, updated_by = $4
WHERE id = 1
RETURNING *";

const INSERT_CONTROL_EVENT: &str = "
INSERT INTO payment_events (order_id, kind, actor, request_id, detail, at)
VALUES (NULL, $1, $2, $3, $4, $5)";

const CREATE_COURSE: &str = "
INSERT INTO courses (id, title, price, currency, status, created_at, updated_at)
VALUES ($1, $2, $3, 'KRW', 'PUBLISHED', $4, $4)
RETURNING *";

const LIST_COURSES: &str = "
SELECT * FROM courses WHERE status = 'PUBLISHED' ORDER BY created_at, id";

const GET_COURSE: &str = "SELECT * FROM courses WHERE id = $1";

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

/// Why CREATE_ORDER inserted nothing: enrolled already, else the open-order cap.
const ENROLLED_IN: &str = "
SELECT EXISTS (
    SELECT 1 FROM enrollments WHERE user_id = $1 AND course_id = $2 AND status = 'ENROLLED'
)";

const PURGE_IDEMPOTENCY_KEYS: &str = "
DELETE FROM idempotency_keys
WHERE rowid IN (SELECT rowid FROM idempotency_keys WHERE expires_at <= $1 LIMIT $2)";

const PURGE_ONE_TIME_TOKENS: &str = "
DELETE FROM one_time_tokens
WHERE rowid IN (SELECT rowid FROM one_time_tokens WHERE expires_at <= $1 LIMIT $2)
RETURNING kind";

const GET_ORDER: &str = "SELECT * FROM orders WHERE order_id = $1";

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

const FAIL_ORDER: &str = "
UPDATE orders SET status = $2, failure_code = $3, updated_at = $4
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

const SETTLE_ORDER: &str = "
UPDATE orders
SET status = $2, failure_code = $3, payment_key = $4, payment_id = $5, enrollment_id = $6,
    approved_at = $7, updated_at = $8
WHERE order_id = $1
RETURNING *";

const OPEN_ORDERS: &str = "
SELECT * FROM orders
WHERE status IN ('PENDING', 'CONFIRMING') AND updated_at < $1
ORDER BY updated_at, order_id
LIMIT $2";

const LIST_ENROLLMENTS: &str = "
SELECT * FROM enrollments WHERE user_id = $1 ORDER BY enrolled_at, id";

const GET_ENROLLMENT: &str = "SELECT * FROM enrollments WHERE id = $1";

const GET_PAYMENT: &str = "SELECT * FROM payments WHERE id = $1";

const PAYMENT_FOR_ORDER: &str = "SELECT * FROM payments WHERE order_id = $1";

const ORDER_EVENTS: &str = "SELECT * FROM payment_events WHERE order_id = $1 ORDER BY id";

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

const KEY_FINGERPRINT: &str = "
SELECT fingerprint FROM idempotency_keys WHERE scope = $1 AND key = $2";

const REMEMBER_ONCE: &str = "
INSERT INTO one_time_tokens (kind, token, expires_at)
VALUES ($1, $2, $3)
ON CONFLICT (kind, token) DO UPDATE SET expires_at = excluded.expires_at
WHERE one_time_tokens.expires_at <= $4
RETURNING 1";

const FORGET_ONCE: &str = "DELETE FROM one_time_tokens WHERE kind = $1 AND token = $2";

const RECORD_DEPOSIT_SECRET: &str = "
UPDATE orders SET deposit_secret = $2 WHERE order_id = $1 RETURNING 1";

const DEPOSIT_SECRET: &str = "SELECT deposit_secret FROM orders WHERE order_id = $1";

const APPLIED_MIGRATIONS: &str = "
SELECT version FROM _sqlx_migrations WHERE success ORDER BY version";

const PAYMENT_BY_ID: &str = "SELECT * FROM payments WHERE id = $1";

const PAYMENT_BY_KEY: &str = "
SELECT * FROM payments WHERE provider = $1 AND provider_tx_id = $2";

const REQUESTED_REFUNDS: &str = "
SELECT * FROM refunds WHERE payment_id = $1 AND status = 'REQUESTED' ORDER BY created_at, id";

const INSERT_REFUND: &str = "
INSERT INTO refunds (id, payment_id, amount, reason, status, transaction_key, idempotency_key,
                     requested_by, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
RETURNING *";

const REFUND_TX_KNOWN: &str = "SELECT count(*) FROM refunds WHERE transaction_key = $1";

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

const GET_REFUND: &str = "SELECT * FROM refunds WHERE id = $1";

const PAYMENT_REFUNDS: &str = "
SELECT * FROM refunds WHERE payment_id = $1 ORDER BY created_at, id";

const STUCK_REFUNDS: &str = "
SELECT * FROM refunds
WHERE status = 'REQUESTED' AND created_at < $1
ORDER BY created_at, id
LIMIT $2";

const ENROLLMENT_FOR_ATTEMPT: &str = "
SELECT user_id, status, exam_attempts_started FROM enrollments WHERE id = $1";

const BUMP_ATTEMPTS: &str = "
UPDATE enrollments SET exam_attempts_started = exam_attempts_started + 1 WHERE id = $1";

const INSERT_ATTEMPT: &str = "
INSERT INTO exam_attempts (id, enrollment_id, score, started_at, submitted_at)
VALUES ($1, $2, NULL, $3, NULL)";

const GET_ATTEMPT: &str = "
SELECT a.*, e.user_id FROM exam_attempts a JOIN enrollments e ON e.id = a.enrollment_id
WHERE a.id = $1";

const SUBMIT_ATTEMPT: &str = "
UPDATE exam_attempts SET score = $2, submitted_at = $3
WHERE id = $1 AND submitted_at IS NULL";

const ATTEMPT_EXISTS: &str = "SELECT count(*) FROM exam_attempts WHERE id = $1";

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(inner)
            | sqlx::migrate::MigrateError::ExecuteMigration(inner, _) => from_sqlite(inner),
            other => StoreError::Other(format!("migration failed: {other}")),
        })
    }

    async fn ready(&self) -> Result<()> {
        let _timed = roundtrips::timer("ready");
        roundtrips::add(1);
        let applied: Vec<i64> = sqlx::query_scalar(APPLIED_MIGRATIONS)
            .fetch_all(&self.pool)
            .await
            .map_err(from_sqlite)?;
        crate::shared::check_applied(&MIGRATOR, &applied)
    }

    async fn create_course(&self, new: NewCourse) -> Result<Course> {
        let _timed = roundtrips::timer("create_course");
        roundtrips::add(1);
        let row = sqlx::query(CREATE_COURSE)
            .bind(new.id.0)
            .bind(&new.title)
            .bind(new.price.won())
            .bind(ts(new.now))
            .fetch_one(&self.pool)
            .await
            .map_err(from_sqlite)?;
        row::course(&row)
    }

    async fn list_courses(&self) -> Result<Vec<Course>> {
        let _timed = roundtrips::timer("list_courses");
        roundtrips::add(1);
        let rows = sqlx::query(LIST_COURSES)
            .fetch_all(&self.pool)
            .await
            .map_err(from_sqlite)?;
        rows.iter().map(row::course).collect()
    }

    async fn get_course(&self, id: CourseId) -> Result<Option<Course>> {
        let _timed = roundtrips::timer("get_course");
        roundtrips::add(1);
        let row = sqlx::query(GET_COURSE)
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(from_sqlite)?;
        row.as_ref().map(row::course).transpose()
    }

    async fn create_order(&self, new: NewOrder) -> Result<Order> {
        let _timed = roundtrips::timer("create_order");
        let mut tx = self.begin().await?;
        roundtrips::add(1);
        let row = sqlx::query(CREATE_ORDER)
            .bind(new.order_id.as_str())
            .bind(new.user_id.0)
            .bind(new.course_id.0)
            .bind(new.amount.won())
            .bind(&new.order_name)
            .bind(ts(new.now))
            .bind(ts(new.expires_at))
            .bind(new.max_open_per_user.map(i64::from))
            .fetch_optional(&mut *tx)
            .await
            .map_err(from_sqlite)?;
        let Some(row) = row else {
            let enrolled = match new.max_open_per_user {
                None => true,
                Some(_) => {
                    roundtrips::add(1);
                    sqlx::query_scalar::<_, bool>(ENROLLED_IN)
                        .bind(new.user_id.0)
                        .bind(new.course_id.0)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(from_sqlite)?
                }
            };
            rollback(tx).await?;
            return Err(if enrolled {
                StoreError::AlreadyEnrolled
            } else {
                StoreError::TooManyOpenOrders
            });
        };
        let order = row::order(&row)?;
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
        commit(tx).await?;
        Ok(order)
    }

    async fn get_order(&self, order_id: &OrderId) -> Result<Option<Order>> {
        let _timed = roundtrips::timer("get_order");
        roundtrips::add(1);
        let row = sqlx::query(GET_ORDER)
            .bind(order_id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(from_sqlite)?;
        row.as_ref().map(row::order).transpose()
    }

    async fn claim_order(&self, claim: ClaimRequest) -> Result<ClaimOutcome> {
        let _timed = roundtrips::timer("claim_order");
        let now = claim.ctx.at();
        let mut tx = self.begin().await?;
        roundtrips::add(1);
        let claimed = sqlx::query(CLAIM_ORDER)
            .bind(claim.order_id.as_str())
            .bind(claim.user_id.0)
            .bind(claim.amount.won())
            .bind(claim.payment_key.as_str())
            .bind(ts(now))
            .fetch_optional(&mut *tx)
            .await
            .map_err(from_sqlite)?;
        if let Some(row) = claimed {
            let order = row::order(&row)?;
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
            commit(tx).await?;
            return Ok(ClaimOutcome::Claimed(order));
        }
        roundtrips::add(1);
        let found = sqlx::query(ORDER_AND_ELSEWHERE)
            .bind(claim.order_id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(from_sqlite)?;
        commit(tx).await?;
        match found {
            None => Ok(ClaimOutcome::NotFound),
            Some(row) => Ok(ClaimOutcome::NotClaimed {
                order: row::order(&row)?,
                enrolled_elsewhere: row.flag("enrolled_elsewhere")?,
            }),
        }
    }

    async fn release_order(&self, order_id: &OrderId, ctx: &EventContext) -> Result<bool> {
        let _timed = roundtrips::timer("release_order");
        let now = ctx.at();
        let mut tx = self.begin().await?;
        roundtrips::add(1);
        let released: Option<Option<String>> = sqlx::query_scalar(RELEASE_ORDER)
            .bind(order_id.as_str())
            .bind(ts(now))
            .fetch_optional(&mut *tx)
            .await
            .map_err(from_sqlite)?;
        let Some(payment_key) = released else {
            commit(tx).await?;
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
                ctx,
                detail: json!({ "payment_key": payment_key }),
                at: now,
            },
        )
        .await?;
        commit(tx).await?;
        Ok(true)
    }

    async fn fail_order(
        &self,
        order_id: &OrderId,
        to: OrderStatus,
        code: Option<&str>,
        ctx: &EventContext,
    ) -> Result<bool> {
        let _timed = roundtrips::timer("fail_order");
        let kind = crate::shared::fail_event_kind(to)?;
        let now = ts(ctx.at());
        let mut tx = self.begin().await?;
        roundtrips::add(1);
        let logged = sqlx::query(FAIL_ORDER_EVENT)
            .bind(order_id.as_str())
            .bind(kind)
            .bind(to.as_str())
            .bind(&ctx.actor)
            .bind(ctx.request_id.as_deref())
            .bind(json!({ "code": code }).to_string())
            .bind(&now)
            .execute(&mut *tx)
            .await
            .map_err(from_sqlite)?
            .rows_affected();
        if logged == 0 {
            commit(tx).await?;
            return Ok(false);
        }
        roundtrips::add(1);
        sqlx::query(FAIL_ORDER)
            .bind(order_id.as_str())
            .bind(to.as_str())
            .bind(code)
            .bind(&now)
            .execute(&mut *tx)
            .await
            .map_err(from_sqlite)?;
        commit(tx).await?;
        Ok(true)
    }

    async fn settle(&self, s: Settlement) -> Result<Settled> {
        let _timed = roundtrips::timer("settle");
        crate::shared::check_settlement(&s)?;
        let now = s.ctx.at();
        let mut tx = self.begin().await?;

        roundtrips::add(1);
        let found = sqlx::query(SETTLE_READ)
            .bind(s.order_id.as_str())
            .bind(domain::PROVIDER_TOSS)
            .bind(s.payment_key.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(from_sqlite)?;
        let Some(found) = found else {
            rollback(tx).await?;
            return Err(StoreError::NotFound);
        };
        let order = row::order(&found)?;
        if let Some(id) = found.opt_uuid("prior_payment_id")? {
            commit(tx).await?;
            return crate::shared::replayed_settlement(
                order,
                &s.order_id,
                PaymentId(id),
                &found.text("prior_order_id")?,
                found.opt_uuid("prior_enrollment_id")?.map(EnrollmentId),
                found.ts("prior_approved_at")?,
            );
        }
        if found.flag("other_payment")? {
            rollback(tx).await?;
            return Err(StoreError::Constraint("payments_order_id_key".to_owned()));
        }

        roundtrips::add(1);
        let enrollment_id: Uuid = sqlx::query_scalar(SETTLE_ENROLL)
            .bind(EnrollmentId::new().0)
            .bind(order.user_id.0)
            .bind(order.course_id.0)
            .bind(ts(now))
            .fetch_one(&mut *tx)
            .await
            .map_err(from_sqlite)?;

        let payment_id = PaymentId::new();
        roundtrips::add(1);
        sqlx::query(SETTLE_PAYMENT)
            .bind(payment_id.0)
            .bind(domain::PROVIDER_TOSS)
            .bind(s.payment_key.as_str())
            .bind(order.order_id.as_str())
            .bind(order.user_id.0)
            .bind(order.course_id.0)
            .bind(enrollment_id)
            .bind(s.amount.won())
            .bind(s.status.as_str())
            .bind(s.method.as_deref())
            .bind(s.secret.as_deref())
            .bind(ts(s.approved_at))
            .bind(ts(now))
            .execute(&mut *tx)
            .await
            .map_err(from_sqlite)?;

        // PAID stays PAID; another CONFIRMING/PAID order for the course makes this one a
        // duplicate payment (recorded, left for an operator to refund); REFUNDED is not touched.
        let from_status = order.status;
        let (to_status, failure_code) = match order.status {
            OrderStatus::Refunded => (OrderStatus::Refunded, order.failure_code.clone()),
            OrderStatus::Paid => (OrderStatus::Paid, order.failure_code.clone()),
            _ if found.flag("duplicate")? => {
                (OrderStatus::Failed, Some("DUPLICATE_PAYMENT".to_owned()))
            }
            _ => (OrderStatus::Paid, None),
        };
        let order = if from_status == OrderStatus::Refunded {
            order
        } else {
            roundtrips::add(1);
            let row = sqlx::query(SETTLE_ORDER)
                .bind(s.order_id.as_str())
                .bind(to_status.as_str())
                .bind(failure_code.as_deref())
                .bind(s.payment_key.as_str())
                .bind(payment_id.0)
                .bind(enrollment_id)
                .bind(ts(s.approved_at))
                .bind(ts(now))
                .fetch_one(&mut *tx)
                .await
                .map_err(from_sqlite)?;
            row::order(&row)?
        };

        let kind = if to_status == OrderStatus::Failed {
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
                to_status: Some(to_status.as_str()),
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
        commit(tx).await?;

        // The row as stored: timestamps at the database's precision.
        let approved_at = order
            .approved_at
            .unwrap_or_else(|| truncate_to_micros(s.approved_at));
        Ok(Settled {
            order,
            payment_id,
            enrollment_id: EnrollmentId(enrollment_id),
            approved_at,
            newly_settled: true,
        })
    }

    async fn open_orders(&self, older_than: OffsetDateTime, limit: i64) -> Result<Vec<Order>> {
        let _timed = roundtrips::timer("open_orders");
        roundtrips::add(1);
        let rows = sqlx::query(OPEN_ORDERS)
            .bind(ts(older_than))
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(from_sqlite)?;
        rows.iter().map(row::order).collect()
    }

    async fn list_enrollments(&self, user: UserId) -> Result<Vec<Enrollment>> {
        let _timed = roundtrips::timer("list_enrollments");
        roundtrips::add(1);
        let rows = sqlx::query(LIST_ENROLLMENTS)
            .bind(user.0)
            .fetch_all(&self.pool)
            .await
            .map_err(from_sqlite)?;
        rows.iter().map(row::enrollment).collect()
    }

    async fn get_enrollment(&self, id: EnrollmentId) -> Result<Option<Enrollment>> {
        let _timed = roundtrips::timer("get_enrollment");
        roundtrips::add(1);
        let row = sqlx::query(GET_ENROLLMENT)
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(from_sqlite)?;
        row.as_ref().map(row::enrollment).transpose()
    }

    async fn get_payment(&self, id: PaymentId) -> Result<Option<Payment>> {
        let _timed = roundtrips::timer("get_payment");
        roundtrips::add(1);
        let row = sqlx::query(GET_PAYMENT)
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(from_sqlite)?;
        row.as_ref().map(row::payment).transpose()
    }

    async fn payment_for_order(&self, order_id: &OrderId) -> Result<Option<Payment>> {
        let _timed = roundtrips::timer("payment_for_order");
        roundtrips::add(1);
        let row = sqlx::query(PAYMENT_FOR_ORDER)
            .bind(order_id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(from_sqlite)?;
        row.as_ref().map(row::payment).transpose()
    }

    async fn order_events(&self, order_id: &OrderId) -> Result<Vec<Event>> {
        let _timed = roundtrips::timer("order_events");
        roundtrips::add(1);
        let rows = sqlx::query(ORDER_EVENTS)
            .bind(order_id.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(from_sqlite)?;
        rows.iter().map(row::event).collect()
    }

    async fn begin_refund(&self, new: NewRefund) -> Result<RefundBegin> {
        let _timed = roundtrips::timer("begin_refund");
        let now = new.ctx.at();
        let mut tx = self.begin().await?;
        roundtrips::add(1);
        let found = sqlx::query(PAYMENT_BY_ID)
            .bind(new.payment_id.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(from_sqlite)?;
        let Some(found) = found else {
            rollback(tx).await?;
            return Ok(RefundBegin::PaymentNotFound);
        };
        let payment = row::payment(&found)?;
        roundtrips::add(1);
        let requested = sqlx::query(REQUESTED_REFUNDS)
            .bind(payment.id.0)
            .fetch_all(&mut *tx)
            .await
            .map_err(from_sqlite)?;
        let pending: i64 = requested
            .iter()
            .map(|r| row::refund(r, "").map(|r| r.amount.won()))
            .sum::<Result<i64>>()?;
        let available = (payment.balance.won() - pending).max(0);
        let amount = new.amount.map_or(available, Money::won);
        let refundable = matches!(
            payment.status,
            PaymentStatus::Done | PaymentStatus::PartialCanceled
        );
        if !refundable || !requested.is_empty() || amount <= 0 || amount > available {
            rollback(tx).await?;
            return Ok(RefundBegin::NotAllowed {
                payment,
                available: Money::new(available).map_err(|e| bad_column("balance", e))?,
                in_progress: !requested.is_empty(),
            });
        }
        roundtrips::add(1);
        let inserted = sqlx::query(INSERT_REFUND)
            .bind(new.id.0)
            .bind(payment.id.0)
            .bind(amount)
            .bind(&new.reason)
            .bind(RefundStatus::Requested.as_str())
            .bind(None::<String>)
            .bind(new.idempotency_key.as_str())
            .bind(&new.requested_by)
            .bind(ts(now))
            .fetch_one(&mut *tx)
            .await
            .map_err(from_sqlite)?;
        let refund = row::refund(&inserted, "")?;
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
        commit(tx).await?;
        Ok(RefundBegin::Begun { refund, payment })
    }

    async fn record_cancellation(&self, c: Cancellation) -> Result<CancellationRecorded> {
        let _timed = roundtrips::timer("record_cancellation");
        let now = c.ctx.at();
        let mut tx = self.begin().await?;
        roundtrips::add(1);
        let found = sqlx::query(PAYMENT_BY_KEY)
            .bind(domain::PROVIDER_TOSS)
            .bind(c.payment_key.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(from_sqlite)?;
        let Some(found) = found else {
            rollback(tx).await?;
            return Err(StoreError::NotFound);
        };
        let mut payment = row::payment(&found)?;

        // Cancels without a refund row yet, in Toss's order.
        let mut unknown = Vec::new();
        for cancel in c.cancels.iter().filter(|x| !x.amount.is_zero()) {
            roundtrips::add(1);
            let known: i64 = sqlx::query_scalar(REFUND_TX_KNOWN)
                .bind(&cancel.transaction_key)
                .fetch_one(&mut *tx)
                .await
                .map_err(from_sqlite)?;
            if known == 0 {
                unknown.push(cancel);
            }
        }
        let mut recorded = 0u32;
        let mut recorded_keys = Vec::new();
        if !unknown.is_empty() {
            roundtrips::add(1);
            let requested = sqlx::query(REQUESTED_REFUNDS)
                .bind(payment.id.0)
                .fetch_optional(&mut *tx)
                .await
                .map_err(from_sqlite)?
                .map(|r| row::refund(&r, ""))
                .transpose()?;
            // The newest unknown cancel of the REQUESTED refund's amount is that refund.
            let matched = requested.as_ref().and_then(|req| {
                unknown
                    .iter()
                    .rposition(|x| x.amount == req.amount)
                    .map(|i| (i, req.id))
            });
            for (i, cancel) in unknown.iter().enumerate() {
                match matched {
                    Some((m, refund_id)) if m == i => {
                        roundtrips::add(1);
                        sqlx::query(REFUND_DONE)
                            .bind(refund_id.0)
                            .bind(&cancel.transaction_key)
                            .bind(ts(now))
                            .execute(&mut *tx)
                            .await
                            .map_err(from_sqlite)?;
                    }
                    _ => {
                        roundtrips::add(1);
                        sqlx::query(INSERT_REFUND)
                            .bind(RefundId::new().0)
                            .bind(payment.id.0)
                            .bind(cancel.amount.won())
                            .bind(&cancel.reason)
                            .bind(RefundStatus::Done.as_str())
                            .bind(Some(&cancel.transaction_key))
                            .bind(format!("toss-cancel-{}", cancel.transaction_key))
                            .bind(format!("external:{}", c.source))
                            .bind(ts(now))
                            .fetch_one(&mut *tx)
                            .await
                            .map_err(from_sqlite)?;
                    }
                }
                recorded += 1;
                recorded_keys.push(cancel.transaction_key.clone());
            }
        }

        let mut revoked = false;
        let old_balance = payment.balance;
        if c.balance < payment.balance {
            let old_status = payment.status;
            let new_status = if c.balance.is_zero() {
                PaymentStatus::Canceled
            } else {
                PaymentStatus::PartialCanceled
            };
            roundtrips::add(1);
            let row = sqlx::query(PAYMENT_CANCELED)
                .bind(payment.id.0)
                .bind(c.balance.won())
                .bind(new_status.as_str())
                .bind(ts(now))
                .fetch_one(&mut *tx)
                .await
                .map_err(from_sqlite)?;
            payment = row::payment(&row)?;
            let refunded = payment.amount.won() - payment.balance.won();
            insert_event(
                &mut tx,
                NewEvent {
                    order_id: payment.order_id.as_str(),
                    payment_id: Some(payment.id.0),
                    kind: if new_status == PaymentStatus::Canceled {
                        "payment.canceled"
                    } else {
                        "payment.partially_canceled"
                    },
                    from_status: Some(old_status.as_str()),
                    to_status: Some(new_status.as_str()),
                    ctx: &c.ctx,
                    detail: json!({
                        "source": c.source,
                        "balance": payment.balance.won(),
                        "refunded": refunded,
                        "transaction_keys": recorded_keys,
                    }),
                    at: now,
                },
            )
            .await?;

            if payment.balance.is_zero() && !old_balance.is_zero() {
                roundtrips::add(1);
                let (order_status, failure_code): (String, Option<String>) =
                    sqlx::query_as(ORDER_BRIEF)
                        .bind(payment.order_id.as_str())
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(from_sqlite)?;
                let duplicate = order_status == OrderStatus::Failed.as_str()
                    && failure_code.as_deref() == Some("DUPLICATE_PAYMENT");
                if let Some(enrollment) = payment.enrollment_id
                    && !duplicate
                {
                    roundtrips::add(1);
                    revoked = sqlx::query(REVOKE_ENROLLMENT)
                        .bind(enrollment.0)
                        .bind(ts(now))
                        .execute(&mut *tx)
                        .await
                        .map_err(from_sqlite)?
                        .rows_affected()
                        > 0;
                    if revoked {
                        insert_event(
                            &mut tx,
                            NewEvent {
                                order_id: payment.order_id.as_str(),
                                payment_id: Some(payment.id.0),
                                kind: "enrollment.refunded",
                                from_status: Some(EnrollmentStatus::Enrolled.as_str()),
                                to_status: Some(EnrollmentStatus::Refunded.as_str()),
                                ctx: &c.ctx,
                                detail: json!({ "enrollment_id": enrollment, "source": c.source }),
                                at: now,
                            },
                        )
                        .await?;
                    }
                }
                roundtrips::add(1);
                let moved = sqlx::query(REFUND_ORDER)
                    .bind(payment.order_id.as_str())
                    .bind(ts(now))
                    .execute(&mut *tx)
                    .await
                    .map_err(from_sqlite)?
                    .rows_affected();
                if moved > 0 {
                    insert_event(
                        &mut tx,
                        NewEvent {
                            order_id: payment.order_id.as_str(),
                            payment_id: Some(payment.id.0),
                            kind: "order.refunded",
                            from_status: Some(&order_status),
                            to_status: Some(OrderStatus::Refunded.as_str()),
                            ctx: &c.ctx,
                            detail: json!({ "source": c.source }),
                            at: now,
                        },
                    )
                    .await?;
                }
            }
        }

        let enrollment_status = match payment.enrollment_id {
            Some(e) => {
                roundtrips::add(1);
                let status: Option<String> = sqlx::query_scalar(ENROLLMENT_STATUS)
                    .bind(e.0)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(from_sqlite)?;
                status
                    .map(|s| {
                        s.parse::<EnrollmentStatus>()
                            .map_err(|e| bad_column("status", e))
                    })
                    .transpose()?
            }
            None => None,
        };
        commit(tx).await?;
        Ok(CancellationRecorded {
            payment,
            refunds_recorded: recorded,
            enrollment_revoked: revoked,
            enrollment_status,
        })
    }

    async fn fail_refund(&self, id: RefundId, code: &str, ctx: &EventContext) -> Result<bool> {
        let _timed = roundtrips::timer("fail_refund");
        let now = ctx.at();
        let mut tx = self.begin().await?;
        roundtrips::add(1);
        let failed: Option<(Uuid, i64)> = sqlx::query_as(FAIL_REFUND)
            .bind(id.0)
            .bind(ts(now))
            .fetch_optional(&mut *tx)
            .await
            .map_err(from_sqlite)?;
        let Some((payment_id, amount)) = failed else {
            commit(tx).await?;
            return Ok(false);
        };
        roundtrips::add(1);
        let order_id: String = sqlx::query_scalar(ORDER_OF_PAYMENT)
            .bind(payment_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(from_sqlite)?;
        insert_event(
            &mut tx,
            NewEvent {
                order_id: &order_id,
                payment_id: Some(payment_id),
                kind: "refund.failed",
                from_status: Some(RefundStatus::Requested.as_str()),
                to_status: Some(RefundStatus::Failed.as_str()),
                ctx,
                detail: json!({ "refund_id": id, "amount": amount, "code": code }),
                at: now,
            },
        )
        .await?;
        commit(tx).await?;
        Ok(true)
    }

    async fn get_refund(&self, id: RefundId) -> Result<Option<Refund>> {
        let _timed = roundtrips::timer("get_refund");
        roundtrips::add(1);
        let row = sqlx::query(GET_REFUND)
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(from_sqlite)?;
        row.as_ref().map(|r| row::refund(r, "")).transpose()
    }

    async fn payment_refunds(&self, payment_id: PaymentId) -> Result<Vec<Refund>> {
        let _timed = roundtrips::timer("payment_refunds");
        roundtrips::add(1);
        let rows = sqlx::query(PAYMENT_REFUNDS)
            .bind(payment_id.0)
            .fetch_all(&self.pool)
            .await
            .map_err(from_sqlite)?;
        rows.iter().map(|r| row::refund(r, "")).collect()
    }

    async fn stuck_refunds(&self, older_than: OffsetDateTime, limit: i64) -> Result<Vec<Refund>> {
        let _timed = roundtrips::timer("stuck_refunds");
        roundtrips::add(1);
        let rows = sqlx::query(STUCK_REFUNDS)
            .bind(ts(older_than))
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(from_sqlite)?;
        rows.iter().map(|r| row::refund(r, "")).collect()
    }

    async fn start_attempt(
        &self,
        enrollment_id: EnrollmentId,
        attempt_id: AttemptId,
        max_attempts: u32,
        now: OffsetDateTime,
    ) -> Result<AttemptStart> {
        let _timed = roundtrips::timer("start_attempt");
        let mut tx = self.begin().await?;
        roundtrips::add(1);
        let found: Option<(Uuid, String, i64)> = sqlx::query_as(ENROLLMENT_FOR_ATTEMPT)
            .bind(enrollment_id.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(from_sqlite)?;
        let Some((user_id, status, used)) = found else {
            rollback(tx).await?;
            return Ok(AttemptStart::EnrollmentNotFound);
        };
        if status != EnrollmentStatus::Enrolled.as_str() {
            rollback(tx).await?;
            return Ok(AttemptStart::NotEnrolled);
        }
        if used >= i64::from(max_attempts) {
            rollback(tx).await?;
            return Ok(AttemptStart::LimitReached { used });
        }
        roundtrips::add(1);
        sqlx::query(BUMP_ATTEMPTS)
            .bind(enrollment_id.0)
            .execute(&mut *tx)
            .await
            .map_err(from_sqlite)?;
        roundtrips::add(1);
        sqlx::query(INSERT_ATTEMPT)
            .bind(attempt_id.0)
            .bind(enrollment_id.0)
            .bind(ts(now))
            .execute(&mut *tx)
            .await
            .map_err(from_sqlite)?;
        commit(tx).await?;
        Ok(AttemptStart::Started(ExamAttempt {
            id: attempt_id,
            enrollment_id,
            user_id: UserId(user_id),
            score: None,
            started_at: truncate_to_micros(now),
            submitted_at: None,
        }))
    }

    async fn get_attempt(&self, id: AttemptId) -> Result<Option<ExamAttempt>> {
        let _timed = roundtrips::timer("get_attempt");
        roundtrips::add(1);
        let row = sqlx::query(GET_ATTEMPT)
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(from_sqlite)?;
        row.as_ref().map(row::attempt).transpose()
    }

    async fn submit_attempt(
        &self,
        id: AttemptId,
        score: i32,
        now: OffsetDateTime,
    ) -> Result<AttemptSubmit> {
        let _timed = roundtrips::timer("submit_attempt");
        let mut tx = self.begin().await?;
        roundtrips::add(1);
        let moved = sqlx::query(SUBMIT_ATTEMPT)
            .bind(id.0)
            .bind(score)
            .bind(ts(now))
            .execute(&mut *tx)
            .await
            .map_err(from_sqlite)?
            .rows_affected();
        if moved == 0 {
            roundtrips::add(1);
            let exists: i64 = sqlx::query_scalar(ATTEMPT_EXISTS)
                .bind(id.0)
                .fetch_one(&mut *tx)
                .await
                .map_err(from_sqlite)?;
            commit(tx).await?;
            return Ok(if exists > 0 {
                AttemptSubmit::AlreadySubmitted
            } else {
                AttemptSubmit::NotFound
            });
        }
        roundtrips::add(1);
        let row = sqlx::query(GET_ATTEMPT)
            .bind(id.0)
            .fetch_one(&mut *tx)
            .await
            .map_err(from_sqlite)?;
        commit(tx).await?;
        Ok(AttemptSubmit::Submitted(row::attempt(&row)?))
    }

    async fn lease_open_orders(
        &self,
        owner: &str,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        older_than: OffsetDateTime,
        limit: i64,
    ) -> Result<Vec<Order>> {
        let _s = roundtrips::timer("lease_open_orders");
        // BEGIN IMMEDIATE: no other writer between picking and leasing.
        let mut tx = self.begin().await?;
        roundtrips::add(1);
        let picked: Vec<String> = sqlx::query_scalar(LEASE_PICK)
            .bind(ts(older_than))
            .bind(ts(now))
            .bind(limit)
            .fetch_all(&mut *tx)
            .await
            .map_err(from_sqlite)?;
        let mut leased = Vec::with_capacity(picked.len());
        for order_id in picked {
            roundtrips::add(1);
            let row = sqlx::query(LEASE_ORDER)
                .bind(&order_id)
                .bind(ts(lease_until))
                .bind(owner)
                .bind(ts(now))
                .fetch_one(&mut *tx)
                .await
                .map_err(from_sqlite)?;
            leased.push(row::order(&row)?);
        }
        commit(tx).await?;
        Ok(leased)
    }

    async fn abandoned_orders(
        &self,
        now: OffsetDateTime,
        min_lookups: i64,
        limit: i64,
    ) -> Result<Vec<OrderId>> {
        let _s = roundtrips::statement("abandoned_orders");
        let ids: Vec<String> = sqlx::query_scalar(ABANDONED_ORDERS)
            .bind(ts(now))
            .bind(min_lookups)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(from_sqlite)?;
        ids.iter()
            .map(|id| OrderId::parse(id).map_err(|e| bad_column("order_id", e)))
            .collect()
    }

    async fn open_order_backlog(
        &self,
        now: OffsetDateTime,
    ) -> Result<(i64, Option<OffsetDateTime>)> {
        let _s = roundtrips::statement("open_order_backlog");
        let row = sqlx::query(OPEN_ORDER_BACKLOG)
            .bind(ts(now))
            .fetch_one(&self.pool)
            .await
            .map_err(from_sqlite)?;
        let oldest = match row.opt_text("oldest")? {
            Some(t) => Some(parse_ts("oldest", &t)?),
            None => None,
        };
        Ok((row.int("count")?, oldest))
    }

    async fn payment_controls(&self) -> Result<PaymentControls> {
        let _s = roundtrips::statement("payment_controls");
        let row = sqlx::query(PAYMENT_CONTROLS)
            .fetch_one(&self.pool)
            .await
            .map_err(from_sqlite)?;
        row::controls(&row)
    }

    async fn set_payments_paused(
        &self,
        paused: bool,
        reason: Option<&str>,
        ctx: &EventContext,
    ) -> Result<PaymentControls> {
        let _s = roundtrips::timer("set_payments_paused");
        let mut tx = self.begin().await?;
        roundtrips::add(1);
        let row = sqlx::query(SET_PAYMENTS_PAUSED)
            .bind(paused)
            .bind(reason)
            .bind(ts(ctx.at()))
            .bind(&ctx.actor)
            .fetch_one(&mut *tx)
            .await
            .map_err(from_sqlite)?;
        let controls = row::controls(&row)?;
        roundtrips::add(1);
        sqlx::query(INSERT_CONTROL_EVENT)
            .bind(if paused {
                "payments.paused"
            } else {
                "payments.resumed"
            })
            .bind(&ctx.actor)
            .bind(ctx.request_id.as_deref())
            .bind(json!({ "reason": reason }).to_string())
            .bind(ts(ctx.at()))
            .execute(&mut *tx)
            .await
            .map_err(from_sqlite)?;
        commit(tx).await?;
        Ok(controls)
    }

    async fn remember_idempotency_key(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &str,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<KeyUse> {
        let _timed = roundtrips::timer("remember_idempotency_key");
        roundtrips::add(1);
        let fresh = sqlx::query(REMEMBER_KEY)
            .bind(scope)
            .bind(key)
            .bind(fingerprint)
            .bind(ts(now))
            .bind(ts(expires_at))
            .fetch_optional(&self.pool)
            .await
            .map_err(from_sqlite)?;
        if fresh.is_some() {
            return Ok(KeyUse::Fresh);
        }
        // The key is live (rows are never deleted while live, so this read finds it).
        roundtrips::add(1);
        let seen: String = sqlx::query_scalar(KEY_FINGERPRINT)
            .bind(scope)
            .bind(key)
            .fetch_one(&self.pool)
            .await
            .map_err(from_sqlite)?;
        Ok(crate::shared::key_use(&seen, fingerprint))
    }

    async fn remember_once(
        &self,
        kind: &str,
        token: &str,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<bool> {
        let _timed = roundtrips::timer("remember_once");
        roundtrips::add(1);
        let row = sqlx::query(REMEMBER_ONCE)
            .bind(kind)
            .bind(token)
            .bind(ts(expires_at))
            .bind(ts(now))
            .fetch_optional(&self.pool)
            .await
            .map_err(from_sqlite)?;
        Ok(row.is_some())
    }

    async fn purge_expired(&self, now: OffsetDateTime, limit: i64) -> Result<Vec<PurgedRows>> {
        let _timed = roundtrips::timer("purge_expired");
        roundtrips::add(2);
        let keys = sqlx::query(PURGE_IDEMPOTENCY_KEYS)
            .bind(ts(now))
            .bind(limit)
            .execute(&self.pool)
            .await
            .map_err(from_sqlite)?
            .rows_affected();
        let kinds: Vec<String> = sqlx::query_scalar(PURGE_ONE_TIME_TOKENS)
            .bind(ts(now))
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(from_sqlite)?;
        Ok(crate::shared::purged(keys, kinds))
    }

    async fn forget_once(&self, kind: &str, token: &str) -> Result<()> {
        let _timed = roundtrips::timer("forget_once");
        roundtrips::add(1);
        sqlx::query(FORGET_ONCE)
            .bind(kind)
            .bind(token)
            .execute(&self.pool)
            .await
            .map_err(from_sqlite)?;
        Ok(())
    }

    async fn record_deposit_secret(&self, order_id: &OrderId, secret: &str) -> Result<bool> {
        let _timed = roundtrips::timer("record_deposit_secret");
        roundtrips::add(1);
        let row = sqlx::query(RECORD_DEPOSIT_SECRET)
            .bind(order_id.as_str())
            .bind(secret)
            .fetch_optional(&self.pool)
            .await
            .map_err(from_sqlite)?;
        Ok(row.is_some())
    }

    async fn deposit_secret(&self, order_id: &OrderId) -> Result<Option<String>> {
        let _timed = roundtrips::timer("deposit_secret");
        roundtrips::add(1);
        let secret: Option<Option<String>> = sqlx::query_scalar(DEPOSIT_SECRET)
            .bind(order_id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(from_sqlite)?;
        Ok(secret.flatten())
    }
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
