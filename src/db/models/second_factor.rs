//! `user_totp` and `recovery_codes`: an account's second factor (`crate::mfa` holds the rules).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::{recovery_codes, user_totp};
use crate::domain::UserId;

/// An account's TOTP secret, encrypted under the server key.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = user_totp)]
pub struct UserTotp {
    pub user_id: UserId,
    pub secret_encrypted: String,
    /// The last RFC 6238 time step a code was accepted for.
    pub last_step: i64,
    pub created_at: NaiveDateTime,
}

impl UserTotp {
    pub fn find(conn: &mut AnyConnection, user_id: UserId) -> QueryResult<Option<UserTotp>> {
        user_totp::table
            .find(user_id)
            .select(UserTotp::as_select())
            .get_result(conn)
            .optional()
    }

    /// Stores the account's secret (replacing any earlier one).
    pub fn set(
        conn: &mut AnyConnection,
        user_id: UserId,
        secret_encrypted: &str,
        now: NaiveDateTime,
    ) -> QueryResult<()> {
        diesel::delete(user_totp::table.find(user_id)).execute(conn)?;
        diesel::insert_into(user_totp::table)
            .values((
                user_totp::user_id.eq(user_id),
                user_totp::secret_encrypted.eq(secret_encrypted),
                user_totp::last_step.eq(0),
                user_totp::created_at.eq(now),
            ))
            .execute(conn)
            .map(|_| ())
    }

    /// Records `step` as used if no code of it or a later step was accepted before: the one
    /// atomic step that makes a code single use across instances. Whether this caller won.
    pub fn spend_step(conn: &mut AnyConnection, user_id: UserId, step: i64) -> QueryResult<bool> {
        diesel::update(
            user_totp::table
                .filter(user_totp::user_id.eq(user_id))
                .filter(user_totp::last_step.lt(step)),
        )
        .set(user_totp::last_step.eq(step))
        .execute(conn)
        .map(|rows| rows == 1)
    }

    /// Every account's secret (`rekey`).
    pub fn all(conn: &mut AnyConnection) -> QueryResult<Vec<UserTotp>> {
        user_totp::table.select(UserTotp::as_select()).load(conn)
    }

    /// Replaces the encrypted secret, keeping the last step (`rekey`).
    pub fn set_secret(
        conn: &mut AnyConnection,
        user_id: UserId,
        secret_encrypted: &str,
    ) -> QueryResult<()> {
        diesel::update(user_totp::table.find(user_id))
            .set(user_totp::secret_encrypted.eq(secret_encrypted))
            .execute(conn)
            .map(|_| ())
    }

    pub fn delete(conn: &mut AnyConnection, user_id: UserId) -> QueryResult<bool> {
        diesel::delete(user_totp::table.find(user_id))
            .execute(conn)
            .map(|rows| rows == 1)
    }
}

pub struct RecoveryCode;

impl RecoveryCode {
    /// Replaces the account's codes with these digests.
    pub fn replace_all(
        conn: &mut AnyConnection,
        user_id: UserId,
        digests: &[String],
        now: NaiveDateTime,
    ) -> QueryResult<()> {
        Self::delete_all(conn, user_id)?;
        let rows: Vec<_> = digests
            .iter()
            .map(|d| {
                (
                    recovery_codes::code_digest.eq(d.as_str()),
                    recovery_codes::user_id.eq(user_id),
                    recovery_codes::created_at.eq(now),
                )
            })
            .collect();
        for row in rows {
            diesel::insert_into(recovery_codes::table)
                .values(row)
                .execute(conn)?;
        }
        Ok(())
    }

    /// Spends the unused code with this digest of `user_id`'s: whether there was one.
    pub fn spend(
        conn: &mut AnyConnection,
        user_id: UserId,
        digest: &str,
        now: NaiveDateTime,
    ) -> QueryResult<bool> {
        diesel::update(
            recovery_codes::table
                .filter(recovery_codes::code_digest.eq(digest))
                .filter(recovery_codes::user_id.eq(user_id))
                .filter(recovery_codes::used_at.is_null()),
        )
        .set(recovery_codes::used_at.eq(now))
        .execute(conn)
        .map(|rows| rows == 1)
    }

    /// How many unused codes the account has left.
    pub fn unused(conn: &mut AnyConnection, user_id: UserId) -> QueryResult<i64> {
        recovery_codes::table
            .filter(recovery_codes::user_id.eq(user_id))
            .filter(recovery_codes::used_at.is_null())
            .count()
            .get_result(conn)
    }

    /// Every account's codes (`rekey`, whose new key could not match their digests).
    pub fn delete_every(conn: &mut AnyConnection) -> QueryResult<usize> {
        diesel::delete(recovery_codes::table).execute(conn)
    }

    pub fn delete_all(conn: &mut AnyConnection, user_id: UserId) -> QueryResult<usize> {
        diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id)))
            .execute(conn)
    }
}
