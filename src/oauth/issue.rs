//! Issuing tokens, shared by every grant (RFC 6749 §5.1): resolve the scope, sign the access
//! token (and an id_token for OpenID Connect), draw a refresh token, and store their rows.
//! A grant decides *what* to issue (a [`Grantee`] and a [`RefreshPlan`]); this module does the
//! issuing, so no grant depends on the token endpoint that dispatches to it.

use std::time::Duration;

use chrono::{NaiveDateTime, TimeDelta};

use std::sync::Arc;

use parking_lot::Mutex;

use super::client_auth::{SingleUse, SingleUseKind};
use super::context::OAuthContext;
use super::error::OAuthError;
use super::jwt::{ACCESS_TOKEN_TYP, AccessClaims, Confirmation};
use crate::crypto;
use crate::db::models::{AccessToken, Client, NewAccessToken, NewRefreshToken, RefreshToken};
use crate::db::{AnyConnection, GroupedWrite, Uncommitted};
use crate::domain::{AuthorizationCodeId, GrantType, RefreshTokenId, Scopes, UserId};

/// A successful token response, before a dialect spells it.
#[derive(Debug, Clone)]
pub struct Issued {
    pub access_token: String,
    /// OpenID Connect, for the authorization-code grant with scope `openid`.
    pub id_token: Option<String>,
    pub expires_in: u64,
    pub refresh_token: Option<String>,
    pub refresh_token_expires_in: Option<u64>,
    pub scope: Scopes,
    /// Bound to a DPoP key (RFC 9449 §5): `token_type` is `DPoP`, not `Bearer`.
    pub dpop_bound: bool,
    /// Set by a grouped write that spent single-use identifiers with the token's row
    /// ([`store_grouped`]): which one, if any, had been used before (then no row was written).
    replayed: Option<Arc<Mutex<Option<SingleUseKind>>>>,
}

impl Issued {
    /// The tokens, once their group commit is done, if every single-use identifier spent in it
    /// was new; otherwise the refusal for the one that was not (and no row was written).
    pub fn single_use_kept(self) -> Result<Self, OAuthError> {
        let replayed = self.replayed.as_ref().and_then(|r| *r.lock());
        match replayed {
            Some(kind) => Err(kind.replayed()),
            None => Ok(self),
        }
    }

    /// `token_type` (RFC 6749 §7.1, RFC 9449 §5).
    pub fn token_type(&self) -> &'static str {
        if self.dpop_bound { "DPoP" } else { "Bearer" }
    }
}

/// The scope to grant a token request ([`Scopes::grant`]), as the token endpoint's error.
pub fn resolve_scope(requested: Option<&str>, allowed: &Scopes) -> Result<Scopes, OAuthError> {
    Scopes::grant(requested, allowed)
        .map_err(|refusal| OAuthError::invalid_scope(refusal.describe()))
}

/// Where a new refresh token comes from.
pub enum RefreshPlan<'a> {
    /// No refresh token.
    None,
    /// The first of a new rotation family.
    NewFamily,
    /// The next token of an existing family.
    Rotate { family_id: &'a str },
    /// No new refresh token: the one presented stays in use (`fapi::rotates_refresh_tokens`),
    /// and the new access token goes with it, so revoking it revokes them together.
    Keep { id: RefreshTokenId },
}

impl RefreshPlan<'_> {
    /// A new family for a client that may use `refresh_token`, none for one that may not: what
    /// a grant that begins a person's authorization (code, password) issues.
    pub fn new_family_if_allowed(client: &Client) -> Self {
        if client
            .allowed_grant_types()
            .contains(&GrantType::RefreshToken)
        {
            Self::NewFamily
        } else {
            Self::None
        }
    }
}

/// What a grant decided to issue.
pub struct Grantee<'a> {
    pub client: &'a Client,
    pub user_id: UserId,
    pub grant_type: GrantType,
    pub scope: Scopes,
    pub authorization_code_id: Option<AuthorizationCodeId>,
    /// The DPoP key the tokens are bound to (`cnf.jkt`), if the request carried a proof.
    pub dpop_jkt: Option<&'a str>,
}

/// Tokens made but not yet stored: the CPU-bound half of issuing, done before any database
/// write lock is taken.
pub struct Minted {
    access_token: String,
    id_token: Option<String>,
    access_expires_at: NaiveDateTime,
    /// The refresh token and its family, if one is issued.
    refresh: Option<(String, String)>,
    /// The refresh token kept in use ([`RefreshPlan::Keep`]).
    kept: Option<RefreshTokenId>,
}

