//! The PostgreSQL backend (production).
//!
//! Every trait method is one statement, so one round trip: state changes and their event-log
//! rows are written together by data-modifying CTEs. Two things to keep in mind when reading
//! the SQL:
//!
//! * All parts of a statement see the snapshot taken when it started; a CTE cannot see rows
//!   another CTE of the same statement inserts or updates except through its `RETURNING`.
//!   So results are built from `RETURNING` rows when something changed and from the snapshot
//!   otherwise (`SELECT * FROM changed UNION ALL SELECT * FROM before WHERE NOT EXISTS …`).
//! * Under READ COMMITTED a statement can wait for a concurrent writer and then act on the
//!   newer row while its own snapshot still shows the older one. Where that matters (two
//!   settles of one payment at once) the statement reports what it saw and is re-run.

use crate::call::Call;
use crate::error::from_pg;
use crate::model::*;
use crate::pgconns::PgConns;
use crate::pgschema::{PgSettings, SqlFile};
use crate::row::{self, Columns, bad_column};
use crate::sql::*;
use crate::{Backend, Result, Store, StoreError};
use async_trait::async_trait;
use domain::{
    AttemptId, CourseId, EnrollmentId, EnrollmentStatus, Money, OrderId, OrderStatus, PaymentId,
    RefundId, UserId,
};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Decode, Postgres, Row, Type, query};
use std::str::FromStr;
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

/// The migrations this binary carries. A database migrated by a newer release (one more
/// migration applied) is accepted: every migration is written to stay compatible with the
/// previous release's binary, so rolling back one release never needs a down-migration.
static MIGRATOR: Migrator = Migrator {
    ignore_missing: true,
    ..sqlx::migrate!("./migrations/postgres")
};

/// How often `settle` re-runs its statement after losing a race to a concurrent settle or
/// claim of the same order (each re-run sees the winner's committed rows, so one is enough in
/// practice; the bound keeps a bug from looping forever).
const SETTLE_ATTEMPTS: u32 = 5;

/// How often `claim_order` re-runs when its snapshot was overtaken by a concurrent change of
/// the order (see there).
const CLAIM_ATTEMPTS: u32 = 3;

pub use crate::pgconns::RECHECK_IDLE_AFTER;

/// A call on the store's own connections.
type PgCall<'p> = Call<'p, Postgres, PgConns>;

#[derive(Debug, Clone)]
pub struct PgStore {
    /// The connections the store's statements run on.
    conns: PgConns,
    /// sqlx's pool over the same database and settings: migrations and tests.
    pool: PgPool,
    /// The schema every connection's `search_path` starts with (crate::pgschema).
    schema: String,
}

impl PgStore {
    /// Connect with a `postgres://` URL and the default settings (schema `coursepay`). Fails
    /// with [`StoreError::Unavailable`] when the server cannot be reached.
    pub async fn connect(url: &str) -> Result<PgStore> {
        Self::connect_with_settings(url, &PgSettings::default()).await
    }

    /// Connect with a `postgres://` URL and explicit settings. Errors name the host, port and
    /// database (never the user or password) and say what to check.
    pub async fn connect_with_settings(url: &str, settings: &PgSettings) -> Result<PgStore> {
        crate::pgschema::check_schema_name(&settings.schema).map_err(StoreError::Other)?;
        // The parse error may quote the URL, password included: not repeated.
        let options = PgConnectOptions::from_str(url).map_err(|_| {
            StoreError::Other(
                "the database URL is not a valid postgres://user:password@host:port/database URL"
                    .into(),
            )
        })?;
        let target = format!("{}:{}", options.get_host(), options.get_port());
        let database = options
            .get_database()
            .unwrap_or("(the user's default)")
            .to_owned();
        Self::connect_with(options, settings)
            .await
            .map_err(|e| match e {
                StoreError::Unavailable(cause) => StoreError::Unavailable(format!(
                    "cannot reach PostgreSQL at {target}: {cause}. Check that the server is \
                     running and reachable from here, and the host and port in the database URL"
                )),
                StoreError::Other(cause) | StoreError::Constraint(cause) => {
                    StoreError::Other(format!(
                        "PostgreSQL at {target} refused the connection to database {database}: \
                         {cause}. Check the user, password and database name in the database URL"
                    ))
                }
                other => other,
            })
    }

    /// Connect with prepared options. Every pooled connection gets `search_path` = the
    /// settings' schema and their statement timeout, set by a statement after connecting (so
    /// it also works through poolers that drop startup parameters).
    pub async fn connect_with(options: PgConnectOptions, settings: &PgSettings) -> Result<PgStore> {
        crate::pgschema::check_schema_name(&settings.schema).map_err(StoreError::Other)?;
        let search_path = format!("\"{}\"", settings.schema);
        let timeout_ms = settings
            .statement_timeout
            .map_or(0, |d| d.as_millis().max(1))
            .to_string();
        let setup = (search_path, timeout_ms);
        let conns = PgConns::new(
            options.clone(),
            Some(setup.clone()),
            settings.max_connections,
            crate::pgconns::ACQUIRE_TIMEOUT,
        );
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections.max(1))
            .acquire_timeout(crate::pgconns::ACQUIRE_TIMEOUT)
            // Used at startup (migrations) and by tests: its connections do not linger.
            .idle_timeout(Duration::from_secs(60))
            .after_connect(move |conn, _meta| {
                let (search_path, timeout_ms) = setup.clone();
                Box::pin(async move {
                    sqlx::query(crate::pgconns::SETUP)
                        .bind(search_path)
                        .bind(timeout_ms)
                        .execute(conn)
                        .await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(from_pg)?;
        Ok(PgStore {
            conns,
            pool,
            schema: settings.schema.clone(),
        })
    }

    /// A store over a pool whose connections already use `schema` as their `search_path`.
    pub fn from_pool(pool: PgPool) -> PgStore {
        let conns = PgConns::new(
            (*pool.connect_options()).clone(),
            None,
            pool.options().get_max_connections(),
            pool.options().get_acquire_timeout(),
        );
        PgStore {
            conns,
            pool,
            schema: crate::pgschema::DEFAULT_SCHEMA.to_owned(),
        }
    }

    /// An sqlx pool over the same database and settings, for operations outside the trait
    /// (migrations, tests, admin tooling). The trait's statements do not run on it.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The connections the trait's statements run on (tests: which backend serves them).
    pub fn connections(&self) -> &PgConns {
        &self.conns
    }

    /// Close both pools' connections; the store answers `Unavailable` afterwards.
    pub async fn close(&self) {
        self.conns.close().await;
        self.pool.close().await;
    }

    /// The schema holding coursepay's tables.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// For a service that does not migrate (`AUTO_MIGRATE=false`): every migration this binary
    /// knows is applied and every table is locked down. The error says which is missing.
    pub async fn verify_migrated(&self) -> Result<()> {
        self.ready().await?;
        let unlocked: Vec<String> = sqlx::query_scalar(crate::pgschema::UNLOCKED_TABLES)
            .fetch_all(&self.pool)
            .await
            .map_err(from_pg)?;
        if unlocked.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Other(format!(
                "row-level security is off on {unlocked:?} in schema {}",
                self.schema
            )))
        }
    }

    /// The PostgreSQL migrations as plain SQL files (see [`crate::pgschema::print_migrations`]).
    pub fn print_migrations(schema: &str) -> std::result::Result<Vec<SqlFile>, String> {
        crate::pgschema::print_migrations(&MIGRATOR, schema)
    }
}

fn get<'r, T>(row: &'r PgRow, col: &str) -> Result<T>
where
    T: Decode<'r, Postgres> + Type<Postgres>,
{
    row.try_get(col).map_err(|e| bad_column(col, e))
}

