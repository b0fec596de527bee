//! `client_credentials` (RFC 6749 §4.4): the client acts for its owner, the merchant, with the
//! full access of that user (as Revenue Monster's client credentials do).

use chrono::NaiveDateTime;

use crate::db::models::Client;
use crate::db::{AnyConnection, Uncommitted};
use crate::domain::GrantType;
use crate::oauth::context::OAuthContext;
use crate::oauth::error::OAuthError;
use crate::oauth::issue::{
    Grantee, Issued, RefreshPlan, mint, resolve_scope, store, store_grouped,
};

pub fn run(
    conn: &mut AnyConnection,
    ctx: &OAuthContext,
    client: &Client,
    scope: Option<&str>,
    with_refresh: bool,
    dpop_jkt: Option<&str>,
    now: NaiveDateTime,
) -> Result<Uncommitted<Issued>, OAuthError> {
    let who = Grantee {
        client,
        user_id: client.user_id,
        grant_type: GrantType::ClientCredentials,
        scope: resolve_scope(scope, &client.allowed_scopes())?,
        authorization_code_id: None,
        dpop_jkt,
    };
    if with_refresh {
        let minted = mint(ctx, &who, RefreshPlan::NewFamily, now)?;
        crate::db::write_transaction(conn, |conn| store(conn, ctx, &who, minted, now))
            .map(Uncommitted::committed)
    } else {
        // One INSERT, committed in a group with other requests' on SQLite, once this request
        // awaits it: the cheapest path through the server.
        let minted = mint(ctx, &who, RefreshPlan::None, now)?;
        store_grouped(conn, ctx, &who, minted, now)
    }
}