/// Signs the access token (and draws a refresh token, per `plan`).
pub fn mint(
    ctx: &OAuthContext,
    who: &Grantee<'_>,
    plan: RefreshPlan<'_>,
    now: NaiveDateTime,
) -> Result<Minted, OAuthError> {
    let access_expires_at = now + seconds(ctx.access_token_ttl);
    let claims = AccessClaims {
        iss: ctx.issuer.clone(),
        sub: who.user_id.to_string(),
        aud: ctx.audience.clone(),
        exp: access_expires_at.and_utc().timestamp(),
        iat: now.and_utc().timestamp(),
        nbf: now.and_utc().timestamp(),
        jti: crypto::random_token(16),
        client_id: who.client.client_id.clone(),
        scope: who.scope.to_stored(),
        env: who.client.environment().to_owned(),
        cnf: who.dpop_jkt.map(|jkt| Confirmation {
            jkt: jkt.to_owned(),
        }),
    };
    let access_token = ctx
        .keys
        .current()
        .signer
        .sign(ACCESS_TOKEN_TYP, &claims)
        .map_err(|e| {
            tracing::error!(error = %e, "signing an access token failed");
            OAuthError::server_error()
        })?;
    let (family, kept) = match plan {
        RefreshPlan::None => (None, None),
        RefreshPlan::NewFamily => (Some(crypto::random_token(16)), None),
        RefreshPlan::Rotate { family_id } => (Some(family_id.to_owned()), None),
        RefreshPlan::Keep { id } => (None, Some(id)),
    };
    Ok(Minted {
        access_token,
        id_token: None,
        access_expires_at,
        refresh: family.map(|family| (crypto::random_token(32), family)),
        kept,
    })
}

/// Stores minted tokens: the refresh token's row (if any), then the access token's. Call inside
/// a write transaction when other writes must go with them.
pub fn store(
    conn: &mut AnyConnection,
    ctx: &OAuthContext,
    who: &Grantee<'_>,
    minted: Minted,
    now: NaiveDateTime,
) -> Result<Issued, OAuthError> {
    let scope = who.scope.to_stored();
    let refresh_id = match &minted.refresh {
        None => minted.kept,
        Some((token, family_id)) => Some(RefreshToken::insert(
            conn,
            &NewRefreshToken {
                client_id: who.client.id,
                user_id: who.user_id,
                refresh_token: &crypto::token_digest(token),
                grant_type: who.grant_type.as_str(),
                scope: &scope,
                audience: &ctx.audience,
                family_id,
                client_authorization_code_id: who.authorization_code_id,
                expired_at: now + seconds(ctx.refresh_token_ttl),
                created_at: now,
                // RFC 9449 §5: a public client's refresh token is bound to its DPoP key; a
                // confidential client's is bound to the client's own authentication.
                dpop_jkt: who.dpop_jkt.filter(|_| !who.client.is_confidential),
            },
        )?),
    };
    AccessToken::insert(
        conn,
        &NewAccessToken {
            client_id: who.client.id,
            user_id: who.user_id,
            client_refresh_token_id: refresh_id,
            access_token: &crypto::token_digest(&minted.access_token),
            grant_type: who.grant_type.as_str(),
            scope: &scope,
            audience: &ctx.audience,
            client_authorization_code_id: who.authorization_code_id,
            expired_at: minted.access_expires_at,
            created_at: now,
        },
    )?;
    Ok(issued(ctx, who, minted))
}

/// The response for `minted`, once its rows are stored.
fn issued(ctx: &OAuthContext, who: &Grantee<'_>, minted: Minted) -> Issued {
    Issued {
        access_token: minted.access_token,
        expires_in: ctx.access_token_ttl.as_secs(),
        refresh_token_expires_in: minted
            .refresh
            .as_ref()
            .map(|_| ctx.refresh_token_ttl.as_secs()),
        refresh_token: minted.refresh.map(|(token, _)| token),
        scope: who.scope.clone(),
        id_token: minted.id_token,
        dpop_bound: who.dpop_jkt.is_some(),
        replayed: None,
    }
}

