//! The database: one connection type over SQLite and PostgreSQL, the pool, migrations, and the
//! single helper through which request handlers run diesel.
//!
//! The backend is picked at run time from [`DatabaseUrl`]: one build serves both. Queries are
//! written once against [`AnyConnection`] and the portable `schema.rs`.
//!
//! Diesel is blocking. Handlers never touch a connection on the async executor; they call
//! [`run`], which checks a connection out of the pool and runs the closure on actix's blocking
//! thread pool.
//!
//! When the database stops answering, requests fail fast rather than hang: a connection is
//! waited for at most [`CHECKOUT_TIMEOUT`], PostgreSQL connects give up after
//! [`PG_CONNECT_TIMEOUT_SECS`], and a connection that lost its server is dropped from the pool
//! when it is returned, so service resumes on its own once the database is back.
//! [`DbError::is_unavailable`] tells such outages (answered 503 with `Retry-After`) from bugs.

pub mod models;
pub mod schema;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use diesel::connection::SimpleConnection as _;
use diesel::migration::MigrationSource;
use diesel::prelude::*;
use diesel::r2d2::{self, R2D2Connection as _};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness as _, embed_migrations};

use crate::config::DatabaseUrl;

/// A connection to either backend. Queries written against it compile for both.
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    Postgres(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

pub type Pool = r2d2::Pool<ConnectionManager>;
pub type PooledConnection = r2d2::PooledConnection<ConnectionManager>;

/// Both trees have the same migration names; a test keeps them equal.
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Pragmas applied to every pooled SQLite connection. `busy_timeout` (3 s: a write waits that
/// long for another writer, then the request is answered 503) comes first, so that even
/// switching a new file to WAL waits for another process instead of failing; WAL lets readers
/// run beside the one writer; foreign keys are
/// off by default in SQLite; `synchronous=NORMAL` is durable under WAL except on power loss.
const SQLITE_PRAGMAS: &str = "PRAGMA busy_timeout = 3000;
PRAGMA journal_mode = WAL;
PRAGMA foreign_keys = ON;
PRAGMA synchronous = NORMAL;";

/// How long a request waits for a pooled connection before it is answered 503. Shorter than a
/// load balancer's or a client's patience, so an outage shows as a quick, clear error.
pub const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(3);

/// libpq's `connect_timeout`, added to a PostgreSQL URL that sets none: a database host that
/// does not answer (a dropped route, a blackholing firewall) fails a connect in this long
/// instead of the kernel's minutes. libpq's minimum is 2.
pub const PG_CONNECT_TIMEOUT_SECS: u32 = 3;

/// The `Retry-After` (seconds) sent with every 503 caused by the database.
pub const RETRY_AFTER_SECS: u32 = 5;

/// The longest a writer waits in this process's SQLite queue ([`Writer`]): `busy_timeout`.
const WRITER_QUEUE_TIMEOUT: Duration = Duration::from_secs(3);

/// The first of [`SQLITE_PRAGMAS`], to put back after a probe changed it.
const SQLITE_BUSY_TIMEOUT: &str = "PRAGMA busy_timeout = 3000";

/// Key of the PostgreSQL advisory lock held while migrating, so that several instances starting
/// at once migrate one at a time. The second key is the schema, so separate schemas (as in the
/// test suite) do not wait for each other.
const MIGRATION_LOCK_KEY: i32 = 0x4c_61_74_63; // "Latc"

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("no database connection available: {0}")]
    Pool(#[from] r2d2::PoolError),
    #[error("database task was cancelled")]
    Cancelled,
    #[error("reloading failed: {0}")]
    Refresh(String),
}

impl DbError {
    /// Whether the database is down, unreachable or busy (so the request may succeed later and
    /// is answered 503 with `Retry-After`) rather than the query being wrong (a 500).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Pool(_) | Self::Cancelled => true,
            Self::Query(e) => is_transient(e),
            Self::Refresh(_) => false,
        }
    }
}

