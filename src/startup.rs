//! The application: opens the database, loads keys and templates, and binds the listener.
//!
//! `Application::build` is what both `latchkey serve` and the test suite call; with port 0 the
//! operating system picks a free port, which [`Application::port`] reports.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_session::SessionMiddleware;
use actix_session::config::{CookieContentSecurity, PersistentSession, TtlExtensionPolicy};
use actix_web::cookie::{Key, SameSite};
use actix_web::dev::Server;
use actix_web::middleware::{self, from_fn};
use actix_web::{App, HttpServer, web};

use crate::auth::password::Passwords;
use crate::auth::session_store::DbSessionStore;
use crate::config::Settings;
use crate::crypto::{KeyFileError, ServerKey};
use crate::db::{self, Database, OpenError, Pool, StatementCounter};
use crate::email::{MailError, Mailer};
use crate::oauth::context::OAuthContext;
use crate::oauth::keys::{KeyError, KeyRing, Keys};
use crate::state::AppState;
use crate::{routes, telemetry, templates};

/// Blocking threads per worker: every task on them holds a pooled connection (`db::run`), so
/// beyond the pool's size they only wait for one. actix's default (512 over the workers) let a
/// burst of 64 token requests start 86 threads, 76 of them asleep in the pool's queue, which
/// cost 15 MiB of stacks and allocator arenas and the scheduler's time switching between them.
fn blocking_threads(pool_size: u32, workers: usize) -> usize {
    let pool = usize::try_from(pool_size).unwrap_or(usize::MAX);
    pool.div_ceil(workers.max(1)).max(1)
}

