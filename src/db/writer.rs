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
//! [`Writer::grouped`] is for the token endpoint's busiest write, one row per request: on
//! SQLite, writes that arrive while another group is being written wait, and the next group's
//! leader (the first of them) writes them all in one `BEGIN IMMEDIATE … COMMIT`, so a commit
//! (its WAL frames, its lock hand-offs) is paid once per group instead of once per row. Each
//! caller returns only after the transaction holding its row has committed, so a 200 is never
//! answered for a row a crash can lose. Should the group's transaction fail (one row breaking a
//! constraint, say), it is rolled back and each write runs again alone, so one request's error
//! is never another's. A lone write runs as it always did: one statement, no transaction.

use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::prelude::*;

use super::AnyConnection;
use super::instrument::ConnectionMonitor;
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
    waiting: Vec<Arc<Job>>,
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

/// A write that may share a transaction with other requests' writes ([`Writer::grouped`]).
/// It may run twice (alone again after a failed group was rolled back), so it must do nothing
/// but write through the connection it is given.
pub type GroupedWrite = Box<dyn Fn(&mut AnyConnection) -> QueryResult<()> + Send + Sync>;

struct Job {
    write: GroupedWrite,
    state: parking_lot::Mutex<JobState>,
    changed: parking_lot::Condvar,
}

enum JobState {
    Waiting,
    /// This job's caller writes the next group.
    Lead,
    Done(QueryResult<()>),
}

impl Job {
    fn set(&self, state: JobState) {
        *self.state.lock() = state;
        self.changed.notify_one();
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

    /// Runs `write` (outside any transaction of the caller's) in a group commit with other
    /// requests' grouped writes (see the module doc), and returns once its row is committed.
    /// On PostgreSQL, which has no writer queue, it runs at once on `conn`.
    pub fn grouped(&self, conn: &mut AnyConnection, write: GroupedWrite) -> QueryResult<()> {
        let Some(queue) = &self.0 else {
            return write(conn);
        };
        let job = Arc::new(Job {
            write,
            state: parking_lot::Mutex::new(JobState::Waiting),
            changed: parking_lot::Condvar::new(),
        });
        let lead = {
            let mut group = queue.group.lock();
            group.waiting.push(job.clone());
            !std::mem::replace(&mut group.leading, true)
        };
        if !lead && !wait_for_turn(queue, &job)? {
            return take_result(&job);
        }
        // This caller leads: it writes everything waiting (its own write included), then hands
        // the lead to the first write that arrived meanwhile.
        let batch = std::mem::take(&mut queue.group.lock().waiting);
        let handoff = Handoff {
            queue,
            batch: &batch,
        };
        match queue.turn.try_lock_for(WRITER_QUEUE_TIMEOUT) {
            Some(_turn) => write_group(conn, &batch),
            None => batch
                .iter()
                .for_each(|j| j.set(JobState::Done(Err(locked())))),
        }
        drop(handoff);
        take_result(&job)
    }
}

/// Ends a leader's turn, also when a write panicked in it: any job of its group left
/// unfinished gets "locked", and the lead goes to the first write waiting, or nobody leads.
/// Without it a panic would leave the queue led by nobody who will ever hand it on.
struct Handoff<'a> {
    queue: &'a Queue,
    batch: &'a [Arc<Job>],
}

impl Drop for Handoff<'_> {
    fn drop(&mut self) {
        for job in self.batch {
            let unfinished = !matches!(*job.state.lock(), JobState::Done(_));
            if unfinished {
                job.set(JobState::Done(Err(locked())));
            }
        }
        let mut group = self.queue.group.lock();
        match group.waiting.first() {
            Some(next) => next.set(JobState::Lead),
            None => group.leading = false,
        }
    }
}

/// Waits until `job` is written by a leader (false) or its caller is to lead (true). A job
/// still waiting for a group after [`WRITER_QUEUE_TIMEOUT`] leaves the queue with "locked".
fn wait_for_turn(queue: &Queue, job: &Arc<Job>) -> QueryResult<bool> {
    let deadline = Instant::now() + WRITER_QUEUE_TIMEOUT;
    let mut state = job.state.lock();
    loop {
        match &*state {
            JobState::Lead => return Ok(true),
            JobState::Done(_) => return Ok(false),
            JobState::Waiting => {}
        }
        if job.changed.wait_until(&mut state, deadline).timed_out() {
            drop(state);
            let mut group = queue.group.lock();
            if let Some(at) = group.waiting.iter().position(|j| Arc::ptr_eq(j, job)) {
                group.waiting.remove(at);
                // Had the lead just been handed to it, it passes on.
                if matches!(*job.state.lock(), JobState::Lead) {
                    match group.waiting.first() {
                        Some(next) => next.set(JobState::Lead),
                        None => group.leading = false,
                    }
                }
                return Err(locked());
            }
            drop(group);
            // A leader has taken it and is writing it: its end is bounded by that leader's.
            state = job.state.lock();
            while matches!(*state, JobState::Waiting) {
                job.changed.wait(&mut state);
            }
        }
    }
}