/// A query error that says nothing about the query: the connection is gone, the server is
/// shutting down, a statement was cancelled by a timeout, or SQLite's write lock was not free
/// within `busy_timeout`.
pub fn is_transient(error: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    match error {
        Error::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _,
        )
        | Error::BrokenTransactionManager => true,
        Error::DatabaseError(_, info) => {
            let message = info.message();
            [
                "database is locked",
                "database is busy",
                "database table is locked",
                "statement timeout",
                "terminating connection",
                "the database system is",
                "server closed the connection",
                "no connection to the server",
                "could not connect",
            ]
            .iter()
            .any(|needle| message.contains(needle))
        }
        Error::RollbackErrorOnCommit {
            rollback_error,
            commit_error,
        } => is_transient(rollback_error) || is_transient(commit_error),
        _ => false,
    }
}

/// Whether an error means this connection's server is gone, so the connection must not go back
/// into the pool. (diesel's own `is_broken` only looks at the transaction state.)
fn is_connection_lost(error: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    matches!(
        error,
        Error::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _,
        ) | Error::BrokenTransactionManager
    )
}

/// Counts the SQL statements run by every connection of a pool, for `/metrics` and for tests
/// that pin down how many statements a request costs.
#[derive(Debug, Clone, Default)]
pub struct StatementCounter(Arc<AtomicU64>);

impl StatementCounter {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl diesel::connection::Instrumentation for StatementCounter {
    fn on_connection_event(&mut self, event: diesel::connection::InstrumentationEvent<'_>) {
        if let diesel::connection::InstrumentationEvent::StartQuery { query, .. } = event {
            self.0.fetch_add(1, Ordering::Relaxed);
            // `LATCHKEY_LOG=latchkey::sql=trace` shows every statement.
            tracing::trace!(target: "latchkey::sql", %query);
        }
    }
}

/// The instrumentation of one pooled connection: counts its statements into the pool's
/// [`StatementCounter`] and remembers whether one failed because the server went away, which
/// [`ConnectionManager::has_broken`] reads to drop the connection.
struct ConnectionMonitor {
    statements: StatementCounter,
    lost: bool,
}

impl diesel::connection::Instrumentation for ConnectionMonitor {
    fn on_connection_event(&mut self, event: diesel::connection::InstrumentationEvent<'_>) {
        if let diesel::connection::InstrumentationEvent::FinishQuery {
            error: Some(error), ..
        } = &event
            && is_connection_lost(error)
        {
            self.lost = true;
        }
        self.statements.on_connection_event(event);
    }
}

/// An open database: the pool, the counter of statements its connections ran, and the lock
/// that queues this process's writers on SQLite.
#[derive(Clone)]
pub struct Database {
    pub pool: Pool,
    pub statements: StatementCounter,
    pub writer: Writer,
}

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
#[derive(Clone, Default)]
pub struct Writer(Option<Arc<parking_lot::Mutex<()>>>);

impl Writer {
    pub fn for_backend(url: &DatabaseUrl) -> Self {
        Self(url.is_sqlite().then(Default::default))
    }

