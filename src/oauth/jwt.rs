//! Access tokens as JWTs (RFC 9068): the claims, and checking a presented token.

use jsonwebtoken::{Validation, decode, decode_header};
use serde::{Deserialize, Serialize};

use super::keys::KeyRing;
use crate::domain::UserId;

/// RFC 9068 §2.1: access tokens carry `typ: at+jwt`, so an ID token or any other JWT signed by
/// the same key is never accepted as one.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// The claims of an access token (RFC 9068 §2.2), plus the client's environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    /// The user the token acts for (for client_credentials, the client's owner), as a string.
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    pub client_id: String,
    /// Space-separated granted scopes.
    pub scope: String,
    /// `sandbox` or `live`, from the client.
    pub env: String,
}

impl AccessClaims {
    pub fn has_scope(&self, name: &str) -> bool {
        self.scope.split(' ').any(|s| s == name)
    }

    pub fn user_id(&self) -> Option<UserId> {
        self.sub.parse().ok()
    }
}

/// Why a presented token was refused. Never shown in detail to callers beyond a short phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejected {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token is not an access token")]
    WrongType,
    #[error("the token was signed by an unknown key")]
    UnknownKey,
    #[error("the token signature or claims are invalid")]
    Invalid,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
}

/// Longest token accepted, so oversized input is refused before any parsing work.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Verifies signature, `typ`, `alg` (fixed per key), `iss`, `aud`, `exp` and `nbf`.
/// Revocation is checked separately, against the database.
pub fn verify(
    ring: &KeyRing,
    token: &str,
    issuer: &str,
    audience: &str,
) -> Result<AccessClaims, TokenRejected> {
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Err(TokenRejected::Malformed);
    }
    let header = decode_header(token).map_err(|_| TokenRejected::Malformed)?;
    if header
        .typ
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
        != Some(ACCESS_TOKEN_TYP)
    {
        return Err(TokenRejected::WrongType);
    }
    let kid = header.kid.as_deref().ok_or(TokenRejected::UnknownKey)?;
    let verifier = ring.verifier(kid).ok_or(TokenRejected::UnknownKey)?;
    // The algorithm comes from our key, never from the token: `none` or HS256 signed with the
    // public key fail here (RFC 8725 §3.1).
    if header.alg != verifier.algorithm {
        return Err(TokenRejected::Invalid);
    }
    let mut validation = Validation::new(verifier.algorithm);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "iat", "nbf", "iss", "aud", "sub"]);
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.leeway = 5;
    decode::<AccessClaims>(token, &verifier.key, &validation)
        .map(|data| data.claims)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenRejected::Expired,
            jsonwebtoken::errors::ErrorKind::ImmatureSignature => TokenRejected::NotYetValid,
            _ => TokenRejected::Invalid,
        })
}
