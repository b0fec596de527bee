//! Pushed authorization requests (RFC 9126). The client posts its authorization request's
//! parameters to `/oauth/par` with its client authentication; they are checked exactly as
//! `/oauth/authorize` checks them (the same [`authorize::validate`], so the same rules and the
//! same descriptions), kept for [`LIFETIME`] under the digest of a new `request_uri`, and
//! answered `201 {"request_uri", "expires_in"}`. `/oauth/authorize?client_id=…&request_uri=…`
//! then takes the request once ([`take`]): any other parameter beside those two is ignored
//! (§4: only the pushed ones count). A reused, expired, unknown or other client's
//! `request_uri` gets our error page, never a redirect: nothing about it can be trusted.
//!
//! What PAR buys: the parameters travel from the client's server over an authenticated
//! channel, not through the browser, where they can be read or changed; and a client that
//! must (`require_par`) can no longer be started with a crafted authorization URL.

use std::time::Duration;

use chrono::TimeDelta;
use serde::Serialize;

use super::authorize::{self, Arrival, AuthorizeError, ErrorPage, Pending, Refusal};
use super::client_auth::{self, Endpoint};
use super::context::OAuthContext;
use super::error::{ErrorCode, OAuthError};
use super::params::{self, Params};
use super::request::BodyCredentials;
use crate::crypto;
use crate::db::models::PushedRequest;
use crate::db::{self, AnyConnection};

/// How long a pushed request waits to be used (RFC 9126 §2.2 suggests 5 to 600 seconds; a
/// minute is what a browser redirect needs).
pub const LIFETIME: Duration = Duration::from_secs(60);

/// The `request_uri` scheme RFC 9126 §2.2 gives: the rest is 256 random bits.
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// The answer to a pushed request (RFC 9126 §2.2).
#[derive(Debug, Serialize)]
pub struct Pushed {
    pub request_uri: String,
    pub expires_in: u64,
}

/// Handles `POST /oauth/par`: authenticates the client, checks the request as the
/// authorization endpoint would, and keeps it.
pub fn push(
    conn: &mut AnyConnection,
    ctx: &OAuthContext,
    authorization: Option<&[u8]>,
    body: &[u8],
) -> Result<Pushed, OAuthError> {
    let mut params = Params::from_form(body, params::PAR)?;
    let credentials = BodyCredentials {
        client_id: params.get("client_id").map(str::to_owned),
        client_secret: params.take("client_secret"),
        client_assertion: params.take("client_assertion"),
        client_assertion_type: params.take("client_assertion_type"),
    };
    let presented = client_auth::presented(authorization, &credentials)?;
    let now = db::now();
    let auth = client_auth::authenticate(conn, ctx, &presented, Endpoint::Par, now)?;
    let client = auth.client();
    if params.get("request_uri").is_some() {
        return Err(OAuthError::invalid_request(
            "A pushed request cannot carry a request_uri (RFC 9126 §2.1).",
        ));
    }
    // The authenticated client is the one the request is for, however it authenticated.
    params.set("client_id", client.client_id.clone());
    let pending =
        match authorize::validate(conn, &ctx.clients, &params, &ctx.issuer, Arrival::Pushed)? {
            Ok((_, pending)) => pending,
            Err(Refusal::Page(page)) => return Err(OAuthError::invalid_request(page.message)),
            Err(Refusal::Redirect(response)) => return Err(refusal(&response.grant)),
        };
    let request_uri = format!("{REQUEST_URI_PREFIX}{}", crypto::random_token(32));
    let stored = serde_json::to_string(&pending)
        .map_err(|e| OAuthError::new(ErrorCode::ServerError, e.to_string()))?;
    let expires_at = now + TimeDelta::seconds(LIFETIME.as_secs() as i64);
    let id = crypto::token_digest(&request_uri);
    ctx.writer
        .hold(|| PushedRequest::insert(conn, &id, client.id, &stored, expires_at))?;
    Ok(Pushed {
        request_uri,
        expires_in: LIFETIME.as_secs(),
    })
}

/// An authorization error as the JSON error RFC 9126 §2.3 asks for.
fn refusal(grant: &authorize::Grant) -> OAuthError {
    let authorize::Grant::Error { error, description } = grant else {
        return OAuthError::invalid_request("The request was refused.");
    };
    let code = match error {
        AuthorizeError::InvalidScope => ErrorCode::InvalidScope,
        AuthorizeError::UnauthorizedClient => ErrorCode::UnauthorizedClient,
        _ => ErrorCode::InvalidRequest,
    };
    let description = match error {
        AuthorizeError::UnsupportedResponseType
        | AuthorizeError::RequestNotSupported
        | AuthorizeError::RequestUriNotSupported => {
            format!("{description} ({})", error.code())
        }
        _ => description.clone(),
    };
    OAuthError::new(code, description)
}

/// The request pushed under `request_uri`, for `client_id`, taken (deleted) so it serves
/// once; or the page that says why not.
pub fn take(
    conn: &mut AnyConnection,
    ctx: &OAuthContext,
    client_id: Option<&str>,
    request_uri: &str,
) -> diesel::QueryResult<Result<Pending, ErrorPage>> {
    let gone = || {
        Ok(Err(ErrorPage::new(
            "Request expired",
            "This sign-in request has expired or was already used. Go back to the application and start again.",
        )))
    };
    let Some(client_id) = client_id else {
        return Ok(Err(ErrorPage::new(
            "Unknown application",
            "The request does not say which application is asking (client_id is missing).",
        )));
    };
    if !request_uri.starts_with(REQUEST_URI_PREFIX) {
        return gone();
    }
    let id = crypto::token_digest(request_uri);
    let Some((owner, stored, expires_at)) = ctx.writer.hold(|| PushedRequest::take(conn, &id))?
    else {
        return gone();
    };
    let Ok(mut pending) = serde_json::from_str::<Pending>(&stored) else {
        return gone();
    };
    let now = db::now();
    let client = ctx.clients.client(conn, client_id, now)?;
    if expires_at <= now
        || pending.client_id != client_id
        || client.is_none_or(|c| c.client.id != owner)
    {
        return gone();
    }
    // A new id for the consent form, and the time it reached the authorization endpoint.
    pending.id = crypto::random_token(16);
    pending.created_at = now.and_utc().timestamp();
    Ok(Ok(pending))
}