impl Columns for PgRow {
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
        // `integer` columns (exam scores) decode as i32 only.
        match self.try_get::<Option<i64>, _>(col) {
            Ok(v) => Ok(v),
            Err(_) => Ok(get::<Option<i32>>(self, col)?.map(i64::from)),
        }
    }
    fn flag(&self, col: &str) -> Result<bool> {
        get(self, col)
    }
    fn ts(&self, col: &str) -> Result<OffsetDateTime> {
        get(self, col)
    }
    fn opt_ts(&self, col: &str) -> Result<Option<OffsetDateTime>> {
        get(self, col)
    }
    fn json(&self, col: &str) -> Result<serde_json::Value> {
        get(self, col)
    }
}

/// The SQLSTATEs after which a settle statement is simply re-run: a unique violation from a
/// concurrent writer our snapshot could not see, a deadlock, a serialization failure.
fn is_race(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .and_then(|db| db.code())
        .is_some_and(|code| matches!(code.as_ref(), "23505" | "40P01" | "40001"))
}

fn is_unique_violation_of(err: &sqlx::Error, constraint: &str) -> bool {
    err.as_database_error().is_some_and(|db| {
        db.code().as_deref() == Some("23505") && db.constraint() == Some(constraint)
    })
}

/// Insert the order unless the user is already ENROLLED; log it.
const CREATE_ORDER: &str = "
WITH created AS (
    INSERT INTO orders (order_id, user_id, course_id, amount, order_name, status,
                        created_at, expires_at, updated_at)
    SELECT $1, $2, $3, $4, $5, 'PENDING', $6, $7, $6
    WHERE NOT EXISTS (
        SELECT 1 FROM enrollments
        WHERE user_id = $2 AND course_id = $3 AND status = 'ENROLLED'
    )
    AND ($11::bigint IS NULL OR (
        SELECT count(*) FROM orders
        WHERE user_id = $2 AND status = 'PENDING' AND expires_at > $6
    ) < $11)
    RETURNING *
),
event AS (
    INSERT INTO payment_events (order_id, kind, from_status, to_status, actor, request_id,
                                detail, at)
    SELECT order_id, 'order.created', NULL, 'PENDING', $8, $9,
           jsonb_build_object('amount', amount, 'course_id', course_id),
           $10
    FROM created
)
SELECT * FROM created";

const PURGE_IDEMPOTENCY_KEYS: &str = "
DELETE FROM idempotency_keys
WHERE ctid IN (SELECT ctid FROM idempotency_keys WHERE expires_at <= $1 LIMIT $2)";

const PURGE_ONE_TIME_TOKENS: &str = "
DELETE FROM one_time_tokens
WHERE ctid IN (SELECT ctid FROM one_time_tokens WHERE expires_at <= $1 LIMIT $2)
RETURNING kind";

/// PENDING → CONFIRMING if everything holds, else the order as found. `enrolled_elsewhere`
/// is computed from the snapshot; a concurrent claim of another order for the same course
/// that the snapshot cannot see is stopped by orders_one_active_per_course instead.
const CLAIM_ORDER: &str = "
WITH before AS (
    SELECT * FROM orders WHERE order_id = $1
),
elsewhere AS (
    SELECT EXISTS (
               SELECT 1 FROM enrollments e, before b
               WHERE e.user_id = b.user_id AND e.course_id = b.course_id
                 AND e.status = 'ENROLLED')
        OR EXISTS (
               SELECT 1 FROM orders o, before b
               WHERE o.user_id = b.user_id AND o.course_id = b.course_id
                 AND o.order_id <> b.order_id AND o.status IN ('CONFIRMING', 'PAID'))
           AS flag
),
claimed AS (
    UPDATE orders o
    SET status = 'CONFIRMING', payment_key = $4, updated_at = $5
    FROM elsewhere
    WHERE o.order_id = $1
      AND o.status = 'PENDING'
      AND o.user_id = $2
      AND o.amount = $3
      AND o.expires_at > $5
      AND NOT elsewhere.flag
    RETURNING o.*
),
event AS (
    INSERT INTO payment_events (order_id, kind, from_status, to_status, actor, request_id,
                                detail, at)
    SELECT order_id, 'order.claimed', 'PENDING', 'CONFIRMING', $6, $7,
           jsonb_build_object('payment_key', payment_key, 'amount', amount),
           $5
    FROM claimed
)
SELECT result.*, (SELECT flag FROM elsewhere) AS enrolled_elsewhere
FROM (
    SELECT *, true AS claimed FROM claimed
    UNION ALL
    SELECT *, false AS claimed FROM before WHERE NOT EXISTS (SELECT 1 FROM claimed)
) AS result";

const RELEASE_ORDER: &str = "
WITH released AS (
    UPDATE orders SET status = 'PENDING', updated_at = $2
    WHERE order_id = $1 AND status = 'CONFIRMING'
    RETURNING order_id, payment_key
),
event AS (
    INSERT INTO payment_events (order_id, kind, from_status, to_status, actor, request_id,
                                detail, at)
    SELECT order_id, 'order.released', 'CONFIRMING', 'PENDING', $3, $4,
           jsonb_build_object('payment_key', payment_key),
           $2
    FROM released
)
SELECT count(*) AS moved FROM released";

/// PENDING/CONFIRMING → FAILED/EXPIRED. `FOR UPDATE` makes `cur` the row as it is after any
/// concurrent writer committed, so the event's from_status is the status actually replaced.
const FAIL_ORDER: &str = "
WITH cur AS (
    SELECT order_id, status FROM orders
    WHERE order_id = $1 AND status IN ('PENDING', 'CONFIRMING')
    FOR UPDATE
),
failed AS (
    UPDATE orders o SET status = $2, failure_code = $3, updated_at = $4,
        account_check_at = CASE WHEN o.deposit_secret IS NOT NULL AND o.payment_id IS NULL
                                THEN $4 END
    FROM cur
    WHERE o.order_id = cur.order_id AND o.status IN ('PENDING', 'CONFIRMING')
    RETURNING o.order_id, cur.status AS from_status
),
event AS (
    INSERT INTO payment_events (order_id, kind, from_status, to_status, actor, request_id,
                                detail, at)
    SELECT order_id, $5, from_status, $2, $6, $7,
           jsonb_build_object('code', $3::text),
           $4
    FROM failed
)
SELECT count(*) AS moved FROM failed";

