//! `client_access_tokens`: one row per issued access token, keyed by the SHA-256 of the JWT, so
//! a token can be revoked and introspected although it is self-contained.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{Client, User};
use crate::db::AnyConnection;
use crate::db::schema::{client_access_tokens, client_refresh_tokens, clients, users};
use crate::domain::{AuthorizationCodeId, ClientRowId, RefreshTokenId, UserId};

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = client_access_tokens)]
pub struct AccessToken {
    pub id: i64,
    pub client_id: ClientRowId,
    pub user_id: UserId,
    pub client_refresh_token_id: Option<RefreshTokenId>,
    /// SHA-256 of the token.
    pub access_token: String,
    pub grant_type: String,
    pub scope: String,
    pub audience: String,
    pub client_authorization_code_id: Option<AuthorizationCodeId>,
    pub expired_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = client_access_tokens)]
pub struct NewAccessToken<'a> {
    pub client_id: ClientRowId,
    pub user_id: UserId,
    pub client_refresh_token_id: Option<RefreshTokenId>,
    pub access_token: &'a str,
    pub grant_type: &'a str,
    pub scope: &'a str,
    pub audience: &'a str,
    pub client_authorization_code_id: Option<AuthorizationCodeId>,
    pub expired_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
}

impl AccessToken {
    /// Inserts without reading the row back: the token path needs no second statement.
    pub fn insert(conn: &mut AnyConnection, new: &NewAccessToken<'_>) -> QueryResult<()> {
        crate::db::native!(conn, c => diesel::insert_into(client_access_tokens::table)
            .values(new)
            .execute(c)
            .map(|_| ()))
    }

    pub fn find_by_digest(
        conn: &mut AnyConnection,
        digest: &str,
    ) -> QueryResult<Option<AccessToken>> {
        client_access_tokens::table
            .filter(client_access_tokens::access_token.eq(digest))
            .select(AccessToken::as_select())
            .get_result(conn)
            .optional()
    }

    /// The token with this digest, whether its client is enabled, and the user it acts for, in
    /// one statement: what a resource needs to accept a bearer token (`oauth::bearer`).
    pub fn find_with_user(
        conn: &mut AnyConnection,
        digest: &str,
    ) -> QueryResult<Option<(AccessToken, bool, User)>> {
        crate::db::native!(conn, c => client_access_tokens::table
            .inner_join(clients::table)
            .inner_join(users::table.on(users::id.eq(client_access_tokens::user_id)))
            .filter(client_access_tokens::access_token.eq(digest))
            .select((
                AccessToken::as_select(),
                clients::is_enabled,
                User::as_select(),
            ))
            .get_result(c)
            .optional())
    }

    /// The token with this digest, its client and its user's username, in one statement (for
    /// introspection and revocation).
    pub fn find_with_client(
        conn: &mut AnyConnection,
        digest: &str,
    ) -> QueryResult<Option<(AccessToken, Client, String)>> {
        crate::db::native!(conn, c => client_access_tokens::table
            .inner_join(clients::table)
            .inner_join(users::table.on(users::id.eq(client_access_tokens::user_id)))
            .filter(client_access_tokens::access_token.eq(digest))
            .select((
                AccessToken::as_select(),
                Client::as_select(),
                users::username,
            ))
            .get_result(c)
            .optional())
    }

    /// Revokes this one token, unless it already is. Returns how many rows changed.
    pub fn revoke(conn: &mut AnyConnection, id: i64, now: NaiveDateTime) -> QueryResult<usize> {
        diesel::update(
            client_access_tokens::table
                .find(id)
                .filter(client_access_tokens::revoked_at.is_null()),
        )
        .set(client_access_tokens::revoked_at.eq(now))
        .execute(conn)
    }

    /// The unrevoked, unexpired tokens `user_id` holds from any grant but client_credentials
    /// (which acts for the client itself), each with its client, scope and issue time: the
    /// applications the person has authorized (`authorizations::list`).
    pub fn live_grants_of(
        conn: &mut AnyConnection,
        user_id: UserId,
        now: NaiveDateTime,
    ) -> QueryResult<Vec<(Client, String, NaiveDateTime)>> {
        client_access_tokens::table
            .inner_join(clients::table)
            .filter(client_access_tokens::user_id.eq(user_id))
            .filter(client_access_tokens::grant_type.ne("client_credentials"))
            .filter(client_access_tokens::revoked_at.is_null())
            .filter(client_access_tokens::expired_at.gt(now))
            .select((
                Client::as_select(),
                client_access_tokens::scope,
                client_access_tokens::created_at,
            ))
            .load(conn)
    }

