//! Checking a bearer access token presented to a resource (RFC 6750): the JWT must verify, and
//! its row must exist, be unrevoked, and belong to an enabled client, so a revocation takes
//! effect at once although the token is self-contained.

use super::context::OAuthContext;
use super::jwt::{AccessClaims, TokenRejected};
use crate::crypto::TokenDigest;
use crate::db::AnyConnection;
use crate::db::models::{AccessToken, User};

/// Why a request carrying (or lacking) a bearer token is refused, per RFC 6750 §3.1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BearerError {
    /// No credentials: 401 with a bare challenge.
    Missing,
    /// 401 `invalid_token`.
    InvalidToken(String),
    /// 403 `insufficient_scope`, naming the scope needed.
    InsufficientScope(&'static str),
    /// 400 `invalid_request`: a malformed Authorization header.
    InvalidRequest(String),
    /// 503: the database could not be asked whether the token is still live.
    Unavailable,
}

/// The token from `Authorization: Bearer <token>` (RFC 6750 §2.1).
pub fn token_from_header(header: Option<&[u8]>) -> Result<String, BearerError> {
    let Some(raw) = header else {
        return Err(BearerError::Missing);
    };
    let text = std::str::from_utf8(raw).map_err(|_| {
        BearerError::InvalidRequest("The Authorization header is not valid text.".into())
    })?;
    let (scheme, token) = text.trim().split_once(' ').unwrap_or((text.trim(), ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(BearerError::Missing);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(BearerError::InvalidRequest(
            "The Bearer token is empty.".into(),
        ));
    }
    Ok(token.to_owned())
}

/// A token that passed every check, with its stored row and the user it acts for.
#[derive(Debug)]
pub struct Verified {
    pub claims: AccessClaims,
    pub row: AccessToken,
    pub user: User,
}

/// Verifies the token and checks that it is still live in the database: one statement, which
/// also reads the token's user (resources answer about them).
pub fn verify(
    conn: &mut AnyConnection,
    ctx: &OAuthContext,
    token: &str,
) -> Result<Verified, BearerError> {
    let digest = TokenDigest::of(token);
    let claims = ctx
        .check_access_token(token, &digest)
        .map_err(|e| BearerError::InvalidToken(describe(e)))?;
    let found = AccessToken::find_with_user(conn, &digest.hex()).map_err(|e| {
        tracing::error!(error = %e, "looking up an access token failed");
        BearerError::Unavailable
    })?;
    match found {
        Some((row, true, user)) if row.revoked_at.is_none() => Ok(Verified { claims, row, user }),
        Some((_, false, _)) => Err(BearerError::InvalidToken(
            "The client this token was issued to is disabled.".into(),
        )),
        _ => Err(BearerError::InvalidToken(
            "The token has been revoked.".into(),
        )),
    }
}

fn describe(rejected: TokenRejected) -> String {
    let text = rejected.to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => format!("{}{}.", first.to_uppercase(), chars.as_str()),
        None => text,
    }
}
