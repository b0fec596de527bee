//! `authorization_code` (RFC 6749 §4.1.3) with PKCE (RFC 7636 §4.6): the code must be unused,
//! unexpired, issued to this client, redeemed with the same redirect URI (required when the
//! authorization request named one), and, if it carries a challenge, with the matching
//! verifier. A second redemption revokes what the first one got. The person's consent must
//! still cover the code's scope when it is claimed: a code does not outlive the person
//! revoking the application (see `authorizations::revoke`). The claim checks all of it in one
//! statement; only a refused request reads the code, to say why.

use chrono::NaiveDateTime;

use crate::crypto;
use crate::db::AnyConnection;
use crate::db::models::{AuthorizationCode, ClaimTerms, Client, User};
use crate::domain::{GrantType, Scopes};
use crate::oauth::context::OAuthContext;
use crate::oauth::error::OAuthError;
use crate::oauth::issue::{Grantee, Identity, Issued, RefreshPlan, mint, store};
use crate::oauth::pkce;

const INVALID: &str = "The authorization code is invalid, expired or already used.";

enum Outcome {
    Issued(Issued),
    Replayed,
    /// The consent was withdrawn (or narrowed) after the code was issued. The code is spent.
    ConsentGone,
}

/// What the token request presents with `grant_type=authorization_code` (RFC 6749 §4.1.3,
/// RFC 7636 §4.5).
pub struct Redemption<'a> {
    pub code: &'a str,
    pub redirect_uri: Option<&'a str>,
    pub code_verifier: Option<&'a str>,
}

pub fn run(
    conn: &mut AnyConnection,
    ctx: &OAuthContext,
    client: &Client,
    redemption: &Redemption<'_>,
    dpop_jkt: Option<&str>,
    now: NaiveDateTime,
) -> Result<Issued, OAuthError> {
    let digest = crypto::token_digest(redemption.code);
    // The verifier's challenge, or none: a code issued without a challenge is redeemed without
    // a verifier, and only by a confidential client that is not bound to FAPI 2.0. A malformed
    // verifier, or none where PKCE is required, cannot match: the code is read to say why.
    let challenge = redemption.code_verifier.map(pkce::s256_challenge);
    let pkce_required = !client.is_confidential || client.fapi2;
    let claimable = match &challenge {
        Some(computed) => computed.is_some(),
        None => !pkce_required,
    };
    let terms = ClaimTerms {
        digest: &digest,
        client: client.id,
        redirect_uri: redemption.redirect_uri,
        challenge: challenge.as_ref().and_then(|c| c.as_deref()),
        now,
    };
    // The claim checks every term in its own WHERE and reads the consent in its RETURNING, so
    // the success path is one statement besides the tokens' rows, all in one transaction: a
    // revocation cannot slip in between the claim and the rows (on PostgreSQL one running now
    // waits for the claimed row). The tokens are signed in the transaction, once the claim
    // has said whose they are: on SQLite that holds the write lock for a signature (tens of
    // microseconds with ES256, a few hundred with RS256), which people's sign-ins, not
    // machines, set the pace of.
    let outcome = if claimable {
        crate::db::write_transaction(conn, |conn| {
            let Some((stored, granted)) = AuthorizationCode::claim(conn, &terms)? else {
                return Ok::<_, OAuthError>(None);
            };
            let granted = granted.map(|scope| Scopes::from_stored(&scope));
            let scope = Scopes::from_stored(&stored.scope);
            if !granted.is_some_and(|g| scope.is_subset(&g)) {
                return Ok(Some(Outcome::ConsentGone));
            }
            issue(conn, ctx, client, &stored, scope, dpop_jkt, now)
                .map(|issued| Some(Outcome::Issued(issued)))
        })?
    } else {
        None
    };
    let outcome = match outcome {
        Some(outcome) => outcome,
        None => refusal(conn, client, redemption, now)?,
    };
    match outcome {
        Outcome::Issued(issued) => Ok(issued),
        Outcome::Replayed => {
            tracing::warn!(client_id = %client.client_id, "authorization code replayed; its tokens are revoked");
            Err(OAuthError::invalid_grant(INVALID))
        }
        Outcome::ConsentGone => Err(OAuthError::invalid_grant(
            "The person withdrew their consent after this code was issued.",
        )),
    }
}

