//! `client_secrets`: a client's secrets, as keyed digests plus an encrypted copy. A client has
//! one current secret, and a second one while the previous secret is being rotated out.
//!
//! Every method that writes, except [`ClientSecret::touch`], calls
//! [`note_client_change`](crate::db::note_client_change) first (see `models::client`).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::{client_secrets, clients};
use crate::domain::ClientRowId;

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = client_secrets)]
pub struct ClientSecret {
    pub id: i64,
    /// `clients.id`
    pub client_id: ClientRowId,
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
    pub client_id: ClientRowId,
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
        crate::db::note_client_change(conn);
        diesel::insert_into(client_secrets::table)
            .values(new)
            // The whole row comes back; `as_returning()` does not compile for MultiBackend.
            .get_result::<ClientSecret>(conn)
    }

    /// The secrets of a client that still work at `now`, newest first.
    pub fn active_for(
        conn: &mut AnyConnection,
        client: ClientRowId,
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

    /// Every secret of a client, newest first, active or not.
    pub fn all_for(
        conn: &mut AnyConnection,
        client: ClientRowId,
    ) -> QueryResult<Vec<ClientSecret>> {
        client_secrets::table
            .filter(client_secrets::client_id.eq(client))
            .order(client_secrets::id.desc())
            .select(ClientSecret::as_select())
            .load(conn)
    }

    /// Every secret of every client, with its client's public `client_id` (the context its
    /// encrypted copy is bound to), in one statement.
    pub fn all_with_client_id(
        conn: &mut AnyConnection,
    ) -> QueryResult<Vec<(ClientSecret, String)>> {
        client_secrets::table
            .inner_join(clients::table)
            .select((ClientSecret::as_select(), clients::client_id))
            .load(conn)
    }

    /// Records that the secret was used at `now`. Not a change the client cache needs to hear
    /// of (the `client_changes` triggers skip this column too): the cache keeps its own
    /// `last_used_at`, see `oauth::client_auth::touch_secret`.
    pub fn touch(conn: &mut AnyConnection, id: i64, now: NaiveDateTime) -> QueryResult<()> {
        crate::db::native!(conn, c => diesel::update(client_secrets::table.find(id))
            .set(client_secrets::last_used_at.eq(now))
            .execute(c)
            .map(|_| ()))
    }

    /// Replaces the secret's digest and encrypted copy (moving to a new server key).
    pub fn set_sealed(
        conn: &mut AnyConnection,
        id: i64,
        secret_digest: &str,
        secret_encrypted: &str,
    ) -> QueryResult<()> {
        crate::db::note_client_change(conn);
        diesel::update(client_secrets::table.find(id))
            .set((
                client_secrets::secret_digest.eq(secret_digest),
                client_secrets::secret_encrypted.eq(secret_encrypted),
            ))
            .execute(conn)
            .map(|_| ())
    }

    /// The first half of a rotation, in two statements: a secret of the client still in its
    /// grace period from an earlier rotation stops now, and the current one (no expiry) keeps
    /// working until `grace_ends`. The caller then adds the new secret, in the same
    /// transaction, so that at most two secrets are ever active.
    pub fn begin_rotation(
        conn: &mut AnyConnection,
        client: ClientRowId,
        now: NaiveDateTime,
        grace_ends: NaiveDateTime,
    ) -> QueryResult<()> {
        crate::db::note_client_change(conn);
        diesel::update(
            client_secrets::table
                .filter(client_secrets::client_id.eq(client))
                .filter(client_secrets::expires_at.gt(now)),
        )
        .set(client_secrets::expires_at.eq(now))
        .execute(conn)?;
        diesel::update(
            client_secrets::table
                .filter(client_secrets::client_id.eq(client))
                .filter(client_secrets::expires_at.is_null()),
        )
        .set(client_secrets::expires_at.eq(grace_ends))
        .execute(conn)?;
        Ok(())
    }

    /// Ends, at `now`, a secret of `client` that is in its grace period. False when there is
    /// no such secret (another client's, the current one, or one already over).
    pub fn end_grace(
        conn: &mut AnyConnection,
        client: ClientRowId,
        id: i64,
        now: NaiveDateTime,
    ) -> QueryResult<bool> {
        crate::db::note_client_change(conn);
        diesel::update(
            client_secrets::table
                .filter(client_secrets::id.eq(id))
                .filter(client_secrets::client_id.eq(client))
                .filter(client_secrets::expires_at.gt(now)),
        )
        .set(client_secrets::expires_at.eq(now))
        .execute(conn)
        .map(|rows| rows == 1)
    }

    /// Deletes every secret of `client` (it became key-based: `clients::add_keys`).
    pub fn delete_all_for(conn: &mut AnyConnection, client: ClientRowId) -> QueryResult<usize> {
        crate::db::note_client_change(conn);
        diesel::delete(client_secrets::table.filter(client_secrets::client_id.eq(client)))
            .execute(conn)
    }
}
