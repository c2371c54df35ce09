//! The statements both dialects spell the same way. Each backend file holds the rest: the
//! statements where PostgreSQL's data-modifying CTEs and SQLite's transactions differ.

pub(crate) const APPLIED_MIGRATIONS: &str = "
SELECT version FROM _sqlx_migrations WHERE success ORDER BY version";

pub(crate) const CREATE_COURSE: &str = "
INSERT INTO courses (id, title, price, currency, status, created_at, updated_at)
VALUES ($1, $2, $3, 'KRW', 'PUBLISHED', $4, $4)
RETURNING *";

pub(crate) const LIST_COURSES: &str = "
SELECT * FROM courses WHERE status = 'PUBLISHED' ORDER BY created_at, id";

pub(crate) const GET_COURSE: &str = "SELECT * FROM courses WHERE id = $1";

/// Why CREATE_ORDER inserted nothing: enrolled already, else the open-order cap.
pub(crate) const ENROLLED_IN: &str = "
SELECT EXISTS (
    SELECT 1 FROM enrollments WHERE user_id = $1 AND course_id = $2 AND status = 'ENROLLED'
) AS enrolled";

pub(crate) const GET_ORDER: &str = "SELECT * FROM orders WHERE order_id = $1";

pub(crate) const OPEN_ORDERS: &str = "
SELECT * FROM orders
WHERE status IN ('PENDING', 'CONFIRMING') AND updated_at < $1
ORDER BY updated_at, order_id
LIMIT $2";

pub(crate) const LIST_ENROLLMENTS: &str = "
SELECT * FROM enrollments WHERE user_id = $1 ORDER BY enrolled_at, id";

pub(crate) const GET_ENROLLMENT: &str = "SELECT * FROM enrollments WHERE id = $1";

pub(crate) const GET_PAYMENT: &str = "SELECT * FROM payments WHERE id = $1";

pub(crate) const PAYMENT_FOR_ORDER: &str = "SELECT * FROM payments WHERE order_id = $1";

pub(crate) const ORDER_EVENTS: &str =
    "SELECT * FROM payment_events WHERE order_id = $1 ORDER BY id";

pub(crate) const KEY_FINGERPRINT: &str = "
SELECT fingerprint FROM idempotency_keys WHERE scope = $1 AND key = $2";

pub(crate) const FORGET_ONCE: &str = "DELETE FROM one_time_tokens WHERE kind = $1 AND token = $2";

pub(crate) const RECORD_DEPOSIT_SECRET: &str = "
UPDATE orders SET deposit_secret = $2 WHERE order_id = $1 RETURNING 1";

pub(crate) const DEPOSIT_SECRET: &str = "SELECT deposit_secret FROM orders WHERE order_id = $1";

pub(crate) const ABANDONED_ORDERS: &str = "
SELECT order_id FROM orders
WHERE status = 'PENDING' AND expires_at <= $1 AND reconcile_lookups_expired >= $2
ORDER BY expires_at, order_id
LIMIT $3";

pub(crate) const OPEN_ORDER_BACKLOG: &str = "
SELECT count(*) AS count, min(created_at) AS oldest
FROM orders
WHERE status IN ('PENDING', 'CONFIRMING') AND created_at <= $1";

pub(crate) const PAYMENT_CONTROLS: &str = "SELECT * FROM payment_controls WHERE id = 1";

pub(crate) const GET_REFUND: &str = "SELECT * FROM refunds WHERE id = $1";

pub(crate) const PAYMENT_REFUNDS: &str = "
SELECT * FROM refunds WHERE payment_id = $1 ORDER BY created_at, id";

pub(crate) const STUCK_REFUNDS: &str = "
SELECT * FROM refunds
WHERE status = 'REQUESTED' AND created_at < $1
ORDER BY created_at, id
LIMIT $2";

pub(crate) const GET_ATTEMPT: &str = "
SELECT a.*, e.user_id FROM exam_attempts a JOIN enrollments e ON e.id = a.enrollment_id
WHERE a.id = $1";

/// Ended orders whose virtual account is due for a look at $1, leased until $2: the outer WHERE
/// is re-checked on the newest row version, so of two reconcilers picking the same orders the
/// second skips those the first leased.
pub(crate) const LEASE_ACCOUNT_CHECKS: &str = "
UPDATE orders SET account_check_at = $2
WHERE order_id IN (
    SELECT order_id FROM orders
    WHERE account_check_at <= $1
    ORDER BY account_check_at
    LIMIT $3
)
AND account_check_at <= $1
RETURNING *";

pub(crate) const ACCOUNT_CHECKED: &str = "
UPDATE orders SET account_check_at = $2 WHERE order_id = $1 AND account_check_at IS NOT NULL";