/// THE settle statement. Parameters: $1 order_id, $2 provider, $3 provider_tx_id (payment
/// key), $4 new payment id, $5 new enrollment id, $6 amount, $7 payment status, $8 method,
/// $9 secret, $10 approved_at, $11 now, $12 actor, $13 request_id, $14 source.
///
/// * `ord` locks the order, so concurrent settles/claims of one order queue here and `ord`
///   is the row as the previous one left it.
/// * `prior` / `other_payment`: this payment already recorded (a replay), or another payment
///   already recorded for this order (refused by payments_order_id_key).
/// * Only when neither exists (and the locked order has no payment yet): upsert the enrollment,
///   insert the payment (ON CONFLICT DO NOTHING: a concurrent settle that our snapshot missed
///   makes this a no-op, reported as "nothing seen" and re-run), set the order PAID — or
///   FAILED/DUPLICATE_PAYMENT when another order of the user for this course is already
///   CONFIRMING/PAID — and log it. A REFUNDED order is left as it is.
const SETTLE: &str = "
WITH ord AS (
    SELECT * FROM orders WHERE order_id = $1 FOR UPDATE
),
duplicate AS (
    SELECT EXISTS (
        SELECT 1 FROM orders other, ord
        WHERE other.user_id = ord.user_id AND other.course_id = ord.course_id
          AND other.order_id <> ord.order_id AND other.status IN ('CONFIRMING', 'PAID')
    ) AS flag
),
prior AS (
    SELECT id, order_id, enrollment_id, approved_at, status FROM payments
    WHERE provider = $2 AND provider_tx_id = $3
),
other_payment AS (
    SELECT id FROM payments
    WHERE order_id = $1 AND NOT (provider = $2 AND provider_tx_id = $3)
),
enrollment AS (
    INSERT INTO enrollments AS e (id, user_id, course_id, status, source, enrolled_at,
                                  updated_at)
    SELECT $5, ord.user_id, ord.course_id, 'ENROLLED', 'payment', $11, $11
    FROM ord
    WHERE ord.payment_id IS NULL
      AND NOT EXISTS (SELECT 1 FROM prior)
      AND NOT EXISTS (SELECT 1 FROM other_payment)
    ON CONFLICT (user_id, course_id) DO UPDATE
    SET status = 'ENROLLED',
        source = 'payment',
        enrolled_at = CASE WHEN e.status = 'ENROLLED' THEN e.enrolled_at
                           ELSE EXCLUDED.enrolled_at END,
        updated_at = EXCLUDED.updated_at
    RETURNING id
),
payment AS (
    INSERT INTO payments (id, provider, provider_tx_id, order_id, user_id, course_id,
                          enrollment_id, amount, balance, status, method, secret,
                          approved_at, created_at, updated_at)
    SELECT $4, $2, $3, ord.order_id, ord.user_id, ord.course_id,
           enrollment.id, $6, $6, $7, $8, $9, $10, $11, $11
    FROM ord CROSS JOIN enrollment
    ON CONFLICT (provider, provider_tx_id) DO NOTHING
    RETURNING id, enrollment_id, approved_at
),
settled AS (
    UPDATE orders o
    SET status = CASE WHEN o.status = 'PAID' THEN 'PAID'
                      WHEN duplicate.flag THEN 'FAILED'
                      ELSE 'PAID' END,
        failure_code = CASE WHEN o.status = 'PAID' THEN o.failure_code
                            WHEN duplicate.flag THEN 'DUPLICATE_PAYMENT'
                            ELSE NULL END,
        payment_key = $3,
        payment_id = payment.id,
        enrollment_id = payment.enrollment_id,
        approved_at = payment.approved_at,
        updated_at = $11
    FROM payment CROSS JOIN duplicate
    WHERE o.order_id = $1 AND o.status <> 'REFUNDED'
    RETURNING o.*
),
event AS (
    INSERT INTO payment_events (order_id, payment_id, kind, from_status, to_status, actor,
                                request_id, detail, at)
    SELECT ord.order_id, payment.id,
           CASE WHEN settled.status = 'FAILED' THEN 'payment.duplicate'
                ELSE 'payment.settled' END,
           ord.status, COALESCE(settled.status, ord.status), $12, $13,
           jsonb_build_object('source', $14::text, 'amount', $6::bigint,
                              'method', $8::text, 'payment_key', $3::text),
           $11
    FROM payment CROSS JOIN ord LEFT JOIN settled ON true
),
result_order AS (
    SELECT * FROM settled
    UNION ALL
    SELECT * FROM ord WHERE NOT EXISTS (SELECT 1 FROM settled)
)
SELECT result_order.*,
       prior.id AS prior_payment_id,
       prior.order_id AS prior_order_id,
       prior.enrollment_id AS prior_enrollment_id,
       prior.approved_at AS prior_approved_at,
       prior.status AS prior_status,
       (SELECT flag FROM duplicate) AS duplicate,
       payment.id AS new_payment_id,
       payment.enrollment_id AS new_enrollment_id,
       payment.approved_at AS new_approved_at,
       EXISTS (SELECT 1 FROM other_payment) AS other_payment
FROM (SELECT 1) AS one
LEFT JOIN result_order ON true
LEFT JOIN prior ON true
LEFT JOIN payment ON true";

/// A second deposit after a reversal (domain::transition::is_redeposit), run when SETTLE saw
/// one: $1 order_id, $2 provider, $3 payment_key, $4 amount, $5 status, $6 approved_at, $7 now,
/// $8 actor, $9 request_id, $10 source. The order is locked and every condition of the rule is
/// checked again on the locked rows, so of two deliveries of the same deposit one re-enrolls
/// and the other finds the order PAID and changes nothing (no row: a replay). The payment
/// captures the amount once more and holds it again; the same enrollment is ENROLLED again.
const REDEPOSIT: &str = "
WITH ord AS (
    SELECT * FROM orders WHERE order_id = $1 AND status = 'REFUNDED' FOR UPDATE
),
pay AS (
    UPDATE payments p
    SET amount = p.amount + $4, balance = $4, status = $5, approved_at = $6, updated_at = $7
    FROM ord
    WHERE p.order_id = ord.order_id AND p.provider = $2 AND p.provider_tx_id = $3
      AND p.status = 'WAITING_FOR_DEPOSIT' AND p.approved_at < $6
      AND NOT EXISTS (
          SELECT 1 FROM orders other
          WHERE other.user_id = ord.user_id AND other.course_id = ord.course_id
            AND other.order_id <> ord.order_id AND other.status IN ('CONFIRMING', 'PAID'))
    RETURNING p.id, p.enrollment_id, p.amount, p.approved_at
),
enrolled AS (
    UPDATE enrollments e
    SET status = 'ENROLLED', source = 'payment', enrolled_at = $7, updated_at = $7
    FROM pay
    WHERE e.id = pay.enrollment_id
    RETURNING e.id
),
settled AS (
    UPDATE orders o
    SET status = 'PAID', failure_code = NULL, approved_at = pay.approved_at, updated_at = $7
    FROM pay
    WHERE o.order_id = $1
    RETURNING o.*
),
event AS (
    INSERT INTO payment_events (order_id, payment_id, kind, from_status, to_status, actor,
                                request_id, detail, at)
    SELECT $1, pay.id, 'payment.redeposited', 'REFUNDED', 'PAID', $8, $9,
           jsonb_build_object('source', $10::text, 'amount', $4::bigint,
                              'captured', pay.amount, 'payment_key', $3::text),
           $7
    FROM pay
)
SELECT settled.*, pay.id AS redeposit_payment_id, pay.enrollment_id AS redeposit_enrollment_id,
       pay.approved_at AS redeposit_approved_at
FROM settled CROSS JOIN pay";

/// Insert the key, or take over an expired row. `seen` is the live row from the snapshot; a
/// row inserted concurrently after the snapshot is read by a second statement.
const REMEMBER_KEY: &str = "
WITH fresh AS (
    INSERT INTO idempotency_keys AS k (scope, key, fingerprint, created_at, expires_at)
    VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (scope, key) DO UPDATE
    SET fingerprint = EXCLUDED.fingerprint,
        created_at = EXCLUDED.created_at,
        expires_at = EXCLUDED.expires_at
    WHERE k.expires_at <= EXCLUDED.created_at
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM fresh) AS fresh,
       (SELECT fingerprint FROM idempotency_keys
        WHERE scope = $1 AND key = $2 AND expires_at > $4) AS seen";

