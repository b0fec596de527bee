//! Diesel instrumentation installed on every pooled connection: [`StatementCounter`] counts the
//! statements a pool runs (for `/metrics` and for tests that pin a request's cost) and logs
//! each one at trace level; `ConnectionMonitor` also notes when a connection lost its server so
//! the pool drops it, and when it wrote clients, so the client cache forgets them. Read the
//! counter through [`Database::statements`](super::Database).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::error::is_connection_lost;
use super::{ClientCache, Writer};

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
/// [`ConnectionManager::has_broken`](super::ConnectionManager) reads to drop the connection.
///
/// It also carries the writer queue of the pool the connection belongs to, which
/// [`write_transaction`](super::write_transaction) waits in, and the pool's client cache with
/// whether this connection wrote clients or secrets since it was last handed out
/// ([`client_cache::note_client_change`](super::client_cache::note_client_change)): instrumentation is the
/// one place diesel lets a connection hold state of ours.
pub(super) struct ConnectionMonitor {
    pub(super) statements: StatementCounter,
    pub(super) lost: bool,
    pub(super) writer: Writer,
    pub(super) clients: ClientCache,
    pub(super) wrote_clients: bool,
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
