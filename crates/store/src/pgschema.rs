//! Where coursepay lives inside a PostgreSQL database, and who may touch it.
//!
//! * Every table, sequence, function and the migration history (`_sqlx_migrations`) live in
//!   one dedicated schema (default `coursepay`), never in `public`: on a Supabase project the
//!   `public` schema is what its REST layer exposes to the browser-held `anon` key. Each pooled
//!   connection sets `search_path` to that schema, so the SQL itself names no schema.
//! * After migrating, [`LOCKDOWN_SQL`] enables row-level security on every table of the schema
//!   with a single policy that admits any role except `anon` and `authenticated`, and revokes
//!   every privilege those two roles (where they exist) and `PUBLIC` could have on the schema,
//!   its tables, sequences and functions. The service itself runs as the owner (RLS does not
//!   apply to a table's owner) or as a DML-only role (admitted by the policy).
//! * A database migrated by earlier versions, with the tables in `public`, is adopted once: the
//!   tables (with their rows, indexes, constraints, triggers and owned sequences), the trigger
//!   function and the migration history are moved into the schema in one transaction.
//! * Where a Supabase `auth.users` table exists (and the migrating role may reference it), every
//!   `user_id` column gets a foreign key to it (`NOT VALID`: rows written before are not
//!   re-checked, new rows are).

use crate::error::from_pg;
use crate::{Result, StoreError};
use sqlx::migrate::Migrator;
use sqlx::{AssertSqlSafe, PgPool};
use std::fmt::Write as _;
use std::time::Duration;

/// The schema coursepay uses unless configured otherwise.
pub const DEFAULT_SCHEMA: &str = "coursepay";

/// Connection settings of the PostgreSQL store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgSettings {
    /// The schema holding every coursepay object (see [`check_schema_name`]).
    pub schema: String,
    /// Most connections the pool opens.
    pub max_connections: u32,
    /// Per-statement limit set on every connection (None: the server's default).
    pub statement_timeout: Option<Duration>,
}

impl Default for PgSettings {
    fn default() -> Self {
        PgSettings {
            schema: DEFAULT_SCHEMA.to_owned(),
            max_connections: 16,
            statement_timeout: Some(Duration::from_secs(30)),
        }
    }
}

/// A schema name is a plain lower-case SQL identifier (so it never needs quoting rules beyond
/// double quotes), at most 63 bytes, and neither `public` nor a system schema.
pub fn check_schema_name(name: &str) -> std::result::Result<(), String> {
    let mut chars = name.chars();
    let plain = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !plain || name.len() > 63 {
        return Err(format!(
            "schema name {name:?} must be lower-case letters, digits and _ (at most 63), starting with a letter or _"
        ));
    }
    if name == "public" || name.starts_with("pg_") || name == "information_schema" {
        return Err(format!(
            "schema {name:?} is reserved; coursepay needs its own schema"
        ));
    }
    if matches!(
        name,
        "auth" | "storage" | "realtime" | "extensions" | "graphql" | "graphql_public" | "vault"
    ) {
        return Err(format!(
            "schema {name:?} belongs to Supabase; coursepay needs its own schema"
        ));
    }
    Ok(())
}

/// The tables the migrations before the dedicated schema created in `public`.
const LEGACY_TABLES: &[&str] = &[
    "courses",
    "enrollments",
    "orders",
    "payments",
    "refunds",
    "exam_attempts",
    "payment_events",
    "idempotency_keys",
    "one_time_tokens",
    "payment_controls",
    "_sqlx_migrations",
];

