//! Writing to the database. [`write_transaction`] runs a closure in a transaction that takes
//! SQLite's write lock up front (`BEGIN IMMEDIATE`), after waiting its turn in [`Writer`], the
//! queue that lines up this process's SQLite writers behind a mutex so they do not sleep in
//! SQLite's busy handler. Every connection of a pool carries that pool's queue, so every write
//! transaction waits in it, whichever path called it.
//!
//! Use [`write_transaction`] for any write transaction, and [`Writer::hold`] (through
//! `Database::writer`) around a write that is a single statement, outside a transaction. On
//! PostgreSQL there is no queue and a write transaction is an ordinary transaction.
//!
//! # Group commit
//!
//! [`Writer::defer`] is for the token endpoint's busiest write, one row per request. On SQLite it
//! does not write: it wraps the value to answer with (the token) in an [`Uncommitted`], which
//! gives the value up only once [`Uncommitted::commit`] has seen its row committed, so a 200 is
//! never answered for a row a crash can lose. `commit` is async: the request waits for its row
//! without holding a thread. The first write to arrive while nobody leads starts a leader on the
//! blocking pool, which takes everything waiting and writes it in one `BEGIN IMMEDIATE …
//! COMMIT`, then the writes that arrived meanwhile, until none wait; so a commit (its WAL frames,
//! its lock hand-offs) is paid once per group instead of once per row, and the threads that
//! sign tokens never sit waiting for a commit. (They did, when the leader was one of them and the
//! others waited on a condition variable: with as many blocking threads as pooled connections,
//! all of them could be waiting for the commit while the CPU that signs the next tokens stood
//! idle, a third of the two cores under ES256 load.) Should the group's transaction fail (one
//! row breaking a constraint, say), it is rolled back and each write runs again alone, so one
//! request's error is never another's. A lone write runs as it always did: one statement, no
//! transaction. On PostgreSQL `defer` writes at once, on the caller's connection.

use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use tokio::sync::oneshot;

use super::client_cache::forget_if_written;
use super::instrument::ConnectionMonitor;
use super::{AnyConnection, Pool, PooledConnection};
use crate::config::DatabaseUrl;

/// The longest a writer waits in this process's SQLite queue ([`Writer`]): `busy_timeout`.
const WRITER_QUEUE_TIMEOUT: Duration = Duration::from_secs(3);

/// Queues this process's writes to a SQLite database behind a mutex.
///
/// SQLite lets one connection write at a time; the others wait in its busy handler, which sleeps
/// 1, 2, 5, 10… ms between tries, holding their pooled connection all the while. Under load that
/// sleeping was the token endpoint's tail latency. A mutex wakes the next writer the moment the
/// lock is free. Other processes on the same file still meet `busy_timeout`. On PostgreSQL,
/// which has row locks, it does nothing.
///
/// A writer waits in the queue no longer than `busy_timeout` would have let it wait for SQLite,
/// then gets SQLite's own "database is locked" (a 503 with `Retry-After`), so a lock held from
/// outside the process cannot stack up waits behind it.
#[derive(Clone, Debug, Default)]
pub struct Writer(Option<Arc<Queue>>);

#[derive(Debug, Default)]
struct Queue {
    /// Held by whoever writes: one writer at a time.
    turn: parking_lot::Mutex<()>,
    /// Grouped writes waiting for the next group, and whether a leader is at work.
    group: parking_lot::Mutex<Group>,
}

#[derive(Default)]
struct Group {
    waiting: Vec<Job>,
    leading: bool,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("waiting", &self.waiting.len())
            .field("leading", &self.leading)
            .finish()
    }
}

/// A write that may share a transaction with other requests' writes ([`Writer::defer`]).
/// It may run twice (alone again after a failed group was rolled back), so it must do nothing
/// but write through the connection it is given.
pub type GroupedWrite = Box<dyn Fn(&mut AnyConnection) -> QueryResult<()> + Send + Sync>;

/// A grouped write and where its result goes. A job dropped unanswered (its leader panicked)
/// reads as "locked" at the other end.
struct Job {
    write: GroupedWrite,
    done: oneshot::Sender<QueryResult<()>>,
}

