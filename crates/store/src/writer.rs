//! SQLite's writes, group-committed: one task owns the write connection and runs the write jobs
//! queued on it back to back inside one transaction, committing once per batch.
//!
//! Why: with `synchronous = FULL` every COMMIT waits for an fsync, and SQLite has one writer at
//! a time, so writers that each commit on their own queue behind each other's fsyncs (a
//! purchase is three write transactions). Here a batch starts with `BEGIN IMMEDIATE` for the
//! first job; jobs that queued meanwhile join it, each inside its own `SAVEPOINT`, and the batch
//! ends with one COMMIT when the queue is empty (or [`MAX_BATCH`] jobs ran).
//!
//! What the callers see is unchanged:
//! * a job's writes are all or nothing: a job that fails (returns an error, or panics) is
//!   rolled back alone — to its savepoint, or the whole transaction when it opened the batch —
//!   and the batch's other jobs are unaffected;
//! * nothing is acknowledged before it is durable: a job that joined a batch is answered after
//!   the batch's COMMIT returned (fsync included) — a failed one too, as what it found may be
//!   the writes of the jobs before it; if the COMMIT (or a savepoint) fails, the batch is
//!   rolled back and every job in it is answered with that error; if the writer stops
//!   mid-batch (process killed, runtime dropped), its jobs get no answer but an error and the
//!   open transaction is never committed;
//! * a job sees the writes of the jobs before it in its batch (same transaction), exactly as if
//!   they had committed just before it, so a job's reads under the write lock stay race-free;
//! * a caller that goes away (a dropped request) does not cancel its job once queued: the job
//!   runs and commits as if its answer had been lost on the way back.
//!
//! Statements are counted in the caller's [`roundtrips`] counter: the job's own, its SAVEPOINT
//! (and ROLLBACK TO) when it joined a batch, BEGIN and COMMIT to the job that opened the batch.
//! So a job alone costs what its own transaction did before, and a job that joins one
//! statement less.

use crate::call::Tx;
use crate::error::from_sqlite;
use crate::roundtrips::{self, Counter};
use crate::{Result, StoreError};
use futures::FutureExt;
use sqlx::pool::PoolConnection;
use sqlx::{Executor, Sqlite, SqliteConnection, SqlitePool};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use tokio::sync::{mpsc, oneshot};

/// The most jobs one COMMIT covers: bounds how long the batch's first job waits for its answer
/// while others keep arriving.
pub(crate) const MAX_BATCH: usize = 64;

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A queued write, its result type erased.
trait Work: Send {
    /// Run the statements on the write connection; true when its writes stand.
    fn run<'t>(&'t mut self, tx: Tx<'t, Sqlite>) -> BoxFuture<'t, bool>;
    /// Answer the caller once the batch's fate is known (`Ok` = committed).
    fn answer(self: Box<Self>, batch: Result<()>);
}

struct Typed<T, F> {
    work: Option<F>,
    out: Option<Result<T>>,
    send: oneshot::Sender<Result<T>>,
}

impl<T, F> Work for Typed<T, F>
where
    T: Send + 'static,
    F: for<'t> FnOnce(Tx<'t, Sqlite>) -> BoxFuture<'t, Result<T>> + Send + 'static,
{
    fn run<'t>(&'t mut self, tx: Tx<'t, Sqlite>) -> BoxFuture<'t, bool> {
        Box::pin(async move {
            let Some(work) = self.work.take() else {
                return false;
            };
            let out = work(tx).await;
            let keep = out.is_ok();
            self.out = Some(out);
            keep
        })
    }

    fn answer(self: Box<Self>, batch: Result<()>) {
        let answer = match (batch, self.out) {
            // Whatever the job found, it found in a transaction that did not commit.
            (Err(e), _) => Err(e),
            (Ok(()), Some(out)) => out,
            (Ok(()), None) => Err(StoreError::Other(
                "a SQLite write panicked and was rolled back".to_owned(),
            )),
        };
        let _ = self.send.send(answer);
    }
}

/// Whether a job's statements stand or fall together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Atomic {
    /// All or nothing: a failed job is rolled back (the usual write).
    Job,
    /// Each statement on its own, as in autocommit mode: for a job of one statement (which
    /// SQLite makes atomic by itself) or of statements that need not stand together. Such a
    /// job needs no savepoint, and when it finds the queue empty no BEGIN or COMMIT either.
    Statement,
}

struct Job {
    atomic: Atomic,
    /// The caller's round-trip counter (the job runs on the writer's task).
    counter: Option<Counter>,
    work: Box<dyn Work>,
}

