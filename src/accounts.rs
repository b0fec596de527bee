//! Accounts: creating them, signing in, email verification and password reset. Merchants and
//! end users are the same kind of account. Everything here is blocking (database, argon2):
//! call it from [`db::run`] or a CLI command.

use chrono::{NaiveDateTime, TimeDelta};
use diesel::QueryResult;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::auth::password::{self, Passwords};
use crate::auth::throttle;
use crate::crypto::{self, ServerKey};
use crate::db::models::{
    AccessToken, EmailToken, NewUser, Purpose, RefreshToken, SessionRow, User,
};
use crate::db::{self, AnyConnection, DbError};
use crate::domain::{ClientRowId, DisplayName, Email, GrantType, NewPassword, UserId, Username};

/// Email verification links live a day; password reset links an hour.
pub const VERIFY_TTL: TimeDelta = TimeDelta::hours(24);
pub const RESET_TTL: TimeDelta = TimeDelta::hours(1);
/// Sign-up links live a day, like verification links.
pub const SIGNUP_TTL: TimeDelta = TimeDelta::hours(24);
/// Authenticated with every sign-up token, so no other sealed value passes for one.
const SIGNUP_CONTEXT: &str = "latchkey sign-up link";

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
    /// Whether the address is already proven, as it is when the account comes from a sign-up
    /// link that was sent to it.
    pub email_verified: bool,
    pub password: NewPassword,
    /// Builds applications ([`User::is_developer`]).
    pub developer: bool,
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
        email_verified_at: (account.email_verified && account.email.is_some()).then_some(now),
        created_at: now,
        updated_at: now,
        is_developer: account.developer,
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
    let email_taken = User::find_by_email(conn, email)?.is_some();
    Ok((name_taken, email_taken))
}

/// Who an address belongs to, for mail that anyone can have us send there (a sign-up link, a
/// change of address): the caller mails the next step or a reminder, never tells the asker.
pub enum Recipient {
    Free,
    Registered(User),
    /// Has had its share of such mail for the hour ([`throttle::MAIL`]).
    Rationed,
}

/// Counts one message to `email` against its ration, and finds whose address it is.
pub fn recipient(
    conn: &mut AnyConnection,
    email: &str,
    now: NaiveDateTime,
) -> QueryResult<Recipient> {
    if !throttle::allow_mail(conn, email, now)? {
        return Ok(Recipient::Rationed);
    }
    Ok(match User::find_by_email(conn, email)? {
        Some(user) => Recipient::Registered(user),
        None => Recipient::Free,
    })
}

/// What a sign-up link carries: the address it was sent to, and the page to go on to once the
/// account exists (the authorization request that sent the person to sign up, say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignupLink {
    pub email: Email,
    pub next: Option<String>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SealedSignup {
    email: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
    /// Unix seconds.
    expires: i64,
}

/// The token of a sign-up link: the address, the next page and the expiry, sealed
/// (XChaCha20-Poly1305) under the server key. Holding it proves that one reads mail at that
/// address, and no pending sign-up is stored: the account it creates spends it, since an
/// address has at most one account.
pub fn signup_token(key: &ServerKey, link: &SignupLink, now: NaiveDateTime) -> String {
    let sealed = SealedSignup {
        email: link.email.as_str().to_owned(),
        next: link.next.clone(),
        expires: (now + SIGNUP_TTL).and_utc().timestamp(),
    };
    let json = serde_json::to_vec(&sealed)
        .unwrap_or_else(|_| unreachable!("strings and an integer serialize"));
    key.encrypt(&json, SIGNUP_CONTEXT)
}

/// What a sign-up token carries, if the token is ours and has not expired.
pub fn open_signup_token(key: &ServerKey, token: &str, now: NaiveDateTime) -> Option<SignupLink> {
    let plain = key.decrypt(token, SIGNUP_CONTEXT).ok()?;
    let sealed: SealedSignup = serde_json::from_slice(&plain).ok()?;
    if now.and_utc().timestamp() >= sealed.expires {
        return None;
    }
    Some(SignupLink {
        email: Email::parse(&sealed.email).ok()?,
        next: sealed.next,
    })
}