/// Why the server could not start. Each message names the setting to look at.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("LATCHKEY_SECRET_KEY: {0}")]
    SecretKey(#[from] KeyFileError),
    #[error("LATCHKEY_DATABASE_URL: {0}")]
    Database(#[from] OpenError),
    #[error("LATCHKEY_BIND: cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("LATCHKEY_METRICS_BIND: cannot listen on {addr}: {source}")]
    MetricsBind {
        addr: String,
        source: std::io::Error,
    },
    #[error("signing keys: {0}")]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Mail(#[from] MailError),
    #[error("templates: {0}")]
    Templates(#[from] tera::Error),
    #[error("start-up was interrupted")]
    Interrupted,
}

/// Opens what the server and the CLI both need: the server key, then the database (migrated).
/// Blocking.
pub fn open_stores(settings: &Settings) -> Result<(ServerKey, Database), StartupError> {
    let database = settings.database();
    // Check the database first, so a bad URL fails before a key file is written.
    let opened = db::open(&database, settings.db_pool_size, settings.client_refresh())?;
    let (key, generated) =
        ServerKey::load_or_generate(settings.secret_key.as_ref(), &settings.data_dir)?;
    if generated {
        tracing::warn!(
            path = %settings.data_dir.join(crate::crypto::SECRET_KEY_FILE).display(),
            "generated a new server secret key; keep this file, or set LATCHKEY_SECRET_KEY"
        );
        if !database.is_sqlite() {
            tracing::warn!(
                "with PostgreSQL every instance must share one key: set LATCHKEY_SECRET_KEY on all of them"
            );
        }
    }
    Ok((key, opened))
}

pub struct Application {
    port: u16,
    metrics_port: u16,
    server: Server,
    /// The metrics listener (`LATCHKEY_METRICS_BIND`): its own server, so the public one never
    /// answers `/metrics`.
    metrics: Server,
    statements: StatementCounter,
    draining: Arc<std::sync::atomic::AtomicBool>,
}

/// Stops a running [`Application`] gracefully (`latchkey serve` calls it on SIGTERM or SIGINT).
#[derive(Clone)]
pub struct Shutdown {
    server: actix_web::dev::ServerHandle,
    metrics: actix_web::dev::ServerHandle,
    draining: Arc<std::sync::atomic::AtomicBool>,
}

impl Shutdown {
    /// `/readyz` answers 503 at once while requests are still served for `delay` (so a load
    /// balancer takes this instance out first); then the listener closes and in-flight
    /// requests get `LATCHKEY_SHUTDOWN_TIMEOUT` to finish.
    pub async fn drain(self, delay: Duration) {
        self.draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(
            delay_seconds = delay.as_secs(),
            "stopping: /readyz answers 503 now; the listener closes after the delay, then in-flight requests finish"
        );
        tokio::time::sleep(delay).await;
        self.server.stop(true).await;
        self.metrics.stop(true).await;
        tracing::info!("stopped");
    }
}

/// A session ends after this long without a request (ASVS V7.3: idle timeout).
pub const SESSION_IDLE: actix_web::cookie::time::Duration =
    actix_web::cookie::time::Duration::hours(2);

impl Application {
    /// Builds the server with the mailer the settings describe (SMTP or `.eml` files).
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let mailer = Mailer::new(
            settings.smtp_url.as_ref(),
            settings.data_dir.join("mail"),
            settings.mail_from.clone(),
        )?;
        Self::build_with_mailer(settings, mailer).await
    }

    /// Builds the server with a given mailer (the tests pass an in-memory one).
    pub async fn build_with_mailer(
        settings: Settings,
        mailer: Mailer,
    ) -> Result<Self, StartupError> {
        let settings = Arc::new(settings);
        let opening = Arc::clone(&settings);
        let (key, database, ring) = actix_web::rt::task::spawn_blocking(move || {
            let (key, database) = open_stores(&opening)?;
            let mut conn = database.pool.get().map_err(|e| OpenError::Connect {
                url: opening.database().redacted(),
                reason: e.to_string(),
            })?;
            let ring = KeyRing::load_or_create(&mut conn, &key, opening.access_token_ttl())?;
            drop(conn);
            Ok::<_, StartupError>((key, database, ring))
        })
        .await
        .map_err(|_| StartupError::Interrupted)??;

        let listener = TcpListener::bind(settings.bind).map_err(|source| StartupError::Bind {
            addr: settings.bind.to_string(),
            source,
        })?;
        let local_addr = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: settings.bind.to_string(),
            source,
        })?;
        let port = local_addr.port();
        let issuer = settings.issuer(local_addr);
        // Both listeners are bound before either serves: a taken metrics port stops the start.
        let metrics_listener = TcpListener::bind(settings.metrics_bind).map_err(|source| {
            StartupError::MetricsBind {
                addr: settings.metrics_bind.to_string(),
                source,
            }
        })?;
        let metrics_port = metrics_listener
            .local_addr()
            .map_err(|source| StartupError::MetricsBind {
                addr: settings.metrics_bind.to_string(),
                source,
            })?
            .port();

        // One hasher for the pages and the password grant, so its bound on how many hashes run
        // at once holds across both.
        let passwords = Passwords::default();
        let oauth = Arc::new(OAuthContext {
            issuer: issuer.clone(),
            audience: issuer.clone(),
            server_key: key.clone(),
            keys: Keys::new(ring),
            access_token_ttl: settings.access_token_ttl(),
            refresh_token_ttl: settings.refresh_token_ttl(),
            code_ttl: settings.code_ttl(),
            dpop_nonce: settings.dpop_nonce,
            passwords: passwords.clone(),
            writer: database.writer.clone(),
            signatures: Default::default(),
            clients: database.clients.clone(),
            outcomes: Default::default(),
        });
        spawn_outcome_flush(
            Arc::clone(&oauth),
            database.pool.clone(),
            Duration::from_secs(settings.counts_interval),
        );
        spawn_key_refresh(
            Arc::clone(&oauth),
            database.pool.clone(),
            settings.access_token_ttl(),
            Duration::from_secs(settings.key_refresh),
        );
        let statements = database.statements.clone();
        let secure_cookies = issuer.starts_with("https://");
        let cookie_key = Key::from(key.cookie_key());
        let state = web::Data::new(AppState {
            pool: database.pool,
            mailer,
            trusted_proxies: settings.trusted_proxies.clone(),
            issuer: issuer.clone(),
            passwords,
            server_key: key,
            oauth,
            templates: templates::load()?,
            require_mfa_for_live: settings.require_mfa_for_live,
            passkeys: crate::passkeys::RelyingParty::for_issuer(&issuer).map(Arc::new),
            statements: statements.clone(),
            draining: Default::default(),
        });
        let draining = state.draining.clone();

        spawn_upkeep(
            state.clone().into_inner(),
            Duration::from_secs(settings.cleanup_interval),
            settings.require_mfa_for_live,
        );

        let metrics_state = state.clone();
        let mut server = HttpServer::new(move || {
            let sessions = SessionMiddleware::builder(
                DbSessionStore::new(state.pool.clone(), &SESSION_IDLE),
                cookie_key.clone(),
            )
            .cookie_name("latchkey_session".to_owned())
            .cookie_http_only(true)
            .cookie_same_site(SameSite::Lax)
            .cookie_secure(secure_cookies)
            .cookie_content_security(CookieContentSecurity::Private)
            .session_lifecycle(
                PersistentSession::default()
                    .session_ttl(SESSION_IDLE)
                    // Activity is recorded in the state at most once a minute (see
                    // `TypedSession`), so an unchanged session costs no write per request.
                    .session_ttl_extension_policy(TtlExtensionPolicy::OnStateChanges),
            )
            .build();
            App::new()
                .app_data(state.clone())
                // Page forms (CsrfForm reads the body as bytes); the API sets its own, smaller.
                .app_data(web::PayloadConfig::new(routes::limits::MAX_FORM_BODY))
                .wrap(every_response_headers(secure_cookies))
                .wrap(from_fn(routes::limits::header_limits))
                .wrap(from_fn(telemetry::log_request))
                .wrap(from_fn(routes::limits::merge_slashes))
                .configure(routes::api)
                .service(
                    web::scope("")
                        .wrap(page_headers(secure_cookies))
                        .wrap(sessions)
                        // Outside the sessions: a session store outage becomes our 503 page.
                        .wrap(from_fn(crate::error::session_store_outage))
                        .configure(routes::pages),
                )
                .default_service(web::to(routes::not_found))
        })
        // `latchkey serve` handles SIGTERM and SIGINT itself ([`Shutdown`]).
        .disable_signals()
        // In-flight requests get this long to finish once the listener closes.
        .shutdown_timeout(settings.shutdown_timeout)
        .client_request_timeout(Duration::from_secs(10));
        let workers = settings.workers.map_or_else(
            || std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            usize::from,
        );
        server = server
            .workers(workers)
            .worker_max_blocking_threads(blocking_threads(settings.db_pool_size, workers));
        let server = server
            .listen(listener)
            .map_err(|source| StartupError::Bind {
                addr: settings.bind.to_string(),
                source,
            })?
            .run();

        crate::metrics::handle();
        let scraped = metrics_state;
        let metrics = HttpServer::new(move || {
            App::new()
                .app_data(scraped.clone())
                .configure(routes::metrics)
                .default_service(web::to(routes::not_found))
        })
        .disable_signals()
        .workers(1)
        .shutdown_timeout(1)
        .listen(metrics_listener)
        .map_err(|source| StartupError::MetricsBind {
            addr: settings.metrics_bind.to_string(),
            source,
        })?
        .run();

        tracing::info!(
            address = %settings.bind.ip(),
            port,
            %issuer,
            database = %settings.database().redacted(),
            metrics_port,
            "latchkey is listening"
        );
        tracing::info!("open {issuer}/ in a browser to sign in, or to see the first steps");
        Ok(Self {
            port,
            metrics_port,
            server,
            metrics,
            statements,
            draining,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The metrics listener's port.
    pub fn metrics_port(&self) -> u16 {
        self.metrics_port
    }

    /// What stops this server gracefully.
    pub fn shutdown(&self) -> Shutdown {
        Shutdown {
            server: self.server.handle(),
            metrics: self.metrics.handle(),
            draining: self.draining.clone(),
        }
    }

    /// SQL statements run by this server so far.
    pub fn statements(&self) -> StatementCounter {
        self.statements.clone()
    }

    /// Serves until [`Shutdown`] stops it, then finishes in-flight requests.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let (served, metrics) = futures_util::future::join(self.server, self.metrics).await;
        served.and(metrics)
    }
}

/// Headers on every response, API and pages alike (pages add theirs in `page_headers`): JSON
/// and errors are never content-sniffed into something executable, and over https the browser
/// is told to stay on https (RFC 6797) whichever URL it first reached.
fn every_response_headers(https: bool) -> middleware::DefaultHeaders {
    let headers = middleware::DefaultHeaders::new().add(("X-Content-Type-Options", "nosniff"));
    if https {
        headers.add((
            "Strict-Transport-Security",
            "max-age=31536000; includeSubDomains",
        ))
    } else {
        headers
    }
}

/// Headers on every page: no framing (clickjacking), a strict content security policy, no
/// sniffing, no caching of personal pages, and HSTS when served over https.
fn page_headers(https: bool) -> middleware::DefaultHeaders {
    let headers = middleware::DefaultHeaders::new()
        .add((
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' https: data:; style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
        ))
        .add(("X-Frame-Options", "DENY"))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("Referrer-Policy", "no-referrer"))
        .add(("Cache-Control", "no-store"));
    if https {
        headers.add((
            "Strict-Transport-Security",
            "max-age=31536000; includeSubDomains",
        ))
    } else {
        headers
    }
}

