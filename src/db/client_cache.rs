//! The in-process cache of clients and their secrets' digests that client authentication reads
//! (`oauth::client_auth`), so that a token, introspection or revocation request does not look
//! its client up in the database: a `client_credentials` request runs only its INSERT.
//!
//! **What is cached.** For each `client_id` asked for: the client row and its secrets that
//! were active when loaded, each as its id, keyed digest and `expires_at` (never the encrypted
//! copy, never a clear secret), or the fact that no such client exists. A secret's expiry is
//! compared with the request's `now` at every use ([`CachedSecret::is_active`]), so a
//! cached secret stops working at the very instant it expires. Unknown ids are cached like
//! known ones, so an unknown client and a wrong secret still cost the same (no query once
//! looked up), and the cache holds at most [`CAPACITY`] ids: a new id arriving when it is full
//! empties it first, so random `client_id`s cannot grow it, and at worst make each client's
//! next request load it again.
//!
//! **How it learns of changes.** One generation number stands for everything cached; bumping
//! it ([`ClientCache::forget_all`]) drops every entry at once (the map is emptied at its next
//! use, and a load that began before the bump is not stored). It is bumped
//! - at once, after a write through this process: every model method that writes `clients` or
//!   `client_secrets` marks its connection ([`note_client_change`]), and [`run`](super::run) and
//!   [`run_here`](super::run_here) forget everything once the closure has returned, its
//!   transaction committed, so no request can load the old row again afterwards;
//! - within [`ClientCache::new`]'s interval (`LATCHKEY_CLIENT_REFRESH`, 1 s), after a write by
//!   anyone else (another instance, the CLI, SQL typed by hand): triggers in both backends'
//!   migrations bump the one-row `client_changes` counter in the transaction of any change to
//!   those tables (a delete cascaded from a user's account included; a secret's `last_used_at`
//!   excepted, as every instance writes it). On the request path, when the interval has passed,
//!   one request (an atomic swap decides which) reads the counter, and a new value drops
//!   everything. While no requests come nothing is read; the first one after a pause checks.
//!   The first read, an interval after start, drops everything, as nothing was seen before.
//!
//! The scope catalogue (`scopes`, the names and descriptions the consent page and the discovery
//! document show) is cached the same way, under the same generation and counter
//! ([`ClientCache::scopes`]).
//!
//! Triggers rather than application code, because a write path cannot forget them: each of
//! this crate's writes, a cascade, and a hand-made fix in `psql` alike.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{NaiveDateTime, TimeDelta};
use diesel::{Connection as _, QueryResult};

use super::AnyConnection;
use super::instrument::ConnectionMonitor;
use super::models::{Client, ClientChanges, ClientSecret, Scope};
use crate::domain::ClientKeys;

/// The most `client_id`s held at once, known and unknown together (a few MiB at most).
pub const CAPACITY: usize = 10_000;

/// How long a change made elsewhere may take to be seen, unless configured
/// (`LATCHKEY_CLIENT_REFRESH`).
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(1);

/// A client as client authentication needs it, shared by every request that uses it.
#[derive(Debug)]
pub struct CachedClient {
    pub client: Client,
    secrets: Vec<CachedSecret>,
    /// A key-based client's public keys, read from `clients.jwks` once per load.
    keys: Option<ClientKeys>,
}

/// A secret as client authentication needs it: its keyed digest, never the secret.
pub struct CachedSecret {
    pub id: i64,
    digest: String,
    expires_at: Option<NaiveDateTime>,
    /// `last_used_at` as this process knows it, in Unix seconds ([`NEVER`] for none): the row's
    /// when loaded, then each time this process records a use, so a client used all the time
    /// writes it once per [`touch`](crate::oauth::client_auth::touch_secret) interval.
    last_used_at: AtomicI64,
}

/// `last_used_at` of a secret never used.
const NEVER: i64 = i64::MIN;

