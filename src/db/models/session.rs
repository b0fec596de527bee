//! `sessions`: browser sessions, keyed by the SHA-256 of the cookie's session key.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::sessions;
use crate::domain::UserId;

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = sessions)]
pub struct SessionRow {
    pub id: i64,
    pub session_key: String,
    pub user_id: Option<UserId>,
    pub state: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

impl SessionRow {
    /// The live session with this key digest, if any.
    pub fn find_live(
        conn: &mut AnyConnection,
        digest: &str,
        now: NaiveDateTime,
    ) -> QueryResult<Option<SessionRow>> {
        sessions::table
            .filter(sessions::session_key.eq(digest))
            .filter(sessions::expires_at.gt(now))
            .select(SessionRow::as_select())
            .get_result(conn)
            .optional()
    }

    pub fn insert(
        conn: &mut AnyConnection,
        digest: &str,
        user_id: Option<UserId>,
        state: &str,
        now: NaiveDateTime,
        expires_at: NaiveDateTime,
    ) -> QueryResult<()> {
        diesel::insert_into(sessions::table)
            .values((
                sessions::session_key.eq(digest),
                sessions::user_id.eq(user_id),
                sessions::state.eq(state),
                sessions::created_at.eq(now),
                sessions::expires_at.eq(expires_at),
            ))
            .execute(conn)
            .map(|_| ())
    }

    /// Replaces the state of a live session; returns whether it existed.
    pub fn update(
        conn: &mut AnyConnection,
        digest: &str,
        user_id: Option<UserId>,
        state: &str,
        now: NaiveDateTime,
        expires_at: NaiveDateTime,
    ) -> QueryResult<bool> {
        diesel::update(
            sessions::table
                .filter(sessions::session_key.eq(digest))
                .filter(sessions::expires_at.gt(now)),
        )
        .set((
            sessions::user_id.eq(user_id),
            sessions::state.eq(state),
            sessions::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .map(|rows| rows == 1)
    }

    pub fn touch(
        conn: &mut AnyConnection,
        digest: &str,
        expires_at: NaiveDateTime,
    ) -> QueryResult<()> {
        diesel::update(sessions::table.filter(sessions::session_key.eq(digest)))
            .set(sessions::expires_at.eq(expires_at))
            .execute(conn)
            .map(|_| ())
    }

    pub fn delete(conn: &mut AnyConnection, digest: &str) -> QueryResult<()> {
        diesel::delete(sessions::table.filter(sessions::session_key.eq(digest)))
            .execute(conn)
            .map(|_| ())
    }

    /// The user's live sessions, newest first (the Security page).
    pub fn for_user(
        conn: &mut AnyConnection,
        user_id: UserId,
        now: NaiveDateTime,
    ) -> QueryResult<Vec<SessionRow>> {
        sessions::table
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::expires_at.gt(now))
            .order(sessions::id.desc())
            .select(SessionRow::as_select())
            .load(conn)
    }

    /// Ends the user's session with this row id: whether there was one (another user's is
    /// never touched).
    pub fn delete_for_user_by_id(
        conn: &mut AnyConnection,
        user_id: UserId,
        id: i64,
    ) -> QueryResult<bool> {
        diesel::delete(
            sessions::table
                .filter(sessions::id.eq(id))
                .filter(sessions::user_id.eq(user_id)),
        )
        .execute(conn)
        .map(|rows| rows == 1)
    }

    /// Ends every session of the user but the row `keep`.
    pub fn delete_others(
        conn: &mut AnyConnection,
        user_id: UserId,
        keep: i64,
    ) -> QueryResult<usize> {
        diesel::delete(
            sessions::table
                .filter(sessions::user_id.eq(user_id))
                .filter(sessions::id.ne(keep)),
        )
        .execute(conn)
    }

    /// Ends every session of a user (password reset, account changes).
    pub fn delete_for_user(conn: &mut AnyConnection, user_id: UserId) -> QueryResult<usize> {
        diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id))).execute(conn)
    }

    /// Deletes the sessions that expired before `before`, at most `batch` rows per statement.
    /// Returns how many went.
    pub fn delete_expired(
        conn: &mut AnyConnection,
        before: NaiveDateTime,
        batch: i64,
    ) -> QueryResult<usize> {
        Ok(delete_in_batches!(
            conn,
            sessions,
            sessions::expires_at.lt(before),
            batch
        ))
    }
}
