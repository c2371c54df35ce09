//! Checklist section 1 read from the database catalog: unique constraints, foreign keys (with
//! their ON UPDATE action) and indexes, on PostgreSQL (`pg_index`, `pg_constraint`, in the
//! connection's current schema) and SQLite (`pragma_index_list`, `pragma_foreign_key_list`).
//! Only catalog reads and one orphan count: a read-only DSN is enough, and nothing is written.
//!
//! Constraints are matched by table and columns, not by name, so a constraint an operator
//! created under another name still counts.

use super::report::{Outcome, Report};
use sqlx::{Connection, Row};
use std::str::FromStr;

#[derive(Debug, Default)]
pub struct Catalog {
    pub backend: &'static str,
    pub tables: Vec<String>,
    pub indexes: Vec<Index>,
    pub foreign_keys: Vec<ForeignKey>,
    /// exam_attempts rows whose enrollment does not exist (None: no such table).
    pub exam_attempt_orphans: Option<i64>,
}

#[derive(Debug)]
pub struct Index {
    pub table: String,
    pub name: String,
    pub columns: Vec<String>,
    pub unique: bool,
    pub partial: bool,
}

#[derive(Debug)]
pub struct ForeignKey {
    pub table: String,
    pub columns: Vec<String>,
    pub ref_table: String,
    pub ref_columns: Vec<String>,
    /// `CASCADE`, `NO ACTION`, `RESTRICT`, `SET NULL`, `SET DEFAULT`.
    pub on_update: String,
}

/// Indexes the service's queries need: (table, leading columns, what uses it).
pub const NEEDED_INDEXES: &[(&str, &[&str], &str)] = &[
    ("orders", &["status", "updated_at"], "reconciler backlog"),
    ("orders", &["created_at"], "open orders by age"),
    (
        "exam_attempts",
        &["enrollment_id"],
        "attempts per enrollment",
    ),
    ("refunds", &["payment_id"], "refunds per payment"),
];

/// Read the catalog of `dsn`; on PostgreSQL, of `pg_schema` (where the service keeps its
/// tables: its DATABASE_SCHEMA).
pub async fn read(dsn: &str, pg_schema: &str) -> Result<Catalog, String> {
    if dsn.starts_with("postgres") {
        read_postgres(dsn, pg_schema).await
    } else if dsn.starts_with("sqlite") {
        read_sqlite(dsn).await
    } else {
        Err("--database-url must start with postgres:// or sqlite://".into())
    }
}

async fn read_postgres(dsn: &str, pg_schema: &str) -> Result<Catalog, String> {
    let opts = sqlx::postgres::PgConnectOptions::from_str(dsn)
        .map_err(|e| format!("--database-url: {e}"))?;
    let mut conn = sqlx::PgConnection::connect_with(&opts)
        .await
        .map_err(|e| format!("connecting to PostgreSQL: {e}"))?;
    // current_schema() below is the service's schema, not the connecting role's default.
    sqlx::query("SELECT set_config('search_path', $1, false)")
        .bind(format!("\"{}\"", pg_schema.replace('"', "\"\"")))
        .execute(&mut conn)
        .await
        .map_err(pg_error)?;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema()",
    )
    .fetch_all(&mut conn)
    .await
    .map_err(pg_error)?;
    let mut catalog = Catalog {
        backend: "postgres",
        tables,
        indexes: pg_indexes(&mut conn).await?,
        foreign_keys: pg_foreign_keys(&mut conn).await?,
        exam_attempt_orphans: None,
    };
    catalog.exam_attempt_orphans = count_orphans::<sqlx::Postgres>(&catalog, &mut conn).await?;
    let _ = conn.close().await;
    Ok(catalog)
}

fn pg_error(e: sqlx::Error) -> String {
    format!("reading the PostgreSQL catalog: {e}")
}

