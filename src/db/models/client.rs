//! `clients`: registered applications (Revenue Monster's columns, plus grant types, scopes,
//! status and the operator's resource-server mark).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::clients;
use crate::domain::{GrantType, RedirectUris, Scopes};

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = clients)]
pub struct Client {
    pub id: i64,
    pub client_id: String,
    pub name: String,
    pub description: String,
    pub home_page_url: Option<String>,
    pub logo_url: Option<String>,
    pub privacy_policy_url: Option<String>,
    /// The owner.
    pub user_id: i64,
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
    pub user_id: i64,
    pub is_live: bool,
    pub redirect_uri: &'a str,
    pub grant_types: &'a str,
    pub scopes: &'a str,
    pub is_confidential: bool,
    pub is_enabled: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl Client {
    pub fn insert(conn: &mut AnyConnection, new: &NewClient<'_>) -> QueryResult<Client> {
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
            .first(conn)
            .optional()
    }

    pub fn all(conn: &mut AnyConnection) -> QueryResult<Vec<Client>> {
        clients::table
            .order(clients::id.asc())
            .select(Client::as_select())
            .load(conn)
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
