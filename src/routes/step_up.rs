//! Step-up: the account's password again before anything that a stolen session alone must not
//! be able to do — show or rotate a client secret, move the account to another address,
//! change the password.
//!
//! Every wrong password counts in the same lockout as the sign-in page (per account and per
//! address, `auth::throttle`), so a stolen session cannot guess the password without end; and a
//! right one opens the re-authentication window (`auth::session::REAUTH_WINDOW`) for the actions
//! that accept it.

use actix_web::HttpRequest;

use super::page::client_address;
use crate::accounts::{self, SignInError};
use crate::auth::session::TypedSession;
use crate::db;
use crate::db::models::User;
use crate::domain::NewPassword;
use crate::error::AppError;
use crate::state::AppState;

/// Why the step-up did not pass, said beside the password field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The form had no password.
    Missing,
    /// Longer than any password can be: refused before hashing, and not counted.
    TooLong,
    /// Not the account's password.
    Wrong,
    /// Too many wrong passwords for the account or the address.
    Locked { minutes: i64 },
}

impl Refused {
    pub fn message(self) -> String {
        match self {
            Self::Missing => "Enter your password to confirm it is you.".to_owned(),
            Self::TooLong => format!("A password has at most {} characters.", NewPassword::MAX),
            Self::Wrong => "That is not your password.".to_owned(),
            Self::Locked { minutes } => format!(
                "Too many wrong passwords. Try again in {minutes} minute{}.",
                if minutes == 1 { "" } else { "s" }
            ),
        }
    }
}

/// Checks `given` against the signed-in account's password, throttled exactly as signing in is.
pub async fn check_password(
    state: &AppState,
    req: &HttpRequest,
    user: &User,
    given: &str,
) -> Result<Result<(), Refused>, AppError> {
    if given.is_empty() {
        return Ok(Err(Refused::Missing));
    }
    if given.len() > NewPassword::MAX {
        return Ok(Err(Refused::TooLong));
    }
    let (account, given, address) = (user.clone(), given.to_owned(), client_address(req));
    let passwords = state.passwords.clone();
    let _admitted = passwords.admit().await;
    let outcome = db::run(&state.pool, move |conn| {
        accounts::check_password(conn, &passwords, &account, &given, &address)
    })
    .await?;
    Ok(outcome.map_err(|failure| match failure {
        SignInError::Invalid => Refused::Wrong,
        SignInError::Locked { minutes } => Refused::Locked { minutes },
    }))
}

/// Passes if the password was re-entered within the re-authentication window; otherwise checks
/// `given` and, if it is right, opens the window.
pub async fn confirm(
    state: &AppState,
    req: &HttpRequest,
    session: &TypedSession,
    user: &User,
    given: Option<&str>,
) -> Result<Result<(), Refused>, AppError> {
    if session.recently_authenticated() {
        return Ok(Ok(()));
    }
    let Some(given) = given else {
        return Ok(Err(Refused::Missing));
    };
    let checked = check_password(state, req, user, given).await?;
    if checked.is_ok() {
        session.reauthenticated()?;
    }
    Ok(checked)
}

/// Fields of the original form that the step-up page carries along (name, value).
pub type Hidden = Vec<(&'static str, String)>;

/// `portal/reauth.html`'s context: what the password confirms, where the form goes, and the
/// fields of the original form it carries along.
pub fn page_context(
    purpose: &str,
    action: &str,
    cancel: &str,
    hidden: &Hidden,
    error: Option<Refused>,
) -> tera::Context {
    let mut ctx = tera::Context::new();
    ctx.insert("purpose", purpose);
    ctx.insert("action", action);
    ctx.insert("cancel", cancel);
    ctx.insert(
        "hidden",
        &hidden
            .iter()
            .map(|(name, value)| serde_json::json!({ "name": name, "value": value }))
            .collect::<Vec<_>>(),
    );
    if let Some(refused) = error.filter(|r| *r != Refused::Missing) {
        ctx.insert("error", &refused.message());
    }
    ctx
}
