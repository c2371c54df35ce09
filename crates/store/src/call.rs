//! How a backend method talks to its database, written once for both backends.
//!
//! Every trait method opens a [`Call`] with its own name: the call is timed under that name
//! for its whole duration (slow-statement log, see [`roundtrips::timer`]), every statement
//! sent through it counts as one round trip ([`roundtrips::add`]), driver errors become
//! [`StoreError`] through the backend's mapping, and rows are decoded by the closure given
//! with the statement. A SQLite transaction is a [`Tx`] taken from a call, with the same
//! methods; BEGIN, COMMIT and ROLLBACK count as round trips too. So a backend file holds
//! only its SQL, its bindings and what it decides from the rows.

use crate::roundtrips::{self, Timed};
use crate::{Result, StoreError};
use sqlx::pool::PoolConnection;
use sqlx::{Database, Executor, IntoArguments, Pool};
use std::marker::PhantomData;

/// A statement with its bindings, as `sqlx::query(SQL).bind(…)` builds it.
pub(crate) type Query<'q, DB> = sqlx::query::Query<'q, DB, <DB as Database>::Arguments>;

/// What differs between the backends in running a statement: how driver errors read, and
/// where a result says how many rows changed (`Database` does not name it).
pub(crate) trait Dialect: Database {
    fn store_error(err: sqlx::Error) -> StoreError;
    fn rows_affected(done: &Self::QueryResult) -> u64;
}

impl Dialect for sqlx::Postgres {
    fn store_error(err: sqlx::Error) -> StoreError {
        crate::error::from_pg(err)
    }
    fn rows_affected(done: &Self::QueryResult) -> u64 {
        done.rows_affected()
    }
}

impl Dialect for sqlx::Sqlite {
    fn store_error(err: sqlx::Error) -> StoreError {
        crate::error::from_sqlite(err)
    }
    fn rows_affected(done: &Self::QueryResult) -> u64 {
        done.rows_affected()
    }
}

/// Where a [`Call`]'s statements get their connection: sqlx's pool (SQLite's readers) or the
/// PostgreSQL store's own ([`crate::pgconns`], which is told how each statement ended).
pub(crate) trait Lender<DB: Database>: Sync {
    type Lease: Send;
    fn lend(&self) -> impl Future<Output = std::result::Result<Self::Lease, sqlx::Error>> + Send;
    /// The connection, for one statement.
    fn conn(lease: &mut Self::Lease) -> &mut DB::Connection;
    /// How that statement ended.
    fn finished<T>(lease: &mut Self::Lease, result: &std::result::Result<T, sqlx::Error>);
}

impl<DB: Database> Lender<DB> for Pool<DB> {
    type Lease = PoolConnection<DB>;
    fn lend(&self) -> impl Future<Output = std::result::Result<Self::Lease, sqlx::Error>> + Send {
        self.acquire()
    }
    fn conn(lease: &mut Self::Lease) -> &mut DB::Connection {
        lease
    }
    fn finished<T>(_: &mut Self::Lease, _: &std::result::Result<T, sqlx::Error>) {
        // sqlx's pool checks the connection itself as it goes back.
    }
}

impl Lender<sqlx::Postgres> for crate::pgconns::PgConns {
    type Lease = crate::pgconns::Lease;
    fn lend(&self) -> impl Future<Output = std::result::Result<Self::Lease, sqlx::Error>> + Send {
        self.acquire()
    }
    fn conn(lease: &mut Self::Lease) -> &mut sqlx::PgConnection {
        lease.start()
    }
    fn finished<T>(lease: &mut Self::Lease, result: &std::result::Result<T, sqlx::Error>) {
        lease.finished(result);
    }
}

/// One trait method's use of its connections (see the module docs).
pub(crate) struct Call<'p, DB: Database, L: Lender<DB> = Pool<DB>> {
    lender: &'p L,
    _timed: Timed,
    _db: PhantomData<DB>,
}

/// A write transaction's connection, lent to one write job (SQLite's writer, see
/// [`crate::writer`]): the same methods as a [`Call`]; whether its writes stand is decided by
/// the job's result, not here.
pub(crate) struct Tx<'c, DB: Database> {
    conn: &'c mut DB::Connection,
}

