//! `client_access_tokens`: one row per issued access token, keyed by the SHA-256 of the JWT, so
//! a token can be revoked and introspected although it is self-contained.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::{client_access_tokens, client_refresh_tokens};

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = client_access_tokens)]
pub struct AccessToken {
    pub id: i64,
    pub client_id: i64,
    pub user_id: i64,
    pub client_refresh_token_id: Option<i64>,
    /// SHA-256 of the token.
    pub access_token: String,
    pub grant_type: String,
    pub scope: String,
    pub audience: String,
    pub client_authorization_code_id: Option<i64>,
    pub expired_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = client_access_tokens)]
pub struct NewAccessToken<'a> {
    pub client_id: i64,
    pub user_id: i64,
    pub client_refresh_token_id: Option<i64>,
    pub access_token: &'a str,
    pub grant_type: &'a str,
    pub scope: &'a str,
    pub audience: &'a str,
    pub client_authorization_code_id: Option<i64>,
    pub expired_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
}

impl AccessToken {
    /// Inserts without reading the row back: the token path needs no second statement.
    pub fn insert(conn: &mut AnyConnection, new: &NewAccessToken<'_>) -> QueryResult<()> {
        diesel::insert_into(client_access_tokens::table)
            .values(new)
            .execute(conn)
            .map(|_| ())
    }

    pub fn find_by_digest(
        conn: &mut AnyConnection,
        digest: &str,
    ) -> QueryResult<Option<AccessToken>> {
        client_access_tokens::table
            .filter(client_access_tokens::access_token.eq(digest))
            .select(AccessToken::as_select())
            .first(conn)
            .optional()
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
        user_id: i64,
        grant_type: &str,
        now: NaiveDateTime,
    ) -> QueryResult<usize> {
        let families: Vec<String> = client_refresh_tokens::table
            .filter(client_refresh_tokens::user_id.eq(user_id))
            .filter(client_refresh_tokens::grant_type.eq(grant_type))
            .select(client_refresh_tokens::family_id)
            .load(conn)?;
        let from_families: Vec<Option<i64>> = client_refresh_tokens::table
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
}
