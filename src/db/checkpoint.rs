//! SQLite checkpoints off the request path. In WAL mode SQLite copies the log back into the
//! database file (a checkpoint, with its `fsync`s) by default inside whichever commit takes the
//! log past 1,000 pages, so now and then one token request waited for the disk while holding
//! the write lock, and every writer behind it waited too: under token load the server showed a
//! third of its time in I/O wait. The server's pool instead turns that off
//! (`wal_autocheckpoint = 0`) and this thread runs a `PASSIVE` checkpoint (the kind the automatic
//! one is: it never blocks a writer or a reader) every [`EVERY`]. Durability is unchanged: a
//! commit is in the log before it is answered, whoever copies it on. Connections outside the
//! server's pool (the CLI, migrations) keep the automatic checkpoint.

use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use diesel::connection::SimpleConnection as _;
use diesel::{Connection as _, SqliteConnection};

/// How often the log is copied back: often enough that it stays a few MiB under load.
pub const EVERY: Duration = Duration::from_millis(100);

/// Pragmas for the server pool's connections when this thread does the checkpoints; a log
/// grown large under load is cut back to 64 MiB once checkpointed.
pub(super) const POOL_PRAGMAS: &str =
    "PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = 67108864;";

/// The running checkpoint thread; dropping the last handle stops it.
#[derive(Debug)]
pub(super) struct Checkpointer {
    stop: Arc<(parking_lot::Mutex<bool>, parking_lot::Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts checkpointing the SQLite database at `path` every `every`, on a connection of
    /// its own (outside the pool, so its statements are not counted as a request's).
    pub(super) fn start(path: &Path, every: Duration) -> Result<Self, diesel::ConnectionError> {
        let mut conn = SqliteConnection::establish(&path.to_string_lossy())?;
        conn.batch_execute("PRAGMA busy_timeout = 3000")
            .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))?;
        let stop: Arc<(parking_lot::Mutex<bool>, parking_lot::Condvar)> = Arc::default();
        let signal = stop.clone();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                let (stopped, wake) = &*signal;
                let mut stopped = stopped.lock();
                while !*stopped {
                    if !wake.wait_for(&mut stopped, every).timed_out() {
                        continue;
                    }
                    if let Err(e) = conn.batch_execute("PRAGMA wal_checkpoint(PASSIVE)") {
                        tracing::warn!(error = %e, "a SQLite checkpoint failed; the next one tries again");
                    }
                }
            })
            .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        *self.stop.0.lock() = true;
        self.stop.1.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use diesel::RunQueryDsl as _;
    use diesel::connection::SimpleConnection as _;

    use super::*;
    use crate::config::DatabaseUrl;

    /// A megabyte written through the server's pool reaches the database file within a few
    /// intervals, although it is far below SQLite's automatic threshold (1,000 pages): only
    /// the thread copies it there, and the pool's connections do not checkpoint themselves.
    #[test]
    fn the_thread_copies_the_log_back_and_the_pool_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let database = super::super::open(
            &DatabaseUrl::Sqlite(path.clone()),
            2,
            std::time::Duration::from_secs(1),
        )
        .unwrap();
        let mut conn = database.pool.get().unwrap();
        #[derive(diesel::QueryableByName)]
        struct Setting {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            wal_autocheckpoint: i64,
        }
        let setting: Setting = diesel::sql_query("PRAGMA wal_autocheckpoint")
            .get_result(&mut *conn)
            .unwrap();
        assert_eq!(setting.wal_autocheckpoint, 0);
        let size = || std::fs::metadata(&path).unwrap().len();
        let before = size();
        conn.batch_execute(
            "CREATE TABLE blob (b BLOB); INSERT INTO blob (b) VALUES (zeroblob(1048576));",
        )
        .unwrap();
        drop(conn);
        let deadline = std::time::Instant::now() + EVERY * 30;
        while size() < before + 1_000_000 {
            assert!(
                std::time::Instant::now() < deadline,
                "the log was not copied back ({} bytes)",
                size()
            );
            std::thread::sleep(EVERY / 2);
        }
    }
}
