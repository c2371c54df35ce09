//! Opening the store the configuration names, with least privilege in mind: `coursepay
//! migrate` runs the migrations (as a role that owns the schema), `coursepay serve` either
//! migrates too (`AUTO_MIGRATE=true`, the default, convenient in development) or only checks
//! that the database is migrated (`AUTO_MIGRATE=false`), so it can run as a role with nothing
//! but SELECT/INSERT/UPDATE/DELETE on coursepay's tables.

use crate::config::ConfigError;
use std::sync::Arc;
use std::time::Duration;
use store::{DynStore, PgSettings};

/// Database settings beyond `DATABASE_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseSettings {
    /// PostgreSQL: schema, pool size, statement timeout.
    pub pg: PgSettings,
    /// `serve` applies pending migrations itself (true) or refuses to start on an unmigrated
    /// database (false).
    pub auto_migrate: bool,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        DatabaseSettings {
            pg: PgSettings::default(),
            auto_migrate: true,
        }
    }
}

impl DatabaseSettings {
    /// Read `DATABASE_SCHEMA`, `DATABASE_POOL_SIZE`, `DATABASE_STATEMENT_TIMEOUT_MS` and
    /// `AUTO_MIGRATE`; problems are pushed.
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>, problems: &mut Vec<String>) -> Self {
        let var = |name: &str| {
            get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let mut s = DatabaseSettings::default();
        if let Some(schema) = var("DATABASE_SCHEMA") {
            match store::pgschema::check_schema_name(&schema) {
                Ok(()) => s.pg.schema = schema,
                Err(e) => problems.push(format!("DATABASE_SCHEMA: {e}")),
            }
        }
        if let Some(v) = var("DATABASE_POOL_SIZE") {
            match v.parse::<u32>() {
                Ok(n) if (1..=1000).contains(&n) => s.pg.max_connections = n,
                _ => {
                    problems.push("DATABASE_POOL_SIZE must be a whole number from 1 to 1000".into())
                }
            }
        }
        if let Some(v) = var("DATABASE_STATEMENT_TIMEOUT_MS") {
            match v.parse::<u64>() {
                Ok(0) => s.pg.statement_timeout = None,
                Ok(ms) => s.pg.statement_timeout = Some(Duration::from_millis(ms)),
                Err(_) => problems.push(
                    "DATABASE_STATEMENT_TIMEOUT_MS must be a whole number of milliseconds (0: none)"
                        .into(),
                ),
            }
        }
        if let Some(v) = var("AUTO_MIGRATE") {
            match v.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => s.auto_migrate = true,
                "false" | "0" | "no" => s.auto_migrate = false,
                _ => problems.push("AUTO_MIGRATE must be true or false".into()),
            }
        }
        s
    }

    /// From the process environment alone (for `coursepay migrate --print`, which needs no
    /// other configuration).
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let s = Self::from_lookup(&|k| std::env::var(k).ok(), &mut problems);
        if problems.is_empty() {
            Ok(s)
        } else {
            Err(ConfigError(problems.join("; ")))
        }
    }
}

/// What opening the store does about migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Migrations {
    /// Apply pending migrations (`coursepay migrate`; `serve` with `AUTO_MIGRATE=true`). No
    /// statement timeout: a migration may legitimately take long.
    Apply,
    /// Only check that everything is applied; refuse otherwise (`serve` with
    /// `AUTO_MIGRATE=false`).
    Verify,
}

