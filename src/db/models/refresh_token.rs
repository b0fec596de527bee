//! `client_refresh_tokens`: opaque refresh tokens by SHA-256 digest. Every token of one rotation
//! chain shares a `family_id`; presenting a rotated token again revokes the family
//! (RFC 9700 §4.14.2).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::Client;
use crate::db::AnyConnection;
use crate::db::schema::{client_refresh_tokens, clients, users};
use crate::domain::{AuthorizationCodeId, ClientRowId, RefreshTokenId, UserId};

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = client_refresh_tokens)]
pub struct RefreshToken {
    pub id: RefreshTokenId,
    pub client_id: ClientRowId,
    pub user_id: UserId,
    /// SHA-256 of the token.
    pub refresh_token: String,
    pub grant_type: String,
    pub scope: String,
    pub audience: String,
    pub family_id: String,
    pub client_authorization_code_id: Option<AuthorizationCodeId>,
    pub expired_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
    pub used_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
    /// The DPoP key a public client's token is bound to (RFC 9449 §5), its `jkt`.
    pub dpop_jkt: Option<String>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = client_refresh_tokens)]
pub struct NewRefreshToken<'a> {
    pub client_id: ClientRowId,
    pub user_id: UserId,
    pub refresh_token: &'a str,
    pub grant_type: &'a str,
    pub scope: &'a str,
    pub audience: &'a str,
    pub family_id: &'a str,
    pub client_authorization_code_id: Option<AuthorizationCodeId>,
    pub expired_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
    pub dpop_jkt: Option<&'a str>,
}

impl RefreshToken {
    /// Inserts and returns the new row's id.
    pub fn insert(
        conn: &mut AnyConnection,
        new: &NewRefreshToken<'_>,
    ) -> QueryResult<RefreshTokenId> {
        diesel::insert_into(client_refresh_tokens::table)
            .values(new)
            .returning(client_refresh_tokens::id)
            .get_result(conn)
    }

    pub fn find_by_digest(
        conn: &mut AnyConnection,
        digest: &str,
    ) -> QueryResult<Option<RefreshToken>> {
        crate::db::native!(conn, c => client_refresh_tokens::table
            .filter(client_refresh_tokens::refresh_token.eq(digest))
            .select(RefreshToken::as_select())
            .get_result(c)
            .optional())
    }

    /// The token with this digest, its client and its user's username, in one statement (for
    /// introspection and revocation).
    pub fn find_with_client(
        conn: &mut AnyConnection,
        digest: &str,
    ) -> QueryResult<Option<(RefreshToken, Client, String)>> {
        crate::db::native!(conn, c => client_refresh_tokens::table
            .inner_join(clients::table)
            .inner_join(users::table.on(users::id.eq(client_refresh_tokens::user_id)))
            .filter(client_refresh_tokens::refresh_token.eq(digest))
            .select((
                RefreshToken::as_select(),
                Client::as_select(),
                users::username,
            ))
            .get_result(c)
            .optional())
    }

    /// The unrevoked, unrotated, unexpired tokens `user_id` holds from any grant but
    /// client_credentials, each with its client, scope and issue time: the applications the
    /// person has authorized (`authorizations::list`).
    pub fn live_grants_of(
        conn: &mut AnyConnection,
        user_id: UserId,
        now: NaiveDateTime,
    ) -> QueryResult<Vec<(Client, String, NaiveDateTime)>> {
        client_refresh_tokens::table
            .inner_join(clients::table)
            .filter(client_refresh_tokens::user_id.eq(user_id))
            .filter(client_refresh_tokens::grant_type.ne("client_credentials"))
            .filter(client_refresh_tokens::revoked_at.is_null())
            .filter(client_refresh_tokens::used_at.is_null())
            .filter(client_refresh_tokens::expired_at.gt(now))
            .select((
                Client::as_select(),
                client_refresh_tokens::scope,
                client_refresh_tokens::created_at,
            ))
            .load(conn)
    }

    /// The ids and scopes of the live refresh tokens `client` holds for `user_id` from any
    /// grant but client_credentials (revoking one scope, `authorizations::revoke_scope`).
    pub fn live_of_grant(
        conn: &mut AnyConnection,
        user_id: UserId,
        client: ClientRowId,
        now: NaiveDateTime,
    ) -> QueryResult<Vec<(i64, String)>> {
        client_refresh_tokens::table
            .filter(client_refresh_tokens::client_id.eq(client))
            .filter(client_refresh_tokens::user_id.eq(user_id))
            .filter(client_refresh_tokens::grant_type.ne("client_credentials"))
            .filter(client_refresh_tokens::revoked_at.is_null())
            .filter(client_refresh_tokens::used_at.is_null())
            .filter(client_refresh_tokens::expired_at.gt(now))
            .select((client_refresh_tokens::id, client_refresh_tokens::scope))
            .load(conn)
    }

