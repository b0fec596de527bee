//! What every handler receives (`web::Data<AppState>`): the pool, templates, mailer, what the
//! pages use (issuer, password hasher, server key) and the protocol's context. Its own module so that `routes/` depend on it, not on the code that builds
//! it and mounts them.

use std::sync::Arc;

use tera::Tera;

use crate::auth::password::Passwords;
use crate::crypto::ServerKey;
use crate::db::{Pool, StatementCounter};
use crate::email::Mailer;
use crate::oauth::context::OAuthContext;

/// Everything a handler may need, shared by all workers. No globals: each test builds its own.
pub struct AppState {
    pub pool: Pool,
    pub templates: Tera,
    pub mailer: Mailer,
    /// Proxies whose `X-Forwarded-For` is believed (`LATCHKEY_TRUSTED_PROXIES`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// This server's public URL, for the links pages and emails carry (the same as `oauth.issuer`).
    pub issuer: String,
    /// argon2id for the sign-in, sign-up and account pages: the same hasher (and the same bound
    /// on how many run at once) as `oauth.passwords`.
    pub passwords: Passwords,
    /// For the signed links and sealed secrets of the pages (the same key as `oauth.server_key`).
    pub server_key: ServerKey,
    /// Everything the protocol code needs (issuer, keys, lifetimes); cloned into blocking tasks.
    /// Pages use the fields above, not this.
    pub oauth: Arc<OAuthContext>,
    /// `LATCHKEY_REQUIRE_MFA_FOR_LIVE`: an application goes live only from an account with a
    /// second factor (`routes::portal`).
    pub require_mfa_for_live: bool,
    /// This server as a WebAuthn relying party (`passkeys`); `None` when the issuer's host is an
    /// IP address, where browsers refuse passkeys.
    pub passkeys: Option<Arc<crate::passkeys::RelyingParty>>,
    /// SQL statements run by the pool's connections, for `/metrics`.
    pub statements: StatementCounter,
    /// Set on SIGTERM: `/readyz` answers 503 so load balancers stop sending requests, while
    /// the ones that come are still served until the listener closes.
    pub draining: Arc<std::sync::atomic::AtomicBool>,
}

impl AppState {
    pub fn draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Relaxed)
    }
}
