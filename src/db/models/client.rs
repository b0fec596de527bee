//! `clients`: registered applications (Revenue Monster's columns, plus grant types, scopes,
//! status and the operator's resource-server mark).
//!
//! Every method that writes calls [`note_client_change`](crate::db::note_client_change) first,
//! so this process's client cache forgets the client as soon as the write is done; the
//! `client_changes` triggers tell the other processes.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::ClientSecret;
use crate::db::AnyConnection;
use crate::db::schema::{client_secrets, clients, users};
use crate::domain::{ClientKeys, GrantType, RedirectUris, Scopes};
use crate::domain::{ClientRowId, UserId};

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = clients)]
pub struct Client {
    pub id: ClientRowId,
    pub client_id: String,
    pub name: String,
    pub description: String,
    pub home_page_url: Option<String>,
    pub logo_url: Option<String>,
    pub privacy_policy_url: Option<String>,
    /// The owner.
    pub user_id: UserId,
    pub is_live: bool,
    /// Space-separated registered redirect URIs.
    pub redirect_uri: String,
    /// Space-separated allowed grant types.
    pub grant_types: String,
    /// Space-separated allowed scopes.
    pub scopes: String,
    pub is_confidential: bool,
    pub is_enabled: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// Marked by the operator (`latchkey client set --resource-server true`): may introspect
    /// tokens issued to any client (RFC 7662 §4). New clients are not; see `oauth::introspect`.
    pub is_resource_server: bool,
    /// A key-based client's public keys (`domain::ClientKeys::to_stored`); `None` for a
    /// secret-based or public client.
    pub jwks: Option<String>,
    /// Authorization requests must be pushed first (RFC 9126, `/oauth/par`).
    pub require_par: bool,
    /// Every token request must carry a DPoP proof (RFC 9449 §5.2, `dpop_bound_access_tokens`).
    pub dpop_bound: bool,
    /// The FAPI 2.0 Security Profile (`oauth::fapi`): implies `require_par` and `dpop_bound`.
    pub fapi2: bool,
}

/// A new client. `is_resource_server` is left to its column's default (false): only the
/// operator turns it on, after creation (see `clients::register_as`).
#[derive(Debug, Insertable)]
#[diesel(table_name = clients)]
pub struct NewClient<'a> {
    pub client_id: &'a str,
    pub name: &'a str,
    pub description: &'a str,
    pub home_page_url: Option<&'a str>,
    pub logo_url: Option<&'a str>,
    pub privacy_policy_url: Option<&'a str>,
    pub user_id: UserId,
    pub is_live: bool,
    pub redirect_uri: &'a str,
    pub grant_types: &'a str,
    pub scopes: &'a str,
    pub is_confidential: bool,
    pub is_enabled: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// A key-based client's keys (`ClientKeys::to_stored`); `None` for a secret-based client.
    pub jwks: Option<&'a str>,
    pub require_par: bool,
    pub dpop_bound: bool,
    pub fapi2: bool,
}

/// What the owner can change of an application in the portal, as stored: every column is
/// written, so a `None` clears its URL.
#[derive(Debug)]
pub struct ClientSettings<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub home_page_url: Option<&'a str>,
    pub logo_url: Option<&'a str>,
    pub privacy_policy_url: Option<&'a str>,
    /// Space-separated, as [`RedirectUris::to_stored`] gives them.
    pub redirect_uri: &'a str,
    /// Space-separated, as [`GrantType::join`] gives them.
    pub grant_types: &'a str,
    /// Space-separated, as [`Scopes::to_stored`] gives them.
    pub scopes: &'a str,
    pub is_live: bool,
    pub security: Security,
}

/// A client's financial-grade settings, its three columns (`oauth::fapi` says what FAPI 2.0
/// adds to the other two).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Security {
    /// Authorization requests must be pushed (RFC 9126).
    pub require_par: bool,
    /// Every token request carries a DPoP proof (RFC 9449 §5.2, `dpop_bound_access_tokens`).
    pub dpop_bound: bool,
    /// The FAPI 2.0 Security Profile.
    pub fapi2: bool,
}

impl Client {
    /// The three settings as stored.
    pub fn security(&self) -> Security {
        Security {
            require_par: self.require_par,
            dpop_bound: self.dpop_bound,
            fapi2: self.fapi2,
        }
    }