/// Every index of the current schema, with its columns in key order.
async fn pg_indexes(conn: &mut sqlx::PgConnection) -> Result<Vec<Index>, String> {
    let rows = sqlx::query(
        "SELECT t.relname::text AS tbl, i.relname::text AS idx, ix.indisunique AS uniq,
                ix.indpred IS NOT NULL AS partial,
                array_agg(a.attname::text ORDER BY k.ord) AS cols
         FROM pg_index ix
         JOIN pg_class i ON i.oid = ix.indexrelid
         JOIN pg_class t ON t.oid = ix.indrelid
         JOIN pg_namespace n ON n.oid = t.relnamespace
         CROSS JOIN LATERAL unnest(ix.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
         WHERE n.nspname = current_schema()
         GROUP BY t.relname, i.relname, ix.indisunique, ix.indpred",
    )
    .fetch_all(conn)
    .await
    .map_err(pg_error)?;
    Ok(rows
        .into_iter()
        .map(|r| Index {
            table: r.get("tbl"),
            name: r.get("idx"),
            columns: r.get("cols"),
            unique: r.get("uniq"),
            partial: r.get("partial"),
        })
        .collect())
}

/// Every validated foreign key of the current schema, with its ON UPDATE action.
async fn pg_foreign_keys(conn: &mut sqlx::PgConnection) -> Result<Vec<ForeignKey>, String> {
    let rows = sqlx::query(
        "SELECT t.relname::text AS tbl, rt.relname::text AS ref_tbl, c.confupdtype::text AS upd,
                (SELECT array_agg(a.attname::text ORDER BY k.ord)
                   FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
                   JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum) AS cols,
                (SELECT array_agg(a.attname::text ORDER BY k.ord)
                   FROM unnest(c.confkey) WITH ORDINALITY AS k(attnum, ord)
                   JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum) AS ref_cols
         FROM pg_constraint c
         JOIN pg_class t ON t.oid = c.conrelid
         JOIN pg_class rt ON rt.oid = c.confrelid
         JOIN pg_namespace n ON n.oid = t.relnamespace
         WHERE c.contype = 'f' AND c.convalidated AND n.nspname = current_schema()",
    )
    .fetch_all(conn)
    .await
    .map_err(pg_error)?;
    Ok(rows
        .into_iter()
        .map(|r| ForeignKey {
            table: r.get("tbl"),
            columns: r.get("cols"),
            ref_table: r.get("ref_tbl"),
            ref_columns: r.get("ref_cols"),
            on_update: match r.get::<String, _>("upd").as_str() {
                "c" => "CASCADE",
                "r" => "RESTRICT",
                "n" => "SET NULL",
                "d" => "SET DEFAULT",
                _ => "NO ACTION",
            }
            .to_owned(),
        })
        .collect())
}

async fn read_sqlite(dsn: &str) -> Result<Catalog, String> {
    let opts = sqlx::sqlite::SqliteConnectOptions::from_str(dsn)
        .map_err(|e| format!("--database-url: {e}"))?
        .read_only(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&opts)
        .await
        .map_err(|e| format!("opening SQLite: {e}"))?;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await
    .map_err(sqlite_error)?;
    let mut catalog = Catalog {
        backend: "sqlite",
        ..Default::default()
    };
    for table in &tables {
        catalog
            .indexes
            .extend(sqlite_indexes(&mut conn, table).await?);
        catalog
            .foreign_keys
            .extend(sqlite_foreign_keys(&mut conn, table).await?);
    }
    catalog.tables = tables;
    catalog.exam_attempt_orphans = count_orphans::<sqlx::Sqlite>(&catalog, &mut conn).await?;
    let _ = conn.close().await;
    Ok(catalog)
}

fn sqlite_error(e: sqlx::Error) -> String {
    format!("reading the SQLite catalog: {e}")
}

/// The indexes of `table`: one row per indexed column, gathered by index name.
async fn sqlite_indexes(
    conn: &mut sqlx::SqliteConnection,
    table: &str,
) -> Result<Vec<Index>, String> {
    let rows = sqlx::query(
        "SELECT il.name AS idx, il.\"unique\" AS uniq, il.partial AS partial, ii.name AS col
         FROM pragma_index_list($1) AS il JOIN pragma_index_info(il.name) AS ii
         ORDER BY il.name, ii.seqno",
    )
    .bind(table)
    .fetch_all(conn)
    .await
    .map_err(sqlite_error)?;
    let mut indexes: Vec<Index> = Vec::new();
    for r in rows {
        let name: String = r.get("idx");
        let col: Option<String> = r.get("col");
        let col = col.unwrap_or_else(|| "<expression>".into());
        match indexes.iter_mut().find(|i| i.name == name) {
            Some(i) => i.columns.push(col),
            None => indexes.push(Index {
                table: table.to_owned(),
                name,
                columns: vec![col],
                unique: r.get::<i64, _>("uniq") == 1,
                partial: r.get::<i64, _>("partial") == 1,
            }),
        }
    }
    Ok(indexes)
}

/// The foreign keys of `table`: one row per column, consecutive rows of one key sharing its id.
async fn sqlite_foreign_keys(
    conn: &mut sqlx::SqliteConnection,
    table: &str,
) -> Result<Vec<ForeignKey>, String> {
    let rows = sqlx::query(
        "SELECT id, \"table\" AS ref_tbl, \"from\" AS col, \"to\" AS ref_col, on_update
         FROM pragma_foreign_key_list($1) ORDER BY id, seq",
    )
    .bind(table)
    .fetch_all(conn)
    .await
    .map_err(sqlite_error)?;
    let mut keys: Vec<(i64, ForeignKey)> = Vec::new();
    for r in rows {
        let id: i64 = r.get("id");
        let col: String = r.get("col");
        // A NULL target column means the referenced table's primary key (`id` here).
        let ref_col: Option<String> = r.get("ref_col");
        let ref_col = ref_col.unwrap_or_else(|| "id".into());
        match keys.last_mut() {
            Some((last, fk)) if *last == id => {
                fk.columns.push(col);
                fk.ref_columns.push(ref_col);
            }
            _ => keys.push((
                id,
                ForeignKey {
                    table: table.to_owned(),
                    columns: vec![col],
                    ref_table: r.get("ref_tbl"),
                    ref_columns: vec![ref_col],
                    on_update: r.get("on_update"),
                },
            )),
        }
    }
    Ok(keys.into_iter().map(|(_, fk)| fk).collect())
}

/// exam_attempts rows pointing at no enrollment (the same SQL on both databases).
const ORPHANS_SQL: &str = "SELECT COUNT(*) FROM exam_attempts e \
     LEFT JOIN enrollments n ON n.id = e.enrollment_id WHERE n.id IS NULL";

/// [`ORPHANS_SQL`]'s count, where both of its tables exist.
async fn count_orphans<DB>(
    catalog: &Catalog,
    conn: &mut DB::Connection,
) -> Result<Option<i64>, String>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    (i64,): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    if !(catalog.has_table("exam_attempts") && catalog.has_table("enrollments")) {
        return Ok(None);
    }
    sqlx::query_scalar::<DB, i64>(ORPHANS_SQL)
        .fetch_one(conn)
        .await
        .map(Some)
        .map_err(|e| format!("counting orphaned exam attempts: {e}"))
}