/// Reloads the key ring every `every` (`LATCHKEY_KEY_REFRESH`), so a `latchkey keys rotate` is
/// used by every instance within that time. A failure keeps the current ring and is logged.
fn spawn_key_refresh(oauth: Arc<OAuthContext>, pool: Pool, token_ttl: Duration, every: Duration) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let key = oauth.server_key.clone();
            let loaded = db::run(&pool, move |conn| {
                KeyRing::load_or_create(conn, &key, token_ttl)
                    .map_err(|e| crate::db::DbError::Refresh(e.to_string()))
            })
            .await;
            match loaded {
                Ok(ring) => oauth.keys.replace(ring),
                Err(e) => {
                    tracing::warn!(error = %e, "reloading signing keys failed; keeping the current ones")
                }
            }
        }
    });
}

/// Deletes expired rows every `every` (`LATCHKEY_CLEANUP_INTERVAL`). With several instances each
/// sweeps; the deletes are idempotent.
/// Every `LATCHKEY_CLEANUP_INTERVAL` (not at start, so that a starting fleet does not sweep at
/// once): deletes what has expired (`cleanup`), and, under `LATCHKEY_REQUIRE_MFA_FOR_LIVE`,
/// reminds owners of live applications without a second factor (`notices`; each reminder is
/// claimed in the database, so a fleet sends it once).
/// Writes the counts of token requests ([`crate::oauth::outcomes`]) every few seconds.
fn spawn_outcome_flush(oauth: Arc<OAuthContext>, pool: db::Pool, every: Duration) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(e) = oauth.outcomes.flush(&pool).await {
                tracing::warn!(
                    error = %crate::error::error_chain(&e),
                    "token requests could not be counted; kept for the next try"
                );
            }
        }
    });
}