    /// The ids and scopes of the unrevoked, unexpired tokens `client` holds for `user_id` from
    /// any grant but client_credentials (revoking one scope, `authorizations::revoke_scope`).
    pub fn live_of_grant(
        conn: &mut AnyConnection,
        user_id: UserId,
        client: ClientRowId,
        now: NaiveDateTime,
    ) -> QueryResult<Vec<(i64, String)>> {
        client_access_tokens::table
            .filter(client_access_tokens::client_id.eq(client))
            .filter(client_access_tokens::user_id.eq(user_id))
            .filter(client_access_tokens::grant_type.ne("client_credentials"))
            .filter(client_access_tokens::revoked_at.is_null())
            .filter(client_access_tokens::expired_at.gt(now))
            .select((client_access_tokens::id, client_access_tokens::scope))
            .load(conn)
    }

    /// Revokes every token `client` holds for `user_id` from any grant but client_credentials
    /// (the person revoking the application). Returns how many there were.
    pub fn revoke_grants(
        conn: &mut AnyConnection,
        user_id: UserId,
        client: ClientRowId,
        now: NaiveDateTime,
    ) -> QueryResult<usize> {
        diesel::update(
            client_access_tokens::table
                .filter(client_access_tokens::client_id.eq(client))
                .filter(client_access_tokens::user_id.eq(user_id))
                .filter(client_access_tokens::grant_type.ne("client_credentials"))
                .filter(client_access_tokens::revoked_at.is_null()),
        )
        .set(client_access_tokens::revoked_at.eq(now))
        .execute(conn)
    }

    /// Revokes every access token issued from any refresh token of `family_id`.
    pub fn revoke_family(
        conn: &mut AnyConnection,
        family_id: &str,
        now: NaiveDateTime,
    ) -> QueryResult<usize> {
        let family = client_refresh_tokens::table
            .filter(client_refresh_tokens::family_id.eq(family_id))
            .select(client_refresh_tokens::id.nullable());
        diesel::update(
            client_access_tokens::table
                .filter(client_access_tokens::client_refresh_token_id.eq_any(family))
                .filter(client_access_tokens::revoked_at.is_null()),
        )
        .set(client_access_tokens::revoked_at.eq(now))
        .execute(conn)
    }

    /// Revokes the access tokens of `user_id` that `grant_type` issued, and those issued from
    /// any refresh token of a family that `grant_type` began (see
    /// `RefreshToken::revoke_families_begun_by`).
    pub fn revoke_begun_by(
        conn: &mut AnyConnection,
        user_id: UserId,
        grant_type: &str,
        now: NaiveDateTime,
    ) -> QueryResult<usize> {
        let families: Vec<String> = client_refresh_tokens::table
            .filter(client_refresh_tokens::user_id.eq(user_id))
            .filter(client_refresh_tokens::grant_type.eq(grant_type))
            .select(client_refresh_tokens::family_id)
            .load(conn)?;
        let from_families: Vec<Option<RefreshTokenId>> = client_refresh_tokens::table
            .filter(client_refresh_tokens::family_id.eq_any(&families))
            .select(client_refresh_tokens::id.nullable())
            .load(conn)?;
        diesel::update(
            client_access_tokens::table
                .filter(client_access_tokens::user_id.eq(user_id))
                .filter(
                    client_access_tokens::grant_type
                        .eq(grant_type)
                        .or(client_access_tokens::client_refresh_token_id.eq_any(from_families)),
                )
                .filter(client_access_tokens::revoked_at.is_null()),
        )
        .set(client_access_tokens::revoked_at.eq(now))
        .execute(conn)
    }

    /// Deletes the tokens that expired before `before`, at most `batch` rows per statement.
    /// Returns how many went.
    pub fn delete_expired(
        conn: &mut AnyConnection,
        before: NaiveDateTime,
        batch: i64,
    ) -> QueryResult<usize> {
        Ok(delete_in_batches!(
            conn,
            client_access_tokens,
            client_access_tokens::expired_at.lt(before),
            batch
        ))
    }
}