/// Create the schema if it is missing and adopt a database migrated into `public` by an
/// earlier version. Runs in one transaction under an advisory lock, so two instances
/// migrating at once do not both move tables.
pub(crate) async fn prepare(pool: &PgPool, schema: &str) -> Result<()> {
    check_schema_name(schema).map_err(StoreError::Other)?;
    let mut tx = pool.begin().await.map_err(from_pg)?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('coursepay.prepare_schema'))")
        .execute(&mut *tx)
        .await
        .map_err(from_pg)?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(schema)
            .fetch_one(&mut *tx)
            .await
            .map_err(from_pg)?;
    if !exists {
        // Checked to be a plain identifier above.
        sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\"")))
            .execute(&mut *tx)
            .await
            .map_err(from_pg)?;
    }
    let (ours, legacy): (bool, bool) = sqlx::query_as(
        "SELECT to_regclass(format('%I._sqlx_migrations', $1::text)) IS NOT NULL,
                to_regclass('public._sqlx_migrations') IS NOT NULL
                AND to_regclass('public.orders') IS NOT NULL
                AND to_regclass('public.payment_events') IS NOT NULL",
    )
    .bind(schema)
    .fetch_one(&mut *tx)
    .await
    .map_err(from_pg)?;
    if legacy && !ours {
        let mut moved = 0;
        for table in LEGACY_TABLES {
            let present: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
                .bind(format!("public.{table}"))
                .fetch_one(&mut *tx)
                .await
                .map_err(from_pg)?;
            if present {
                sqlx::query(AssertSqlSafe(format!(
                    "ALTER TABLE public.{table} SET SCHEMA \"{schema}\""
                )))
                .execute(&mut *tx)
                .await
                .map_err(from_pg)?;
                moved += 1;
            }
        }
        let function: bool = sqlx::query_scalar(
            "SELECT to_regprocedure('public.payment_events_append_only()') IS NOT NULL",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(from_pg)?;
        if function {
            sqlx::query(AssertSqlSafe(format!(
                "ALTER FUNCTION public.payment_events_append_only() SET SCHEMA \"{schema}\""
            )))
            .execute(&mut *tx)
            .await
            .map_err(from_pg)?;
        }
        tracing::warn!(target: "coursepay::store", schema, tables = moved, "moved coursepay's tables out of the public schema");
    }
    tx.commit().await.map_err(from_pg)
}

/// Row-level security, the one policy and the revocations described in the module docs, for
/// every table in the current schema (the first of `search_path`). Idempotent: run after every
/// migration, so tables added by later migrations are covered too.
pub const LOCKDOWN_SQL: &str = r#"
DO $lockdown$
DECLARE
    s text := current_schema();
    t record;
    r text;
    users oid;
BEGIN
    IF s IS NULL OR s = 'public' THEN
        RAISE EXCEPTION 'coursepay lockdown: search_path must start with coursepay''s own schema, not %', s;
    END IF;
    -- ALTER TABLE and CREATE POLICY lock the table exclusively: only where something is missing,
    -- so a service restarting with AUTO_MIGRATE does not queue behind running statements.
    FOR t IN
        SELECT c.relname, c.relrowsecurity FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = s AND c.relkind IN ('r', 'p')
    LOOP
        IF NOT t.relrowsecurity THEN
            EXECUTE format('ALTER TABLE %I.%I ENABLE ROW LEVEL SECURITY', s, t.relname);
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_policies
                       WHERE schemaname = s AND tablename = t.relname
                         AND policyname = 'coursepay_service_only') THEN
            EXECUTE format(
                'CREATE POLICY coursepay_service_only ON %I.%I AS PERMISSIVE FOR ALL TO PUBLIC '
                'USING (current_user NOT IN (''anon'', ''authenticated'')) '
                'WITH CHECK (current_user NOT IN (''anon'', ''authenticated''))',
                s, t.relname);
        END IF;
    END LOOP;
    EXECUTE format('REVOKE ALL ON SCHEMA %I FROM PUBLIC', s);
    EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM PUBLIC', s);
    EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA %I FROM PUBLIC', s);
    EXECUTE format('REVOKE ALL ON ALL FUNCTIONS IN SCHEMA %I FROM PUBLIC', s);
    FOREACH r IN ARRAY ARRAY['anon', 'authenticated'] LOOP
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('REVOKE ALL ON SCHEMA %I FROM %I', s, r);
            EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM %I', s, r);
            EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA %I FROM %I', s, r);
            EXECUTE format('REVOKE ALL ON ALL FUNCTIONS IN SCHEMA %I FROM %I', s, r);
            EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I REVOKE ALL ON TABLES FROM %I', s, r);
            EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I REVOKE ALL ON SEQUENCES FROM %I', s, r);
            EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I REVOKE ALL ON FUNCTIONS FROM %I', s, r);
        END IF;
    END LOOP;
    -- Looked up in the catalog (to_regclass would fail without USAGE on schema auth).
    SELECT c.oid INTO users FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'auth' AND c.relname = 'users' AND c.relkind IN ('r', 'p');
    IF users IS NOT NULL AND NOT (has_schema_privilege('auth', 'USAGE')
                                  AND has_table_privilege(users, 'REFERENCES')) THEN
        RAISE WARNING 'coursepay: auth.users exists but % may not reference it (GRANT USAGE ON SCHEMA auth, REFERENCES ON auth.users); user_id columns left without a foreign key', current_user;
    ELSIF users IS NOT NULL THEN
        FOR t IN
            SELECT c.relname FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'user_id' AND NOT a.attisdropped
            WHERE n.nspname = s AND c.relkind = 'r'
        LOOP
            IF NOT EXISTS (SELECT 1 FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
                           WHERE n.nspname = s AND c.conname = t.relname || '_user_id_auth_users_fkey') THEN
                EXECUTE format(
                    'ALTER TABLE %I.%I ADD CONSTRAINT %I FOREIGN KEY (user_id) REFERENCES auth.users (id) NOT VALID',
                    s, t.relname, t.relname || '_user_id_auth_users_fkey');
            END IF;
        END LOOP;
    END IF;
