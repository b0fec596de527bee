//! `refresh_token` (RFC 6749 §6), with rotation (RFC 9700 §4.14.2): every use returns a new
//! refresh token and retires the old one; presenting a retired one revokes its whole family,
//! since either the legitimate client or an attacker holds a stolen copy. A FAPI 2.0 client's
//! token is not rotated (`fapi::rotates_refresh_tokens`), and one bound to a DPoP key needs a
//! proof by that key (RFC 9449 §5).

use chrono::NaiveDateTime;

use crate::crypto;
use crate::db::AnyConnection;
use crate::db::models::{AccessToken, Client, RefreshToken};
use crate::domain::{GrantType, Scopes};
use crate::oauth::context::OAuthContext;
use crate::oauth::error::OAuthError;
use crate::oauth::fapi;
use crate::oauth::issue::{Grantee, Issued, RefreshPlan, mint, store};

/// One message for every unusable token, so the reason leaks nothing.
const INVALID: &str = "The refresh token is invalid, expired or revoked.";

enum Outcome {
    Issued(Issued),
    /// The token had already been rotated: its family is now revoked.
    Reused,
    /// A token that is not rotated was revoked meanwhile.
    Revoked,
}

pub fn run(
    conn: &mut AnyConnection,
    ctx: &OAuthContext,
    client: &Client,
    presented: &str,
    scope: Option<&str>,
    dpop_jkt: Option<&str>,
    now: NaiveDateTime,
) -> Result<Issued, OAuthError> {
    let Some(token) = RefreshToken::find_by_digest(conn, &crypto::token_digest(presented))? else {
        return Err(OAuthError::invalid_grant(INVALID));
    };
    // Bound to the client it was issued to (RFC 6749 §6).
    if token.client_id != client.id || token.revoked_at.is_some() || token.expired_at <= now {
        return Err(OAuthError::invalid_grant(INVALID));
    }
    // RFC 9449 §5: a token bound to a DPoP key is refreshed only with a proof by that key.
    if let Some(bound) = &token.dpop_jkt
        && dpop_jkt != Some(bound.as_str())
    {
        return Err(OAuthError::invalid_grant(
            "This refresh token is bound to a DPoP key: refresh it with a DPoP proof signed by that key.",
        ));
    }
    // A refresh may narrow the scope, never widen it (RFC 6749 §6). What the client
    // may still have caps it too, in case its scopes were reduced since.
    let granted = Scopes::from_stored(&token.scope);
    let scope = match scope.map(Scopes::parse) {
        None => granted.clone(),
        Some(Err(e)) => return Err(OAuthError::invalid_scope(format!("The scope {e}."))),
        Some(Ok(asked)) if asked.is_empty() => granted.clone(),
        Some(Ok(asked)) => {
            if let Some(extra) = asked.iter().find(|s| !granted.contains(s.as_str())) {
                return Err(OAuthError::invalid_scope(format!(
                    "The scope `{extra}` was not granted to the refresh token, so it cannot be added now."
                )));
            }
            asked
        }
    };
    let allowed = client.allowed_scopes();
    let scope: Scopes = scope
        .iter()
        .filter(|s| allowed.contains(s.as_str()))
        .cloned()
        .collect();

    let who = Grantee {
        client,
        user_id: token.user_id,
        grant_type: GrantType::RefreshToken,
        scope,
        authorization_code_id: token.client_authorization_code_id,
        dpop_jkt,
    };
    // Signed before the transaction, so no write lock is held during the signature.
    let rotate = fapi::rotates_refresh_tokens(client);
    let plan = if rotate {
        RefreshPlan::Rotate {
            family_id: &token.family_id,
        }
    } else {
        RefreshPlan::Keep { id: token.id }
    };
    let minted = mint(ctx, &who, plan, now)?;
    let outcome = crate::db::write_transaction(conn, |conn| {
        if token.used_at.is_some() || (rotate && !RefreshToken::claim(conn, token.id, now)?) {
            RefreshToken::revoke_family(conn, &token.family_id, now)?;
            AccessToken::revoke_family(conn, &token.family_id, now)?;
            return Ok::<_, OAuthError>(Outcome::Reused);
        }
        // Not rotated: the token must still be live now, in this transaction.
        if !rotate && !RefreshToken::is_live(conn, token.id, now)? {
            return Ok(Outcome::Revoked);
        }
        store(conn, ctx, &who, minted, now).map(Outcome::Issued)
    })?;
    match outcome {
        Outcome::Issued(issued) => Ok(issued),
        Outcome::Reused => {
            tracing::warn!(client_id = %client.client_id, family = %token.family_id, "refresh token reused; family revoked");
            Err(OAuthError::invalid_grant(INVALID))
        }
        Outcome::Revoked => Err(OAuthError::invalid_grant(INVALID)),
    }
}
