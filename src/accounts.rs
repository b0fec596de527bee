//! Creating accounts. Merchants and end users are the same kind of account.

use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::auth::password;
use crate::db::models::{NewUser, User};
use crate::db::{self, AnyConnection, DbError};
use crate::domain::{DisplayName, Email, NewPassword, Username};

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

/// Hashes the password (argon2id, slow by design) and inserts the user. Blocking: call it from
/// [`db::run`] or a CLI command.
pub fn create_user(
    conn: &mut AnyConnection,
    account: &NewAccount,
) -> Result<User, CreateUserError> {
    let hash = password::hash(account.password.expose())?;
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
