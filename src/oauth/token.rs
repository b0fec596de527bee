//! The token endpoint's dispatch (RFC 6749 §3.2, §5): authenticate the client, check the grant
//! is allowed, and hand the request to its grant in `grants/`, which issues through `issue`.
//! No HTTP here; `routes::token` does that.

use super::client_auth::{self, Presented, SingleUse};
use super::context::OAuthContext;
use super::dpop;
use super::error::{ErrorCode, OAuthError};
use super::grants;
use super::issue::Issued;
use super::keys::SigningAlgorithm;
use super::request::{Dialect, Grant, TokenRequest};
use crate::db::{self, AnyConnection, Uncommitted};
use crate::domain::GrantType;

/// What the HTTP layer knows about a token request besides its body.
pub struct Caller<'a> {
    /// The `Authorization` header, for client authentication (RFC 6749 §2.3.1).
    pub authorization: Option<&'a [u8]>,
    /// The address the request came from (behind trusted proxies, the client's): the password
    /// grant counts failed sign-ins against it, as the login page does.
    pub address: &'a str,
    /// The `DPoP` header's proof (RFC 9449 §5), if one was sent.
    pub dpop: Option<&'a str>,
    /// The URL the request was sent to, as the client saw it (the issuer and the path): what
    /// the proof's `htu` must name.
    pub url: &'a str,
    /// Set to the client the credentials name once it is found (whether or not they prove
    /// it), so that the outcome can be counted for its owner ([`super::outcomes`]).
    pub client: &'a std::sync::OnceLock<crate::domain::ClientRowId>,
}

/// Whether a token request is quick enough to run on the async worker ([`db::run_here`])
/// rather than be handed to the blocking pool and back: `client_credentials` without a refresh
/// token (RFC 6749's form dialect), signed with an ECDSA key. Its one write is deferred to a
/// group commit that it awaits without a thread, so what runs on the worker is the client's
/// cached lookup and a P-256 signature (tens of microseconds); the secret's last use, written at
/// most once per [`client_auth::LAST_USED_RESOLUTION`], may wait for the writer's turn (one
/// group's write). An RSA signature (a fifth of a millisecond) would hold up every other
/// request on the worker, and the other grants hash passwords or write transactions. A client
/// assertion's (`private_key_jwt`) and a DPoP proof's `jti`s go into the same group commit as
/// the token's row (they are checked in it, and a replay gets no token), so such a request
/// stays here too: its extra work is the two ECDSA (or EdDSA) verifications.
pub fn runs_on_worker(ctx: &OAuthContext, request: &TokenRequest, dialect: Dialect) -> bool {
    matches!(request.grant, Grant::ClientCredentials { .. })
        && dialect == Dialect::Rfc6749
        && ctx.keys.current().signer.algorithm == SigningAlgorithm::Es256
}

/// RFC 6749 §4.4.3: client_credentials gets no refresh token. Revenue Monster's JSON dialect
/// returns one with client credentials, so that dialect gets one when the client may use
/// refresh_token.
fn client_credentials_with_refresh(client: &crate::db::models::Client, dialect: Dialect) -> bool {
    dialect == Dialect::RevenueMonster
        && client
            .allowed_grant_types()
            .contains(&GrantType::RefreshToken)
}

/// Handles one token request. Blocking (database, argon2, signing): run inside `db::run`, then
/// await the tokens' [`Uncommitted::commit`] before answering with them.
pub fn exchange(
    conn: &mut AnyConnection,
    ctx: &OAuthContext,
    caller: &Caller<'_>,
    request: TokenRequest,
    dialect: Dialect,
) -> Result<Uncommitted<Issued>, OAuthError> {
    let now = db::now();
    // RFC 9449 §4.3: the proof is checked before the client, so that a request answered
    // `use_dpop_nonce` has not spent the client's assertion.
    let proof = caller
        .dpop
        .map(|proof| dpop::check(ctx, proof, "POST", caller.url, None))
        .transpose()?;
    let presented = client_auth::presented(caller.authorization, &request.body_credentials)?;
    let entry = client_auth::lookup(conn, ctx, &presented, now)?;
    if let Some(entry) = &entry {
        let _ = caller.client.set(entry.client.id);
    }
    let mut auth = client_auth::verify(ctx, &presented, entry, client_auth::Endpoint::Token, now)?;
    // The assertion's and the proof's `jti`s, spent before any token is answered: with the
    // token's row in its group commit on the quick path, else now.
    let mut once: Vec<SingleUse> = auth.take_unspent().into_iter().collect();
    let client = auth.client();

    let grant_type = request.grant.grant_type();
    // A public client has no secret to prove who is asking, so it may never act as itself.
    let public_client_credentials = grant_type == GrantType::ClientCredentials
        && matches!(presented, Presented::PublicClient { .. });
    if public_client_credentials || !client.allowed_grant_types().contains(&grant_type) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            format!(
                "This client may not use the {grant_type} grant. Its owner can allow it in the developer portal."
            ),
        ));
    }
    if client.fapi2 && grant_type == GrantType::Password {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "A FAPI 2.0 client may not use the password grant.",
        ));
    }
    let jkt = match proof {
        Some(proof) => {
            once.push(SingleUse::dpop(&proof));
            Some(proof.jkt)
        }
        None if client.requires_dpop() => {
            return Err(OAuthError::new(
                ErrorCode::InvalidDpopProof,
                "This client must send a DPoP proof (RFC 9449) with every token request: its tokens are bound to a key.",
            ));
        }
        None => None,
    };
    let jkt = jkt.as_deref();

    let grouped = matches!(request.grant, Grant::ClientCredentials { .. })
        && !client_credentials_with_refresh(client, dialect);
    if !grouped {
        client_auth::spend_now(conn, ctx, &once)?;
        once.clear();
    }
    let issued = match request.grant {
        Grant::ClientCredentials { scope } => {
            let with_refresh = client_credentials_with_refresh(client, dialect);
            grants::client_credentials::run(
                conn,
                ctx,
                client,
                grants::client_credentials::Asked {
                    scope: scope.as_deref(),
                    with_refresh,
                    dpop_jkt: jkt,
                    once,
                },
                now,
            )?
        }
        Grant::Password {
            username,
            password,
            scope,
        } => Uncommitted::committed(grants::password::run(
            conn,
            ctx,
            client,
            &grants::password::ResourceOwner {
                username: &username,
                password: &password,
                address: caller.address,
            },
            scope.as_deref(),
            jkt,
            now,
        )?),
        Grant::RefreshToken {
            refresh_token,
            scope,
        } => Uncommitted::committed(grants::refresh_token::run(
            conn,
            ctx,
            client,
            &refresh_token,
            scope.as_deref(),
            jkt,
            now,
        )?),
        Grant::AuthorizationCode {
            code,
            redirect_uri,
            code_verifier,
        } => Uncommitted::committed(grants::authorization_code::run(
            conn,
            ctx,
            client,
            &grants::authorization_code::Redemption {
                code: &code,
                redirect_uri: redirect_uri.as_deref(),
                code_verifier: code_verifier.as_deref(),
            },
            jkt,
            now,
        )?),
    };
    if let Some(secret) = auth.secret() {
        client_auth::touch_secret(conn, &ctx.writer, secret, now)?;
    }
    Ok(issued)
}
