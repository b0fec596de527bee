//! `client_credentials` (RFC 6749 §4.4): the client acts for its owner, the merchant, with the
//! full access of that user (as Revenue Monster's client credentials do).

use chrono::NaiveDateTime;

use crate::db::models::Client;
use crate::db::{AnyConnection, Uncommitted};
use crate::domain::GrantType;
use crate::oauth::client_auth::SingleUse;
use crate::oauth::context::OAuthContext;
use crate::oauth::error::OAuthError;
use crate::oauth::issue::{
    Grantee, Issued, RefreshPlan, mint, resolve_scope, store, store_grouped,
};

/// What the token request asks of the grant.
pub struct Asked<'a> {
    pub scope: Option<&'a str>,
    /// Revenue Monster's dialect: a refresh token too (see `token::exchange`).
    pub with_refresh: bool,
    /// The DPoP key to bind the token to.
    pub dpop_jkt: Option<&'a str>,
    /// Identifiers to spend in the token row's group commit (the assertion's and the proof's
    /// `jti`s); must be empty with `with_refresh`, whose caller spends them first.
    pub once: Vec<SingleUse>,
}

pub fn run(
    conn: &mut AnyConnection,
    ctx: &OAuthContext,
    client: &Client,
    asked: Asked<'_>,
    now: NaiveDateTime,
) -> Result<Uncommitted<Issued>, OAuthError> {
    let Asked {
        scope,
        with_refresh,
        dpop_jkt,
        once,
    } = asked;
    let who = Grantee {
        client,
        user_id: client.user_id,
        grant_type: GrantType::ClientCredentials,
        scope: resolve_scope(scope, &client.allowed_scopes())?,
        authorization_code_id: None,
        dpop_jkt,
    };
    if with_refresh {
        debug_assert!(once.is_empty(), "spent by the caller before a transaction");
        let minted = mint(ctx, &who, RefreshPlan::NewFamily, now)?;
        crate::db::write_transaction(conn, |conn| store(conn, ctx, &who, minted, now))
            .map(Uncommitted::committed)
    } else {
        // One INSERT, committed in a group with other requests' on SQLite, once this request
        // awaits it: the cheapest path through the server.
        let minted = mint(ctx, &who, RefreshPlan::None, now)?;
        store_grouped(conn, ctx, &who, minted, once, now)
    }
}