    /// Whether `/oauth/authorize` takes only pushed requests: asked for, or FAPI 2.0.
    pub fn requires_par(&self) -> bool {
        self.require_par || self.fapi2
    }

    /// Whether every token request must carry a DPoP proof: asked for, or FAPI 2.0.
    pub fn requires_dpop(&self) -> bool {
        self.dpop_bound || self.fapi2
    }

    /// Writes the three settings (see `clients::check_security` for the rules).
    pub fn set_security(
        conn: &mut AnyConnection,
        id: ClientRowId,
        security: Security,
        now: NaiveDateTime,
    ) -> QueryResult<Client> {
        crate::db::note_client_change(conn);
        diesel::update(clients::table.find(id))
            .set((
                clients::require_par.eq(security.require_par),
                clients::dpop_bound.eq(security.dpop_bound),
                clients::fapi2.eq(security.fapi2),
                clients::updated_at.eq(now),
            ))
            .execute(conn)?;
        Self::reload(conn, id)
    }

    pub fn insert(conn: &mut AnyConnection, new: &NewClient<'_>) -> QueryResult<Client> {
        crate::db::note_client_change(conn);
        diesel::insert_into(clients::table)
            .values(new)
            // The whole row comes back; `as_returning()` does not compile for MultiBackend.
            .get_result::<Client>(conn)
    }

    pub fn find_by_client_id(
        conn: &mut AnyConnection,
        client_id: &str,
    ) -> QueryResult<Option<Client>> {
        clients::table
            .filter(clients::client_id.eq(client_id))
            .select(Client::as_select())
            .get_result(conn)
            .optional()
    }

    pub fn all(conn: &mut AnyConnection) -> QueryResult<Vec<Client>> {
        clients::table
            .order(clients::id.asc())
            .select(Client::as_select())
            .load(conn)
    }

    /// Every client with its owner's username, oldest first, in one statement (`latchkey
    /// client list`).
    pub fn all_with_owner(conn: &mut AnyConnection) -> QueryResult<Vec<(Client, String)>> {
        clients::table
            .inner_join(users::table)
            .order(clients::id.asc())
            .select((Client::as_select(), users::username))
            .load(conn)
    }

    /// The client with this `client_id` and the secrets that still work at `now`, in one
    /// statement (a left join, so a client without secrets still comes back). What the client
    /// cache (`db::ClientCache`) loads for client authentication, whatever the client presented.
    pub fn find_with_active_secrets(
        conn: &mut AnyConnection,
        client_id: &str,
        now: NaiveDateTime,
    ) -> QueryResult<Option<(Client, Vec<ClientSecret>)>> {
        let rows: Vec<(Client, Option<ClientSecret>)> = crate::db::native!(conn, c => clients::table
            .left_join(
                client_secrets::table.on(client_secrets::client_id.eq(clients::id).and(
                    client_secrets::expires_at
                        .is_null()
                        .or(client_secrets::expires_at.gt(now)),
                )),
            )
            .filter(clients::client_id.eq(client_id))
            .select((Client::as_select(), Option::<ClientSecret>::as_select()))
            .load(c))?;
        let Some(client) = rows.first().map(|(c, _)| c.clone()) else {
            return Ok(None);
        };
        let secrets = rows.into_iter().filter_map(|(_, s)| s).collect();
        Ok(Some((client, secrets)))
    }

    /// One of `owner_id`'s applications. Another merchant's application is `None`, exactly
    /// like a missing one: the portal answers 404 for both.
    pub fn find_owned(
        conn: &mut AnyConnection,
        owner_id: UserId,
        client_id: &str,
    ) -> QueryResult<Option<Client>> {
        clients::table
            .filter(clients::client_id.eq(client_id))
            .filter(clients::user_id.eq(owner_id))
            .select(Client::as_select())
            .get_result(conn)
            .optional()
    }

    /// `owner_id`'s applications, newest first.
    pub fn list_owned(conn: &mut AnyConnection, owner_id: UserId) -> QueryResult<Vec<Client>> {
        clients::table
            .filter(clients::user_id.eq(owner_id))
            .order(clients::id.desc())
            .select(Client::as_select())
            .load(conn)
    }

    /// The row again, after a change.
    /// The client with this row id, if it still exists.
    pub fn find(conn: &mut AnyConnection, id: ClientRowId) -> QueryResult<Option<Client>> {
        clients::table
            .find(id)
            .select(Client::as_select())
            .get_result(conn)
            .optional()
    }