END
$lockdown$;
"#;

pub(crate) async fn lock_down(pool: &PgPool) -> Result<()> {
    sqlx::raw_sql(LOCKDOWN_SQL)
        .execute(pool)
        .await
        .map_err(from_pg)?;
    Ok(())
}

/// Tables of the current schema that row-level security does not cover: not empty means
/// `coursepay migrate` has not run with this version.
pub(crate) const UNLOCKED_TABLES: &str = "
SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT c.relrowsecurity
ORDER BY 1";

/// One file of [`print_migrations`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlFile {
    pub name: String,
    pub sql: String,
}

/// The version prefix of printed files: Supabase's CLI orders migrations by the digits before
/// the first `_` (normally a UTC timestamp). A fixed early date keeps coursepay's files in
/// their own order, before a project's own migrations.
const PRINT_EPOCH: i64 = 20_240_101_000_000;

/// The PostgreSQL migrations as plain SQL files for a Supabase project's
/// `supabase/migrations/` (or any other runner): each file creates the schema if needed, runs
/// in it, and records itself in the schema's `_sqlx_migrations` exactly as `coursepay migrate`
/// would (same version and checksum), so `coursepay migrate` and `coursepay serve` recognise
/// it as applied, then applies [`LOCKDOWN_SQL`] to what exists so far. Every file resets
/// `search_path` at its end, so the project's later migrations are unaffected.
pub fn print_migrations(
    migrator: &Migrator,
    schema: &str,
) -> std::result::Result<Vec<SqlFile>, String> {
    check_schema_name(schema)?;
    let preamble = format!(
        "-- Generated by `coursepay migrate --print`; do not edit. Applies coursepay's own\n\
         -- migration to the \"{schema}\" schema and records it in \"{schema}\"._sqlx_migrations.\n\
         CREATE SCHEMA IF NOT EXISTS \"{schema}\";\n\
         SET search_path TO \"{schema}\";\n\
         CREATE TABLE IF NOT EXISTS _sqlx_migrations (\n    \
             version BIGINT PRIMARY KEY,\n    \
             description TEXT NOT NULL,\n    \
             installed_on TIMESTAMPTZ NOT NULL DEFAULT now(),\n    \
             success BOOLEAN NOT NULL,\n    \
             checksum BYTEA NOT NULL,\n    \
             execution_time BIGINT NOT NULL\n\
         );\n\n"
    );
    let mut files = Vec::new();
    for m in migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
    {
        let slug: String = m
            .description
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        let mut sql = preamble.clone();
        sql.push_str(m.sql.as_str().trim_end());
        sql.push_str("\n\n");
        let mut checksum = String::new();
        for b in m.checksum.iter() {
            let _ = write!(checksum, "{b:02x}");
        }
        let _ = write!(
            sql,
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)\n\
             VALUES ({}, '{}', true, '\\x{checksum}'::bytea, 0);\n\n{}\n\nRESET search_path;\n",
            m.version,
            m.description.replace('\'', "''"),
            LOCKDOWN_SQL.trim(),
        );
        files.push(SqlFile {
            name: format!(
                "{}_coursepay_{:04}_{slug}.sql",
                PRINT_EPOCH + m.version,
                m.version
            ),
            sql,
        });
    }
    Ok(files)
}
