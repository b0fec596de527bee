//! `client_refresh_tokens`: opaque refresh tokens by SHA-256 digest. Every token of one rotation
//! chain shares a `family_id`; presenting a rotated token again revokes the family
//! (RFC 9700 §4.14.2).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::client_refresh_tokens;

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = client_refresh_tokens)]
pub struct RefreshToken {
    pub id: i64,
    pub client_id: i64,
    pub user_id: i64,
    /// SHA-256 of the token.
    pub refresh_token: String,
    pub grant_type: String,
    pub scope: String,
    pub audience: String,
    pub family_id: String,
    pub client_authorization_code_id: Option<i64>,
    pub expired_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
    pub used_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = client_refresh_tokens)]
pub struct NewRefreshToken<'a> {
    pub client_id: i64,
    pub user_id: i64,
    pub refresh_token: &'a str,
    pub grant_type: &'a str,
    pub scope: &'a str,
    pub audience: &'a str,
    pub family_id: &'a str,
    pub client_authorization_code_id: Option<i64>,
    pub expired_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
}

impl RefreshToken {
    /// Inserts and returns the new row's id.
    pub fn insert(conn: &mut AnyConnection, new: &NewRefreshToken<'_>) -> QueryResult<i64> {
        diesel::insert_into(client_refresh_tokens::table)
            .values(new)
            .returning(client_refresh_tokens::id)
            .get_result(conn)
    }

    pub fn find_by_digest(
        conn: &mut AnyConnection,
        digest: &str,
    ) -> QueryResult<Option<RefreshToken>> {
        client_refresh_tokens::table
            .filter(client_refresh_tokens::refresh_token.eq(digest))
            .select(RefreshToken::as_select())
            .first(conn)
            .optional()
    }

    /// Marks the token used, if nobody else has: the one atomic step that makes rotation safe
    /// under concurrency. Returns whether this caller won.
    pub fn claim(conn: &mut AnyConnection, id: i64, now: NaiveDateTime) -> QueryResult<bool> {
        diesel::update(
            client_refresh_tokens::table
                .filter(client_refresh_tokens::id.eq(id))
                .filter(client_refresh_tokens::used_at.is_null())
                .filter(client_refresh_tokens::revoked_at.is_null()),
        )
        .set(client_refresh_tokens::used_at.eq(now))
        .execute(conn)
        .map(|rows| rows == 1)
    }

    /// Revokes every refresh token of the family.
    pub fn revoke_family(
        conn: &mut AnyConnection,
        family_id: &str,
        now: NaiveDateTime,
    ) -> QueryResult<usize> {
        diesel::update(
            client_refresh_tokens::table
                .filter(client_refresh_tokens::family_id.eq(family_id))
                .filter(client_refresh_tokens::revoked_at.is_null()),
        )
        .set(client_refresh_tokens::revoked_at.eq(now))
        .execute(conn)
    }

    /// Revokes every family of `user_id` that began with `grant_type` (the password grant's,
    /// after a password reset), rotated members included. Returns how many rows changed.
    pub fn revoke_families_begun_by(
        conn: &mut AnyConnection,
        user_id: i64,
        grant_type: &str,
        now: NaiveDateTime,
    ) -> QueryResult<usize> {
        let families: Vec<String> = client_refresh_tokens::table
            .filter(client_refresh_tokens::user_id.eq(user_id))
            .filter(client_refresh_tokens::grant_type.eq(grant_type))
            .select(client_refresh_tokens::family_id)
            .distinct()
            .load(conn)?;
        if families.is_empty() {
            return Ok(0);
        }
        diesel::update(
            client_refresh_tokens::table
                .filter(client_refresh_tokens::family_id.eq_any(&families))
                .filter(client_refresh_tokens::revoked_at.is_null()),
        )
        .set(client_refresh_tokens::revoked_at.eq(now))
        .execute(conn)
    }
}
