//! Checking an access token presented to a resource, as a bearer token (RFC 6750) or with a
//! DPoP proof (RFC 9449 §7): the JWT must verify, and its row must exist, be unrevoked, and
//! belong to an enabled client, so a revocation takes effect at once although the token is
//! self-contained. A token bound to a DPoP key (`cnf.jkt`) is accepted only under the `DPoP`
//! scheme with a proof by that key, whose `jti` is then spent; an unbound one only as Bearer.

use subtle::ConstantTimeEq as _;

use super::context::OAuthContext;
use super::dpop::{self, DpopError, Proof};
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
    /// 401 `invalid_token` under a `DPoP` challenge: a DPoP-bound token sent as Bearer.
    BoundToKey,
    /// 401 `invalid_dpop_proof` or `use_dpop_nonce` (RFC 9449 §7.1, §9).
    Dpop(DpopError),
}

/// The scheme of the `Authorization` header: the challenge of a refusal is in the same one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Bearer,
    Dpop,
}

/// An access token as presented: its scheme, and for `DPoP` the proof that passed
/// [`dpop::check`] (its `jti` not yet spent).
#[derive(Debug)]
pub struct Presented {
    pub token: String,
    pub proof: Option<Proof>,
}

/// The token and scheme from `Authorization: Bearer <token>` (RFC 6750 §2.1) or
/// `Authorization: DPoP <token>` (RFC 9449 §7.1).
pub fn from_header(header: Option<&[u8]>) -> Result<(Scheme, String), BearerError> {
    let Some(raw) = header else {
        return Err(BearerError::Missing);
    };
    let text = std::str::from_utf8(raw).map_err(|_| {
        BearerError::InvalidRequest("The Authorization header is not valid text.".into())
    })?;
    let (scheme, token) = text.trim().split_once(' ').unwrap_or((text.trim(), ""));
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Scheme::Dpop
    } else {
        return Err(BearerError::Missing);
    };
    let token = token.trim();
    if token.is_empty() {
        return Err(BearerError::InvalidRequest(
            "The access token is empty.".into(),
        ));
    }
    Ok((scheme, token.to_owned()))
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
    presented: &Presented,
) -> Result<Verified, BearerError> {
    let token = presented.token.as_str();
    let digest = TokenDigest::of(token);
    let claims = ctx
        .check_access_token(token, &digest)
        .map_err(|e| BearerError::InvalidToken(describe(e)))?;
    match (&claims.cnf, &presented.proof) {
        (None, None) => {}
        (Some(_), None) => return Err(BearerError::BoundToKey),
        (None, Some(_)) => {
            return Err(BearerError::InvalidToken(
                "This token is not bound to a DPoP key: send it as Bearer.".into(),
            ));
        }
        (Some(cnf), Some(proof)) => {
            let same: bool = cnf.jkt.as_bytes().ct_eq(proof.jkt.as_bytes()).into();
            if !same {
                return Err(BearerError::InvalidToken(
                    "The DPoP proof is signed by another key than the one this token is bound to."
                        .into(),
                ));
            }
        }
    }
    let found = AccessToken::find_with_user(conn, &digest.hex()).map_err(|e| {
        tracing::error!(error = %e, "looking up an access token failed");
        BearerError::Unavailable
    })?;
    match found {
        Some((row, true, user)) if row.revoked_at.is_none() => {
            // Spent only for a live token, so that made-up tokens cannot fill the table.
            if let Some(proof) = &presented.proof {
                dpop::spend(conn, ctx, proof)
                    .map_err(|e| {
                        tracing::error!(error = %e, "recording a DPoP proof failed");
                        BearerError::Unavailable
                    })?
                    .map_err(BearerError::Dpop)?;
            }
            Ok(Verified { claims, row, user })
        }
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