/// A value that may be handed out only once its row is committed: what [`Writer::defer`]
/// returns. The value is private; [`Self::commit`] is the only way to it.
#[must_use = "the value is handed out by `commit`, once its row is committed"]
pub struct Uncommitted<T> {
    value: T,
    write: Option<GroupedWrite>,
}

impl<T> Uncommitted<T> {
    /// A value whose rows are already committed (or that has none).
    pub fn committed(value: T) -> Self {
        Self { value, write: None }
    }

    /// Waits, without holding a thread, until the value's row is committed in a group, and
    /// gives the value; or the write's error, the value dropped.
    pub async fn commit(self, writer: &Writer, pool: &Pool) -> QueryResult<T> {
        if let Some(write) = self.write {
            writer.grouped(pool, write).await?;
        }
        Ok(self.value)
    }
}

/// SQLite's "locked", as a writer that waited too long for its turn gets it.
fn locked() -> diesel::result::Error {
    diesel::result::Error::DatabaseError(
        diesel::result::DatabaseErrorKind::Unknown,
        Box::new("database is locked (waited for this process's other writers)".to_owned()),
    )
}

impl Writer {
    pub fn for_backend(url: &DatabaseUrl) -> Self {
        Self(url.is_sqlite().then(Default::default))
    }

    /// Runs `f`, which writes (one statement, or a transaction of its own), when its turn comes.
    pub fn hold<T, E>(&self, f: impl FnOnce() -> Result<T, E>) -> Result<T, E>
    where
        E: From<diesel::result::Error>,
    {
        let Some(queue) = &self.0 else {
            return f();
        };
        let Some(_turn) = queue.turn.try_lock_for(WRITER_QUEUE_TIMEOUT) else {
            return Err(E::from(locked()));
        };
        f()
    }

    /// `value`, to be handed out once `write` is committed (see the module doc): on SQLite the
    /// write waits for [`Uncommitted::commit`] and its group; on PostgreSQL, which has no
    /// writer queue, it runs at once on `conn` (outside any transaction of the caller's).
    pub fn defer<T>(
        &self,
        conn: &mut AnyConnection,
        write: GroupedWrite,
        value: T,
    ) -> QueryResult<Uncommitted<T>> {
        if self.0.is_none() {
            write(conn)?;
            return Ok(Uncommitted::committed(value));
        }
        Ok(Uncommitted {
            value,
            write: Some(write),
        })
    }

    /// Writes `write` in the next group commit, and returns once it is committed (or failed).
    async fn grouped(&self, pool: &Pool, write: GroupedWrite) -> QueryResult<()> {
        let Some(queue) = &self.0 else {
            // No queue (PostgreSQL): `defer` wrote at once and nothing comes here; a write that
            // did would simply run on a connection of its own.
            let pool = pool.clone();
            return actix_web::rt::task::spawn_blocking(move || {
                write(&mut *pool.get().map_err(|_| locked())?)
            })
            .await
            .unwrap_or_else(|_| Err(locked()));
        };
        let (done, result) = oneshot::channel();
        let lead = {
            let mut group = queue.group.lock();
            group.waiting.push(Job { write, done });
            crate::metrics::add(crate::metrics::WRITER_WAITING, 1.0);
            !std::mem::replace(&mut group.leading, true)
        };
        if lead {
            let (queue, pool) = (queue.clone(), pool.clone());
            // Detached: the leader answers every job it takes, this one included.
            drop(actix_web::rt::task::spawn_blocking(move || {
                lead_groups(&queue, &pool)
            }));
        }
        result.await.unwrap_or_else(|_| Err(locked()))
    }
}