const REMEMBER_ONCE: &str = "
INSERT INTO one_time_tokens AS t (kind, token, expires_at)
VALUES ($1, $2, $3)
ON CONFLICT (kind, token) DO UPDATE SET expires_at = EXCLUDED.expires_at
WHERE t.expires_at <= $4
RETURNING 1";

/// Lease free open orders to one reconciler instance. `FOR UPDATE SKIP LOCKED` makes a
/// concurrent leaser skip rows this statement holds (instead of waiting and then leasing them
/// again), and the lease condition is re-checked on the locked row.
const LEASE_OPEN_ORDERS: &str = "
WITH picked AS (
    SELECT order_id FROM orders
    WHERE status IN ('PENDING', 'CONFIRMING')
      AND updated_at < $4
      AND (reconcile_lease_until IS NULL OR reconcile_lease_until <= $2)
    ORDER BY CASE
                 WHEN status = 'CONFIRMING' THEN 0
                 WHEN payment_key IS NOT NULL THEN 1
                 WHEN expires_at > $2 THEN 2
                 ELSE 3
             END,
             reconcile_lease_until NULLS FIRST, updated_at, order_id
    LIMIT $5
    FOR UPDATE SKIP LOCKED
),
leased AS (
    UPDATE orders o
    SET reconcile_lease_until = $3, reconcile_lease_owner = $1,
        reconcile_lookups_expired = o.reconcile_lookups_expired
            + CASE WHEN o.status = 'PENDING' AND o.expires_at <= $2 THEN 1 ELSE 0 END
    FROM picked
    WHERE o.order_id = picked.order_id
    RETURNING o.*
)
SELECT * FROM leased
ORDER BY CASE
             WHEN status = 'CONFIRMING' THEN 0
             WHEN payment_key IS NOT NULL THEN 1
             WHEN expires_at > $2 THEN 2
             ELSE 3
         END,
         updated_at, order_id";

/// Flip the switch and log who did it, in one statement.
const SET_PAYMENTS_PAUSED: &str = "
WITH updated AS (
    UPDATE payment_controls
    SET paused = $1, reason = $2, updated_at = $3, updated_by = $4
    WHERE id = 1
    RETURNING *
),
event AS (
    INSERT INTO payment_events (order_id, kind, actor, request_id, detail, at)
    SELECT NULL, CASE WHEN $1 THEN 'payments.paused' ELSE 'payments.resumed' END, $4, $5,
           jsonb_build_object('reason', $2::text), $3
    FROM updated
)
SELECT * FROM updated";

/// How often the refund/exam statements re-run after losing a race their snapshot could not
/// see (a unique violation from a concurrent writer, a deadlock, a stale read).
const LMS_ATTEMPTS: u32 = 5;

/// Write the REQUESTED refund unless the payment is not refundable, the amount exceeds the
/// balance minus refunds still REQUESTED, or one is REQUESTED already. `pay` locks the payment,
/// so its balance is the newest; a REQUESTED row a concurrent statement inserted after our
/// snapshot is caught by refunds_one_requested_per_payment (23505, re-run).
/// $1 payment id, $2 refund id, $3 amount or NULL (= all available), $4 reason,
/// $5 idempotency key, $6 requested_by, $7 now, $8 actor, $9 request id.
const BEGIN_REFUND: &str = "
WITH pay AS (
    SELECT * FROM payments WHERE id = $1 FOR UPDATE
),
pending AS (
    SELECT COALESCE(sum(amount), 0)::bigint AS amount, count(*) AS n
    FROM refunds WHERE payment_id = $1 AND status = 'REQUESTED'
),
want AS (
    SELECT pay.balance - pending.amount AS available,
           COALESCE($3::bigint, pay.balance - pending.amount) AS amount,
           pending.n > 0 AS in_progress,
           pay.status IN ('DONE', 'PARTIAL_CANCELED') AS refundable
    FROM pay CROSS JOIN pending
),
ins AS (
    INSERT INTO refunds (id, payment_id, amount, reason, status, transaction_key,
                         idempotency_key, requested_by, created_at, updated_at)
    SELECT $2, pay.id, want.amount, $4, 'REQUESTED', NULL, $5, $6, $7, $7
    FROM pay CROSS JOIN want
    WHERE want.refundable AND NOT want.in_progress
      AND want.amount > 0 AND want.amount <= want.available
    RETURNING *
),
event AS (
    INSERT INTO payment_events (order_id, payment_id, kind, from_status, to_status, actor,
                                request_id, detail, at)
    SELECT pay.order_id, pay.id, 'refund.requested', NULL, 'REQUESTED', $8, $9,
           jsonb_build_object('refund_id', ins.id, 'amount', ins.amount, 'reason', ins.reason,
                              'idempotency_key', ins.idempotency_key),
           $7
    FROM ins CROSS JOIN pay
)
SELECT pay.*, want.available, want.in_progress,
       ins.id AS r_id, ins.payment_id AS r_payment_id, ins.amount AS r_amount,
       ins.reason AS r_reason, ins.status AS r_status, ins.transaction_key AS r_transaction_key,
       ins.idempotency_key AS r_idempotency_key, ins.requested_by AS r_requested_by,
       ins.created_at AS r_created_at, ins.updated_at AS r_updated_at
FROM pay CROSS JOIN want LEFT JOIN ins ON true";

