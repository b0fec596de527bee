//! What every handler receives (`web::Data<AppState>`): the pool, templates, mailer and the
//! protocol's context. Its own module so that `routes/` depend on it, not on the code that builds
//! it and mounts them.

use std::sync::Arc;

use tera::Tera;

use crate::db::{Pool, StatementCounter};
use crate::email::Mailer;
use crate::oauth::context::OAuthContext;

/// Everything a handler may need, shared by all workers. No globals: each test builds its own.
pub struct AppState {
    pub pool: Pool,
    pub templates: Tera,
    pub mailer: Mailer,
    /// Proxies whose `X-Forwarded-For` is believed (`LATCHKEY_TRUSTED_PROXIES`).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Everything the protocol code needs (issuer, keys, lifetimes); cloned into blocking tasks.
    pub oauth: Arc<OAuthContext>,
    /// SQL statements run by the pool's connections, for `/metrics`.
    pub statements: StatementCounter,
}