/// Open the store `database_url` names (default: the SQLite file `coursepay.db`).
pub async fn open(
    database_url: Option<String>,
    database: &DatabaseSettings,
    migrations: Migrations,
) -> Result<DynStore, String> {
    let url = database_url.unwrap_or_else(|| "sqlite://coursepay.db".to_owned());
    if url.starts_with("postgres") {
        let mut settings = database.pg.clone();
        if migrations == Migrations::Apply {
            settings.statement_timeout = None;
        }
        let pg = store::postgres::PgStore::connect_with_settings(&url, &settings)
            .await
            .map_err(|e| e.to_string())?;
        match migrations {
            Migrations::Apply => store::Store::migrate(&pg)
                .await
                .map_err(|e| format!("applying migrations: {e}"))?,
            Migrations::Verify => pg.verify_migrated().await.map_err(|e| {
                format!(
                    "AUTO_MIGRATE=false and the database is not ready: {e}. Run `coursepay migrate` \
                     (as the role owning schema {}) first",
                    settings.schema
                )
            })?,
        }
        if migrations == Migrations::Apply && database.pg.statement_timeout.is_some() {
            // Reconnect with the configured statement timeout for serving.
            pg.close().await;
            return Ok(Arc::new(
                store::postgres::PgStore::connect_with_settings(&url, &database.pg)
                    .await
                    .map_err(|e| e.to_string())?,
            ));
        }
        Ok(Arc::new(pg))
    } else if url.starts_with("sqlite") {
        let db = store::sqlite::SqliteStore::open(&url)
            .await
            .map_err(|e| format!("opening SQLite: {e}"))?;
        match migrations {
            Migrations::Apply => store::Store::migrate(&db)
                .await
                .map_err(|e| format!("applying migrations: {e}"))?,
            Migrations::Verify => store::Store::ready(&db).await.map_err(|e| {
                format!(
                    "AUTO_MIGRATE=false and the database is not ready: {e}. Run `coursepay migrate` first"
                )
            })?,
        }
        Ok(Arc::new(db))
    } else {
        Err("DATABASE_URL must start with postgres:// or sqlite://".into())
    }
}

/// Write the PostgreSQL migrations as plain SQL: one file each into `dir`, or all of them to
/// `out` when `dir` is None. Returns the file names written.
pub fn print_migrations(
    schema: &str,
    dir: Option<&std::path::Path>,
    out: &mut dyn std::io::Write,
) -> Result<Vec<String>, String> {
    let files = store::postgres::PgStore::print_migrations(schema)?;
    let mut names = Vec::new();
    for f in files {
        match dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("creating {}: {e}", dir.display()))?;
                let path = dir.join(&f.name);
                std::fs::write(&path, &f.sql)
                    .map_err(|e| format!("writing {}: {e}", path.display()))?;
            }
            None => write!(out, "-- {}\n{}\n", f.name, f.sql).map_err(|e| e.to_string())?,
        }
        names.push(f.name);
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> (DatabaseSettings, Vec<String>) {
        let mut problems = Vec::new();
        let s = DatabaseSettings::from_lookup(
            &|k| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            },
            &mut problems,
        );
        (s, problems)
    }

    #[test]
    fn defaults_and_overrides() {
        let (s, p) = settings(&[]);
        assert!(p.is_empty());
        assert_eq!(s, DatabaseSettings::default());
        assert_eq!(s.pg.schema, "coursepay");
        assert!(s.auto_migrate);
        let (s, p) = settings(&[
            ("DATABASE_SCHEMA", "billing_2"),
            ("DATABASE_POOL_SIZE", "4"),
            ("DATABASE_STATEMENT_TIMEOUT_MS", "0"),
            ("AUTO_MIGRATE", "false"),
        ]);
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(
            (
                s.pg.schema.as_str(),
                s.pg.max_connections,
                s.pg.statement_timeout
            ),
            ("billing_2", 4, None)
        );
        assert!(!s.auto_migrate);
    }

    #[test]
    fn refusals_name_the_variable() {
        for (name, value) in [
            ("DATABASE_SCHEMA", "public"),
            ("DATABASE_SCHEMA", "auth"),
            ("DATABASE_SCHEMA", "Coursepay"),
            ("DATABASE_SCHEMA", "pay; drop"),
            ("DATABASE_POOL_SIZE", "0"),
            ("DATABASE_STATEMENT_TIMEOUT_MS", "soon"),
            ("AUTO_MIGRATE", "maybe"),
        ] {
            let (_, p) = settings(&[(name, value)]);
            assert!(p.len() == 1 && p[0].contains(name), "{name}={value}: {p:?}");
        }
    }
}