/// THE cancellation statement. $1 provider, $2 payment key, $3/$4/$5 the cancels'
/// transactionKeys/amounts/reasons, $6 a fresh refund id per cancel, $7 Toss's balanceAmount,
/// $8 now, $9 actor, $10 request id, $11 source, $12 the status Toss reported.
///
/// * `locked` locks the payment: recorders, refund requests and settles of one payment queue
///   here. `pay` is that row only if the statement's snapshot shows the same version of it
///   (`xmin`): every statement that changes the payment's DONE refunds also updates the row, so
///   a recorder that committed while we waited for the lock is noticed — the refund sums read
///   below would miss its rows — and answered `stale` (nothing written; re-run).
/// * `unknown`: cancels without a refund row yet; `offered` ranks them as
///   `domain::transition::cancels_to_record` says (the newest one whose amount equals the
///   REQUESTED refund's first, then the rest newest first) and `fit` applies its rule: each is
///   taken if it fits in what is left of captured − balance after − DONE refunds. Of the
///   `taken`, the matched one marks the REQUESTED row DONE (`done`: the refund flow and a
///   CANCELED webhook racing each other end as one row); the rest are cancels made outside
///   coursepay and are inserted (ON CONFLICT DO NOTHING: a concurrent recorder our snapshot
///   missed got there first).
/// * `upd`: balance only goes down, status follows it (never backwards) as
///   `PaymentStatus::after_cancel` says: a reversed deposit waits for a deposit again. The row
///   is updated whenever a refund is recorded, also when the balance stays (see `pay`).
/// * `full_cancel`: this statement took the balance to zero. Then the order becomes REFUNDED
///   and the enrollment too — unless the order is a duplicate payment, whose enrollment is the
///   first order's.
const RECORD_CANCELLATION: &str = "
WITH RECURSIVE locked AS (
    SELECT p.*, p.xmin::text AS row_version FROM payments p
    WHERE provider = $1 AND provider_tx_id = $2
    FOR UPDATE
),
seen AS (
    SELECT xmin::text AS row_version FROM payments WHERE provider = $1 AND provider_tx_id = $2
),
pay AS (
    SELECT locked.* FROM locked JOIN seen ON seen.row_version = locked.row_version
),
cancels AS (
    SELECT c.tx, c.amount, c.reason, c.new_id, c.ord
    FROM unnest($3::text[], $4::bigint[], $5::text[], $6::uuid[])
         WITH ORDINALITY AS c(tx, amount, reason, new_id, ord)
    WHERE c.amount > 0
),
unknown AS (
    SELECT c.* FROM cancels c
    WHERE EXISTS (SELECT 1 FROM pay)
      AND NOT EXISTS (SELECT 1 FROM refunds r WHERE r.transaction_key = c.tx)
),
requested AS (
    SELECT r.id, r.amount FROM refunds r, pay
    WHERE r.payment_id = pay.id AND r.status = 'REQUESTED'
),
matched AS (
    SELECT u.tx, requested.id AS refund_id
    FROM unknown u JOIN requested ON requested.amount = u.amount
    ORDER BY u.ord DESC
    LIMIT 1
),
offered AS (
    SELECT u.*, row_number() OVER (
               ORDER BY CASE WHEN u.tx IN (SELECT tx FROM matched) THEN 0 ELSE 1 END, u.ord DESC
           ) AS rank
    FROM unknown u
),
room AS (
    SELECT GREATEST(pay.amount - LEAST(pay.balance, $7::bigint)
               - (SELECT COALESCE(sum(r.amount), 0) FROM refunds r
                  WHERE r.payment_id = pay.id AND r.status = 'DONE'), 0)::bigint AS won
    FROM pay
),
fit (rank, room_left, taken) AS (
    SELECT 0::bigint, room.won, false FROM room
    UNION ALL
    SELECT o.rank,
           CASE WHEN o.amount <= fit.room_left THEN fit.room_left - o.amount
                ELSE fit.room_left END,
           o.amount <= fit.room_left
    FROM fit JOIN offered o ON o.rank = fit.rank + 1
),
taken AS (
    SELECT o.* FROM offered o JOIN fit ON fit.rank = o.rank AND fit.taken
),
done AS (
    UPDATE refunds r SET status = 'DONE', transaction_key = matched.tx, updated_at = $8
    FROM matched
    WHERE r.id = matched.refund_id AND r.status = 'REQUESTED'
      AND matched.tx IN (SELECT tx FROM taken)
    RETURNING r.id, r.amount, r.transaction_key
),
inserted AS (
    INSERT INTO refunds (id, payment_id, amount, reason, status, transaction_key,
                         idempotency_key, requested_by, created_at, updated_at)
    SELECT t.new_id, pay.id, t.amount, t.reason, 'DONE', t.tx, 'toss-cancel-' || t.tx,
           'external:' || $11::text, $8, $8
    FROM taken t CROSS JOIN pay
    WHERE NOT EXISTS (SELECT 1 FROM matched m WHERE m.tx = t.tx)
    ON CONFLICT DO NOTHING
    RETURNING id, amount, transaction_key
),
upd AS (
    UPDATE payments p
    SET balance = LEAST(p.balance, $7::bigint),
        status = CASE WHEN $7::bigint >= p.balance THEN p.status
                      WHEN $7::bigint > 0 THEN 'PARTIAL_CANCELED'
                      WHEN $12::text = 'WAITING_FOR_DEPOSIT' THEN 'WAITING_FOR_DEPOSIT'
                      ELSE 'CANCELED' END,
        updated_at = $8
    FROM pay
    WHERE p.id = pay.id AND ($7::bigint < p.balance OR EXISTS (SELECT 1 FROM taken))
    RETURNING p.*, pay.balance AS old_balance, pay.status AS old_status
),
ord_before AS (
    SELECT o.order_id, o.status, o.failure_code FROM orders o, pay
    WHERE o.order_id = pay.order_id
),
full_cancel AS (
    SELECT upd.id, upd.order_id, upd.enrollment_id FROM upd
    WHERE upd.balance = 0 AND upd.old_balance > 0
),
revoked AS (
    UPDATE enrollments e SET status = 'REFUNDED', updated_at = $8
    FROM full_cancel
    WHERE e.id = full_cancel.enrollment_id AND e.status = 'ENROLLED'
      AND NOT EXISTS (SELECT 1 FROM ord_before
                      WHERE ord_before.status = 'FAILED'
                        AND ord_before.failure_code = 'DUPLICATE_PAYMENT')
    RETURNING e.id
),
refunded_order AS (
    UPDATE orders o SET status = 'REFUNDED', updated_at = $8
    FROM full_cancel
    WHERE o.order_id = full_cancel.order_id AND o.status IN ('PAID', 'FAILED')
    RETURNING o.order_id
),
-- One INSERT, ordered, so the log reads payment → enrollment → order like SQLite's.
events AS (
    INSERT INTO payment_events (order_id, payment_id, kind, from_status, to_status, actor,
                                request_id, detail, at)
    SELECT order_id, payment_id, kind, from_status, to_status, $9, $10, detail, $8
    FROM (
        SELECT 1 AS seq, upd.order_id, upd.id AS payment_id,
               CASE WHEN upd.balance = 0 THEN 'payment.canceled'
                    ELSE 'payment.partially_canceled' END AS kind,
               upd.old_status AS from_status, upd.status AS to_status,
               jsonb_build_object(
                   'source', $11::text, 'balance', upd.balance,
                   'refunded', upd.amount - upd.balance,
                   'transaction_keys', (SELECT COALESCE(jsonb_agg(k.tx), '[]'::jsonb) FROM (
                       SELECT transaction_key AS tx FROM done
                       UNION ALL SELECT transaction_key FROM inserted) AS k)) AS detail
        FROM upd
        WHERE upd.balance < upd.old_balance
        UNION ALL
        SELECT 2, full_cancel.order_id, full_cancel.id, 'enrollment.refunded', 'ENROLLED',
               'REFUNDED', jsonb_build_object('enrollment_id', revoked.id, 'source', $11::text)
        FROM revoked CROSS JOIN full_cancel
        UNION ALL
        SELECT 3, refunded_order.order_id, full_cancel.id, 'order.refunded', ord_before.status,
               'REFUNDED', jsonb_build_object('source', $11::text)
        FROM refunded_order CROSS JOIN full_cancel CROSS JOIN ord_before
    ) AS e
    ORDER BY seq
),
after AS (
    SELECT id, provider, provider_tx_id, order_id, user_id, course_id, enrollment_id, amount,
           balance, status, method, secret, approved_at, created_at, updated_at, false AS stale
    FROM upd
    UNION ALL
    SELECT id, provider, provider_tx_id, order_id, user_id, course_id, enrollment_id, amount,
           balance, status, method, secret, approved_at, created_at, updated_at, false
    FROM pay WHERE NOT EXISTS (SELECT 1 FROM upd)
    UNION ALL
    SELECT id, provider, provider_tx_id, order_id, user_id, course_id, enrollment_id, amount,
           balance, status, method, secret, approved_at, created_at, updated_at, true
    FROM locked WHERE NOT EXISTS (SELECT 1 FROM pay)
)
SELECT after.*,
       (SELECT count(*) FROM done) + (SELECT count(*) FROM inserted) AS recorded,
       (SELECT count(*) FROM unknown) - (SELECT count(*) FROM taken) AS left_out,
       EXISTS (SELECT 1 FROM revoked) AS revoked,
       CASE WHEN EXISTS (SELECT 1 FROM revoked) THEN 'REFUNDED'
            ELSE (SELECT e.status FROM enrollments e WHERE e.id = after.enrollment_id)
       END AS enrollment_status