/// Why a sign-in failed.
#[derive(Debug, PartialEq, Eq)]
pub enum SignInError {
    /// Wrong username or password: one message for both.
    Invalid,
    /// Too many failures for the account or the address.
    Locked { minutes: i64 },
}

/// An account whose password was right.
#[derive(Debug)]
pub struct SignedIn {
    pub user: User,
    /// The account has a second factor (`mfa`): the password alone is not enough.
    pub has_factor: bool,
    /// The scopes the account granted the application named by `consent_for`, if any.
    pub consent: Option<String>,
}

/// Checks a username and password, for the login page and the password grant alike, under
/// the account's and the client address's lockouts. Unknown users cost the same argon2 work as
/// known ones.
/// `consent_for`: the application an authorization request waiting for this sign-in is for,
/// whose consent is then read in the same statement as the account.
pub fn sign_in(
    conn: &mut AnyConnection,
    passwords: &Passwords,
    username: &str,
    given: &str,
    address: &str,
    consent_for: Option<ClientRowId>,
) -> Result<Result<SignedIn, SignInError>, DbError> {
    let found = match Username::parse(username) {
        Ok(name) => User::find_by_username_with_factor(conn, name.as_str(), consent_for)?,
        Err(_) => None,
    };
    let user = found.as_ref().map(|(user, _, _)| user);
    let verdict = verify_throttled(conn, passwords, username, user, given, address)?;
    Ok(verdict.and_then(|()| {
        found
            .map(|(user, has_factor, consent)| SignedIn {
                user,
                has_factor,
                consent,
            })
            .ok_or(SignInError::Invalid)
    }))
}

/// Checks the password of a user who is already signed in (before a sensitive action), under
/// the same throttles as [`sign_in`]: wrong passwords here count towards the account's and
/// the address's locks, and a locked account or address is refused here too.
pub fn check_password(
    conn: &mut AnyConnection,
    passwords: &Passwords,
    user: &User,
    given: &str,
    address: &str,
) -> Result<Result<(), SignInError>, DbError> {
    verify_throttled(conn, passwords, &user.username, Some(user), given, address)
}

/// The one place a person's password is checked: a slot of the account's and the address's
/// budgets is reserved first ([`throttle::reserve`]), so an attempt over either is refused
/// without running argon2, then the password is verified (against a dummy hash when `user` is
/// `None`, so an unknown account costs the same) and the outcome recorded.
fn verify_throttled(
    conn: &mut AnyConnection,
    passwords: &Passwords,
    username: &str,
    user: Option<&User>,
    given: &str,
    address: &str,
) -> Result<Result<(), SignInError>, DbError> {
    let now = db::now();
    let account_key = throttle::account_key(username);
    let address_key = throttle::address_key(address);
    let keys = [
        (account_key.as_str(), throttle::ACCOUNT),
        (address_key.as_str(), throttle::ADDRESS),
    ];
    let outcome = |outcome: &'static str| {
        metrics::counter!(crate::metrics::SIGN_INS, "outcome" => outcome).increment(1);
    };
    let attempt = match throttle::reserve(conn, &keys, now)? {
        Ok(attempt) => attempt,
        Err(locked) => {
            outcome("locked");
            return Ok(Err(locked_out(locked, now)));
        }
    };
    if passwords.verify(given, user.map(|u| u.password.as_str())) {
        attempt.succeeded(conn)?;
        outcome("success");
        return Ok(Ok(()));
    }
    outcome("invalid");
    Ok(Err(match attempt.failed(conn, now)? {
        Some(locked) => {
            metrics::counter!(crate::metrics::LOCKOUTS).increment(1);
            locked_out(locked, now)
        }
        None => SignInError::Invalid,
    }))
}

