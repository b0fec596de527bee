//! Accounts: creating them, signing in, email verification and password reset. Merchants and
//! end users are the same kind of account. Everything here is blocking (database, argon2):
//! call it from [`db::run`] or a CLI command.

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::auth::password::{self, Passwords};
use crate::auth::throttle;
use crate::crypto;
use crate::db::models::{EmailToken, NewUser, Purpose, SessionRow, User};
use crate::db::schema::users;
use crate::db::{self, AnyConnection, DbError};
use crate::domain::{DisplayName, Email, NewPassword, Username};

/// Email verification links live a day; password reset links an hour.
pub const VERIFY_TTL: TimeDelta = TimeDelta::hours(24);
pub const RESET_TTL: TimeDelta = TimeDelta::hours(1);

#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("username `{0}` is already taken")]
    UsernameTaken(String),
    #[error("email address `{0}` is already in use")]
    EmailTaken(String),
    #[error(transparent)]
    Hash(#[from] password::HashError),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A validated request for a new account.
#[derive(Debug)]
pub struct NewAccount {
    pub username: Username,
    pub name: DisplayName,
    pub email: Option<Email>,
    pub password: NewPassword,
}

/// Hashes the password (argon2id, slow by design) and inserts the user.
pub fn create_user(
    conn: &mut AnyConnection,
    passwords: &Passwords,
    account: &NewAccount,
) -> Result<User, CreateUserError> {
    let hash = passwords.hash(account.password.expose())?;
    let now = db::now();
    let new = NewUser {
        name: account.name.as_str(),
        username: account.username.as_str(),
        password: &hash,
        email: account.email.as_ref().map(Email::as_str),
        created_at: now,
        updated_at: now,
    };
    User::insert(conn, &new).map_err(|e| match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info)
            if info.message().contains("email")
                || info.constraint_name().is_some_and(|c| c.contains("email")) =>
        {
            CreateUserError::EmailTaken(
                account
                    .email
                    .as_ref()
                    .map(|e| e.as_str().to_owned())
                    .unwrap_or_default(),
            )
        }
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
            CreateUserError::UsernameTaken(account.username.as_str().to_owned())
        }
        other => CreateUserError::Db(other.into()),
    })
}

/// Whether a username or an email address is taken, for field errors before the insert.
pub fn taken(conn: &mut AnyConnection, username: &str, email: &str) -> QueryResult<(bool, bool)> {
    let name_taken = User::find_by_username(conn, username)?.is_some();
    let email_taken = users::table
        .filter(users::email.eq(email))
        .count()
        .get_result::<i64>(conn)?
        > 0;
    Ok((name_taken, email_taken))
}

/// Why a sign-in failed.
#[derive(Debug, PartialEq, Eq)]
pub enum SignInError {
    /// Wrong username or password: one message for both.
    Invalid,
    /// Too many failures for the account or the address.
    Locked { minutes: i64 },
}

/// Checks a username and password with the throttles the password grant shares (per account)
/// plus one per client address. Unknown users cost the same argon2 work as known ones.
pub fn sign_in(
    conn: &mut AnyConnection,
    passwords: &Passwords,
    username: &str,
    given: &str,
    address: &str,
) -> Result<Result<User, SignInError>, DbError> {
    let now = db::now();
    let account_key = throttle::account_key(username);
    let address_key = throttle::address_key(address);
    let [account, from_address] =
        match throttle::check_all(conn, [account_key.as_str(), address_key.as_str()], now)? {
            Ok(previous) => previous,
            Err(locked) => {
                return Ok(Err(SignInError::Locked {
                    minutes: locked.minutes_left(now),
                }));
            }
        };
    let user = match Username::parse(username) {
        Ok(name) => User::find_by_username(conn, name.as_str())?,
        Err(_) => None,
    };
    let verified = passwords.verify(given, user.as_ref().map(|u| u.password.as_str()));
    match user {
        Some(user) if verified => {
            throttle::record_success(conn, &account_key, account.as_ref())?;
            Ok(Ok(user))
        }
        _ => {
            let by_account = throttle::record_failure(
                conn,
                &account_key,
                account.as_ref(),
                throttle::ACCOUNT,
                now,
            )?;
            let by_address = throttle::record_failure(
                conn,
                &address_key,
                from_address.as_ref(),
                throttle::ADDRESS,
                now,
            )?;
            Ok(Err(match by_account.or(by_address) {
                Some(locked) => SignInError::Locked {
                    minutes: locked.minutes_left(now),
                },
                None => SignInError::Invalid,
            }))
        }
    }
}

