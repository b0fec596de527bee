//! Connections: [`AnyConnection`] over SQLite or PostgreSQL, and the [`ConnectionManager`] that
//! opens them with this project's settings (SQLite pragmas, PostgreSQL's connect timeout, the
//! per-connection instrumentation) for the pool, the CLI and migrations.
//!
//! Use [`ConnectionManager::establish`] for one connection outside the pool; request code gets
//! its connection from [`run`](super::run) instead. [`ping`] is the readiness probe.

use std::time::Duration;

use diesel::connection::SimpleConnection as _;
use diesel::prelude::*;
use diesel::r2d2::{self, R2D2Connection as _};

use super::instrument::{ConnectionMonitor, StatementCounter};
use super::{ClientCache, DbError, Writer};
use crate::config::DatabaseUrl;

/// A connection to either backend. Queries written against it compile for both.
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    Postgres(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

/// Runs a query on the concrete connection inside an [`AnyConnection`]: `native!(conn, c =>
/// query.load(c))` builds and runs `query` for the backend at hand. Through `AnyConnection`
/// itself a query has no static query id, so diesel builds its SQL text again on every run to
/// look up the prepared statement (a profile of the token endpoint showed that as an eighth of
/// its instructions); on the concrete connection the statement cache finds it by type. For the
/// request path's hot queries; the counting and the writer queue are the inner connection's too.
macro_rules! native {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::db::AnyConnection::Sqlite($c) => $body,
            $crate::db::AnyConnection::Postgres($c) => $body,
        }
    };
}
pub(crate) use native;

/// Pragmas applied to every pooled SQLite connection. `busy_timeout` (3 s: a write waits that
/// long for another writer, then the request is answered 503) comes first, so that even
/// switching a new file to WAL waits for another process instead of failing; WAL lets readers
/// run beside the one writer; foreign keys are
/// off by default in SQLite; `synchronous=NORMAL` is durable under WAL except on power loss.
const SQLITE_PRAGMAS: &str = "PRAGMA busy_timeout = 3000;
PRAGMA journal_mode = WAL;
PRAGMA foreign_keys = ON;
PRAGMA synchronous = NORMAL;";

/// libpq's `connect_timeout`, added to a PostgreSQL URL that sets none: a database host that
/// does not answer (a dropped route, a blackholing firewall) fails a connect in this long
/// instead of the kernel's minutes. libpq's minimum is 2.
pub const PG_CONNECT_TIMEOUT_SECS: u32 = 3;

/// The first of [`SQLITE_PRAGMAS`], to put back after a probe changed it.
const SQLITE_BUSY_TIMEOUT: &str = "PRAGMA busy_timeout = 3000";

/// Opens database connections of the backend named by the URL.
///
/// Every connection it opens carries its [`Writer`] queue, so that a
/// [`write_transaction`](super::write_transaction) on any of them waits in the same queue as
/// `Database::writer`, and its [`ClientCache`], which forgets what a connection wrote.
#[derive(Debug)]
pub struct ConnectionManager {
    url: DatabaseUrl,
    pub(super) statements: StatementCounter,
    pub(super) writer: Writer,
    pub(super) clients: ClientCache,
    /// The server's pool: SQLite checkpoints run on their own thread, not in a commit
    /// ([`super::checkpoint`]).
    pub(super) background_checkpoints: bool,
}

impl ConnectionManager {
    pub fn new(url: DatabaseUrl) -> Self {
        Self {
            writer: Writer::for_backend(&url),
            url,
            statements: StatementCounter::default(),
            clients: ClientCache::default(),
            background_checkpoints: false,
        }
    }

    /// One connection, outside any pool (for the CLI and migrations).
    pub fn establish(&self) -> Result<AnyConnection, diesel::ConnectionError> {
        let mut conn = match &self.url {
            DatabaseUrl::Postgres(url) => AnyConnection::Postgres(diesel::PgConnection::establish(
                &with_connect_timeout(url),
            )?),
            DatabaseUrl::Sqlite(path) => {
                let path = path.to_string_lossy();
                let mut conn = diesel::SqliteConnection::establish(&path)?;
                // Switching a new file to WAL needs it to itself; when another process is
                // creating it at that moment, SQLite answers "locked" at once rather than wait.
                let mut attempt = 0;
                loop {
                    match conn.batch_execute(SQLITE_PRAGMAS) {
                        Ok(()) => break,
                        Err(e) if attempt < 50 && e.to_string().contains("locked") => {
                            attempt += 1;
                            std::thread::sleep(Duration::from_millis(100));
                        }
                        Err(e) => {
                            return Err(diesel::ConnectionError::BadConnection(e.to_string()));
                        }
                    }
                }
                if self.background_checkpoints {
                    conn.batch_execute(super::checkpoint::POOL_PRAGMAS)
                        .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))?;
                }
                AnyConnection::Sqlite(conn)
            }
        };
        conn.set_instrumentation(ConnectionMonitor {
            statements: self.statements.clone(),
            lost: false,
            writer: self.writer.clone(),
            clients: self.clients.clone(),
            wrote_clients: false,
        });
        Ok(conn)
    }
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = AnyConnection;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<AnyConnection, r2d2::Error> {
        self.establish().map_err(r2d2::Error::ConnectionError)
    }

    fn is_valid(&self, conn: &mut AnyConnection) -> Result<(), r2d2::Error> {
        conn.ping().map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut AnyConnection) -> bool {
        let lost = conn
            .instrumentation()
            .downcast_ref::<ConnectionMonitor>()
            .is_some_and(|m| m.lost);
        std::thread::panicking() || lost || conn.is_broken()
    }
}

/// A PostgreSQL URL with libpq's `connect_timeout` added unless it sets one (keyword/value
/// connection strings are left alone).
fn with_connect_timeout(url: &str) -> String {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        || url.contains("connect_timeout=")
    {
        return url.to_owned();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}connect_timeout={PG_CONNECT_TIMEOUT_SECS}")
}

/// Whether the database answers a trivial query and, on SQLite, whether its write lock can be
/// taken: with WAL, reads go on while another process holds the lock, but every request that
/// writes (tokens, sign-ins, sessions) would time out, so the instance is not ready.
pub fn ping(conn: &mut AnyConnection) -> Result<(), DbError> {
    match conn {
        AnyConnection::Postgres(pg) => pg.batch_execute("SELECT 1").map_err(DbError::from),
        AnyConnection::Sqlite(sqlite) => {
            // A probe must answer quickly: wait for the lock a second at most, then restore the
            // connection's usual patience whatever happened.
            sqlite.batch_execute("PRAGMA busy_timeout = 1000")?;
            let probe = sqlite.batch_execute("BEGIN IMMEDIATE; ROLLBACK;");
            let restore = sqlite.batch_execute(SQLITE_BUSY_TIMEOUT);
            probe?;
            restore.map_err(DbError::from)
        }
    }
}
