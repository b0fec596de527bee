//! What a database error means for the request: [`DbError`] is the error every query helper
//! returns, and [`DbError::is_unavailable`] / [`is_transient`] tell an outage or a busy
//! database (answered 503 with `Retry-After`) from a wrong query (a 500).
//!
//! Use [`is_transient`] when deciding how to answer a failed query, and `is_connection_lost`
//! (private to `db`) when deciding whether a connection may go back into the pool.

use diesel::r2d2;

/// The `Retry-After` (seconds) sent with every 503 caused by the database.
pub const RETRY_AFTER_SECS: u32 = 5;

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
pub(super) fn is_connection_lost(error: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    matches!(
        error,
        Error::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _,
        ) | Error::BrokenTransactionManager
    )
}
