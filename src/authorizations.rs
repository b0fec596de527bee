//! What an end user has authorized, and taking that access back.
//!
//! An application counts as authorized when the person approved it on the consent page (a row
//! in `consents`), or while it holds an unrevoked, unexpired token issued for them by the
//! password grant (which has no consent page). Revoking one also retires its unredeemed codes.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use diesel::QueryResult;

use crate::db::models::{AccessToken, AuthorizationCode, Client, Consent, RefreshToken, Scope};
use crate::db::{self, AnyConnection};
use crate::domain::{ClientRowId, Granted, Scopes, UserId};

/// One authorized application, as the list shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Authorized {
    pub client_id: String,
    pub name: String,
    pub home_page_url: Option<String>,
    pub scopes: Vec<AuthorizedScope>,
    pub since: String,
}

/// One scope an application holds: what the consent page called it, when it was granted, and
/// when a token carrying it was last issued.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuthorizedScope {
    pub name: String,
    pub description: String,
    pub granted: String,
    pub last_used: Option<String>,
}

/// What one application holds: its consent (scopes with their times) and live tokens' scopes
/// with when each was issued.
struct Holding {
    client: Client,
    consent: Granted,
    consented_at: Option<NaiveDateTime>,
    tokens: Vec<(Scopes, NaiveDateTime)>,
}

/// Applications holding live tokens for `user_id`, by name.
pub fn list(conn: &mut AnyConnection, user_id: UserId) -> QueryResult<Vec<Authorized>> {
    let now = db::now();
    let refresh = RefreshToken::live_grants_of(conn, user_id, now)?;
    let access = AccessToken::live_grants_of(conn, user_id, now)?;
    let consented = Consent::granted_by(conn, user_id)?;
    let catalogue = Scope::all(conn)?;
    let mut by_client: BTreeMap<ClientRowId, Holding> = BTreeMap::new();
    // The entry for `client`, made on first sight.
    fn holding(by_client: &mut BTreeMap<ClientRowId, Holding>, client: Client) -> &mut Holding {
        by_client.entry(client.id).or_insert_with(|| Holding {
            client,
            consent: Granted::default(),
            consented_at: None,
            tokens: Vec::new(),
        })
    }
    for (client, scope, created) in consented {
        let entry = holding(&mut by_client, client);
        entry.consent = Granted::from_stored(&scope);
        entry.consented_at = Some(created);
    }
    for (client, scope, created) in refresh.into_iter().chain(access) {
        holding(&mut by_client, client)
            .tokens
            .push((Scopes::from_stored(&scope), created));
    }
    let day = |t: NaiveDateTime| t.format("%Y-%m-%d").to_string();
    let mut list: Vec<Authorized> = by_client
        .into_values()
        .map(|held| {
            let mut names = held.consent.scopes();
            for (scopes, _) in &held.tokens {
                names = names.iter().chain(scopes.iter()).cloned().collect();
            }
            let first_token = held.tokens.iter().map(|(_, t)| *t).min();
            let since = held.consented_at.into_iter().chain(first_token).min();
            let scopes = names
                .iter()
                .map(|name| {
                    let name = name.as_str();
                    let carrying = held
                        .tokens
                        .iter()
                        .filter(|(scopes, _)| scopes.contains(name))
                        .map(|(_, t)| *t);
                    let granted = held
                        .consent
                        .granted_at(name)
                        .and_then(|at| chrono::DateTime::from_timestamp(at, 0))
                        .map(|at| at.naive_utc())
                        .or(held.consented_at)
                        .or_else(|| carrying.clone().min());
                    AuthorizedScope {
                        name: name.to_owned(),
                        description: catalogue
                            .iter()
                            .find(|s| s.name == name)
                            .map_or_else(|| name.to_owned(), |s| s.description.clone()),
                        granted: granted.map(day).unwrap_or_default(),
                        last_used: carrying
                            .max()
                            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()),
                    }
                })
                .collect();
            Authorized {
                client_id: held.client.client_id,
                name: held.client.name,
                home_page_url: held.client.home_page_url,
                scopes,
                since: since.map(day).unwrap_or_default(),
            }
        })
        .collect();
    list.sort_by_key(|a| a.name.to_lowercase());
    Ok(list)
}

/// What revoking one scope did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeRevoked {
    /// The application holds no such scope for this person (or is unknown).
    NotFound,
    /// The scope is gone; the application keeps the others.
    Narrowed,
    /// It was the last scope: the application was revoked altogether ([`revoke`]).
    Everything,
}

/// Takes back one `scope` from what `client_id` holds for `user_id`, keeping the others: the
/// consent no longer lists it, every live access token carrying it is revoked (the resource
/// refuses it on the next request), and every live refresh token carrying it is narrowed, so
/// the next refresh gets only the remaining scopes (one left with none is revoked). Codes not
/// yet redeemed need nothing: the code grant checks the consent covers their scope. When no
/// scope would be left, the application is revoked as a whole.
pub fn revoke_scope(
    conn: &mut AnyConnection,
    user_id: UserId,
    client_id: &str,
    scope: &str,
) -> QueryResult<ScopeRevoked> {
    let now = db::now();
    let Some(client) = Client::find_by_client_id(conn, client_id)? else {
        return Ok(ScopeRevoked::NotFound);
    };
    let outcome = db::write_transaction(conn, |conn| -> QueryResult<ScopeRevoked> {
        let consent = Consent::find(conn, user_id, client.id)?;
        let mut granted = consent
            .as_ref()
            .map(|c| Granted::from_stored(&c.scope))
            .unwrap_or_default();
        let in_consent = granted.without(scope);
        let refresh = RefreshToken::live_of_grant(conn, user_id, client.id, now)?;
        let access = AccessToken::live_of_grant(conn, user_id, client.id, now)?;
        let carries = |stored: &String| Scopes::from_stored(stored).contains(scope);
        if !in_consent
            && !refresh.iter().any(|(_, s)| carries(s))
            && !access.iter().any(|(_, s)| carries(s))
        {
            return Ok(ScopeRevoked::NotFound);
        }
        let remains = |stored: &str| -> Scopes {
            Scopes::from_stored(stored)
                .iter()
                .filter(|s| s.as_str() != scope)
                .cloned()
                .collect()
        };
        let nothing_left = granted.is_empty()
            && refresh.iter().all(|(_, s)| remains(s).is_empty())
            && access.iter().all(|(_, s)| remains(s).is_empty());
        if nothing_left {
            return Ok(ScopeRevoked::Everything);
        }
        if in_consent {
            if granted.is_empty() {
                Consent::delete(conn, user_id, client.id)?;
            } else {
                Consent::set_scope(conn, user_id, client.id, &granted.to_stored(), now)?;
            }
        }
        for (id, stored) in refresh.iter().filter(|(_, s)| carries(s)) {
            let left = remains(stored);
            if left.is_empty() {
                RefreshToken::revoke(conn, *id, now)?;
            } else {
                RefreshToken::narrow(conn, *id, &left.to_stored())?;
            }
        }
        for (id, _) in access.iter().filter(|(_, s)| carries(s)) {
            AccessToken::revoke(conn, *id, now)?;
        }
        Ok(ScopeRevoked::Narrowed)
    })?;
    if outcome == ScopeRevoked::Everything {
        revoke(conn, user_id, client_id)?;
    }
    Ok(outcome)
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
