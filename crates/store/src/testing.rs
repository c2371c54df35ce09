//! Fresh, migrated stores for tests (this crate's conformance suite and the server's tests).
//!
//! * [`sqlite`]: a new database file in its own temporary directory, removed when the store
//!   is dropped.
//! * [`postgres`]: a new schema `t_<unix seconds>_<random>` in the database named by
//!   `TEST_DATABASE_URL` (default [`DEFAULT_TEST_DATABASE_URL`]), used as the store's own
//!   schema (every pooled connection's `search_path`), so tests never see each other's rows.
//!   Schemas older than an hour are dropped on the way, so the test database does not fill up.
//!
//! These panic instead of returning errors: a test that cannot get its database must fail
//! loudly, never skip. In particular an unreachable PostgreSQL is a failure, not a skip.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use crate::postgres::PgStore;
use crate::sqlite::SqliteStore;
use crate::{DynStore, Store};
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const DEFAULT_TEST_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Test schemas older than this are dropped by later test runs.
const STALE_SCHEMA_AGE: Duration = Duration::from_secs(3600);

/// A migrated SQLite store in a fresh temporary directory.
pub async fn sqlite_store() -> SqliteStore {
    let dir = tempfile::Builder::new()
        .prefix("coursepay-store-")
        .tempdir()
        .expect("create a temporary directory for the SQLite test database");
    let path = dir.path().join("coursepay.sqlite3");
    let path = path
        .to_str()
        .expect("temporary directory path is valid UTF-8")
        .to_owned();
    let store = SqliteStore::open(&path)
        .await
        .unwrap_or_else(|e| panic!("open SQLite test database {path}: {e}"))
        .with_dir(dir);
    store
        .migrate()
        .await
        .unwrap_or_else(|e| panic!("migrate SQLite test database {path}: {e}"));
    store
}

pub async fn sqlite() -> DynStore {
    Arc::new(sqlite_store().await)
}

/// The URL tests use for PostgreSQL.
pub fn test_database_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_TEST_DATABASE_URL.to_owned())
}

/// A migrated PostgreSQL store in a fresh schema. Panics when PostgreSQL is unreachable.
pub async fn postgres_store() -> PgStore {
    let url = test_database_url();
    let base = PgConnectOptions::from_str(&url)
        .unwrap_or_else(|e| panic!("TEST_DATABASE_URL {url:?} is not a PostgreSQL URL: {e}"));
    let mut admin = PgConnection::connect_with(&base).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is required for these tests and is unreachable at {url}: {e}\n\
             Start it (e.g. `pg_ctlcluster --skip-systemctl-redirect 15 main start`) or point \
             TEST_DATABASE_URL at a database where the user may create schemas."
        )
    });

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("system clock is after 1970")
        .as_secs();
    drop_stale_schemas(&mut admin, now).await;

    let random = uuid::Uuid::new_v4().simple().to_string();
    let schema = format!("t_{now}_{}", &random[..12]);
    admin
        .execute(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .await
        .unwrap_or_else(|e| panic!("create test schema {schema} at {url}: {e}"));
    let _ = admin.close().await;

    let settings = crate::PgSettings {
        schema: schema.clone(),
        ..Default::default()
    };
    let store = PgStore::connect_with(base, &settings)
        .await
        .unwrap_or_else(|e| panic!("connect to PostgreSQL test schema {schema} at {url}: {e}"));
    store
        .migrate()
        .await
        .unwrap_or_else(|e| panic!("migrate PostgreSQL test schema {schema}: {e}"));
    store
}

pub async fn postgres() -> DynStore {
    Arc::new(postgres_store().await)
}

/// A migrated store of either backend.
pub async fn store(backend: crate::Backend) -> DynStore {
    match backend {
        crate::Backend::Sqlite => sqlite().await,
        crate::Backend::Postgres => postgres().await,
    }
}

/// One test per backend, for every suite (the store's conformance suite and the server's):
/// `per_backend!(|b| setup(b).await; case_a, case_b)` writes `sqlite::case_a`,
/// `postgres::case_a`, … each calling `case_a(setup(Backend::…).await)`; without the setup
/// (`per_backend!(case_a, case_b)`) each case gets the [`Backend`](crate::Backend) itself.
/// The setup is written inside the generated modules, which see everything the calling
/// module sees.
#[macro_export]
macro_rules! per_backend {
    (@mod $module:ident, $variant:ident, |$b:ident| $setup:expr; $($case:ident),+) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let $b = $crate::Backend::$variant;
                    super::$case($setup).await;
                }
            )+
        }
    };
    (|$b:ident| $setup:expr; $($case:ident),+ $(,)?) => {
        $crate::per_backend!(@mod sqlite, Sqlite, |$b| $setup; $($case),+);
        $crate::per_backend!(@mod postgres, Postgres, |$b| $setup; $($case),+);
    };
    ($($case:ident),+ $(,)?) => {
        $crate::per_backend!(|backend| backend; $($case),+);
    };
}

/// Both backends, named, for tests that loop over them.
pub async fn both() -> Vec<(&'static str, DynStore)> {
    vec![("sqlite", sqlite().await), ("postgres", postgres().await)]
}

/// Best effort: drop a few test schemas left by runs more than an hour ago.
async fn drop_stale_schemas(admin: &mut PgConnection, now: u64) {
    let names: Vec<String> = match sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 't\\_%\\_%' ORDER BY nspname",
    )
    .fetch_all(&mut *admin)
    .await
    {
        Ok(names) => names,
        Err(_) => return,
    };
    let cutoff = now.saturating_sub(STALE_SCHEMA_AGE.as_secs());
    let stale = names.into_iter().filter(|name| {
        let mut parts = name.splitn(3, '_');
        let (Some("t"), Some(secs), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
            return false;
        };
        secs.parse::<u64>().is_ok_and(|s| s < cutoff) && rest.chars().all(|c| c.is_ascii_hexdigit())
    });
    for name in stale.take(5) {
        // Names were checked to be t_<digits>_<hex> above, so they are safe to splice.
        let _ = admin
            .execute(AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS {name} CASCADE"
            )))
            .await;
    }
}
