//! `client_secrets`: a client's secrets, as keyed digests plus an encrypted copy. A client has
//! one current secret, and a second one while the previous secret is being rotated out.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::client_secrets;

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = client_secrets)]
pub struct ClientSecret {
    pub id: i64,
    /// `clients.id`
    pub client_id: i64,
    pub secret_digest: String,
    pub secret_encrypted: String,
    pub secret_hint: String,
    pub created_at: NaiveDateTime,
    pub expires_at: Option<NaiveDateTime>,
    pub last_used_at: Option<NaiveDateTime>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = client_secrets)]
pub struct NewClientSecret<'a> {
    pub client_id: i64,
    pub secret_digest: &'a str,
    pub secret_encrypted: &'a str,
    pub secret_hint: &'a str,
    pub created_at: NaiveDateTime,
}

impl ClientSecret {
    pub fn insert(
        conn: &mut AnyConnection,
        new: &NewClientSecret<'_>,
    ) -> QueryResult<ClientSecret> {
        diesel::insert_into(client_secrets::table)
            .values(new)
            // The whole row comes back; `as_returning()` does not compile for MultiBackend.
            .get_result::<ClientSecret>(conn)
    }

    /// The secrets of a client that still work at `now`, newest first.
    pub fn active_for(
        conn: &mut AnyConnection,
        client: i64,
        now: NaiveDateTime,
    ) -> QueryResult<Vec<ClientSecret>> {
        client_secrets::table
            .filter(client_secrets::client_id.eq(client))
            .filter(
                client_secrets::expires_at
                    .is_null()
                    .or(client_secrets::expires_at.gt(now)),
            )
            .order(client_secrets::id.desc())
            .select(ClientSecret::as_select())
            .load(conn)
    }
}