    fn reload(conn: &mut AnyConnection, id: ClientRowId) -> QueryResult<Client> {
        clients::table
            .find(id)
            .select(Client::as_select())
            .get_result(conn)
    }

    /// Marks the client a resource server, or no longer one (RFC 7662 §4: which callers may
    /// introspect any token is the operator's decision). Returns the updated row.
    pub fn set_resource_server(
        conn: &mut AnyConnection,
        id: ClientRowId,
        resource_server: bool,
        now: NaiveDateTime,
    ) -> QueryResult<Client> {
        crate::db::note_client_change(conn);
        diesel::update(clients::table.find(id))
            .set((
                clients::is_resource_server.eq(resource_server),
                clients::updated_at.eq(now),
            ))
            .execute(conn)?;
        Self::reload(conn, id)
    }

    /// Writes the owner's settings (see `clients::update` for the rules they must meet) and
    /// returns the updated row.
    pub fn update_settings(
        conn: &mut AnyConnection,
        id: ClientRowId,
        settings: &ClientSettings<'_>,
        now: NaiveDateTime,
    ) -> QueryResult<Client> {
        crate::db::note_client_change(conn);
        diesel::update(clients::table.find(id))
            .set((
                clients::name.eq(settings.name),
                clients::description.eq(settings.description),
                clients::home_page_url.eq(settings.home_page_url),
                clients::logo_url.eq(settings.logo_url),
                clients::privacy_policy_url.eq(settings.privacy_policy_url),
                clients::redirect_uri.eq(settings.redirect_uri),
                clients::grant_types.eq(settings.grant_types),
                clients::scopes.eq(settings.scopes),
                clients::is_live.eq(settings.is_live),
                clients::require_par.eq(settings.security.require_par),
                clients::dpop_bound.eq(settings.security.dpop_bound),
                clients::fapi2.eq(settings.security.fapi2),
                clients::updated_at.eq(now),
            ))
            .execute(conn)?;
        Self::reload(conn, id)
    }

    /// Turns the client on or off (`is_enabled`; the owner's switch in the portal).
    pub fn set_enabled(
        conn: &mut AnyConnection,
        id: ClientRowId,
        enabled: bool,
        now: NaiveDateTime,
    ) -> QueryResult<()> {
        crate::db::note_client_change(conn);
        diesel::update(clients::table.find(id))
            .set((clients::is_enabled.eq(enabled), clients::updated_at.eq(now)))
            .execute(conn)
            .map(|_| ())
    }

    /// Deletes the application. Its secrets, codes and tokens go with it (foreign keys
    /// cascade), so every token it issued stops working at once.
    pub fn delete(conn: &mut AnyConnection, id: ClientRowId) -> QueryResult<()> {
        crate::db::note_client_change(conn);
        diesel::delete(clients::table.find(id))
            .execute(conn)
            .map(|_| ())
    }

    /// Writes a key-based client's keys (`ClientKeys::to_stored`). A client with keys has no
    /// secret: `clients::set_keys` deletes them in the same transaction.
    pub fn set_jwks(
        conn: &mut AnyConnection,
        id: ClientRowId,
        jwks: &str,
        now: NaiveDateTime,
    ) -> QueryResult<()> {
        crate::db::note_client_change(conn);
        diesel::update(clients::table.find(id))
            .set((clients::jwks.eq(jwks), clients::updated_at.eq(now)))
            .execute(conn)
            .map(|_| ())
    }

    /// The registered keys of a key-based client (`private_key_jwt`); `None` for a
    /// secret-based or public one.
    pub fn keys(&self) -> Option<ClientKeys> {
        self.jwks.as_deref().map(ClientKeys::from_stored)
    }

    pub fn redirect_uris(&self) -> RedirectUris {
        RedirectUris::from_stored(&self.redirect_uri)
    }

    pub fn allowed_grant_types(&self) -> Vec<GrantType> {
        GrantType::parse_list(&self.grant_types)
    }

    pub fn allowed_scopes(&self) -> Scopes {
        Scopes::from_stored(&self.scopes)
    }

    pub fn environment(&self) -> &'static str {
        if self.is_live { "live" } else { "sandbox" }
    }
}
