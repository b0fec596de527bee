//! Token introspection (RFC 7662) and revocation (RFC 7009), for resource servers and clients.
//!
//! Both take a token of either kind. Access tokens are found by the digest of the JWT (and their
//! signature is checked), refresh tokens by the digest of the opaque value. `token_type_hint`
//! only decides which table is looked in first (RFC 7662 §2.1, RFC 7009 §2.1). Both act only
//! for callers entitled to the token: introspection per [`may_introspect`], revocation for the
//! client it was issued to.

use chrono::NaiveDateTime;
use diesel::QueryResult;
use serde::Serialize;

use super::client_auth::{self, Presented};
use super::context::OAuthContext;
use super::error::OAuthError;
use super::jwt::{self, Confirmation};
use super::params::{self, Params};
use super::request::BodyCredentials;
use crate::crypto::TokenDigest;
use crate::db::models::{AccessToken, Client, RefreshToken};
use crate::db::{self, AnyConnection};

/// Which kind of token the caller believes it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hint {
    AccessToken,
    RefreshToken,
}

impl Hint {
    /// Unknown hints are ignored, as RFC 7662 §2.1 allows.
    pub fn parse(value: Option<&str>) -> Option<Self> {
        match value? {
            "access_token" => Some(Self::AccessToken),
            "refresh_token" => Some(Self::RefreshToken),
            _ => None,
        }
    }
}

/// Which of the two endpoints a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// RFC 7662: what the token says.
    Introspect,
    /// RFC 7009: end the token.
    Revoke,
}

/// An introspection or revocation request, from its form body (RFC 7662 §2.1, RFC 7009 §2.1).
#[derive(Debug)]
pub struct TokenQuery {
    pub token: String,
    pub hint: Option<Hint>,
    pub body_credentials: BodyCredentials,
}

impl TokenQuery {
    /// Reads the form body: [`params::INTROSPECT`]'s names, each at most once; `token` required.
    pub fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        let mut form = Params::from_form(body, params::INTROSPECT)?;
        let body_credentials = BodyCredentials::take(&mut form);
        Ok(Self {
            token: form.require("token")?,
            hint: Hint::parse(form.get("token_type_hint")),
            body_credentials,
        })
    }
}

/// One request to either endpoint, after its caller authenticated as at the token endpoint.
/// Introspection reveals who a token acts for, so a public client (which proves nothing) may
/// not introspect; the answer to anything else is `{"active": false}` ([`introspect`]).
/// Revocation answers nothing: 200 whether or not there was a token to end (RFC 7009 §2.2).
pub fn answer(
    conn: &mut AnyConnection,
    ctx: &OAuthContext,
    action: Action,
    authorization: Option<&[u8]>,
    request: &TokenQuery,
) -> Result<Option<Introspection>, OAuthError> {
    let presented = client_auth::presented(authorization, &request.body_credentials)?;
    if action == Action::Introspect && matches!(presented, Presented::PublicClient { .. }) {
        return Err(OAuthError::invalid_client());
    }
    let endpoint = match action {
        Action::Introspect => client_auth::Endpoint::Introspect,
        Action::Revoke => client_auth::Endpoint::Revoke,
    };
    let caller = client_auth::authenticate(conn, ctx, &presented, endpoint, db::now())?;
    let caller = caller.client();
    match action {
        Action::Introspect => Ok(Some(introspect(
            conn,
            ctx,
            caller,
            &request.token,
            request.hint,
        )?)),
        Action::Revoke => {
            revoke(conn, caller, &request.token, request.hint)?;
            Ok(None)
        }
    }
}

/// A stored token, its client and its user's username.
enum Found {
    Access(AccessToken, Client, String),
    Refresh(RefreshToken, Client, String),
}

fn find(
    conn: &mut AnyConnection,
    token: &str,
    digest: &TokenDigest,
    hint: Option<Hint>,
) -> QueryResult<Option<Found>> {
    if token.is_empty() || token.len() > jwt::MAX_TOKEN_LEN {
        return Ok(None);
    }
    let digest = digest.hex();
    let access = |conn: &mut AnyConnection| -> QueryResult<Option<Found>> {
        AccessToken::find_with_client(conn, &digest)
            .map(|row| row.map(|(t, c, u)| Found::Access(t, c, u)))
    };
    let refresh = |conn: &mut AnyConnection| -> QueryResult<Option<Found>> {
        RefreshToken::find_with_client(conn, &digest)
            .map(|row| row.map(|(t, c, u)| Found::Refresh(t, c, u)))
    };
    match hint {
        Some(Hint::RefreshToken) => match refresh(conn)? {
            Some(found) => Ok(Some(found)),
            None => access(conn),
        },
        _ => match access(conn)? {
            Some(found) => Ok(Some(found)),
            None => refresh(conn),
        },
    }
}

/// RFC 7662 §2.2's answer: `{"active": false}`, or the token's details beside `active: true`.
#[derive(Debug, Serialize)]
pub struct Introspection {
    pub active: bool,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub details: Option<Details>,
}