FROM after";

const FAIL_REFUND: &str = "
WITH failed AS (
    UPDATE refunds SET status = 'FAILED', updated_at = $3
    WHERE id = $1 AND status = 'REQUESTED'
    RETURNING id, payment_id, amount
),
event AS (
    INSERT INTO payment_events (order_id, payment_id, kind, from_status, to_status, actor,
                                request_id, detail, at)
    SELECT p.order_id, p.id, 'refund.failed', 'REQUESTED', 'FAILED', $4, $5,
           jsonb_build_object('refund_id', failed.id, 'amount', failed.amount,
                              'code', $2::text),
           $3
    FROM failed JOIN payments p ON p.id = failed.payment_id
)
SELECT count(*) AS moved FROM failed";

/// The limit lives in the enrollment row (exam_attempts_started): the UPDATE's WHERE is
/// re-checked on the newest row version after waiting for a concurrent start, so 20 concurrent
/// starts with a limit of 3 make exactly 3. `before` is the snapshot, for the refusal reason.
const START_ATTEMPT: &str = "
WITH before AS (
    SELECT id, status, exam_attempts_started::bigint AS used FROM enrollments WHERE id = $1
),
bumped AS (
    UPDATE enrollments SET exam_attempts_started = exam_attempts_started + 1
    WHERE id = $1 AND status = 'ENROLLED' AND exam_attempts_started < $3
    RETURNING id, user_id
),
ins AS (
    INSERT INTO exam_attempts (id, enrollment_id, score, started_at, submitted_at)
    SELECT $2, bumped.id, NULL, $4, NULL FROM bumped
    RETURNING *
)
SELECT before.status AS enrollment_status, before.used,
       ins.id, ins.enrollment_id, bumped.user_id, ins.score, ins.started_at, ins.submitted_at
FROM before LEFT JOIN bumped ON true LEFT JOIN ins ON true";

const SUBMIT_ATTEMPT: &str = "
WITH found AS (
    SELECT id FROM exam_attempts WHERE id = $1
),
done AS (
    UPDATE exam_attempts SET score = $2, submitted_at = $3
    WHERE id = $1 AND submitted_at IS NULL
    RETURNING *
)
SELECT (SELECT count(*) FROM found) AS found, done.*, e.user_id
FROM (SELECT 1) AS one
LEFT JOIN done ON true
LEFT JOIN enrollments e ON e.id = done.enrollment_id";

impl PgStore {
    /// REDEPOSIT, once SETTLE saw a second deposit after a reversal; `None` when the locked
    /// rows no longer qualify (a concurrent delivery re-enrolled first).
    async fn redeposit(
        &self,
        call: &PgCall<'_>,
        s: &Settlement,
        now: OffsetDateTime,
    ) -> Result<Option<Settled>> {
        let q = query(REDEPOSIT)
            .bind(s.order_id.as_str())
            .bind(domain::PROVIDER_TOSS)
            .bind(s.payment_key.as_str())
            .bind(s.amount.won())
            .bind(s.status.as_str())
            .bind(s.approved_at)
            .bind(now)
            .bind(&s.ctx.actor)
            .bind(s.ctx.request_id.as_deref())
            .bind(&s.source);
        call.opt(q, |row| {
            Ok(Settled {
                order: row::order(row)?,
                payment_id: PaymentId(row.uuid("redeposit_payment_id")?),
                enrollment_id: EnrollmentId(row.uuid("redeposit_enrollment_id")?),
                approved_at: row.ts("redeposit_approved_at")?,
                newly_settled: true,
            })
        })
        .await
    }