/// The leader's loop: writes everything waiting as one group, then what arrived meanwhile,
/// on one pooled connection, until nothing waits; then gives up the lead.
fn lead_groups(queue: &Queue, pool: &Pool) {
    let _abandon = Abandon(queue);
    let mut conn: Option<PooledConnection> = None;
    loop {
        let batch = {
            let mut group = queue.group.lock();
            if group.waiting.is_empty() {
                group.leading = false;
                return;
            }
            std::mem::take(&mut group.waiting)
        };
        let size = batch.len() as f64;
        crate::metrics::add(crate::metrics::WRITER_WAITING, -size);
        crate::metrics::record(crate::metrics::WRITER_BATCH, size);
        let (writes, answers): (Vec<GroupedWrite>, Vec<_>) =
            batch.into_iter().map(|job| (job.write, job.done)).unzip();
        let results = write_batch(queue, pool, &mut conn, &writes);
        for (answer, result) in answers.into_iter().zip(results) {
            // The request may have gone (its client hung up): nobody to tell.
            let _ = answer.send(result);
        }
    }
}

/// One group on the leader's connection (checked out on first use, and again after a panic):
/// every write's own result, or "locked" for all when the connection or the turn cannot be had
/// in time, or a write panicked.
fn write_batch(
    queue: &Queue,
    pool: &Pool,
    conn: &mut Option<PooledConnection>,
    writes: &[GroupedWrite],
) -> Vec<QueryResult<()>> {
    let all_locked = || writes.iter().map(|_| Err(locked())).collect();
    let connection = match conn {
        Some(connection) => connection,
        None => match pool.get() {
            Ok(connection) => conn.insert(connection),
            Err(e) => {
                tracing::warn!(error = %e, "the group commit found no connection");
                return all_locked();
            }
        },
    };
    let Some(_turn) = queue.turn.try_lock_for(WRITER_QUEUE_TIMEOUT) else {
        return all_locked();
    };
    let written = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        write_group(connection, writes)
    }));
    forget_if_written(connection);
    match written {
        Ok(results) => results,
        Err(_) => {
            // The connection may be inside the group's transaction: end it, and leave it out.
            use diesel::connection::SimpleConnection as _;
            let _ = connection.batch_execute("ROLLBACK");
            *conn = None;
            tracing::error!(rows = writes.len(), "a grouped write panicked");
            all_locked()
        }
    }
}

/// Gives up a leader's lead if it panics outside a write: the writes waiting then read
/// "locked" at once, rather than wait for a leader that will never come back.
struct Abandon<'a>(&'a Queue);

impl Drop for Abandon<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut group = self.0.group.lock();
            group.waiting.clear();
            group.leading = false;
        }
    }
}

/// Writes `batch` in one transaction (a lone write in none), and returns each write's result.
/// If the group fails, it is rolled back and each write runs alone, with its own result.
fn write_group(conn: &mut AnyConnection, batch: &[GroupedWrite]) -> Vec<QueryResult<()>> {
    if let [write] = batch {
        return vec![write(conn)];
    }
    let together =
        immediate_transaction(conn, |conn| batch.iter().try_for_each(|write| write(conn)));
    match together {
        Ok(()) => batch.iter().map(|_| Ok(())).collect(),
        // Locked by another process (after `busy_timeout`): each alone would wait as long again.
        Err(e) if super::is_transient(&e) => {
            tracing::debug!(error = %e, rows = batch.len(), "a group commit could not begin");
            batch.iter().map(|_| Err(locked())).collect()
        }
        Err(e) => {
            tracing::debug!(error = %e, rows = batch.len(), "a group commit failed; writing its rows one by one");
            batch.iter().map(|write| write(conn)).collect()
        }
    }
}

/// Runs `f` in a transaction meant to write. On SQLite it waits its turn in the [`Writer`]
/// queue of the pool `conn` came from, then begins `IMMEDIATE`, taking the write
/// lock up front (waiting under `busy_timeout`): a deferred transaction that reads first and
/// writes later fails at once with "database is locked" if another writer committed in between.
/// On PostgreSQL it is an ordinary transaction.
///
/// Do not call it inside [`Writer::hold`]: the queue is not re-entrant (SQLite refuses a
/// transaction inside a transaction anyway).
pub fn write_transaction<T, E, F>(conn: &mut AnyConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut AnyConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    let AnyConnection::Sqlite(_) = conn else {
        return conn.transaction(f);
    };
    queue_of(conn).hold(|| immediate_transaction(conn, f))
}

