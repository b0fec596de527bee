//! `account_notices`: reminders sent to an account (`crate::notices` decides when).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::{account_notices, clients, passkeys, user_totp, users};
use crate::domain::UserId;

pub struct AccountNotice;

/// An owner of a live application without a second factor: account id, display name, email
/// address, and the application's name (one row per application).
pub type LiveOwnerRow = (UserId, String, Option<String>, String);

impl AccountNotice {
    /// Claims the `kind` reminder for `user_id` if it was never sent, or last sent before
    /// `resend_before`: whether this caller won (and so sends it). Two instances racing for the
    /// same reminder: one insert or update wins, the other sees no row changed or a duplicate
    /// key.
    pub fn claim(
        conn: &mut AnyConnection,
        user_id: UserId,
        kind: &str,
        now: NaiveDateTime,
        resend_before: NaiveDateTime,
    ) -> QueryResult<bool> {
        let last: Option<NaiveDateTime> = account_notices::table
            .find((user_id, kind))
            .select(account_notices::sent_at)
            .get_result(conn)
            .optional()?;
        match last {
            None => {
                let inserted = diesel::insert_into(account_notices::table)
                    .values((
                        account_notices::user_id.eq(user_id),
                        account_notices::kind.eq(kind),
                        account_notices::sent_at.eq(now),
                    ))
                    .execute(conn);
                match inserted {
                    Ok(_) => Ok(true),
                    Err(diesel::result::Error::DatabaseError(
                        diesel::result::DatabaseErrorKind::UniqueViolation,
                        _,
                    )) => Ok(false),
                    Err(e) => Err(e),
                }
            }
            Some(at) if at < resend_before => diesel::update(
                account_notices::table
                    .find((user_id, kind))
                    .filter(account_notices::sent_at.eq(at)),
            )
            .set(account_notices::sent_at.eq(now))
            .execute(conn)
            .map(|rows| rows == 1),
            Some(_) => Ok(false),
        }
    }

    /// Accounts that own a live, enabled application and have no second factor (neither an
    /// authenticator app nor a passkey), with the names of those applications.
    pub fn live_without_factor(conn: &mut AnyConnection) -> QueryResult<Vec<LiveOwnerRow>> {
        clients::table
            .inner_join(users::table)
            .filter(clients::is_live.eq(true))
            .filter(clients::is_enabled.eq(true))
            .filter(diesel::dsl::not(diesel::dsl::exists(
                user_totp::table.filter(user_totp::user_id.eq(users::id)),
            )))
            .filter(diesel::dsl::not(diesel::dsl::exists(
                passkeys::table.filter(passkeys::user_id.eq(users::id)),
            )))
            .order((users::id.asc(), clients::name.asc()))
            .select((users::id, users::name, users::email, clients::name))
            .load(conn)
    }
}