    fn call(&self, name: &'static str) -> PgCall<'_> {
        Call::new(&self.conns, name)
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn migrate(&self) -> Result<()> {
        crate::pgschema::prepare(&self.pool, &self.schema).await?;
        MIGRATOR.run(&self.pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(inner)
            | sqlx::migrate::MigrateError::ExecuteMigration(inner, _) => from_pg(inner),
            other => StoreError::Other(format!("migration failed: {other}")),
        })?;
        crate::pgschema::lock_down(&self.pool).await
    }

    async fn ready(&self) -> Result<()> {
        let call = self.call("ready");
        let applied = call
            .all(query(APPLIED_MIGRATIONS), |r| r.int("version"))
            .await?;
        crate::shared::check_applied(&MIGRATOR, &applied)
    }

    async fn create_course(&self, new: NewCourse) -> Result<Course> {
        let q = query(CREATE_COURSE)
            .bind(new.id.0)
            .bind(new.title)
            .bind(new.price.won())
            .bind(new.now);
        self.call("create_course").one(q, row::course).await
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
        let call = self.call("create_order");
        let q = query(CREATE_ORDER)
            .bind(new.order_id.as_str())
            .bind(new.user_id.0)
            .bind(new.course_id.0)
            .bind(new.amount.won())
            .bind(&new.order_name)
            .bind(new.now)
            .bind(new.expires_at)
            .bind(&new.ctx.actor)
            .bind(new.ctx.request_id.as_deref())
            .bind(new.ctx.now.unwrap_or(new.now))
            .bind(new.max_open_per_user.map(i64::from));
        match call.opt(q, row::order).await? {
            Some(order) => Ok(order),
            None if new.max_open_per_user.is_none() => Err(StoreError::AlreadyEnrolled),
            None => {
                let q = query(ENROLLED_IN).bind(new.user_id.0).bind(new.course_id.0);
                let enrolled = call.one(q, |r| r.flag("enrolled")).await?;
                Err(if enrolled {
                    StoreError::AlreadyEnrolled
                } else {
                    StoreError::TooManyOpenOrders
                })
            }
        }
    }

    async fn get_order(&self, order_id: &OrderId) -> Result<Option<Order>> {
        let q = query(GET_ORDER).bind(order_id.as_str());
        self.call("get_order").opt(q, row::order).await
    }

    async fn claim_order(&self, claim: ClaimRequest) -> Result<ClaimOutcome> {
        let call = self.call("claim_order");
        let now = claim.ctx.at();
        for _ in 0..CLAIM_ATTEMPTS {
            let q = query(CLAIM_ORDER)
                .bind(claim.order_id.as_str())
                .bind(claim.user_id.0)
                .bind(claim.amount.won())
                .bind(claim.payment_key.as_str())
                .bind(now)
                .bind(&claim.ctx.actor)
                .bind(claim.ctx.request_id.as_deref());
            let row = match call.try_opt(q).await {
                Ok(Some(row)) => row,
                Ok(None) => return Ok(ClaimOutcome::NotFound),
                // Another order of this user for this course became CONFIRMING/PAID after our
                // snapshot was taken: the partial unique index refused this one.
                Err(e) if is_unique_violation_of(&e, "orders_one_active_per_course") => {
                    return match self.get_order(&claim.order_id).await? {
                        Some(order) => Ok(ClaimOutcome::NotClaimed {
                            order,
                            enrolled_elsewhere: true,
                        }),
                        None => Ok(ClaimOutcome::NotFound),
                    };
                }
                Err(e) => return Err(from_pg(e)),
            };
            let order = row::order(&row)?;
            if row.flag("claimed")? {
                return Ok(ClaimOutcome::Claimed(order));
            }
            let enrolled_elsewhere = row.flag("enrolled_elsewhere")?;
            // The snapshot says the claim should have happened, yet the UPDATE (which re-reads
            // a row changed by a concurrent writer) refused it: the order changed after the
            // snapshot (e.g. a webhook settled it). Answer with the order as it is now.
            let stale = order.status == OrderStatus::Pending
                && order.user_id == claim.user_id
                && order.amount == claim.amount
                && order.expires_at > now
                && !enrolled_elsewhere;
            if !stale {
                return Ok(ClaimOutcome::NotClaimed {
                    order,
                    enrolled_elsewhere,
                });
            }
        }
        Err(StoreError::Other(format!(
            "claim of order {} did not converge after {CLAIM_ATTEMPTS} attempts",
            claim.order_id
        )))
    }

    async fn release_order(&self, order_id: &OrderId, ctx: &EventContext) -> Result<bool> {
        let q = query(RELEASE_ORDER)
            .bind(order_id.as_str())
            .bind(ctx.at())
            .bind(&ctx.actor)
            .bind(ctx.request_id.as_deref());
        let moved = self.call("release_order").one(q, moved).await?;
        Ok(moved > 0)
    }

    async fn fail_order(
        &self,
        order_id: &OrderId,
        to: OrderStatus,
        code: Option<&str>,
        ctx: &EventContext,
    ) -> Result<bool> {
        let call = self.call("fail_order");
        let kind = crate::shared::fail_event_kind(to)?;
        let q = query(FAIL_ORDER)
            .bind(order_id.as_str())
            .bind(to.as_str())
            .bind(code)
            .bind(ctx.at())
            .bind(kind)
            .bind(&ctx.actor)
            .bind(ctx.request_id.as_deref());
        Ok(call.one(q, moved).await? > 0)
    }

    async fn settle(&self, s: Settlement) -> Result<Settled> {
        let call = self.call("settle");
        crate::shared::check_settlement(&s)?;
        let payment_id = PaymentId::new();
        let enrollment_id = EnrollmentId::new();
        let now = s.ctx.at();
        for attempt in 1..=SETTLE_ATTEMPTS {
            let q = query(SETTLE)
                .bind(s.order_id.as_str())
                .bind(domain::PROVIDER_TOSS)
                .bind(s.payment_key.as_str())
                .bind(payment_id.0)
                .bind(enrollment_id.0)
                .bind(s.amount.won())
                .bind(s.status.as_str())
                .bind(s.method.as_deref())
                .bind(s.secret.as_deref())
                .bind(s.approved_at)
                .bind(now)
                .bind(&s.ctx.actor)
                .bind(s.ctx.request_id.as_deref())
                .bind(&s.source);
            let row = match call.try_opt(q).await {
                Ok(Some(row)) => row,
                Ok(None) => return Err(StoreError::NotFound),
                Err(e) if attempt < SETTLE_ATTEMPTS && is_race(&e) => {
                    tracing::debug!(order_id = %s.order_id, attempt, error = %e, "settle raced; re-running");
                    continue;
                }
                Err(e) => return Err(from_pg(e)),
            };
            if row.opt_text("order_id")?.is_none() {
                return Err(StoreError::NotFound);
            }
            let order = row::order(&row)?;
            if let Some(id) = row.opt_uuid("new_payment_id")? {
                return Ok(Settled {
                    order,
                    payment_id: PaymentId(id),
                    enrollment_id: EnrollmentId(row.uuid("new_enrollment_id")?),
                    approved_at: row.ts("new_approved_at")?,
                    newly_settled: true,
                });
            }
            if let Some(id) = row.opt_uuid("prior_payment_id")? {
                let again = domain::transition::is_redeposit(
                    row.parsed::<domain::PaymentStatus>("prior_status")?,
                    order.status,
                    row.flag("duplicate")?,
                    row.ts("prior_approved_at")?,
                    s.approved_at,
                );
                if again {
                    match self.redeposit(&call, &s, now).await? {
                        Some(settled) => return Ok(settled),
                        // A concurrent delivery re-enrolled first: the next run reads the
                        // order as it left it and answers the replay.
                        None => continue,
                    }
                }
                return crate::shared::replayed_settlement(
                    order,
                    &s.order_id,
                    PaymentId(id),
                    &row.text("prior_order_id")?,
                    row.opt_uuid("prior_enrollment_id")?.map(EnrollmentId),
                    row.ts("prior_approved_at")?,
                );
            }
            if row.flag("other_payment")? {
                return Err(StoreError::Constraint("payments_order_id_key".to_owned()));
            }
            // Nothing recorded and nothing inserted: a concurrent settle committed the payment
            // after our snapshot. The next run sees it.
            tracing::debug!(order_id = %s.order_id, attempt, "settle saw a concurrent settle; re-running");
        }
        Err(StoreError::Other(format!(
            "settle of order {} did not converge after {SETTLE_ATTEMPTS} attempts",
            s.order_id
        )))
    }

    async fn open_orders(&self, older_than: OffsetDateTime, limit: i64) -> Result<Vec<Order>> {
        let q = query(OPEN_ORDERS).bind(older_than).bind(limit);
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
        let call = self.call("begin_refund");
        let now = new.ctx.at();
        for attempt in 1..=LMS_ATTEMPTS {
            let q = query(BEGIN_REFUND)
                .bind(new.payment_id.0)
                .bind(new.id.0)
                .bind(new.amount.map(Money::won))
                .bind(&new.reason)
                .bind(new.idempotency_key.as_str())
                .bind(&new.requested_by)
                .bind(now)
                .bind(&new.ctx.actor)
                .bind(new.ctx.request_id.as_deref());
            let row = match call.try_opt(q).await {
                Ok(Some(row)) => row,
                Ok(None) => return Ok(RefundBegin::PaymentNotFound),
                // A concurrent request's REQUESTED row, committed after our snapshot: the re-run
                // sees it and answers NotAllowed { in_progress }.
                Err(e) if attempt < LMS_ATTEMPTS && is_race(&e) => continue,
                Err(e) => return Err(from_pg(e)),
            };
            let payment = row::payment(&row)?;
            if row.opt_uuid("r_id")?.is_some() {
                return Ok(RefundBegin::Begun {
                    refund: row::refund(&row, "r_")?,
                    payment,
                });
            }
            return Ok(RefundBegin::NotAllowed {
                payment,
                available: Money::new(row.int("available")?.max(0))
                    .map_err(|e| bad_column("available", e))?,
                in_progress: row.flag("in_progress")?,
            });
        }
        Err(StoreError::Other(format!(
            "begin_refund for payment {} did not converge",
            new.payment_id
        )))
    }

    async fn record_cancellation(&self, c: Cancellation) -> Result<CancellationRecorded> {
        let call = self.call("record_cancellation");
        let now = c.ctx.at();
        let cancels = c.distinct_cancels();
        let txs: Vec<String> = cancels.iter().map(|x| x.transaction_key.clone()).collect();
        let amounts: Vec<i64> = cancels.iter().map(|x| x.amount.won()).collect();
        let reasons: Vec<String> = cancels.iter().map(|x| x.reason.clone()).collect();
        let ids: Vec<Uuid> = cancels.iter().map(|_| RefundId::new().0).collect();
        for attempt in 1..=LMS_ATTEMPTS {
            let q = query(RECORD_CANCELLATION)
                .bind(domain::PROVIDER_TOSS)
                .bind(c.payment_key.as_str())
                .bind(&txs)
                .bind(&amounts)
                .bind(&reasons)
                .bind(&ids)
                .bind(c.balance.won())
                .bind(now)
                .bind(&c.ctx.actor)
                .bind(c.ctx.request_id.as_deref())
                .bind(&c.source)
                .bind(c.status.as_str());
            let row = match call.try_opt(q).await {
                Ok(Some(row)) => row,
                Ok(None) => return Err(StoreError::NotFound),
                Err(e) if attempt < LMS_ATTEMPTS && is_race(&e) => {
                    tracing::debug!(payment_key = %c.payment_key, attempt, error = %e, "record_cancellation raced; re-running");
                    continue;
                }
                Err(e) => return Err(from_pg(e)),
            };
            if row.flag("stale")? {
                tracing::debug!(payment_key = %c.payment_key, attempt, "record_cancellation saw a concurrent recorder; re-running");
                continue;
            }
            let enrollment_status = match row.opt_text("enrollment_status")? {
                Some(s) => Some(
                    s.parse::<EnrollmentStatus>()
                        .map_err(|e| bad_column("enrollment_status", e))?,
                ),
                None => None,
            };
            return Ok(CancellationRecorded {
                payment: row::payment(&row)?,
                refunds_recorded: u32::try_from(row.int("recorded")?).unwrap_or(u32::MAX),
                cancels_left_out: u32::try_from(row.int("left_out")?).unwrap_or(u32::MAX),
                enrollment_revoked: row.flag("revoked")?,
                enrollment_status,
            });
        }
        Err(StoreError::Other(format!(
            "record_cancellation for payment {} did not converge",
            c.payment_key
        )))
    }

    async fn fail_refund(&self, id: RefundId, code: &str, ctx: &EventContext) -> Result<bool> {
        let q = query(FAIL_REFUND)
            .bind(id.0)
            .bind(code)
            .bind(ctx.at())
            .bind(&ctx.actor)
            .bind(ctx.request_id.as_deref());
        Ok(self.call("fail_refund").one(q, moved).await? > 0)
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
        let q = query(STUCK_REFUNDS).bind(older_than).bind(limit);
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
        let call = self.call("start_attempt");
        let max = i64::from(max_attempts);
        for attempt in 1..=LMS_ATTEMPTS {
            let q = query(START_ATTEMPT)
                .bind(enrollment_id.0)
                .bind(attempt_id.0)
                .bind(max)
                .bind(now);
            let row = match call.try_opt(q).await {
                Ok(Some(row)) => row,
                Ok(None) => return Ok(AttemptStart::EnrollmentNotFound),
                Err(e) if attempt < LMS_ATTEMPTS && is_race(&e) => continue,
                Err(e) => return Err(from_pg(e)),
            };
            if row.opt_uuid("id")?.is_some() {
                return Ok(AttemptStart::Started(row::attempt(&row)?));
            }
            if row.text("enrollment_status")? != EnrollmentStatus::Enrolled.as_str() {
                return Ok(AttemptStart::NotEnrolled);
            }
            let used = row.int("used")?;
            if used >= max {
                return Ok(AttemptStart::LimitReached { used });
            }
            // The snapshot allowed it but the UPDATE, re-reading the newest row, did not: a
            // concurrent start or refund committed meanwhile. The re-run sees it.
        }
        Err(StoreError::Other(format!(
            "start_attempt for enrollment {enrollment_id} did not converge"
        )))
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
        let q = query(SUBMIT_ATTEMPT).bind(id.0).bind(score).bind(now);
        let call = self.call("submit_attempt");
        call.one(q, |row| {
            if row.opt_uuid("id")?.is_some() {
                Ok(AttemptSubmit::Submitted(row::attempt(row)?))
            } else if row.int("found")? > 0 {
                Ok(AttemptSubmit::AlreadySubmitted)
            } else {
                Ok(AttemptSubmit::NotFound)
            }
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
        let q = query(LEASE_OPEN_ORDERS)
            .bind(owner)
            .bind(now)
            .bind(lease_until)
            .bind(older_than)
            .bind(limit);
        self.call("lease_open_orders").all(q, row::order).await
    }

    async fn abandoned_orders(
        &self,
        now: OffsetDateTime,
        min_lookups: i64,
        limit: i64,
    ) -> Result<Vec<OrderId>> {
        let q = query(ABANDONED_ORDERS)
            .bind(now)
            .bind(min_lookups)
            .bind(limit);
        self.call("abandoned_orders").all(q, row::order_id).await
    }

    async fn open_order_backlog(
        &self,
        now: OffsetDateTime,
    ) -> Result<(i64, Option<OffsetDateTime>)> {
        let q = query(OPEN_ORDER_BACKLOG).bind(now);
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
        let q = query(SET_PAYMENTS_PAUSED)
            .bind(paused)
            .bind(reason)
            .bind(ctx.at())
            .bind(&ctx.actor)
            .bind(ctx.request_id.as_deref());
        self.call("set_payments_paused").one(q, row::controls).await
    }

    async fn remember_idempotency_key(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &str,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<KeyUse> {
        let call = self.call("remember_idempotency_key");
        let q = query(REMEMBER_KEY)
            .bind(scope)
            .bind(key)
            .bind(fingerprint)
            .bind(now)
            .bind(expires_at);
        let (fresh, seen) = call
            .one(q, |r| Ok((r.flag("fresh")?, r.opt_text("seen")?)))
            .await?;
        if fresh {
            return Ok(KeyUse::Fresh);
        }
        let seen = match seen {
            Some(seen) => seen,
            None => {
                let q = query(KEY_FINGERPRINT).bind(scope).bind(key);
                call.one(q, |r| r.text("fingerprint")).await?
            }
        };
        Ok(crate::shared::key_use(&seen, fingerprint))
    }

    async fn remember_once(
        &self,
        kind: &str,
        token: &str,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<bool> {
        let q = query(REMEMBER_ONCE)
            .bind(kind)
            .bind(token)
            .bind(expires_at)
            .bind(now);
        let row = self.call("remember_once").opt(q, |_| Ok(())).await?;
        Ok(row.is_some())
    }

    async fn purge_expired(&self, now: OffsetDateTime, limit: i64) -> Result<Vec<PurgedRows>> {
        let call = self.call("purge_expired");
        let keys = call
            .exec(query(PURGE_IDEMPOTENCY_KEYS).bind(now).bind(limit))
            .await?;
        let q = query(PURGE_ONE_TIME_TOKENS).bind(now).bind(limit);
        let kinds = call.all(q, |r| r.text("kind")).await?;
        Ok(crate::shared::purged(keys, kinds))
    }

    async fn forget_once(&self, kind: &str, token: &str) -> Result<()> {
        let q = query(FORGET_ONCE).bind(kind).bind(token);
        self.call("forget_once").exec(q).await?;
        Ok(())
    }

    async fn record_deposit_secret(&self, order_id: &OrderId, secret: &str) -> Result<bool> {
        let q = query(RECORD_DEPOSIT_SECRET)
            .bind(order_id.as_str())
            .bind(secret);
        let row = self
            .call("record_deposit_secret")
            .opt(q, |_| Ok(()))
            .await?;
        Ok(row.is_some())
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
        let q = query(LEASE_ACCOUNT_CHECKS)
            .bind(now)
            .bind(lease_until)
            .bind(limit);
        self.call("lease_account_checks").all(q, row::order).await
    }

    async fn account_checked(
        &self,
        order_id: &OrderId,
        again: Option<OffsetDateTime>,
    ) -> Result<()> {
        let q = query(ACCOUNT_CHECKED).bind(order_id.as_str()).bind(again);
        self.call("account_checked").exec(q).await?;
        Ok(())
    }
}

/// The `moved` count of the statements that report how many rows changed state.
fn moved(r: &PgRow) -> Result<i64> {
    r.int("moved")
}
