//! What an end user has authorized, and taking that access back.
//!
//! An application counts as authorized when the person approved it on the consent page (a row
//! in `consents`), or while it holds an unrevoked, unexpired token issued for them by the
//! password grant (which has no consent page). Revoking one also retires its unredeemed codes.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use diesel::QueryResult;

use crate::db::models::{AccessToken, AuthorizationCode, Client, Consent, RefreshToken};
use crate::db::{self, AnyConnection};
use crate::domain::{ClientRowId, Scopes, UserId};

/// One authorized application, as the list shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Authorized {
    pub client_id: String,
    pub name: String,
    pub home_page_url: Option<String>,
    pub scopes: Vec<String>,
    pub since: String,
}

/// Applications holding live tokens for `user_id`, by name.
pub fn list(conn: &mut AnyConnection, user_id: UserId) -> QueryResult<Vec<Authorized>> {
    let now = db::now();
    let refresh = RefreshToken::live_grants_of(conn, user_id, now)?;
    let access = AccessToken::live_grants_of(conn, user_id, now)?;
    let consented = Consent::granted_by(conn, user_id)?;
    let mut by_client: BTreeMap<ClientRowId, (Client, Scopes, NaiveDateTime)> = BTreeMap::new();
    for (client, scope, created) in consented.into_iter().chain(refresh).chain(access) {
        let entry = by_client
            .entry(client.id)
            .or_insert_with(|| (client.clone(), Scopes::default(), created));
        entry.1 = entry
            .1
            .iter()
            .chain(Scopes::from_stored(&scope).iter())
            .cloned()
            .collect();
        entry.2 = entry.2.min(created);
    }
    let mut list: Vec<Authorized> = by_client
        .into_values()
        .map(|(client, scopes, since)| Authorized {
            client_id: client.client_id,
            name: client.name,
            home_page_url: client.home_page_url,
            scopes: scopes.iter().map(|s| s.as_str().to_owned()).collect(),
            since: since.format("%Y-%m-%d").to_string(),
        })
        .collect();
    list.sort_by_key(|a| a.name.to_lowercase());
    Ok(list)
}

/// Takes back everything `client_id` holds for `user_id`: its unredeemed authorization codes,
/// the consent, and every token. Returns how many of those there were.
///
/// The codes go first, and the code grant checks the consent in the transaction that claims a
/// code (`oauth::grants::authorization_code`). On PostgreSQL a redemption running at the same
/// time then either claimed its code before this transaction touched it (this one waits for
/// it, and its tokens are revoked below) or finds the consent gone: either way the application
/// keeps nothing.
pub fn revoke(conn: &mut AnyConnection, user_id: UserId, client_id: &str) -> QueryResult<usize> {
    let now = db::now();
    let Some(client) = Client::find_by_client_id(conn, client_id)? else {
        return Ok(0);
    };
    db::write_transaction(conn, |conn| {
        let codes = AuthorizationCode::retire_outstanding(conn, user_id, client.id, now)?;
        let consent = Consent::delete(conn, user_id, client.id)?;
        let refresh = RefreshToken::revoke_grants(conn, user_id, client.id, now)?;
        let access = AccessToken::revoke_grants(conn, user_id, client.id, now)?;
        Ok(codes + consent + refresh + access)
    })
}