impl Job {
    /// Run the job, counting into its caller's counter; a panic is a failed job.
    async fn run(&mut self, conn: &mut SqliteConnection) -> bool {
        let run = AssertUnwindSafe(self.work.run(Tx::new(conn))).catch_unwind();
        let done = match &self.counter {
            Some(c) => c.scope(run).await,
            None => run.await,
        };
        done.unwrap_or(false)
    }

    fn answer(self, batch: Result<()>) {
        self.work.answer(batch);
    }
}

/// The handle the store writes through; cloning it shares the one writer task.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    jobs: mpsc::UnboundedSender<Job>,
}

impl Writer {
    /// Start the writer task on `pool` (one connection for a database file; the task holds it
    /// for a batch at a time). Must be called inside a Tokio runtime. The task ends when the
    /// last clone of the handle is dropped.
    pub(crate) fn spawn(pool: SqlitePool) -> Writer {
        let (jobs, queue) = mpsc::unbounded_channel();
        tokio::spawn(serve(pool, queue));
        Writer { jobs }
    }

    /// Run `work` on the write connection and answer after its writes are durable (see the
    /// module docs). With [`Atomic::Job`] an `Err` from `work` rolls its writes back.
    pub(crate) async fn write<T, F>(&self, atomic: Atomic, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'t> FnOnce(Tx<'t, Sqlite>) -> BoxFuture<'t, Result<T>> + Send + 'static,
    {
        let (send, answer) = oneshot::channel();
        let job = Job {
            atomic,
            counter: roundtrips::current(),
            work: Box::new(Typed {
                work: Some(work),
                out: None,
                send,
            }),
        };
        self.jobs.send(job).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the SQLite writer stopped before answering".to_owned())
}

async fn serve(pool: SqlitePool, mut queue: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = queue.recv().await {
        let mut conn = match pool.acquire().await {
            Ok(conn) => conn,
            Err(e) => {
                first.answer(Err(from_sqlite(e)));
                continue;
            }
        };
        if !batch(&mut conn, first, &mut queue).await {
            // The transaction may still be open (a failed ROLLBACK): never reuse the connection.
            conn.close_on_drop();
        }
    }
}

/// One statement of the batch's own (BEGIN, SAVEPOINT, …), counted to `counter`.
async fn control(
    conn: &mut SqliteConnection,
    counter: &Option<Counter>,
    sql: &'static str,
) -> Result<()> {
    let run = async {
        roundtrips::add(1);
        conn.execute(sql).await.map(|_| ()).map_err(from_sqlite)
    };
    match counter {
        Some(c) => c.scope(run).await,
        None => run.await,
    }
}

/// Run `first` and whatever queues behind it as one transaction. Returns false when the
/// connection is left in an unknown state.
async fn batch(
    conn: &mut PoolConnection<Sqlite>,
    mut first: Job,
    queue: &mut mpsc::UnboundedReceiver<Job>,
) -> bool {
    if first.atomic == Atomic::Statement && queue.is_empty() {
        // Alone: autocommit, exactly as without a writer task.
        first.run(conn).await;
        first.answer(Ok(()));
        return true;
    }
    let opener = first.counter.clone();
    if let Err(e) = control(conn, &opener, "BEGIN IMMEDIATE").await {
        first.answer(Err(e));
        return true;
    }
    // The first job runs in the transaction itself: if it fails, rolling the transaction back
    // undoes exactly its writes.
    if !first.run(conn).await && first.atomic == Atomic::Job {
        let clean = rollback(conn, &opener).await;
        first.answer(Ok(()));
        return clean.is_ok();
    }
    let mut waiting = vec![first];
    while waiting.len() < MAX_BATCH {
        let Ok(mut job) = queue.try_recv() else { break };
        if job.atomic == Atomic::Statement {
            // Its statements that succeeded stand, like autocommit's; they wait for the COMMIT.
            job.run(conn).await;
            waiting.push(job);
            continue;
        }
        // A job that failed waits for the COMMIT too: its answer may rest on the writes of the
        // jobs before it (an order they claimed, say), which are not durable yet.
        let joined = join(conn, &mut job).await;
        waiting.push(job);
        if let Err(e) = joined {
            return abandon(conn, &opener, waiting, e).await;
        }
    }
    match control(conn, &opener, "COMMIT").await {
        Ok(()) => {
            for job in waiting {
                job.answer(Ok(()));
            }
            true
        }
        Err(e) => abandon(conn, &opener, waiting, e).await,
    }
}

/// Run a job that joins the open batch, inside its own savepoint; a job that fails is rolled
/// back to it. `Err`: a savepoint statement failed and the batch cannot be trusted.
///
/// Savepoints are never released: each job's nests in the one before, `ROLLBACK TO job` undoes
/// the innermost (this job's) writes only, and the COMMIT commits them all. That saves a
/// statement per job (and the job's hop to the connection's thread) over SAVEPOINT…RELEASE.
async fn join(conn: &mut SqliteConnection, job: &mut Job) -> Result<()> {
    let counter = job.counter.clone();
    control(conn, &counter, "SAVEPOINT job").await?;
    if job.run(conn).await {
        return Ok(());
    }
    control(conn, &counter, "ROLLBACK TO job").await
}

async fn rollback(conn: &mut SqliteConnection, counter: &Option<Counter>) -> Result<()> {
    control(conn, counter, "ROLLBACK").await
}

/// The batch failed: nothing in it is committed, and every job in it is answered with the
/// error. Returns false: the connection is not trusted again (SQLite may
/// have rolled back on its own, e.g. on SQLITE_FULL, and then ROLLBACK fails harmlessly).
async fn abandon(
    conn: &mut SqliteConnection,
    counter: &Option<Counter>,
    waiting: Vec<Job>,
    err: StoreError,
) -> bool {
    let _ = rollback(conn, counter).await;
    tracing::warn!(
        target: "coursepay::db",
        error = %err,
        jobs = waiting.len(),
        "SQLite write batch rolled back"
    );
    for job in waiting {
        job.answer(Err(err.clone()));
    }
    false
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use futures::FutureExt;
    use sqlx::sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
    };
    use std::path::Path;
    use std::time::Duration;