/// The writer queue a connection carries (none for one opened without a
/// [`ConnectionManager`](super::ConnectionManager), which does not happen).
fn queue_of(conn: &mut AnyConnection) -> Writer {
    conn.instrumentation()
        .downcast_ref::<ConnectionMonitor>()
        .map(|monitor| monitor.writer.clone())
        .unwrap_or_default()
}

/// `f` in a SQLite `BEGIN IMMEDIATE` transaction (see [`write_transaction`]).
fn immediate_transaction<T, E, F>(conn: &mut AnyConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut AnyConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    use diesel::connection::{AnsiTransactionManager, TransactionManager};

    let AnyConnection::Sqlite(sqlite) = conn else {
        return conn.transaction(f);
    };
    AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE")?;
    let result = f(conn);
    let AnyConnection::Sqlite(sqlite) = conn else {
        unreachable!("a connection does not change backend");
    };
    match result {
        Ok(value) => {
            <AnsiTransactionManager as TransactionManager<diesel::SqliteConnection>>::commit_transaction(sqlite)?;
            Ok(value)
        }
        Err(e) => {
            <AnsiTransactionManager as TransactionManager<diesel::SqliteConnection>>::rollback_transaction(sqlite)?;
            Err(e)
        }
    }
}

#[cfg(test)]
mod writer_tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::db::is_transient;

    /// Writers take turns, and one that cannot get its turn in time gets SQLite's own "locked"
    /// error (a transient error, answered 503) instead of waiting without end.
    #[test]
    fn writers_take_turns_and_give_up_with_a_transient_error() {
        let writer = Writer(Some(Default::default()));
        let inside = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    writer
                        .hold(|| {
                            let now = inside.fetch_add(1, Ordering::SeqCst);
                            assert_eq!(now, 0, "two writers at once");
                            std::thread::sleep(Duration::from_millis(5));
                            inside.fetch_sub(1, Ordering::SeqCst);
                            Ok::<_, diesel::result::Error>(())
                        })
                        .unwrap();
                });
            }
        });
        let held = writer.0.as_ref().unwrap().turn.lock();
        let started = std::time::Instant::now();
        let waited: Result<(), diesel::result::Error> = writer.hold(|| Ok(()));
        drop(held);
        let error = waited.unwrap_err();
        assert!(is_transient(&error), "{error}");
        assert!(started.elapsed() >= WRITER_QUEUE_TIMEOUT);
        // On PostgreSQL there is no queue.
        assert!(
            Writer::default()
                .hold(|| Ok::<_, diesel::result::Error>(()))
                .is_ok()
        );
    }

    /// Every write transaction on a SQLite connection waits in its pool's queue, not only the
    /// ones that go through `Database::writer`: while the queue is held, one gives up with the
    /// same transient "locked" error, and runs once the queue is free.
    #[test]
    fn write_transactions_wait_in_the_queue_their_connection_carries() {
        let manager = super::super::ConnectionManager::new(DatabaseUrl::Sqlite(":memory:".into()));
        let mut conn = manager.establish().unwrap();
        let held = manager.writer.0.as_ref().unwrap().turn.lock();
        let waited: Result<(), diesel::result::Error> = write_transaction(&mut conn, |_| Ok(()));
        drop(held);
        let error = waited.unwrap_err();
        assert!(is_transient(&error), "{error}");
        assert!(write_transaction(&mut conn, |_| Ok::<_, diesel::result::Error>(())).is_ok());
    }

    /// Writes that arrive while another is being written go in together: the leader writes
    /// them all on its connection, in one transaction, on its own thread (no request's thread
    /// waits meanwhile: with two blocking threads, one leading, a blocking task still runs
    /// while eight writes wait), and one that breaks a constraint fails alone, the others'
    /// rows all committed.
    #[test]
    fn grouped_writes_share_a_commit_and_keep_their_own_errors() {
        use diesel::connection::SimpleConnection as _;
        use std::collections::HashSet;

        let dir = tempfile::tempdir().unwrap();
        let manager =
            super::super::ConnectionManager::new(DatabaseUrl::Sqlite(dir.path().join("g.db")));
        manager
            .establish()
            .unwrap()
            .batch_execute("CREATE TABLE t (n INTEGER PRIMARY KEY NOT NULL)")
            .unwrap();
        let (writer, queue, pool) = pooled(manager);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let writers: Arc<parking_lot::Mutex<HashSet<std::thread::ThreadId>>> = Default::default();
        let submitted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        // 6 twice: one of those two must fail, and only it.
        let values = [0, 1, 2, 3, 4, 5, 6, 6];
        let held = queue.turn.lock();
        let results: Vec<QueryResult<()>> = runtime.block_on(async {
            let tasks: Vec<_> = values
                .iter()
                .map(|&n| {
                    let (writer, pool, writers) = (writer.clone(), pool.clone(), writers.clone());
                    let submitted = submitted.clone();
                    tokio::spawn(async move {
                        let write: GroupedWrite = Box::new(move |conn: &mut AnyConnection| {
                            writers.lock().insert(std::thread::current().id());
                            diesel::sql_query(format!("INSERT INTO t (n) VALUES ({n})"))
                                .execute(conn)
                                .map(|_| ())
                        });
                        // Counted in the same poll that queues the write (no await between).
                        submitted.fetch_add(1, Ordering::SeqCst);
                        writer.grouped(&pool, write).await
                    })
                })
                .collect();
            // The leader took what had queued when it started and waits for the turn; the
            // rest queue behind it.
            while submitted.load(Ordering::SeqCst) < values.len() || !queue.group.lock().leading {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            // Eight writes wait, one blocking thread leads, and the other is free.
            let free = tokio::task::spawn_blocking(|| "free");
            assert_eq!(
                tokio::time::timeout(Duration::from_secs(2), free)
                    .await
                    .expect("a blocking thread is free while the writes wait")
                    .unwrap(),
                "free"
            );
            drop(held);
            let mut results = Vec::new();
            for task in tasks {
                results.push(task.await.unwrap());
            }
            results
        });
        assert_eq!(
            results.iter().filter(|r| r.is_err()).count(),
            1,
            "{results:?}"
        );
        let rows: i64 = {
            use diesel::dsl::sql;
            use diesel::sql_types::BigInt;
            diesel::select(sql::<BigInt>("(SELECT COUNT(*) FROM t)"))
                .get_result(&mut pool.get().unwrap())
                .unwrap()
        };
        assert_eq!(rows, 7);
        assert_eq!(
            writers.lock().len(),
            1,
            "one leader wrote all eight, in two groups"
        );
        assert!(
            gives_up_the_lead(&queue),
            "the lead is given up when nothing waits"
        );
    }

    /// The pool's writer, its queue, and a pool of two connections, for the grouped-write tests.
    fn pooled(
        manager: super::super::ConnectionManager,
    ) -> (Writer, Arc<Queue>, super::super::Pool) {
        let writer = manager.writer.clone();
        let queue = writer.0.clone().unwrap();
        let pool = diesel::r2d2::Pool::builder()
            .max_size(2)
            .build(manager)
            .unwrap();
        (writer, queue, pool)
    }

    /// Whether the leader gives up the lead within a second (it answers its last group first).
    fn gives_up_the_lead(queue: &Queue) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        while queue.group.lock().leading {
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }

    /// A write that panics in its leader's hands fails alone ("locked", a 503) and does not
    /// leave the queue without a leader: the next grouped write goes through at once instead of
    /// waiting out the queue timeout.
    #[test]
    fn a_panicking_write_fails_alone_and_the_next_goes_through() {
        let manager = super::super::ConnectionManager::new(DatabaseUrl::Sqlite(":memory:".into()));
        let (writer, queue, pool) = pooled(manager);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let panicked = writer
                .grouped(&pool, Box::new(|_| panic!("a write that panics")))
                .await;
            assert!(is_transient(&panicked.unwrap_err()));
            let started = std::time::Instant::now();
            assert!(writer.grouped(&pool, Box::new(|_| Ok(()))).await.is_ok());
            assert!(started.elapsed() < WRITER_QUEUE_TIMEOUT / 2);
        });
        assert!(gives_up_the_lead(&queue));
    }
}