fn locked_out(locked: throttle::Locked, now: NaiveDateTime) -> SignInError {
    SignInError::Locked {
        minutes: locked.minutes_left(now),
    }
}

/// Creates a single-use email token; returns it in clear (for the link) — only its digest is
/// stored. Earlier links of the same purpose stop working: only the newest one sent counts, so
/// a superseded change of address cannot be confirmed later.
pub fn issue_email_token(
    conn: &mut AnyConnection,
    user_id: UserId,
    purpose: Purpose,
    email: Option<&str>,
) -> QueryResult<String> {
    db::write_transaction(conn, |conn| {
        new_email_token(conn, user_id, purpose, email, db::now())
    })
}

/// [`issue_email_token`] inside a transaction the caller holds.
fn new_email_token(
    conn: &mut AnyConnection,
    user_id: UserId,
    purpose: Purpose,
    email: Option<&str>,
    now: NaiveDateTime,
) -> QueryResult<String> {
    let token = crypto::random_token(32);
    let ttl = match purpose {
        Purpose::VerifyEmail | Purpose::UndoEmailChange => VERIFY_TTL,
        Purpose::ResetPassword => RESET_TTL,
    };
    // Undo links are the exception: each one restores the address it was sent to, and an
    // intruder who changes the address twice must not void the first one.
    if purpose != Purpose::UndoEmailChange {
        EmailToken::retire(conn, user_id, &[purpose], now)?;
    }
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

/// What a confirmation link did.
#[derive(Debug)]
pub enum Confirmation {
    /// The account now has the link's address, confirmed. `previous` is the address it had,
    /// with the token of the link that puts it back, for the notice to that address.
    Confirmed { user: User, previous: Option<Undo> },
    /// Invalid, used or expired.
    Invalid,
    /// Another account took the address after the link was sent.
    Taken,
}

/// The way back to an address the account no longer has.
#[derive(Debug)]
pub struct Undo {
    pub address: String,
    /// The token of the `/account/email/undo/{token}` link, in clear.
    pub token: String,
}

/// The links that lose their meaning when the account's address or password changes: a reset
/// link mailed to the old address, a confirmation of an address chosen before.
const SUPERSEDED: &[Purpose] = &[Purpose::VerifyEmail, Purpose::ResetPassword];

/// Spends a confirmation token and gives its account the address the link was sent to, marked
/// confirmed. A changed address is therefore only stored once its owner has opened the link,
/// so an account can never claim an address it does not read. Every other outstanding link of
/// the account stops working, and if the account had another address, a link that puts it
/// back is made for the notice sent there (see [`undo_email_change`]).
pub fn verify_email(conn: &mut AnyConnection, token: &str) -> QueryResult<Confirmation> {
    let now = db::now();
    let Some(row) = EmailToken::find_usable(
        conn,
        &crypto::token_digest(token),
        Purpose::VerifyEmail,
        now,
    )?
    else {
        return Ok(Confirmation::Invalid);
    };
    let Some(email) = row.email.as_deref() else {
        return Ok(Confirmation::Invalid);
    };
    let outcome = db::write_transaction(conn, |conn| {
        if !EmailToken::spend(conn, row.id, now)? {
            return Ok(Confirmation::Invalid);
        }
        let Some(before) = User::find(conn, row.user_id)? else {
            return Ok(Confirmation::Invalid);
        };
        EmailToken::retire(conn, row.user_id, SUPERSEDED, now)?;
        User::set_confirmed_email(conn, row.user_id, email, now)?;
        let previous = match before.email {
            Some(old) if !old.eq_ignore_ascii_case(email) => {
                let token =
                    new_email_token(conn, row.user_id, Purpose::UndoEmailChange, Some(&old), now)?;
                Some(Undo {
                    address: old,
                    token,
                })
            }
            _ => None,
        };
        Ok(match User::find(conn, row.user_id)? {
            Some(user) => Confirmation::Confirmed { user, previous },
            None => Confirmation::Invalid,
        })
    });
    match outcome {
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
            Ok(Confirmation::Taken)
        }
        other => other,
    }
}