    /// Runs `f` in a write transaction (see [`write_transaction`]) when its turn comes.
    pub fn transaction<T, E, F>(&self, conn: &mut AnyConnection, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut AnyConnection) -> Result<T, E>,
        E: From<diesel::result::Error>,
    {
        self.hold(|| write_transaction(conn, f))
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

/// Opens database connections of the backend named by the URL.
#[derive(Debug)]
pub struct ConnectionManager {
    url: DatabaseUrl,
    statements: StatementCounter,
}

impl ConnectionManager {
    pub fn new(url: DatabaseUrl) -> Self {
        Self {
            url,
            statements: StatementCounter::default(),
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
                AnyConnection::Sqlite(conn)
            }
        };
        conn.set_instrumentation(ConnectionMonitor {
            statements: self.statements.clone(),
            lost: false,
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

/// Why the database could not be opened at start-up. Each message is one line.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create the folder for the SQLite database {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("migrating {url} failed: {reason}")]
    Migrate { url: String, reason: String },
}

/// Opens the pool and brings the schema up to date.
///
/// The first connection is made eagerly, so an unreachable database fails here, once, with a
/// clear message rather than on the first request.
pub fn open(url: &DatabaseUrl, pool_size: u32) -> Result<Database, OpenError> {
    if let Some(path) = url.sqlite_path()
        && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).map_err(|source| OpenError::CreateDir {
            path: path.display().to_string(),
            source,
        })?;
    }
    let manager = ConnectionManager::new(url.clone());
    let mut first = manager.establish().map_err(|e| OpenError::Connect {
        url: url.redacted(),
        reason: one_line(&e.to_string()),
    })?;
    migrate(&mut first).map_err(|reason| OpenError::Migrate {
        url: url.redacted(),
        reason: one_line(&reason),
    })?;
    drop(first);

    let statements = manager.statements.clone();
    let pool = r2d2::Pool::builder()
        .max_size(pool_size)
        // The first connection already succeeded; later failures surface per request.
        .min_idle(Some(1.min(pool_size)))
        .connection_timeout(CHECKOUT_TIMEOUT)
        .test_on_check_out(false)
        .build(manager)
        .map_err(|e| OpenError::Connect {
            url: url.redacted(),
            reason: one_line(&e.to_string()),
        })?;
    Ok(Database {
        pool,
        statements,
        writer: Writer::for_backend(url),
    })
}

/// Runs pending migrations of the connection's backend; returns how many ran.
pub fn migrate(conn: &mut AnyConnection) -> Result<usize, String> {
    match conn {
        // Under SQLite's write lock (BEGIN IMMEDIATE): two processes starting on one file
        // cannot both see a migration as pending.
        AnyConnection::Sqlite(_) => write_transaction(conn, |conn| match conn {
            AnyConnection::Sqlite(c) => c
                .run_pending_migrations(SQLITE_MIGRATIONS)
                .map(|done| done.len())
                .map_err(|e| MigrateError(e.to_string())),
            AnyConnection::Postgres(_) => Ok(0),
        })
        .map_err(|e| e.0),
        AnyConnection::Postgres(c) => {
            let lock = format!(
                "SELECT pg_advisory_lock({MIGRATION_LOCK_KEY}, hashtext(current_schema()))"
            );
            let unlock = format!(
                "SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY}, hashtext(current_schema()))"
            );
            c.batch_execute(&lock).map_err(|e| e.to_string())?;
            let result = c
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|done| done.len())
                .map_err(|e| e.to_string());
            // The lock is released with the session anyway; unlocking early lets waiters go on.
            let _ = c.batch_execute(&unlock);
            result
        }
    }
}

/// A migration failure, as text (diesel's migration errors are boxed trait objects).
struct MigrateError(String);

impl From<diesel::result::Error> for MigrateError {
    fn from(e: diesel::result::Error) -> Self {
        Self(e.to_string())
    }
}

/// Names of the embedded migrations of each backend, in order: (sqlite, postgres).
pub fn migration_names() -> (Vec<String>, Vec<String>) {
    let names = |source: EmbeddedMigrations| -> Vec<String> {
        MigrationSource::<diesel::sqlite::Sqlite>::migrations(&source)
            .map(|ms| ms.iter().map(|m| m.name().to_string()).collect())
            .unwrap_or_default()
    };
    (names(SQLITE_MIGRATIONS), names(POSTGRES_MIGRATIONS))
}

/// Runs `f` with a pooled connection on the blocking thread pool. Every query a request makes
/// goes through here.
pub async fn run<F, T, E>(pool: &Pool, f: F) -> Result<T, E>
where
    F: FnOnce(&mut AnyConnection) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<DbError> + Send + 'static,
{
    let pool = pool.clone();
    actix_web::web::block(move || {
        let mut conn = pool.get().map_err(DbError::from)?;
        f(&mut conn)
    })
    .await
    .map_err(|_| E::from(DbError::Cancelled))?
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

/// Current time in UTC, as stored in `Timestamp` columns.
pub fn now() -> chrono::NaiveDateTime {
    chrono::Utc::now().naive_utc()
}

/// Error texts from libpq span several lines; start-up errors are printed on one.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Runs `f` in a transaction meant to write. On SQLite it begins `IMMEDIATE`, taking the write
/// lock up front (waiting under `busy_timeout`): a deferred transaction that reads first and
/// writes later fails at once with "database is locked" if another writer committed in between.
/// On PostgreSQL it is an ordinary transaction.
pub fn write_transaction<T, E, F>(conn: &mut AnyConnection, f: F) -> Result<T, E>
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
    use super::*;

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
}