impl Catalog {
    pub fn has_table(&self, t: &str) -> bool {
        self.tables.iter().any(|x| x == t)
    }

    /// A unique, non-partial index (a UNIQUE constraint's or a unique index) on exactly `cols`.
    fn unique_on(&self, table: &str, cols: &[&str]) -> Option<&Index> {
        self.indexes.iter().find(|i| {
            i.table == table
                && i.unique
                && !i.partial
                && i.columns.len() == cols.len()
                && cols.iter().all(|c| i.columns.iter().any(|x| x == c))
        })
    }

    fn fk(&self, table: &str, col: &str, ref_table: &str) -> Option<&ForeignKey> {
        self.foreign_keys.iter().find(|f| {
            f.table == table
                && f.columns == [col]
                && f.ref_table == ref_table
                && f.ref_columns == ["id"]
        })
    }

    fn index_leading(&self, table: &str, cols: &[&str]) -> Option<&Index> {
        self.indexes.iter().find(|i| {
            i.table == table
                && i.columns.len() >= cols.len()
                && i.columns.iter().zip(cols).all(|(a, b)| a == b)
        })
    }

    /// Fill section 1 of the report.
    pub fn evaluate(&self, report: &mut Report) {
        let b = self.backend;
        for (id, table, cols) in [
            (
                "schema.payments_provider_unique",
                "payments",
                &["provider", "provider_tx_id"][..],
            ),
            (
                "schema.enrollments_user_course_unique",
                "enrollments",
                &["user_id", "course_id"][..],
            ),
        ] {
            let o = match self.unique_on(table, cols) {
                Some(i) => Outcome::pass(format!(
                    "{b} catalog: unique index {} on {table}({})",
                    i.name,
                    i.columns.join(", ")
                )),
                None => Outcome::fail(format!(
                    "{b} catalog: no unique constraint or index on {table}({})",
                    cols.join(", ")
                )),
            };
            report.set(id, o);
        }
        let o = match self.fk("payments", "enrollment_id", "enrollments") {
            Some(f) if f.on_update == "CASCADE" => Outcome::pass(format!(
                "{b} catalog: payments(enrollment_id) → enrollments(id) ON UPDATE CASCADE"
            )),
            Some(f) => Outcome::fail(format!(
                "{b} catalog: payments(enrollment_id) → enrollments(id) ON UPDATE {} (CASCADE recommended)",
                f.on_update
            ))
            .optional(),
            None => Outcome::fail(format!(
                "{b} catalog: no foreign key payments(enrollment_id) → enrollments(id)"
            ))
            .optional(),
        };
        report.set("schema.payments_enrollment_fk", o);
        let o = if !self.has_table("exam_attempts") {
            Outcome::na(format!("{b} catalog: no exam_attempts table"))
        } else {
            match (
                self.fk("exam_attempts", "enrollment_id", "enrollments"),
                self.exam_attempt_orphans,
            ) {
                (Some(f), Some(0)) => Outcome::pass(format!(
                    "{b} catalog: exam_attempts(enrollment_id) → enrollments(id) ON UPDATE {}; 0 orphaned attempts",
                    f.on_update
                )),
                (Some(_), n) => Outcome::fail(format!(
                    "{b}: foreign key present but {} attempts point at no enrollment",
                    n.unwrap_or(-1)
                )),
                (None, _) => Outcome::fail(format!(
                    "{b} catalog: no foreign key exam_attempts(enrollment_id) → enrollments(id)"
                )),
            }
        };
        report.set("schema.exam_attempts_fk", o);
        let mut found = Vec::new();
        let mut missing = Vec::new();
        for (table, cols, what) in NEEDED_INDEXES {
            match self.index_leading(table, cols) {
                Some(i) => found.push(format!("{} on {table}({})", i.name, i.columns.join(", "))),
                None => missing.push(format!("{table}({}) for {what}", cols.join(", "))),
            }
        }
        let o = if missing.is_empty() {
            Outcome::pass(format!("{b} catalog: {}", found.join("; ")))
        } else {
            Outcome::fail(format!(
                "{b} catalog: missing index on {}",
                missing.join("; ")
            ))
        };
        report.set("schema.indexes", o);
    }
}
