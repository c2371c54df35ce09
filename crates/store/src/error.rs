//! Driver errors → [`StoreError`]. The split that matters to callers: `Unavailable` (nothing
//! was decided, retry later), `Constraint(name)` (an invariant held; the name says which), and
//! everything else.
//!
//! Constraint names are the ones written in the migrations, identical on both backends.
//! PostgreSQL reports the name with the error; SQLite reports table and columns
//! ("UNIQUE constraint failed: enrollments.user_id, enrollments.course_id"), so the SQLite side
//! maps those back to the names here. SQLite does not say which foreign key failed; it reports
//! [`SQLITE_FOREIGN_KEY`] instead.

use crate::StoreError;
use sqlx::error::ErrorKind;

/// What a SQLite foreign-key violation is reported as (SQLite does not name the key).
pub const SQLITE_FOREIGN_KEY: &str = "foreign_key";

pub(crate) fn from_pg(err: sqlx::Error) -> StoreError {
    if let Some(db) = err.as_database_error() {
        let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
        // Class 08: connection exception; 57P01-03: server shutting down / starting up;
        // 53xxx: out of resources; 57014: statement timeout; 40001/40P01: serialization
        // failure / deadlock. In all of these the transaction was rolled back: retryable.
        if code.starts_with("08")
            || code.starts_with("53")
            || matches!(
                code.as_str(),
                "57P01" | "57P02" | "57P03" | "57014" | "40001" | "40P01"
            )
        {
            return StoreError::Unavailable(db.message().to_owned());
        }
        // Class 23: integrity constraint violation (unique, FK, check, not-null, and the
        // append-only trigger, which raises restrict_violation with a constraint name).
        if code.starts_with("23") {
            let name = match db.constraint() {
                Some(name) => name.to_owned(),
                None => db.message().to_owned(),
            };
            return StoreError::Constraint(name);
        }
        // The server's message and SQLSTATE only: the driver's Display appends the position in
        // PostgreSQL's own C source ("at line 948"), which means nothing to an operator.
        return StoreError::Other(format!("{} (SQLSTATE {code})", db.message()));
    }
    common(err)
}

pub(crate) fn from_sqlite(err: sqlx::Error) -> StoreError {
    if let Some(db) = err.as_database_error() {
        let code: i64 = db.code().and_then(|c| c.parse().ok()).unwrap_or(0);
        // SQLITE_BUSY (5) / SQLITE_LOCKED (6) and their extended codes: another writer held the
        // database past busy_timeout. Nothing was written.
        if matches!(code & 0xff, 5 | 6) {
            return StoreError::Unavailable(db.message().to_owned());
        }
        let message = db.message();
        match db.kind() {
            ErrorKind::UniqueViolation
            | ErrorKind::CheckViolation
            | ErrorKind::NotNullViolation => {
                return StoreError::Constraint(sqlite_constraint_name(message));
            }
            ErrorKind::ForeignKeyViolation => {
                return StoreError::Constraint(SQLITE_FOREIGN_KEY.to_owned());
            }
            _ => {}
        }
        // SQLITE_CONSTRAINT_TRIGGER (1811) or a plain SQLITE_CONSTRAINT from RAISE(ABORT, …):
        // our triggers start their message with the constraint name.
        if code & 0xff == 19 {
            return StoreError::Constraint(sqlite_constraint_name(message));
        }
        return StoreError::Other(err.to_string());
    }
    common(err)
}

fn common(err: sqlx::Error) -> StoreError {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(err.to_string()),
        other => StoreError::Other(other.to_string()),
    }
}

/// The PostgreSQL constraint name for a SQLite constraint message.
pub(crate) fn sqlite_constraint_name(message: &str) -> String {
    if let Some(cols) = message.strip_prefix("UNIQUE constraint failed: ") {
        return unique_name(cols);
    }
    if let Some(rest) = message.strip_prefix("CHECK constraint failed: ") {
        // Named CHECK constraints are reported by name.
        return rest.trim().to_owned();
    }
    if let Some(col) = message.strip_prefix("NOT NULL constraint failed: ") {
        return format!("{}_not_null", col.trim().replace('.', "_"));
    }
    // RAISE(ABORT, '<constraint>: <explanation>') from our triggers.
    match message.split_once(':') {
        Some((name, _)) if !name.contains(' ') => name.to_owned(),
        _ => message.to_owned(),
    }
}

/// "table.a, table.b" → the name the migrations give that UNIQUE constraint / index.
fn unique_name(cols: &str) -> String {
    let cols: Vec<&str> = cols.split(',').map(str::trim).collect();
    let named = match cols.as_slice() {
        ["enrollments.user_id", "enrollments.course_id"] => Some("enrollments_user_course_key"),
        ["orders.user_id", "orders.course_id"] => Some("orders_one_active_per_course"),
        ["payments.provider", "payments.provider_tx_id"] => Some("payments_provider_tx_key"),
        ["payments.order_id"] => Some("payments_order_id_key"),
        ["refunds.transaction_key"] => Some("refunds_transaction_key_key"),
        ["refunds.idempotency_key"] => Some("refunds_idempotency_key_key"),
        ["refunds.payment_id"] => Some("refunds_one_requested_per_payment"),
        ["courses.id"] => Some("courses_pkey"),
        ["enrollments.id"] => Some("enrollments_pkey"),
        ["orders.order_id"] => Some("orders_pkey"),
        ["payments.id"] => Some("payments_pkey"),
        ["refunds.id"] => Some("refunds_pkey"),
        ["exam_attempts.id"] => Some("exam_attempts_pkey"),
        ["payment_events.id"] => Some("payment_events_pkey"),
        ["idempotency_keys.scope", "idempotency_keys.key"] => Some("idempotency_keys_pkey"),
        ["one_time_tokens.kind", "one_time_tokens.token"] => Some("one_time_tokens_pkey"),
        ["payment_controls.id"] => Some("payment_controls_pkey"),
        _ => None,
    };
    match named {
        Some(name) => name.to_owned(),
        // PostgreSQL's default for an unnamed UNIQUE: <table>_<cols>_key.
        None => {
            let table = cols
                .first()
                .and_then(|c| c.split_once('.'))
                .map_or("", |(t, _)| t);
            let names: Vec<&str> = cols
                .iter()
                .map(|c| c.split_once('.').map_or(*c, |(_, col)| col))
                .collect();
            format!("{table}_{}_key", names.join("_"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_messages_map_to_postgres_names() {
        assert_eq!(
            sqlite_constraint_name(
                "UNIQUE constraint failed: enrollments.user_id, enrollments.course_id"
            ),
            "enrollments_user_course_key"
        );
        assert_eq!(
            sqlite_constraint_name("UNIQUE constraint failed: orders.user_id, orders.course_id"),
            "orders_one_active_per_course"
        );
        assert_eq!(
            sqlite_constraint_name("UNIQUE constraint failed: orders.order_id"),
            "orders_pkey"
        );
        assert_eq!(
            sqlite_constraint_name("CHECK constraint failed: courses_price_check"),
            "courses_price_check"
        );
        assert_eq!(
            sqlite_constraint_name(
                "payment_events_append_only: payment_events is append-only (UPDATE refused)"
            ),
            "payment_events_append_only"
        );
        assert_eq!(
            sqlite_constraint_name("UNIQUE constraint failed: t.a, t.b"),
            "t_a_b_key"
        );
    }
}