/// Signs and stores the tokens of a claimed code.
fn issue(
    conn: &mut AnyConnection,
    ctx: &OAuthContext,
    client: &Client,
    stored: &AuthorizationCode,
    scope: Scopes,
    dpop_jkt: Option<&str>,
    now: NaiveDateTime,
) -> Result<Issued, OAuthError> {
    let plan = RefreshPlan::new_family_if_allowed(client);
    let who = Grantee {
        client,
        user_id: stored.user_id,
        grant_type: GrantType::AuthorizationCode,
        scope,
        authorization_code_id: Some(stored.id),
        dpop_jkt,
    };
    let mut minted = mint(ctx, &who, plan, now)?;
    // OpenID Connect: scope `openid` adds an id_token.
    if who.scope.contains("openid") {
        let user =
            User::find(conn, stored.user_id)?.ok_or_else(|| OAuthError::invalid_grant(INVALID))?;
        let identity = Identity {
            user: &user,
            auth_time: stored.auth_time,
            nonce: stored.nonce.as_deref(),
        };
        minted = minted.with_id_token(ctx, &who, &identity, now)?;
    }
    store(conn, ctx, &who, minted, now)
}

/// Why a code could not be claimed, from the code itself, checked in the order the request's
/// parts are judged: unknown, another client's or expired; the redirect URI; PKCE; and last,
/// spent: a second redemption that gets that far revokes what the first one got (RFC 6749
/// §4.1.2). A request that fails an earlier check spends nothing and revokes nothing.
fn refusal(
    conn: &mut AnyConnection,
    client: &Client,
    redemption: &Redemption<'_>,
    now: NaiveDateTime,
) -> Result<Outcome, OAuthError> {
    let Redemption {
        code,
        redirect_uri,
        code_verifier,
    } = *redemption;
    let Some(stored) = AuthorizationCode::find_by_digest(conn, &crypto::token_digest(code))? else {
        return Err(OAuthError::invalid_grant(INVALID));
    };
    if stored.client_id != client.id || stored.expired_at <= now {
        return Err(OAuthError::invalid_grant(INVALID));
    }
    check_redirect_uri(&stored, redirect_uri)?;
    match (&stored.code_challenge, code_verifier) {
        (Some(challenge), Some(verifier)) => {
            if !pkce::verify_s256(verifier, challenge) {
                return Err(OAuthError::invalid_grant(
                    "The code_verifier does not match the code_challenge.",
                ));
            }
        }
        (Some(_), None) => {
            return Err(OAuthError::invalid_request(
                "The `code_verifier` parameter is missing (PKCE).",
            ));
        }
        // RFC 9700 §4.8.2: a verifier for a code issued without a challenge is a downgrade.
        (None, Some(_)) => {
            return Err(OAuthError::invalid_grant(
                "This code was issued without a code_challenge; a code_verifier is not allowed.",
            ));
        }
        (None, None) if !client.is_confidential || client.fapi2 => {
            return Err(OAuthError::invalid_grant(
                "This client must use PKCE (public and FAPI 2.0 clients).",
            ));
        }
        (None, None) => {}
    }
    if !stored.is_used {
        // Every term met and still unused: the claim lost to nothing we can name (the code
        // changed in between). Refused, and nothing revoked.
        return Err(OAuthError::invalid_grant(INVALID));
    }
    crate::db::write_transaction(conn, |conn| {
        AuthorizationCode::revoke_issued(conn, stored.id, now)
    })?;
    Ok(Outcome::Replayed)
}

/// RFC 6749 §4.1.3: "redirect_uri: REQUIRED, if the redirect_uri parameter was included in the
/// authorization request […], and their values MUST be identical." A request that left it out
/// (one URI registered) may leave it out here too; one sent anyway must still match.
fn check_redirect_uri(
    stored: &AuthorizationCode,
    redirect_uri: Option<&str>,
) -> Result<(), OAuthError> {
    match redirect_uri {
        Some(uri) if uri == stored.redirect_uri => Ok(()),
        Some(_) => Err(OAuthError::invalid_grant(
            "The redirect_uri does not match the one the code was issued for.",
        )),
        None if !stored.redirect_uri_given => Ok(()),
        None => Err(OAuthError::invalid_request(
            "The `redirect_uri` parameter is missing: the authorization request had one.",
        )),
    }
}