    fn insert(v: &'static str) -> crate::call::Query<'static, Sqlite> {
        sqlx::query("INSERT INTO t (v) VALUES ($1)").bind(v)
    }

    async fn open(path: &Path, connections: u32) -> SqlitePool {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full);
        SqlitePoolOptions::new()
            .max_connections(connections)
            .connect_with(options)
            .await
            .unwrap()
    }

    /// A writer on a fresh file with table `t`, and a reader pool on the same file.
    async fn setup() -> (tempfile::TempDir, Writer, SqlitePool) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("writer.sqlite3");
        let writes = open(&path, 1).await;
        sqlx::query("CREATE TABLE t (v TEXT PRIMARY KEY)")
            .execute(&writes)
            .await
            .unwrap();
        let reads = open(&path, 2).await;
        (dir, Writer::spawn(writes), reads)
    }

    async fn rows(reads: &SqlitePool) -> Vec<String> {
        sqlx::query_scalar("SELECT v FROM t ORDER BY v")
            .fetch_all(reads)
            .await
            .unwrap()
    }

    /// The statements a write sent, as its caller's counter saw them.
    async fn counted<F: Future>(f: F) -> (u32, F::Output) {
        let counter = Counter::new();
        let out = counter.scope(f).await;
        (counter.get(), out)
    }

    #[tokio::test]
    async fn a_failing_job_in_a_batch_is_rolled_back_alone() {
        let (_dir, w, reads) = setup().await;
        let (started, is_started) = oneshot::channel();
        let (open_gate, gate) = oneshot::channel::<()>();
        // `a` opens the batch and holds it until b, c and d are queued behind it.
        let a = w.write(Atomic::Job, move |mut tx| {
            Box::pin(async move {
                tx.exec(insert("a")).await?;
                started.send(()).unwrap();
                gate.await.unwrap();
                Ok(())
            })
        });
        let rest = async {
            is_started.await.unwrap();
            futures::join!(
                counted(w.write(Atomic::Job, |mut tx| {
                    Box::pin(async move {
                        tx.exec(insert("b")).await?;
                        Err::<(), _>(StoreError::Other("b changes its mind".to_owned()))
                    })
                })),
                counted(w.write(Atomic::Job, |mut tx| {
                    Box::pin(async move { tx.exec(insert("c")).await })
                })),
                // A statement that fails: the key `a` is taken (by the batch's own first job).
                counted(w.write(Atomic::Job, |mut tx| {
                    Box::pin(async move {
                        tx.exec(insert("d")).await?;
                        tx.exec(insert("a")).await
                    })
                })),
                async { open_gate.send(()).unwrap() },
            )
        };
        let ((a_n, a), ((b_n, b), (c_n, c), (d_n, d), ())) = futures::join!(counted(a), rest);
        a.unwrap();
        assert!(matches!(b, Err(StoreError::Other(_))), "{b:?}");
        assert_eq!(c.unwrap(), 1);
        assert!(matches!(d, Err(StoreError::Constraint(_))), "{d:?}");
        assert_eq!(rows(&reads).await, ["a", "c"]);
        // One transaction: BEGIN and COMMIT are the opener's; the others joined it, each in a
        // savepoint (b and d rolled back to theirs).
        assert_eq!((a_n, b_n, c_n, d_n), (3, 3, 2, 4));
    }

    #[tokio::test]
    async fn a_failing_opener_is_rolled_back_and_the_queue_goes_on() {
        let (_dir, w, reads) = setup().await;
        let (started, is_started) = oneshot::channel();
        let (open_gate, gate) = oneshot::channel::<()>();
        let a = w.write(Atomic::Job, move |mut tx| {
            Box::pin(async move {
                tx.exec(insert("a")).await?;
                started.send(()).unwrap();
                gate.await.unwrap();
                Err::<u64, _>(StoreError::NotFound)
            })
        });
        let rest = async {
            is_started.await.unwrap();
            futures::join!(
                counted(w.write(Atomic::Job, |mut tx| {
                    Box::pin(async move { tx.exec(insert("b")).await })
                })),
                async { open_gate.send(()).unwrap() },
            )
        };
        let (a, ((b_n, b), ())) = futures::join!(a, rest);
        assert!(matches!(a, Err(StoreError::NotFound)), "{a:?}");
        b.unwrap();
        assert_eq!(rows(&reads).await, ["b"]);
        // b found no batch open and opened its own.
        assert_eq!(b_n, 3);
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_error_and_rolled_back() {
        let (_dir, w, reads) = setup().await;
        let out = w
            .write(Atomic::Job, |mut tx| {
                Box::pin(async move {
                    tx.exec(insert("p")).await?;
                    if tx.exec(insert("q")).await? == 1 {
                        panic!("a bug in a write job");
                    }
                    Ok(())
                })
            })
            .await;
        assert!(matches!(out, Err(StoreError::Other(_))), "{out:?}");
        w.write(Atomic::Job, |mut tx| {
            Box::pin(async move { tx.exec(insert("r")).await })
        })
        .await
        .unwrap();
        assert_eq!(rows(&reads).await, ["r"]);
    }

    /// The process dies while a batch is open: nobody was told "done", and nothing of the
    /// batch is in the database.
    #[test]
    fn a_batch_cut_off_before_its_commit_acknowledges_and_keeps_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("writer.sqlite3");
        let doomed = tokio::runtime::Runtime::new().unwrap();
        doomed.block_on(async {
            let writes = open(&path, 1).await;
            sqlx::query("CREATE TABLE t (v TEXT PRIMARY KEY)")
                .execute(&writes)
                .await
                .unwrap();
            let w = Writer::spawn(writes);
            let (started, is_started) = oneshot::channel();
            let (open_gate, gate) = oneshot::channel::<()>();
            let (acked, answered) = oneshot::channel();
            let first = w.clone();
            tokio::spawn(async move {
                let out = first
                    .write(Atomic::Job, move |mut tx| {
                        Box::pin(async move {
                            tx.exec(insert("a")).await?;
                            started.send(()).unwrap();
                            gate.await.unwrap();
                            Ok(())
                        })
                    })
                    .await;
                let _ = acked.send(out);
            });
            is_started.await.unwrap();
            // c joins the batch and fails: its answer waits for the COMMIT as well, since a
            // failure can rest on writes before it that are not durable yet.
            let mut failing = Box::pin(w.write(Atomic::Job, |mut tx| {
                Box::pin(async move {
                    tx.exec(insert("c")).await?;
                    Err::<(), _>(StoreError::NotFound)
                })
            }));
            assert!((&mut failing).now_or_never().is_none());
            // b joins the batch and never ends, so the batch never commits. Polling its write
            // once queues it (its caller may go away; the job stays queued).
            let hung = w.write(Atomic::Job, |mut tx| {
                Box::pin(async move {
                    tx.exec(insert("b")).await?;
                    std::future::pending::<()>().await;
                    Ok(())
                })
            });
            assert!(hung.now_or_never().is_none());
            open_gate.send(()).unwrap();
            let waited = tokio::time::timeout(Duration::from_millis(300), answered).await;
            assert!(waited.is_err(), "a was answered before its batch committed");
            let waited = tokio::time::timeout(Duration::from_millis(10), failing).await;
            assert!(waited.is_err(), "c was answered before its batch committed");
        });
        drop(doomed);

        let after = tokio::runtime::Runtime::new().unwrap();
        after.block_on(async {
            let reads = open(&path, 1).await;
            assert!(rows(&reads).await.is_empty());
        });
    }
}