fn spawn_upkeep(state: Arc<AppState>, every: Duration, remind: bool) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let swept = db::run(&state.pool, |conn| {
                crate::cleanup::sweep(conn, db::now()).map_err(crate::db::DbError::from)
            })
            .await;
            match swept {
                Ok(removed) if removed.total() > 0 => {
                    tracing::info!(?removed, "deleted expired rows")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %crate::error::error_chain(&e), "cleanup failed"),
            }
            if !remind {
                continue;
            }
            let sent = crate::notices::remind_live_without_factor(
                &state.pool,
                &state.mailer,
                &state.templates,
                &state.issuer,
            )
            .await;
            match sent {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    reminded = n,
                    "owners of live applications without a second factor were emailed"
                ),
                Err(e) => {
                    tracing::warn!(error = %crate::error::error_chain(&e), "reminders failed")
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::blocking_threads;

    #[test]
    fn blocking_threads_add_up_to_the_pool_over_the_workers() {
        assert_eq!(blocking_threads(10, 2), 5);
        assert_eq!(
            blocking_threads(10, 3),
            4,
            "rounded up: never fewer than the pool"
        );
        assert_eq!(blocking_threads(1, 4), 1, "at least one per worker");
        assert_eq!(blocking_threads(10, 0), 10);
    }
}