fn take_result(job: &Job) -> QueryResult<()> {
    match std::mem::replace(&mut *job.state.lock(), JobState::Waiting) {
        JobState::Done(result) => result,
        // Not reached: a leader ends every job it took.
        _ => Err(locked()),
    }
}

/// Writes `batch` in one transaction (a lone write in none), and ends each job. If the group
/// fails, it is rolled back and each write runs alone, with its own result.
fn write_group(conn: &mut AnyConnection, batch: &[Arc<Job>]) {
    if let [job] = batch {
        job.set(JobState::Done((job.write)(conn)));
        return;
    }
    let together = immediate_transaction(conn, |conn| {
        batch.iter().try_for_each(|job| (job.write)(conn))
    });
    match together {
        Ok(()) => batch.iter().for_each(|job| job.set(JobState::Done(Ok(())))),
        // Locked by another process (after `busy_timeout`): each alone would wait as long again.
        Err(e) if super::is_transient(&e) => {
            tracing::debug!(error = %e, rows = batch.len(), "a group commit could not begin");
            batch
                .iter()
                .for_each(|job| job.set(JobState::Done(Err(locked()))));
        }
        Err(e) => {
            tracing::debug!(error = %e, rows = batch.len(), "a group commit failed; writing its rows one by one");
            for job in batch {
                job.set(JobState::Done((job.write)(conn)));
            }
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

    /// Writes that arrive while another is being written go in together: the next leader
    /// writes them all on its connection, in one transaction (so fewer threads ran writes
    /// than there were writes), and one that breaks a constraint fails alone, the others'
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
        let queue = manager.writer.0.clone().unwrap();
        let writers: Arc<parking_lot::Mutex<HashSet<std::thread::ThreadId>>> = Default::default();
        // 6 twice: one of those two must fail, and only it.
        let values = [0, 1, 2, 3, 4, 5, 6, 6];
        let held = queue.turn.lock();
        let results: Vec<QueryResult<()>> = std::thread::scope(|scope| {
            let manager = &manager;
            let handles: Vec<_> = values
                .iter()
                .map(|&n| {
                    let writers = writers.clone();
                    scope.spawn(move || {
                        let mut conn = manager.establish().unwrap();
                        let write: GroupedWrite = Box::new(move |conn: &mut AnyConnection| {
                            writers.lock().insert(std::thread::current().id());
                            diesel::sql_query(format!("INSERT INTO t (n) VALUES ({n})"))
                                .execute(conn)
                                .map(|_| ())
                        });
                        manager.writer.grouped(&mut conn, write)
                    })
                })
                .collect();
            // The first leader holds its own write and waits for the turn; the rest queue.
            while queue.group.lock().waiting.len() < values.len() - 1 {
                std::thread::sleep(Duration::from_millis(1));
            }
            drop(held);
            handles.into_iter().map(|h| h.join().unwrap()).collect()
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
                .get_result(&mut manager.establish().unwrap())
                .unwrap()
        };
        assert_eq!(rows, 7);
        // Two leaders at most wrote eight writes: the first alone, the next the seven others.
        assert!(
            writers.lock().len() <= 2,
            "{} threads wrote",
            writers.lock().len()
        );
        assert!(
            !queue.group.lock().leading,
            "the lead is given up when nothing waits"
        );
    }

    /// A write that panics in its leader's hands does not leave the queue without a leader:
    /// the next grouped write goes through at once instead of waiting out the queue timeout.
    #[test]
    fn a_panicking_write_hands_the_lead_on() {
        let manager = super::super::ConnectionManager::new(DatabaseUrl::Sqlite(":memory:".into()));
        let writer = manager.writer.clone();
        let panicked = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let mut conn = manager.establish().unwrap();
                    let write: GroupedWrite = Box::new(|_| panic!("a write that panics"));
                    writer.grouped(&mut conn, write)
                })
                .join()
        });
        assert!(panicked.is_err());
        let started = Instant::now();
        let mut conn = manager.establish().unwrap();
        assert!(writer.grouped(&mut conn, Box::new(|_| Ok(()))).is_ok());
        assert!(started.elapsed() < WRITER_QUEUE_TIMEOUT / 2);
    }
}
