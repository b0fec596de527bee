//! The application: opens the database, loads keys and templates, and binds the listener.
//!
//! `Application::build` is what both `latchkey serve` and the test suite call; with port 0 the
//! operating system picks a free port, which [`Application::port`] reports.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::{self, from_fn};
use actix_web::{App, HttpServer, web};
use tera::Tera;

use crate::config::Settings;
use crate::crypto::{KeyFileError, ServerKey};
use crate::db::{self, Database, OpenError, Pool, StatementCounter};
use crate::oauth::keys::{KeyError, KeyRing, Keys};
use crate::oauth::token::OAuthContext;
use crate::{routes, telemetry, templates};

/// Everything a handler may need, shared by all workers. No globals: each test builds its own.
pub struct AppState {
    pub pool: Pool,
    pub templates: Tera,
    /// Everything the protocol code needs (issuer, keys, lifetimes); cloned into blocking tasks.
    pub oauth: Arc<OAuthContext>,
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
    #[error("signing keys: {0}")]
    Keys(#[from] KeyError),
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
    let opened = db::open(&database, settings.db_pool_size)?;
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
    server: Server,
    statements: StatementCounter,
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let settings = Arc::new(settings);
        let opening = Arc::clone(&settings);
        let (key, database, ring) = actix_web::rt::task::spawn_blocking(move || {
            let (key, database) = open_stores(&opening)?;
            let mut conn = database.pool.get().map_err(|e| OpenError::Connect {
                url: opening.database().redacted(),
                reason: e.to_string(),
            })?;
            let ring = KeyRing::load_or_create(&mut conn, &key)?;
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

        let oauth = Arc::new(OAuthContext {
            issuer: issuer.clone(),
            audience: issuer.clone(),
            server_key: key,
            keys: Keys::new(ring),
            access_token_ttl: settings.access_token_ttl(),
            refresh_token_ttl: settings.refresh_token_ttl(),
            code_ttl: settings.code_ttl(),
        });
        let statements = database.statements.clone();
        let state = web::Data::new(AppState {
            pool: database.pool,
            oauth,
            templates: templates::load()?,
        });

        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap(from_fn(telemetry::log_request))
                .wrap(middleware::NormalizePath::new(
                    middleware::TrailingSlash::MergeOnly,
                ))
                .configure(routes::configure)
        })
        // In-flight requests get this long to finish after SIGTERM or SIGINT.
        .shutdown_timeout(30)
        .client_request_timeout(Duration::from_secs(10));
        if let Some(workers) = settings.workers {
            server = server.workers(usize::from(workers));
        }
        let server = server
            .listen(listener)
            .map_err(|source| StartupError::Bind {
                addr: settings.bind.to_string(),
                source,
            })?
            .run();

        tracing::info!(
            address = %settings.bind.ip(),
            port,
            %issuer,
            database = %settings.database().redacted(),
            "latchkey is listening"
        );
        Ok(Self {
            port,
            server,
            statements,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// SQL statements run by this server so far.
    pub fn statements(&self) -> StatementCounter {
        self.statements.clone()
    }

    /// Serves until the process receives SIGTERM or SIGINT, then finishes in-flight requests.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
