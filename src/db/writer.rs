//! Writing to the database. [`write_transaction`] runs a closure in a transaction that takes
//! SQLite's write lock up front (`BEGIN IMMEDIATE`), after waiting its turn in [`Writer`], the
//! queue that lines up this process's SQLite writers behind a mutex so they do not sleep in
//! SQLite's busy handler. Every connection of a pool carries that pool's queue, so every write
//! transaction waits in it, whichever path called it.
//!
//! Use [`write_transaction`] for any write transaction, and [`Writer::hold`] (through
//! `Database::writer`) around a write that is a single statement, outside a transaction. On
//! PostgreSQL there is no queue and a write transaction is an ordinary transaction.

use std::sync::Arc;
use std::time::Duration;

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
pub struct Writer(Option<Arc<parking_lot::Mutex<()>>>);

impl Writer {
    pub fn for_backend(url: &DatabaseUrl) -> Self {
        Self(url.is_sqlite().then(Default::default))
    }

    /// Runs `f`, which writes (one statement, or a transaction of its own), when its turn comes.
    pub fn hold<T, E>(&self, f: impl FnOnce() -> Result<T, E>) -> Result<T, E>
    where
        E: From<diesel::result::Error>,
    {
        let Some(lock) = &self.0 else {
            return f();
        };
        let Some(_turn) = lock.try_lock_for(WRITER_QUEUE_TIMEOUT) else {
            return Err(E::from(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::Unknown,
                Box::new("database is locked (waited for this process's other writers)".to_owned()),
            )));
        };
        f()
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
        let held = writer.0.as_ref().unwrap().lock();
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
        let held = manager.writer.0.as_ref().unwrap().lock();
        let waited: Result<(), diesel::result::Error> = write_transaction(&mut conn, |_| Ok(()));
        drop(held);
        let error = waited.unwrap_err();
        assert!(is_transient(&error), "{error}");
        assert!(write_transaction(&mut conn, |_| Ok::<_, diesel::result::Error>(())).is_ok());
    }
}
