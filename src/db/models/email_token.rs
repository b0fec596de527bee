//! `email_tokens`: single-use links sent by email, stored as SHA-256 digests.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::email_tokens;
use crate::domain::UserId;

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    VerifyEmail,
    ResetPassword,
    /// Sent to the previous address after a change of address: puts it back (`email` holds it).
    UndoEmailChange,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
            Self::UndoEmailChange => "undo_email_change",
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = email_tokens)]
pub struct EmailToken {
    pub id: i64,
    pub user_id: UserId,
    pub purpose: String,
    pub token: String,
    pub email: Option<String>,
    pub expires_at: NaiveDateTime,
    pub used_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
}

impl EmailToken {
    pub fn insert(
        conn: &mut AnyConnection,
        user_id: UserId,
        purpose: Purpose,
        digest: &str,
        email: Option<&str>,
        now: NaiveDateTime,
        expires_at: NaiveDateTime,
    ) -> QueryResult<()> {
        diesel::insert_into(email_tokens::table)
            .values((
                email_tokens::user_id.eq(user_id),
                email_tokens::purpose.eq(purpose.as_str()),
                email_tokens::token.eq(digest),
                email_tokens::email.eq(email),
                email_tokens::expires_at.eq(expires_at),
                email_tokens::created_at.eq(now),
            ))
            .execute(conn)
            .map(|_| ())
    }

    /// An unused, unexpired token for `purpose`.
    pub fn find_usable(
        conn: &mut AnyConnection,
        digest: &str,
        purpose: Purpose,
        now: NaiveDateTime,
    ) -> QueryResult<Option<EmailToken>> {
        email_tokens::table
            .filter(email_tokens::token.eq(digest))
            .filter(email_tokens::purpose.eq(purpose.as_str()))
            .filter(email_tokens::used_at.is_null())
            .filter(email_tokens::expires_at.gt(now))
            .select(EmailToken::as_select())
            .get_result(conn)
            .optional()
    }

    /// Spends the token; false if someone spent it first.
    pub fn spend(conn: &mut AnyConnection, id: i64, now: NaiveDateTime) -> QueryResult<bool> {
        diesel::update(
            email_tokens::table
                .filter(email_tokens::id.eq(id))
                .filter(email_tokens::used_at.is_null()),
        )
        .set(email_tokens::used_at.eq(now))
        .execute(conn)
        .map(|rows| rows == 1)
    }

    /// Spends every outstanding token of the account for one of `purposes`, so that no older
    /// link outlives a change it should not survive. Returns how many there were.
    pub fn retire(
        conn: &mut AnyConnection,
        user_id: UserId,
        purposes: &[Purpose],
        now: NaiveDateTime,
    ) -> QueryResult<usize> {
        let purposes: Vec<&str> = purposes.iter().map(|p| p.as_str()).collect();
        diesel::update(
            email_tokens::table
                .filter(email_tokens::user_id.eq(user_id))
                .filter(email_tokens::purpose.eq_any(purposes))
                .filter(email_tokens::used_at.is_null()),
        )
        .set(email_tokens::used_at.eq(now))
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
            email_tokens,
            email_tokens::expires_at.lt(before),
            batch
        ))
    }
}