impl std::fmt::Debug for CachedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedSecret")
            .field("id", &self.id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl CachedClient {
    fn new(client: Client, secrets: Vec<ClientSecret>) -> Self {
        let secrets = secrets
            .into_iter()
            .map(|s| CachedSecret {
                id: s.id,
                digest: s.secret_digest,
                expires_at: s.expires_at,
                last_used_at: AtomicI64::new(
                    s.last_used_at.map_or(NEVER, |t| t.and_utc().timestamp()),
                ),
            })
            .collect();
        let keys = client.keys();
        Self {
            client,
            secrets,
            keys,
        }
    }

    /// A key-based client's keys (`private_key_jwt`); `None` for a secret-based or public one.
    pub fn keys(&self) -> Option<&ClientKeys> {
        self.keys.as_ref()
    }

    /// The secrets that were active when the client was loaded: check each with
    /// [`CachedSecret::is_active`] at use.
    pub fn secrets(&self) -> &[CachedSecret] {
        &self.secrets
    }
}

impl CachedSecret {
    /// Whether the secret works at `now`: expiry is checked at each use, not when loaded.
    pub fn is_active(&self, now: NaiveDateTime) -> bool {
        self.expires_at.is_none_or(|t| t > now)
    }

    /// Hex HMAC-SHA256 of the secret, as stored in `client_secrets.secret_digest`.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Whether a use was recorded less than `within` before `now`.
    pub fn used_within(&self, now: NaiveDateTime, within: TimeDelta) -> bool {
        let last = self.last_used_at.load(Ordering::Relaxed);
        last != NEVER && now.and_utc().timestamp() - last < within.num_seconds()
    }

    /// Notes that `last_used_at` was written as `now`.
    pub fn record_use(&self, now: NaiveDateTime) {
        self.last_used_at
            .store(now.and_utc().timestamp(), Ordering::Relaxed);
    }
}

/// The cache (see the module doc). Cheap to clone: clones share one cache.
#[derive(Clone, Debug)]
pub struct ClientCache(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    /// Bumped by every change learnt of; entries belong to the generation they were loaded in.
    generation: AtomicU64,
    entries: parking_lot::Mutex<Entries>,
    /// `client_changes.counter` when last read (`i64::MIN` before the first read).
    seen: AtomicI64,
    /// Milliseconds after `started` from which the next request reads the counter: one
    /// interval after start at first, when the first read (nothing seen before it) drops
    /// whatever the first interval cached. A process's first requests pay no extra statement.
    next_check: AtomicU64,
    started: Instant,
    every: Duration,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Entries {
    /// The generation the map's entries were loaded in.
    generation: u64,
    /// `None`: no client has this id.
    map: HashMap<String, Option<Arc<CachedClient>>>,
    /// Every registered scope, by name, once loaded.
    scopes: Option<Arc<[Scope]>>,
}

impl Entries {
    /// Empties the map if its entries are of an older generation.
    fn catch_up(&mut self, generation: u64) {
        if self.generation != generation {
            self.map.clear();
            self.scopes = None;
            self.generation = generation;
        }
    }
}

impl Default for ClientCache {
    fn default() -> Self {
        Self::new(DEFAULT_REFRESH)
    }
}

impl ClientCache {
    /// A cache that reads the change counter at most once per `every`.
    pub fn new(every: Duration) -> Self {
        Self::with_capacity(every, CAPACITY)
    }

    fn with_capacity(every: Duration, capacity: usize) -> Self {
        Self(Arc::new(Shared {
            generation: AtomicU64::new(0),
            entries: Default::default(),
            seen: AtomicI64::new(i64::MIN),
            next_check: AtomicU64::new(millis(every)),
            started: Instant::now(),
            every,
            capacity,
        }))
    }

    /// The client with this `client_id` (with its secrets active at load time), or `None` when
    /// there is none: from the cache, else in one statement
    /// ([`Client::find_with_active_secrets`]), plus one to read the change counter when it is
    /// due.
    pub fn client(
        &self,
        conn: &mut AnyConnection,
        client_id: &str,
        now: NaiveDateTime,
    ) -> QueryResult<Option<Arc<CachedClient>>> {
        self.check_for_changes(conn)?;
        let generation = match self.cached(client_id) {
            Ok(found) => return Ok(found),
            Err(generation) => generation,
        };
        // Read after the generation: if a change is forgotten meanwhile, `store` drops this.
        let loaded = Client::find_with_active_secrets(conn, client_id, now)?
            .map(|(client, secrets)| Arc::new(CachedClient::new(client, secrets)));
        self.store(generation, client_id, loaded.clone());
        Ok(loaded)
    }

    /// The entry for `client_id`, or on a miss the generation a load must be stored under.
    fn cached(&self, client_id: &str) -> Result<Option<Arc<CachedClient>>, u64> {
        let mut entries = self.0.entries.lock();
        let generation = self.0.generation.load(Ordering::SeqCst);
        entries.catch_up(generation);
        entries.map.get(client_id).cloned().ok_or(generation)
    }

    /// Keeps what a load of `client_id` found, unless everything was forgotten since the load
    /// began (at `generation`): it may have read the row from before the change.
    fn store(&self, generation: u64, client_id: &str, loaded: Option<Arc<CachedClient>>) {
        let mut entries = self.0.entries.lock();
        if self.0.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        entries.catch_up(generation);
        if entries.map.len() >= self.0.capacity {
            entries.map.clear();
        }
        entries.map.insert(client_id.to_owned(), loaded);
    }

    /// Every registered scope, by name: from the cache, else in one statement
    /// ([`Scope::all`]), plus one to read the change counter when it is due.
    pub fn scopes(&self, conn: &mut AnyConnection) -> QueryResult<Arc<[Scope]>> {
        self.check_for_changes(conn)?;
        let generation = {
            let mut entries = self.0.entries.lock();
            let generation = self.0.generation.load(Ordering::SeqCst);
            entries.catch_up(generation);
            if let Some(scopes) = &entries.scopes {
                return Ok(scopes.clone());
            }
            generation
        };
        let loaded: Arc<[Scope]> = Scope::all(conn)?.into();
        let mut entries = self.0.entries.lock();
        if self.0.generation.load(Ordering::SeqCst) == generation {
            entries.catch_up(generation);
            entries.scopes = Some(loaded.clone());
        }
        Ok(loaded)
    }

    /// Drops everything cached, at once.
    pub fn forget_all(&self) {
        self.0.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// When the interval has passed, reads `client_changes.counter` (one request does; the
    /// others carry on meanwhile) and forgets everything if it moved. A failed read is
    /// returned, and the next request tries again.
    fn check_for_changes(&self, conn: &mut AnyConnection) -> QueryResult<()> {
        let shared = &*self.0;
        let now = millis(shared.started.elapsed());
        let due = shared.next_check.load(Ordering::Relaxed);
        if now < due {
            return Ok(());
        }
        let next = now.saturating_add(millis(shared.every));
        if shared
            .next_check
            .compare_exchange(due, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return Ok(());
        }
        match ClientChanges::counter(conn) {
            Ok(counter) => {
                if shared.seen.swap(counter, Ordering::SeqCst) != counter {
                    self.forget_all();
                }
                Ok(())
            }
            Err(e) => {
                shared.next_check.store(0, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.entries.lock().map.len()
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Marks `conn` as having written `clients` or `client_secrets`: every model method that does
/// calls this, and the cache its pool feeds forgets everything once the work on the connection
/// is done ([`forget_if_written`]).
pub fn note_client_change(conn: &mut AnyConnection) {
    if let Some(monitor) = conn.instrumentation().downcast_mut::<ConnectionMonitor>() {
        monitor.wrote_clients = true;
    }
}

/// After a closure ran on a pooled connection (its transactions over): if it wrote clients or
/// secrets, this process's cache forgets everything.
pub(super) fn forget_if_written(conn: &mut AnyConnection) {
    if let Some(monitor) = conn.instrumentation().downcast_mut::<ConnectionMonitor>()
        && std::mem::take(&mut monitor.wrote_clients)
    {
        monitor.clients.forget_all();
    }
}

#[cfg(test)]
mod tests {
    use diesel::connection::SimpleConnection as _;

    use super::*;
    use crate::config::DatabaseUrl;
    use crate::db::{ConnectionManager, migrate};

    /// A migrated in-memory database with one client `app` (secret digests `current`, and `old`
    /// which expires at `expires`), its connection, and `now`.
    fn database(expires: NaiveDateTime) -> AnyConnection {
        let mut conn = ConnectionManager::new(DatabaseUrl::Sqlite(":memory:".into()))
            .establish()
            .unwrap();
        migrate(&mut conn).unwrap();
        conn.batch_execute(&format!(
            "INSERT INTO users (id, name, username, password) VALUES (1, 'm', 'm', 'x');
             INSERT INTO clients (id, client_id, name, user_id, grant_types, scopes)
                 VALUES (1, 'app', 'App', 1, 'client_credentials', '');
             INSERT INTO client_secrets (client_id, secret_digest, secret_encrypted, secret_hint)
                 VALUES (1, 'current', 'x', 'x');
             INSERT INTO client_secrets (client_id, secret_digest, secret_encrypted, secret_hint, expires_at)
                 VALUES (1, 'old', 'x', 'x', '{}');",
            expires.format("%Y-%m-%d %H:%M:%S%.f")
        ))
        .unwrap();
        conn
    }

    fn digests(cached: &CachedClient, now: NaiveDateTime) -> Vec<&str> {
        cached
            .secrets()
            .iter()
            .filter(|s| s.is_active(now))
            .map(|s| s.digest())
            .collect()
    }

    #[test]
    fn a_cached_secret_stops_at_its_expiry_without_a_reload() {
        let now = crate::db::now();
        let expires = now + TimeDelta::seconds(10);
        let mut conn = database(expires);
        let cache = ClientCache::new(Duration::from_secs(3600));
        let cached = cache.client(&mut conn, "app", now).unwrap().unwrap();
        assert_eq!(digests(&cached, now), ["current", "old"]);
        // Later, the same cached entry (no reload: the same Arc) without the expired one.
        let later = cache.client(&mut conn, "app", expires).unwrap().unwrap();
        assert!(Arc::ptr_eq(&cached, &later));
        assert_eq!(digests(&later, expires), ["current"]);
    }

    #[test]
    fn a_change_to_the_counter_drops_the_cache_at_the_next_check() {
        let now = crate::db::now();
        let mut conn = database(now + TimeDelta::days(1));
        let cache = ClientCache::new(Duration::ZERO);
        let first = cache.client(&mut conn, "app", now).unwrap().unwrap();
        let again = cache.client(&mut conn, "app", now).unwrap().unwrap();
        assert!(Arc::ptr_eq(&first, &again), "served from the cache");
        // Written by someone else (this connection's writes are not marked: raw SQL), seen
        // through the trigger's counter.
        conn.batch_execute("UPDATE clients SET is_enabled = FALSE")
            .unwrap();
        let reloaded = cache.client(&mut conn, "app", now).unwrap().unwrap();
        assert!(!reloaded.client.is_enabled);
        // Touching a secret's last_used_at is not a change.
        conn.batch_execute("UPDATE client_secrets SET last_used_at = '2030-01-01 00:00:00'")
            .unwrap();
        let kept = cache.client(&mut conn, "app", now).unwrap().unwrap();
        assert!(Arc::ptr_eq(&reloaded, &kept));
    }

    /// The scope catalogue: read once, then from memory, until anyone changes `scopes` (SQL
    /// here, as another process would) and the next check sees the counter move.
    #[test]
    fn the_scope_catalogue_is_cached_until_the_counter_moves() {
        let now = crate::db::now();
        let mut conn = database(now + TimeDelta::days(1));
        let cache = ClientCache::new(Duration::ZERO);
        let names = |scopes: &[Scope]| scopes.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
        let first = cache.scopes(&mut conn).unwrap();
        let again = cache.scopes(&mut conn).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "served from the cache");
        conn.batch_execute("INSERT INTO scopes (name, description) VALUES ('zz_new', 'New')")
            .unwrap();
        let reloaded = cache.scopes(&mut conn).unwrap();
        assert!(names(&reloaded).contains(&"zz_new".to_owned()));
        conn.batch_execute("UPDATE scopes SET description = 'Changed' WHERE name = 'zz_new'")
            .unwrap();
        let changed = cache.scopes(&mut conn).unwrap();
        assert_eq!(changed.last().unwrap().description, "Changed");
        conn.batch_execute("DELETE FROM scopes WHERE name = 'zz_new'")
            .unwrap();
        assert!(!names(&cache.scopes(&mut conn).unwrap()).contains(&"zz_new".to_owned()));
    }

    #[test]
    fn the_counter_is_read_at_most_once_per_interval() {
        let now = crate::db::now();
        let mut conn = database(now + TimeDelta::days(1));
        let cache = ClientCache::new(Duration::from_secs(3600));
        let first = cache.client(&mut conn, "app", now).unwrap().unwrap();
        conn.batch_execute("UPDATE clients SET is_enabled = FALSE")
            .unwrap();
        // Within the interval the change is not seen yet (another process made it) ...
        let cached = cache.client(&mut conn, "app", now).unwrap().unwrap();
        assert!(Arc::ptr_eq(&first, &cached));
        // ... until the next check.
        cache.0.next_check.store(0, Ordering::Relaxed);
        assert!(
            !cache
                .client(&mut conn, "app", now)
                .unwrap()
                .unwrap()
                .client
                .is_enabled
        );
    }

    #[test]
    fn a_write_through_a_marked_connection_is_forgotten_once_it_is_done() {
        let now = crate::db::now();
        let mut conn = database(now + TimeDelta::days(1));
        let cache = ClientCache::new(Duration::from_secs(3600));
        if let Some(monitor) = conn.instrumentation().downcast_mut::<ConnectionMonitor>() {
            monitor.clients = cache.clone();
        }
        let first = cache.client(&mut conn, "app", now).unwrap().unwrap();
        Client::set_enabled(&mut conn, first.client.id, false, now).unwrap();
        forget_if_written(&mut conn);
        assert!(
            !cache
                .client(&mut conn, "app", now)
                .unwrap()
                .unwrap()
                .client
                .is_enabled
        );
    }

    #[test]
    fn unknown_ids_are_cached_but_never_beyond_the_capacity() {
        let now = crate::db::now();
        let mut conn = database(now + TimeDelta::days(1));
        let cache = ClientCache::with_capacity(Duration::from_secs(3600), 8);
        for i in 0..100 {
            assert!(
                cache
                    .client(&mut conn, &format!("random-{i}"), now)
                    .unwrap()
                    .is_none()
            );
            assert!(cache.len() <= 8, "{} entries", cache.len());
        }
        assert!(cache.client(&mut conn, "app", now).unwrap().is_some());
    }

    #[test]
    fn a_load_that_began_before_a_change_is_not_kept() {
        let now = crate::db::now();
        let mut conn = database(now + TimeDelta::days(1));
        let cache = ClientCache::new(Duration::from_secs(3600));
        let Err(generation) = cache.cached("app") else {
            panic!("nothing is cached yet");
        };
        let loaded = Client::find_with_active_secrets(&mut conn, "app", now)
            .unwrap()
            .map(|(client, secrets)| Arc::new(CachedClient::new(client, secrets)));
        // The row changed, and was forgotten, while the load was reading it.
        cache.forget_all();
        cache.store(generation, "app", loaded);
        assert!(cache.cached("app").is_err(), "the load was not kept");
        // A load after the change is.
        cache.client(&mut conn, "app", now).unwrap();
        assert!(cache.cached("app").is_ok());
    }
}