/// Stores an access token issued without a refresh token, its row's one INSERT in a group
/// commit with other requests' ([`Writer::defer`](crate::db::Writer::defer)): the busiest
/// path through the server (`client_credentials`). The tokens come out of the
/// [`Uncommitted`] once the row is committed.
///
/// `once` (a client assertion's and a DPoP proof's `jti`s) are spent in the same write, before
/// the row: if one was used before, the row is not written and the tokens are refused once the
/// group is committed ([`Issued::single_use_kept`]). A replay thus costs the group nothing (it
/// is not an error that would roll the others back), and the request never waits for a turn of
/// its own.
pub fn store_grouped(
    conn: &mut AnyConnection,
    ctx: &OAuthContext,
    who: &Grantee<'_>,
    minted: Minted,
    once: Vec<SingleUse>,
    now: NaiveDateTime,
) -> Result<Uncommitted<Issued>, OAuthError> {
    debug_assert!(
        minted.refresh.is_none() && minted.kept.is_none() && who.authorization_code_id.is_none()
    );
    let (client_id, user_id) = (who.client.id, who.user_id);
    let digest = crypto::token_digest(&minted.access_token);
    let grant_type = who.grant_type.as_str();
    let scope = who.scope.to_stored();
    let audience = ctx.audience.clone();
    let expired_at = minted.access_expires_at;
    let mut issued = issued(ctx, who, minted);
    let replayed = Arc::new(Mutex::new(None));
    if !once.is_empty() {
        issued.replayed = Some(Arc::clone(&replayed));
    }
    let write: GroupedWrite = Box::new(move |conn| {
        // Decided afresh on every run: a group that failed is rolled back and each write runs
        // again alone.
        let mut verdict = None;
        for id in &once {
            if !id.record(conn)? {
                verdict = Some(id.kind);
                break;
            }
        }
        *replayed.lock() = verdict;
        if verdict.is_some() {
            return Ok(());
        }
        AccessToken::insert(
            conn,
            &NewAccessToken {
                client_id,
                user_id,
                client_refresh_token_id: None,
                access_token: &digest,
                grant_type,
                scope: &scope,
                audience: &audience,
                client_authorization_code_id: None,
                expired_at,
                created_at: now,
            },
        )
    });
    Ok(ctx.writer.defer(conn, write, issued)?)
}

/// What an id_token says about the person (OpenID Connect Core §2, §5.4).
pub struct Identity<'a> {
    pub user: &'a crate::db::models::User,
    pub auth_time: Option<NaiveDateTime>,
    pub nonce: Option<&'a str>,
}

#[derive(serde::Serialize)]
struct IdClaims<'a> {
    iss: &'a str,
    sub: String,
    aud: &'a str,
    exp: i64,
    iat: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    at_hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    preferred_username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email_verified: Option<bool>,
}

impl Minted {
    /// Adds an id_token for `who` (OpenID Connect Core §3.1.3.6), audience the client, with
    /// `at_hash` binding it to this access token.
    pub fn with_id_token(
        mut self,
        ctx: &OAuthContext,
        who: &Grantee<'_>,
        identity: &Identity<'_>,
        now: NaiveDateTime,
    ) -> Result<Self, OAuthError> {
        use base64::Engine as _;
        use sha2::Digest as _;
        // §3.1.3.6: the left half of the hash of the access token, with the hash of the id_token's
        // algorithm (SHA-256 for both RS256 and ES256).
        let digest = sha2::Sha256::digest(self.access_token.as_bytes());
        let at_hash = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16]);
        let profile = who.scope.contains("profile");
        let email = who.scope.contains("email");
        let claims = IdClaims {
            iss: &ctx.issuer,
            sub: identity.user.id.to_string(),
            aud: &who.client.client_id,
            exp: (now + seconds(ctx.access_token_ttl)).and_utc().timestamp(),
            iat: now.and_utc().timestamp(),
            auth_time: identity.auth_time.map(|t| t.and_utc().timestamp()),
            nonce: identity.nonce,
            at_hash,
            name: profile.then_some(identity.user.name.as_str()),
            preferred_username: profile.then_some(identity.user.username.as_str()),
            email: if email {
                identity.user.email.as_deref()
            } else {
                None
            },
            email_verified: email.then_some(identity.user.email_verified_at.is_some()),
        };
        let token = ctx
            .keys
            .current()
            .signer
            .sign("JWT", &claims)
            .map_err(|e| {
                tracing::error!(error = %e, "signing an id_token failed");
                OAuthError::server_error()
            })?;
        self.id_token = Some(token);
        Ok(self)
    }
}

fn seconds(duration: Duration) -> TimeDelta {
    TimeDelta::seconds(i64::try_from(duration.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::error::ErrorCode;

    #[test]
    fn scope_resolution() {
        let allowed = Scopes::parse("get_user_profile manage_payment").unwrap();
        assert_eq!(resolve_scope(None, &allowed).unwrap(), allowed);
        assert_eq!(resolve_scope(Some(" "), &allowed).unwrap(), allowed);
        assert_eq!(
            resolve_scope(Some("manage_payment"), &allowed)
                .unwrap()
                .to_stored(),
            "manage_payment"
        );
        assert_eq!(
            resolve_scope(Some("manage_payment,get_user_profile"), &allowed).unwrap(),
            allowed
        );
        assert_eq!(
            resolve_scope(Some("admin"), &allowed).unwrap_err().code,
            ErrorCode::InvalidScope
        );
        assert_eq!(
            resolve_scope(Some("Bad\"Scope"), &allowed)
                .unwrap_err()
                .code,
            ErrorCode::InvalidScope
        );
    }
}
