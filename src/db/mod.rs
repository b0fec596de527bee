//! The database: one connection type over SQLite and PostgreSQL, the pool, migrations, the
//! tables' models, and the single helper through which request handlers run diesel.
//!
//! The backend is picked at run time from [`DatabaseUrl`](crate::config::DatabaseUrl): one
//! build serves both. Queries are written once against [`AnyConnection`] and the portable
//! `schema.rs`.
//!
//! **A table's queries live in its model file**, `models/<table>.rs`, as methods of its row
//! type (see [`models`]). Within the crate `schema` is for `src/db` alone (the tests also use
//! it, to set up and inspect rows): the rest of the crate calls model methods and keeps the
//! rules, and names diesel only for its error type
//! ([`diesel::QueryResult`], [`diesel::result::Error`]).
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
//!
//! One concern per file, re-exported here so callers write `db::X`: `connection` (the enum, the
//! manager, pragmas, ping), `pool` (`open`, `run`, `Database`), `migrations`, `writer` (the
//! SQLite writer queue and `write_transaction`), `error` (what a failure means), `instrument`
//! (statement counting, lost-connection detection), `client_cache` (the clients client
//! authentication reads, and how every instance learns that one changed).

pub mod models;
pub mod schema;

mod checkpoint;
mod client_cache;
mod connection;
mod error;
mod instrument;
mod migrations;
mod pool;
mod writer;

pub use client_cache::{CachedClient, CachedSecret, ClientCache, note_client_change};
pub(crate) use connection::native;
pub use connection::{AnyConnection, ConnectionManager, PG_CONNECT_TIMEOUT_SECS, ping};
pub use error::{DbError, RETRY_AFTER_SECS, is_transient};
pub use instrument::StatementCounter;
pub use migrations::{migrate, migration_names};
pub use pool::{
    CHECKOUT_TIMEOUT, Database, OpenError, Pool, PooledConnection, open, run, run_here,
};
pub use writer::{GroupedWrite, Uncommitted, Writer, write_transaction};

/// Current time in UTC, as stored in `Timestamp` columns.
pub fn now() -> chrono::NaiveDateTime {
    chrono::Utc::now().naive_utc()
}
