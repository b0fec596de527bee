//! `passkeys`: an account's WebAuthn credentials (`crate::passkeys` holds the rules).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::passkeys;
use crate::domain::UserId;

/// One registered passkey. `credential` is webauthn-rs's `Passkey` as JSON.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = passkeys)]
pub struct StoredPasskey {
    pub id: i64,
    pub user_id: UserId,
    /// The credential's id, base64url without padding (unique across accounts).
    pub credential_id: String,
    pub user_handle: String,
    pub name: String,
    pub credential: String,
    pub created_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = passkeys)]
pub struct NewPasskey<'a> {
    pub user_id: UserId,
    pub credential_id: &'a str,
    pub user_handle: &'a str,
    pub name: &'a str,
    pub credential: &'a str,
    pub created_at: NaiveDateTime,
}

impl StoredPasskey {
    /// The account's passkeys, oldest first.
    pub fn for_user(conn: &mut AnyConnection, user_id: UserId) -> QueryResult<Vec<StoredPasskey>> {
        passkeys::table
            .filter(passkeys::user_id.eq(user_id))
            .order(passkeys::id.asc())
            .select(StoredPasskey::as_select())
            .load(conn)
    }

    /// Whether the account has a passkey.
    pub fn exists_for(conn: &mut AnyConnection, user_id: UserId) -> QueryResult<bool> {
        diesel::select(diesel::dsl::exists(
            passkeys::table.filter(passkeys::user_id.eq(user_id)),
        ))
        .get_result(conn)
    }

    /// Stores a new passkey. `false` if its credential id is registered already (to any
    /// account): nothing is stored then.
    pub fn insert(conn: &mut AnyConnection, new: &NewPasskey<'_>) -> QueryResult<bool> {
        let taken: bool = diesel::select(diesel::dsl::exists(
            passkeys::table.filter(passkeys::credential_id.eq(new.credential_id)),
        ))
        .get_result(conn)?;
        if taken {
            return Ok(false);
        }
        diesel::insert_into(passkeys::table)
            .values(new)
            .execute(conn)
            .map(|_| true)
    }

    /// Records a use: the credential as updated (its signature counter) and when.
    pub fn used(
        conn: &mut AnyConnection,
        id: i64,
        credential: Option<&str>,
        now: NaiveDateTime,
    ) -> QueryResult<()> {
        let target = passkeys::table.find(id);
        match credential {
            Some(credential) => diesel::update(target)
                .set((
                    passkeys::credential.eq(credential),
                    passkeys::last_used_at.eq(now),
                ))
                .execute(conn),
            None => diesel::update(target)
                .set(passkeys::last_used_at.eq(now))
                .execute(conn),
        }
        .map(|_| ())
    }

    /// Renames one of the account's passkeys: whether it was found.
    pub fn rename(
        conn: &mut AnyConnection,
        user_id: UserId,
        id: i64,
        name: &str,
    ) -> QueryResult<bool> {
        diesel::update(
            passkeys::table
                .filter(passkeys::id.eq(id))
                .filter(passkeys::user_id.eq(user_id)),
        )
        .set(passkeys::name.eq(name))
        .execute(conn)
        .map(|rows| rows == 1)
    }

    /// Removes one of the account's passkeys: whether it was found.
    pub fn delete(conn: &mut AnyConnection, user_id: UserId, id: i64) -> QueryResult<bool> {
        diesel::delete(
            passkeys::table
                .filter(passkeys::id.eq(id))
                .filter(passkeys::user_id.eq(user_id)),
        )
        .execute(conn)
        .map(|rows| rows == 1)
    }

    /// Removes all of the account's passkeys (`latchkey user mfa reset`): how many.
    pub fn delete_all(conn: &mut AnyConnection, user_id: UserId) -> QueryResult<usize> {
        diesel::delete(passkeys::table.filter(passkeys::user_id.eq(user_id))).execute(conn)
    }
}