/// What an active token's introspection says (RFC 7662 §2.2), and its client's environment.
#[derive(Debug, Serialize)]
pub struct Details {
    pub scope: String,
    pub client_id: String,
    pub username: String,
    pub sub: String,
    pub aud: String,
    pub iss: String,
    pub exp: i64,
    pub iat: i64,
    pub token_type: &'static str,
    pub env: &'static str,
    /// RFC 9449 §6.2: the DPoP key a bound token is bound to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

impl Introspection {
    fn inactive() -> Self {
        Self {
            active: false,
            details: None,
        }
    }
}

fn timestamp(at: NaiveDateTime) -> i64 {
    at.and_utc().timestamp()
}

/// Whether `caller` may learn what a token issued to `issued_to` says (RFC 7662 §4: the server
/// "MUST determine whether the token can be introspected by the caller"; §2.2 answers
/// `active: false` to anyone else). The answer names the user, the subject and the scopes, so
/// it goes only to
/// - the client the token was issued to;
/// - another client of the same owner: the merchant's own resource server (organizations,
///   when they come, widen "owner" to the organization);
/// - a client the operator marked as a resource server (`latchkey client set
///   --resource-server true`), such as an API that serves every merchant's apps.
///
/// Any other merchant, however authenticated, learns nothing.
pub fn may_introspect(caller: &Client, issued_to: &Client) -> bool {
    caller.id == issued_to.id || caller.user_id == issued_to.user_id || caller.is_resource_server
}

/// RFC 7662 §2.2: `{"active": false}` for anything not currently valid, and for a token the
/// caller may not introspect ([`may_introspect`]); never an error.
pub fn introspect(
    conn: &mut AnyConnection,
    ctx: &OAuthContext,
    caller: &Client,
    token: &str,
    hint: Option<Hint>,
) -> QueryResult<Introspection> {
    let inactive = Introspection::inactive();
    let now = db::now();
    let digest = TokenDigest::of(token);
    let Some(found) = find(conn, token, &digest, hint)? else {
        return Ok(inactive);
    };
    let issued_to = match &found {
        Found::Access(_, client, _) | Found::Refresh(_, client, _) => client,
    };
    // The same answer as for an unknown token: a stranger cannot tell the two apart.
    if !may_introspect(caller, issued_to) {
        return Ok(inactive);
    }
    let (client, user_id, username, scope, iat, exp, aud, token_type, cnf) = match found {
        Found::Access(row, client, username) => {
            // The signature and claims must hold too: a row alone is not enough.
            let Ok(claims) = ctx.check_access_token(token, &digest) else {
                return Ok(inactive);
            };
            if row.revoked_at.is_some() || row.expired_at <= now {
                return Ok(inactive);
            }
            let token_type = if claims.cnf.is_some() {
                "DPoP"
            } else {
                "Bearer"
            };
            (
                client,
                row.user_id,
                username,
                row.scope,
                row.created_at,
                row.expired_at,
                row.audience,
                token_type,
                claims.cnf,
            )
        }
        Found::Refresh(row, client, username) => {
            if row.revoked_at.is_some() || row.used_at.is_some() || row.expired_at <= now {
                return Ok(inactive);
            }
            (
                client,
                row.user_id,
                username,
                row.scope,
                row.created_at,
                row.expired_at,
                row.audience,
                "refresh_token",
                row.dpop_jkt.map(|jkt| Confirmation { jkt }),
            )
        }
    };
    if !client.is_enabled {
        return Ok(inactive);
    }
    Ok(Introspection {
        active: true,
        details: Some(Details {
            scope,
            env: client.environment(),
            client_id: client.client_id,
            username,
            sub: user_id.to_string(),
            aud,
            iss: ctx.issuer.clone(),
            exp: timestamp(exp),
            iat: timestamp(iat),
            token_type,
            cnf,
        }),
    })
}

/// RFC 7009 §2.1: revokes the token if it belongs to `caller`; anything else changes nothing.
/// A refresh token takes its whole family with it, and the access tokens issued from it.
pub fn revoke(
    conn: &mut AnyConnection,
    caller: &Client,
    token: &str,
    hint: Option<Hint>,
) -> QueryResult<bool> {
    let now = db::now();
    let Some(found) = find(conn, token, &TokenDigest::of(token), hint)? else {
        return Ok(false);
    };
    match found {
        Found::Access(row, client, _) if client.id == caller.id => {
            AccessToken::revoke(conn, row.id, now)?;
            Ok(true)
        }
        Found::Refresh(row, client, _) if client.id == caller.id => {
            db::write_transaction(conn, |conn| {
                RefreshToken::revoke_family(conn, &row.family_id, now)?;
                AccessToken::revoke_family(conn, &row.family_id, now)?;
                Ok(true)
            })
        }
        _ => Ok(false),
    }
}