/// What an undo link did.
#[derive(Debug)]
pub enum Restored {
    /// The address is back; `reset` is the token of a password reset link for the person to
    /// choose a new password at once.
    Done {
        user: User,
        reset: String,
    },
    Invalid,
    /// Someone else has the old address now.
    Taken,
}

/// Puts back the address an undo link was sent to, after a change its owner did not make:
/// the address is restored (confirmed, since the link reached it), every session of the account
/// ends, every other link and the API access the password grant gave are revoked, and a reset
/// link is made so the owner can replace the password the intruder may know.
pub fn undo_email_change(conn: &mut AnyConnection, token: &str) -> QueryResult<Restored> {
    let now = db::now();
    let Some((row, _)) = token_user(conn, token, Purpose::UndoEmailChange)? else {
        return Ok(Restored::Invalid);
    };
    let Some(address) = row.email.clone() else {
        return Ok(Restored::Invalid);
    };
    let outcome = db::write_transaction(conn, |conn| {
        if !EmailToken::spend(conn, row.id, now)? {
            return Ok(Restored::Invalid);
        }
        EmailToken::retire(
            conn,
            row.user_id,
            &[
                Purpose::VerifyEmail,
                Purpose::ResetPassword,
                Purpose::UndoEmailChange,
            ],
            now,
        )?;
        User::set_confirmed_email(conn, row.user_id, &address, now)?;
        end_access(conn, row.user_id, now)?;
        let reset = new_email_token(conn, row.user_id, Purpose::ResetPassword, None, now)?;
        Ok(match User::find(conn, row.user_id)? {
            Some(user) => Restored::Done { user, reset },
            None => Restored::Invalid,
        })
    });
    match outcome {
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
            Ok(Restored::Taken)
        }
        other => other,
    }
}

/// The account an emailed link for `purpose` belongs to (a reset link, the link that undoes a
/// change of address), with the link's row, if the link is still good.
pub fn token_user(
    conn: &mut AnyConnection,
    token: &str,
    purpose: Purpose,
) -> QueryResult<Option<(EmailToken, User)>> {
    let now = db::now();
    let Some(row) = EmailToken::find_usable(conn, &crypto::token_digest(token), purpose, now)?
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

/// Stores a new password hash and ends what the old password opened: every session, every
/// token the password grant issued (refresh families and their access tokens), and every
/// outstanding reset or confirmation link. Undo links stay: the owner of a previous address
/// can still take the account back. Clears the sign-in lock.
pub fn set_password(
    conn: &mut AnyConnection,
    user_id: UserId,
    new_hash: &str,
    now: NaiveDateTime,
) -> QueryResult<()> {
    User::set_password(conn, user_id, new_hash, now)?;
    EmailToken::retire(conn, user_id, SUPERSEDED, now)?;
    end_access(conn, user_id, now)?;
    if let Some(user) = User::find(conn, user_id)? {
        throttle::clear(conn, &throttle::account_key(&user.username))?;
    }
    Ok(())
}

/// Ends every session of the account and revokes what the password grant issued for it: the
/// access that knowing the password gave, without the consent pages that the other grants
/// went through (those stay under Authorized apps, where the person can revoke them).
fn end_access(conn: &mut AnyConnection, user_id: UserId, now: NaiveDateTime) -> QueryResult<()> {
    SessionRow::delete_for_user(conn, user_id)?;
    let password = GrantType::Password.as_str();
    AccessToken::revoke_begun_by(conn, user_id, password, now)?;
    RefreshToken::revoke_families_begun_by(conn, user_id, password, now)?;
    Ok(())
}
