//! The pool and the way into it. [`open`] creates the SQLite folder, connects once eagerly,
//! migrates, and builds the [`Pool`] of a [`Database`]; [`run`] is the one helper through which
//! request handlers run diesel, on actix's blocking thread pool.
//!
//! Use [`run`] from async code for every query; use [`open`] once, at start-up or in the CLI.
//! Once a closure is done with its connection, both tell the client cache of any client or
//! secret it wrote ([`client_cache`](super::client_cache)).

use std::sync::Arc;
use std::time::Duration;

use diesel::r2d2;

use super::checkpoint::{self, Checkpointer};
use super::client_cache::forget_if_written;
use super::{
    AnyConnection, ClientCache, ConnectionManager, DbError, StatementCounter, Writer, migrate,
};
use crate::config::DatabaseUrl;

pub type Pool = r2d2::Pool<ConnectionManager>;
pub type PooledConnection = r2d2::PooledConnection<ConnectionManager>;

/// How long a request waits for a pooled connection before it is answered 503. Shorter than a
/// load balancer's or a client's patience, so an outage shows as a quick, clear error.
pub const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(3);

/// An open database: the pool, the counter of statements its connections ran, the lock
/// that queues this process's writers on SQLite, and the cache of clients its connections
/// keep current.
#[derive(Clone)]
pub struct Database {
    pub pool: Pool,
    pub statements: StatementCounter,
    pub writer: Writer,
    pub clients: ClientCache,
    /// SQLite: the thread that checkpoints the log ([`super::checkpoint`]), while this lives.
    _checkpoints: Option<Arc<Checkpointer>>,
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
/// clear message rather than on the first request. `client_refresh` is how often the client
/// cache looks for changes made by other processes (`LATCHKEY_CLIENT_REFRESH`).
pub fn open(
    url: &DatabaseUrl,
    pool_size: u32,
    client_refresh: Duration,
) -> Result<Database, OpenError> {
    if let Some(path) = url.sqlite_path()
        && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).map_err(|source| OpenError::CreateDir {
            path: path.display().to_string(),
            source,
        })?;
    }
    let mut manager = ConnectionManager::new(url.clone());
    manager.clients = ClientCache::new(client_refresh);
    let mut first = manager.establish().map_err(|e| OpenError::Connect {
        url: url.redacted(),
        reason: one_line(&e.to_string()),
    })?;
    migrate(&mut first).map_err(|reason| OpenError::Migrate {
        url: url.redacted(),
        reason: one_line(&reason),
    })?;
    drop(first);
    // The log is copied back by a thread of its own, not inside some request's commit.
    let checkpoints = match url.sqlite_path() {
        Some(path) => {
            manager.background_checkpoints = true;
            Some(Arc::new(
                Checkpointer::start(path, checkpoint::EVERY).map_err(|e| OpenError::Connect {
                    url: url.redacted(),
                    reason: one_line(&e.to_string()),
                })?,
            ))
        }
        None => None,
    };

    let statements = manager.statements.clone();
    // The queue every connection of this pool waits in; handlers reach it as `ctx.writer`.
    let writer = manager.writer.clone();
    let clients = manager.clients.clone();
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
        writer,
        clients,
        _checkpoints: checkpoints,
    })
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
    // The request's span goes with the task, so what it logs names the request.
    let span = tracing::Span::current();
    actix_web::web::block(move || {
        let _entered = span.enter();
        let asked = std::time::Instant::now();
        let conn = pool.get();
        crate::metrics::record(crate::metrics::DB_WAIT, asked.elapsed().as_secs_f64());
        let mut conn = conn.map_err(DbError::from)?;
        let result = f(&mut conn);
        forget_if_written(&mut conn);
        result
    })
    .await
    .map_err(|_| E::from(DbError::Cancelled))?
}

/// Runs `f` with a pooled connection, on this thread when the database is SQLite: for the API's
/// short reads (a resource, introspection), whose queries take microseconds on a local file.
/// Handing each to the blocking pool and back cost two thread switches, the largest share of
/// such a request's CPU in a profile; an interleaved A/B on 2 cores (64 connections, SQLite)
/// gave `/v1/user/profile` 4,860–5,670 req/s instead of 2,540–4,580, and introspection
/// 4,190–4,300 instead of 3,050–3,640, with p99 about halved. The token endpoint uses it only
/// for `client_credentials` signed with ECDSA (`oauth::token::runs_on_worker`), whose write
/// waits for its group commit without a thread ([`Uncommitted`](super::Uncommitted)); the
/// other grants stay on [`run`]. Nothing slow may run in `f` (no argon2, no RSA signature). On
/// PostgreSQL, where every statement waits for the network, and whenever no connection is
/// idle, it is [`run`]: a worker thread never waits for a connection (an outage test caught
/// that: three requests waiting 3 s each, one after another, on one worker).
///
/// A panic in `f` is caught and answered as a cancelled task, as [`run`] answers it; a
/// connection left inside a transaction by it counts as broken and leaves the pool.
pub async fn run_here<F, T, E>(pool: &Pool, f: F) -> Result<T, E>
where
    F: FnOnce(&mut AnyConnection) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<DbError> + Send + 'static,
{
    // Never wait for a connection here: that would stall every request on this worker. With
    // none idle (or a PostgreSQL one), the request waits on the blocking pool as usual.
    // Bound first, and given back before `run` waits for one: a `match` on `pool.try_get()`
    // itself would keep a PostgreSQL connection checked out (the scrutinee lives to the end of
    // the match) while waiting for another, and under load every request held one and waited
    // for a second until the checkout timeout.
    let idle = pool.try_get();
    let mut conn = match idle {
        Some(conn) if matches!(*conn, AnyConnection::Sqlite(_)) => conn,
        other => {
            drop(other);
            return run(pool, f).await;
        }
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut conn)))
        .unwrap_or_else(|_| Err(E::from(DbError::Cancelled)));
    forget_if_written(&mut conn);
    result
}

/// Error texts from libpq span several lines; start-up errors are printed on one.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
