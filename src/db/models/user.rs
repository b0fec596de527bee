//! `users`: merchants and end users alike: anyone with an account can register applications,
//! and anyone can authorize one.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::users;
use crate::domain::{ClientRowId, UserId};

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = users)]
pub struct User {
    pub id: UserId,
    pub name: String,
    pub username: String,
    /// argon2id PHC string.
    pub password: String,
    pub email: Option<String>,
    pub email_verified_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// Builds applications (the portal's pages in its navigation), rather than only using them.
    pub is_developer: bool,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub name: &'a str,
    pub username: &'a str,
    pub password: &'a str,
    pub email: Option<&'a str>,
    pub email_verified_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub is_developer: bool,
}

impl User {
    pub fn insert(conn: &mut AnyConnection, new: &NewUser<'_>) -> QueryResult<User> {
        diesel::insert_into(users::table)
            .values(new)
            // The whole row comes back; `as_returning()` does not compile for MultiBackend.
            .get_result::<User>(conn)
    }

    pub fn find_by_username(conn: &mut AnyConnection, username: &str) -> QueryResult<Option<User>> {
        users::table
            .filter(users::username.eq(username))
            .select(User::as_select())
            .get_result(conn)
            .optional()
    }

    /// [`Self::find_by_username`], whether the account has a second factor (`mfa`), and the
    /// scopes it granted `consent_for` (when signing in for an authorization request), in one
    /// statement: the sign-in page and the password grant need the first two, a sign-in that
    /// can finish a request with remembered consent the third (`oauth::authorize::finish_at_sign_in`).
    pub fn find_by_username_with_factor(
        conn: &mut AnyConnection,
        username: &str,
        consent_for: Option<ClientRowId>,
    ) -> QueryResult<Option<(User, bool, Option<String>)>> {
        use crate::db::schema::{consents, passkeys, user_totp};
        // `client_id = NULL` when there is no request: no row, no consent.
        let consent = consents::table
            .filter(consents::user_id.eq(users::id))
            .filter(consents::client_id.nullable().eq(consent_for))
            .select(consents::scope)
            .single_value();
        users::table
            .left_join(user_totp::table.on(user_totp::user_id.eq(users::id)))
            .filter(users::username.eq(username))
            .select((
                User::as_select(),
                user_totp::user_id
                    .nullable()
                    .is_not_null()
                    .or(diesel::dsl::exists(
                        passkeys::table.filter(passkeys::user_id.eq(users::id)),
                    )),
                consent,
            ))
            .get_result(conn)
            .optional()
    }

    /// The account with this address (stored lowercase, as [`crate::domain::Email`] gives it).
    pub fn find_by_email(conn: &mut AnyConnection, email: &str) -> QueryResult<Option<User>> {
        users::table
            .filter(users::email.eq(email))
            .select(User::as_select())
            .get_result(conn)
            .optional()
    }

    pub fn find(conn: &mut AnyConnection, id: UserId) -> QueryResult<Option<User>> {
        users::table
            .find(id)
            .select(User::as_select())
            .get_result(conn)
            .optional()
    }

    /// Whether any account exists (a fresh server has none).
    pub fn any(conn: &mut AnyConnection) -> QueryResult<bool> {
        diesel::select(diesel::dsl::exists(users::table.select(users::id))).get_result(conn)
    }

    /// Marks the account as one that builds applications. One statement, which changes
    /// nothing when it is one already.
    pub fn mark_developer(conn: &mut AnyConnection, id: UserId) -> QueryResult<()> {
        diesel::update(users::table.find(id).filter(users::is_developer.eq(false)))
            .set(users::is_developer.eq(true))
            .execute(conn)
            .map(|_| ())
    }

    /// Gives the account a new display name.
    pub fn rename(
        conn: &mut AnyConnection,
        id: UserId,
        name: &str,
        now: NaiveDateTime,
    ) -> QueryResult<()> {
        diesel::update(users::table.find(id))
            .set((users::name.eq(name), users::updated_at.eq(now)))
            .execute(conn)
            .map(|_| ())
    }

    /// Gives the account `email`, confirmed at `now`: only once a link sent there was opened
    /// (`accounts::verify_email`, `accounts::undo_email_change`). Fails with a unique violation
    /// when another account has the address.
    pub fn set_confirmed_email(
        conn: &mut AnyConnection,
        id: UserId,
        email: &str,
        now: NaiveDateTime,
    ) -> QueryResult<()> {
        diesel::update(users::table.find(id))
            .set((
                users::email.eq(email),
                users::email_verified_at.eq(now),
                users::updated_at.eq(now),
            ))
            .execute(conn)
            .map(|_| ())
    }

    /// Stores a new password hash (argon2id PHC string). What else a new password ends is
    /// `accounts::set_password`'s business.
    pub fn set_password(
        conn: &mut AnyConnection,
        id: UserId,
        hash: &str,
        now: NaiveDateTime,
    ) -> QueryResult<()> {
        diesel::update(users::table.find(id))
            .set((users::password.eq(hash), users::updated_at.eq(now)))
            .execute(conn)
            .map(|_| ())
    }
}