/// Creates a single-use email token; returns it in clear (for the link) — only its digest is
/// stored.
pub fn issue_email_token(
    conn: &mut AnyConnection,
    user_id: i64,
    purpose: Purpose,
    email: Option<&str>,
) -> QueryResult<String> {
    let token = crypto::random_token(32);
    let now = db::now();
    let ttl = match purpose {
        Purpose::VerifyEmail => VERIFY_TTL,
        Purpose::ResetPassword => RESET_TTL,
    };
    EmailToken::insert(
        conn,
        user_id,
        purpose,
        &crypto::token_digest(&token),
        email,
        now,
        now + ttl,
    )?;
    Ok(token)
}

/// Spends a verification token and marks its address verified. `None` if the link is invalid,
/// used or expired, or the account's address changed since it was sent.
pub fn verify_email(conn: &mut AnyConnection, token: &str) -> QueryResult<Option<User>> {
    let now = db::now();
    let Some(row) = EmailToken::find_usable(
        conn,
        &crypto::token_digest(token),
        Purpose::VerifyEmail,
        now,
    )?
    else {
        return Ok(None);
    };
    db::write_transaction(conn, |conn| {
        if !EmailToken::spend(conn, row.id, now)? {
            return Ok(None);
        }
        let updated = diesel::update(
            users::table
                .filter(users::id.eq(row.user_id))
                .filter(users::email.eq(row.email.as_deref().unwrap_or_default())),
        )
        .set((users::email_verified_at.eq(now), users::updated_at.eq(now)))
        .execute(conn)?;
        if updated == 0 {
            return Ok(None);
        }
        User::find(conn, row.user_id)
    })
}

/// The account a reset link belongs to, if the link is still good.
pub fn reset_token_user(
    conn: &mut AnyConnection,
    token: &str,
) -> QueryResult<Option<(EmailToken, User)>> {
    let now = db::now();
    let Some(row) = EmailToken::find_usable(
        conn,
        &crypto::token_digest(token),
        Purpose::ResetPassword,
        now,
    )?
    else {
        return Ok(None);
    };
    Ok(User::find(conn, row.user_id)?.map(|user| (row, user)))
}

/// Sets a new password with a reset token: spends the token, ends every session of the
/// account, and clears its sign-in lock. False if the token was spent meanwhile.
pub fn reset_password(
    conn: &mut AnyConnection,
    token: &EmailToken,
    new_hash: &str,
) -> QueryResult<bool> {
    let now = db::now();
    db::write_transaction(conn, |conn| {
        if !EmailToken::spend(conn, token.id, now)? {
            return Ok(false);
        }
        set_password(conn, token.user_id, new_hash, now)?;
        Ok(true)
    })
}

/// Stores a new password hash and ends every session of the account.
pub fn set_password(
    conn: &mut AnyConnection,
    user_id: i64,
    new_hash: &str,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(users::table.find(user_id))
        .set((users::password.eq(new_hash), users::updated_at.eq(now)))
        .execute(conn)?;
    SessionRow::delete_for_user(conn, user_id)?;
    if let Some(user) = User::find(conn, user_id)? {
        throttle::clear(conn, &throttle::account_key(&user.username))?;
    }
    Ok(())
}