impl<'p, DB, L> Call<'p, DB, L>
where
    DB: Dialect,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    L: Lender<DB>,
{
    pub(crate) fn new(lender: &'p L, name: &'static str) -> Self {
        Call {
            lender,
            _timed: roundtrips::timer(name),
            _db: PhantomData,
        }
    }

    /// Exactly one row.
    pub(crate) async fn one<T>(
        &self,
        q: Query<'_, DB>,
        decode: impl FnOnce(&DB::Row) -> Result<T>,
    ) -> Result<T> {
        let row = self
            .on_lease(async |c| q.fetch_one(c).await)
            .await
            .map_err(DB::store_error)?;
        decode(&row)
    }

    /// At most one row.
    pub(crate) async fn opt<T>(
        &self,
        q: Query<'_, DB>,
        decode: impl FnOnce(&DB::Row) -> Result<T>,
    ) -> Result<Option<T>> {
        let row = self.try_opt(q).await.map_err(DB::store_error)?;
        row.as_ref().map(decode).transpose()
    }

    /// Every row.
    pub(crate) async fn all<T>(
        &self,
        q: Query<'_, DB>,
        decode: impl FnMut(&DB::Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        let rows = self
            .on_lease(async |c| q.fetch_all(c).await)
            .await
            .map_err(DB::store_error)?;
        rows.iter().map(decode).collect()
    }

    /// A statement without rows: how many rows it changed.
    pub(crate) async fn exec(&self, q: Query<'_, DB>) -> Result<u64> {
        let done = self
            .on_lease(async |c| q.execute(c).await)
            .await
            .map_err(DB::store_error)?;
        Ok(DB::rows_affected(&done))
    }

    /// At most one row, with the driver's error as it is: for statements that are re-run
    /// after some errors (PostgreSQL's races) and so must look at the SQLSTATE first.
    pub(crate) async fn try_opt(
        &self,
        q: Query<'_, DB>,
    ) -> std::result::Result<Option<DB::Row>, sqlx::Error> {
        self.on_lease(async |c| q.fetch_optional(c).await).await
    }

    /// One statement (one round trip) on a lent connection, the lender told how it ended; the
    /// connection goes back before the rows are decoded.
    async fn on_lease<R>(
        &self,
        statement: impl AsyncFnOnce(&mut DB::Connection) -> std::result::Result<R, sqlx::Error>,
    ) -> std::result::Result<R, sqlx::Error> {
        roundtrips::add(1);
        let mut lease = self.lender.lend().await?;
        let out = statement(L::conn(&mut lease)).await;
        L::finished(&mut lease, &out);
        out
    }
}

impl<'c, DB> Tx<'c, DB>
where
    DB: Dialect,
    DB::Arguments: IntoArguments<DB>,
    for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
{
    pub(crate) fn new(conn: &'c mut DB::Connection) -> Self {
        Tx { conn }
    }

    pub(crate) async fn one<T>(
        &mut self,
        q: Query<'_, DB>,
        decode: impl FnOnce(&DB::Row) -> Result<T>,
    ) -> Result<T> {
        roundtrips::add(1);
        let row = q
            .fetch_one(&mut *self.conn)
            .await
            .map_err(DB::store_error)?;
        decode(&row)
    }

    pub(crate) async fn opt<T>(
        &mut self,
        q: Query<'_, DB>,
        decode: impl FnOnce(&DB::Row) -> Result<T>,
    ) -> Result<Option<T>> {
        roundtrips::add(1);
        let row = q
            .fetch_optional(&mut *self.conn)
            .await
            .map_err(DB::store_error)?;
        row.as_ref().map(decode).transpose()
    }

    pub(crate) async fn all<T>(
        &mut self,
        q: Query<'_, DB>,
        decode: impl FnMut(&DB::Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        roundtrips::add(1);
        let rows = q
            .fetch_all(&mut *self.conn)
            .await
            .map_err(DB::store_error)?;
        rows.iter().map(decode).collect()
    }

    pub(crate) async fn exec(&mut self, q: Query<'_, DB>) -> Result<u64> {
        roundtrips::add(1);
        let done = q.execute(&mut *self.conn).await.map_err(DB::store_error)?;
        Ok(DB::rows_affected(&done))
    }
}
