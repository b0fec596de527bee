//! What the protocol code needs from the server's configuration: issuer, keys, token lifetimes,
//! the password hasher, the SQLite writer queue and the client cache. Built once when the server starts, shared by
//! the token endpoint, the grants, introspection and bearer-token checks.

use std::time::Duration;

use super::keys::Keys;
use crate::crypto::ServerKey;
use crate::db;

/// What the protocol code needs from the server's configuration.
pub struct OAuthContext {
    pub issuer: String,
    /// The `aud` of access tokens: the APIs behind this server.
    pub audience: String,
    pub server_key: ServerKey,
    pub keys: Keys,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub code_ttl: Duration,
    /// Whether DPoP proofs must carry a server nonce (`LATCHKEY_DPOP_NONCE`).
    pub dpop_nonce: bool,
    /// argon2id, with its bound on how many run at once.
    pub passwords: crate::auth::password::Passwords,
    /// The queue for this process's SQLite writes: the token endpoint's writes go through it.
    pub writer: db::Writer,
    /// Access tokens whose signatures this process has verified.
    pub signatures: super::jwt::Signatures,
    /// The clients client authentication reads (the pool's: writes through it keep it current).
    pub clients: db::ClientCache,
    /// Token requests counted since the last flush, for the activity page.
    pub outcomes: super::outcomes::Outcomes,
}

impl OAuthContext {
    /// Checks a presented access token against this server's keys, issuer and audience, with
    /// its signature verified once per process ([`super::jwt::verify_cached`]). The caller
    /// still checks the token's row (revocation).
    pub fn check_access_token(
        &self,
        token: &str,
        digest: &crate::crypto::TokenDigest,
    ) -> Result<super::jwt::AccessClaims, super::jwt::TokenRejected> {
        let ring = self.keys.current();
        super::jwt::verify_cached(
            &self.signatures,
            &ring,
            token,
            digest,
            &self.issuer,
            &self.audience,
        )
    }
}
