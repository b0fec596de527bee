//! The schema's migrations, embedded in the binary: one tree per backend (`migrations/sqlite`,
//! `migrations/postgres`) with the same names, which [`migration_names`] lets a test compare.
//!
//! [`migrate`] runs at start-up ([`open`](super::open)) and from the CLI. It is safe when
//! several instances start at once: SQLite migrates under its write lock, PostgreSQL under an
//! advisory lock.

use diesel::connection::SimpleConnection as _;
use diesel::migration::MigrationSource;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness as _, embed_migrations};

use super::{AnyConnection, write_transaction};

/// Both trees have the same migration names; a test keeps them equal.
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Key of the PostgreSQL advisory lock held while migrating, so that several instances starting
/// at once migrate one at a time. The second key is the schema, so separate schemas (as in the
/// test suite) do not wait for each other.
const MIGRATION_LOCK_KEY: i32 = 0x4c_61_74_63; // "Latc"

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