    /// Narrows a refresh token to `scope` (one scope revoked): the next refresh gets only that.
    pub fn narrow(conn: &mut AnyConnection, id: i64, scope: &str) -> QueryResult<usize> {
        diesel::update(client_refresh_tokens::table.find(id))
            .set(client_refresh_tokens::scope.eq(scope))
            .execute(conn)
    }

    /// Revokes one refresh token (its every scope was revoked).
    pub fn revoke(conn: &mut AnyConnection, id: i64, now: NaiveDateTime) -> QueryResult<usize> {
        diesel::update(
            client_refresh_tokens::table
                .find(id)
                .filter(client_refresh_tokens::revoked_at.is_null()),
        )
        .set(client_refresh_tokens::revoked_at.eq(now))
        .execute(conn)
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
            client_refresh_tokens::table
                .filter(client_refresh_tokens::client_id.eq(client))
                .filter(client_refresh_tokens::user_id.eq(user_id))
                .filter(client_refresh_tokens::grant_type.ne("client_credentials"))
                .filter(client_refresh_tokens::revoked_at.is_null()),
        )
        .set(client_refresh_tokens::revoked_at.eq(now))
        .execute(conn)
    }

    /// The distinct people other than `except` (the client's owner) holding a live refresh
    /// token from `client`.
    pub fn live_holders(
        conn: &mut AnyConnection,
        client: ClientRowId,
        except: UserId,
        now: NaiveDateTime,
    ) -> QueryResult<Vec<UserId>> {
        client_refresh_tokens::table
            .filter(client_refresh_tokens::client_id.eq(client))
            .filter(client_refresh_tokens::user_id.ne(except))
            .filter(client_refresh_tokens::revoked_at.is_null())
            .filter(client_refresh_tokens::expired_at.gt(now))
            .select(client_refresh_tokens::user_id)
            .distinct()
            .load::<UserId>(conn)
    }

    /// Marks the token used, if nobody else has: the one atomic step that makes rotation safe
    /// under concurrency. Returns whether this caller won.
    pub fn claim(
        conn: &mut AnyConnection,
        id: RefreshTokenId,
        now: NaiveDateTime,
    ) -> QueryResult<bool> {
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

    /// Whether the token is still unrevoked and unexpired at `now`, read in the caller's
    /// transaction (a refresh that keeps the token, `fapi::rotates_refresh_tokens`).
    pub fn is_live(
        conn: &mut AnyConnection,
        id: RefreshTokenId,
        now: NaiveDateTime,
    ) -> QueryResult<bool> {
        diesel::select(diesel::dsl::exists(
            client_refresh_tokens::table
                .filter(client_refresh_tokens::id.eq(id))
                .filter(client_refresh_tokens::revoked_at.is_null())
                .filter(client_refresh_tokens::expired_at.gt(now)),
        ))
        .get_result(conn)
    }

    /// Revokes every refresh token of the family.
    pub fn revoke_family(
        conn: &mut AnyConnection,
        family_id: &str,
        now: NaiveDateTime,
    ) -> QueryResult<usize> {
        crate::db::native!(conn, c => diesel::update(
            client_refresh_tokens::table
                .filter(client_refresh_tokens::family_id.eq(family_id))
                .filter(client_refresh_tokens::revoked_at.is_null()),
        )
        .set(client_refresh_tokens::revoked_at.eq(now))
        .execute(c))
    }

    /// Revokes every family of `user_id` that began with `grant_type` (the password grant's,
    /// after a password reset), rotated members included. Returns how many rows changed.
    pub fn revoke_families_begun_by(
        conn: &mut AnyConnection,
        user_id: UserId,
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

    /// Deletes the tokens that expired before `before`, at most `batch` rows per statement.
    /// Returns how many went. Rotated and revoked tokens stay until they expire, for reuse
    /// detection.
    pub fn delete_expired(
        conn: &mut AnyConnection,
        before: NaiveDateTime,
        batch: i64,
    ) -> QueryResult<usize> {
        Ok(delete_in_batches!(
            conn,
            client_refresh_tokens,
            client_refresh_tokens::expired_at.lt(before),
            batch
        ))
    }
}
