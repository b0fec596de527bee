//! Step-up: the account's password again before anything that a stolen session alone must not
//! be able to do — show or rotate a client secret, change an application's keys, take an
//! application live, disable or delete it, move the account to another address, change the
//! password. An account with a second factor (`mfa`) is asked for a code from it (or a
//! passkey) instead: a stolen session that has learnt the password still cannot pass.
//!
//! Every wrong password counts in the same lockout as the sign-in page (per account and per
//! address, `auth::throttle`), so a stolen session cannot guess the password without end; and a
//! right one opens the re-authentication window (`auth::session::REAUTH_WINDOW`) for the actions
//! that accept it.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};

use super::page::{client_address, render};
use crate::accounts::{self, SignInError};
use crate::auth::session::TypedSession;
use crate::db;
use crate::db::models::User;
use crate::domain::NewPassword;
use crate::error::AppError;
use crate::mfa;
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
    /// The account has a second factor and the form had no code.
    CodeMissing,
    /// Not a code of the account's factor (or one used already).
    CodeWrong,
    /// Too many wrong codes or passwords for the account or the address.
    CodeLocked { minutes: i64 },
    /// The passkey's answer did not verify (another challenge, a removed passkey…).
    PasskeyWrong,
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
            Self::CodeMissing => {
                "Enter a code from your authenticator app, or a recovery code.".to_owned()
            }
            Self::CodeWrong => {
                "That code is not right, or was used already. Wait for the next one.".to_owned()
            }
            Self::PasskeyWrong => {
                "That passkey was not accepted. Try it again, or enter a code instead.".to_owned()
            }
            Self::CodeLocked { minutes } => format!(
                "Too many wrong codes. Try again in {minutes} minute{}.",
                if minutes == 1 { "" } else { "s" }
            ),
        }
    }

    /// Whether the page asks for a second-factor code rather than the password.
    pub fn asks_code(self) -> bool {
        matches!(
            self,
            Self::CodeMissing | Self::CodeWrong | Self::CodeLocked { .. } | Self::PasskeyWrong
        )
    }

    /// Whether nothing was tried yet (the page is shown for the first time).
    pub fn is_missing(self) -> bool {
        matches!(self, Self::Missing | Self::CodeMissing)
    }
}

/// Checks `given` as a code of the signed-in account's second factor, in the sign-in lockout.
pub async fn check_code(
    state: &AppState,
    req: &HttpRequest,
    user: &User,
    given: &str,
) -> Result<Result<mfa::Factor, Refused>, AppError> {
    if given.trim().is_empty() {
        return Ok(Err(Refused::CodeMissing));
    }
    if given.len() > 64 {
        return Ok(Err(Refused::CodeWrong));
    }
    let (account, given, address) = (user.clone(), given.to_owned(), client_address(req));
    let key = state.server_key.clone();
    let outcome = db::run(&state.pool, move |conn| {
        mfa::verify(conn, &key, &account, &given, &address)
    })
    .await?;
    Ok(outcome.map_err(|failure| match failure {
        SignInError::Invalid => Refused::CodeWrong,
        SignInError::Locked { minutes } => Refused::CodeLocked { minutes },
    }))
}

/// Checks a second factor for `user`: a passkey's `answer` to the challenge this session was
/// shown, if one was sent, else `code`. Both count in the sign-in lockout.
pub async fn check_factor(
    state: &AppState,
    req: &HttpRequest,
    session: &TypedSession,
    user: &User,
    code: &str,
    answer: Option<&str>,
) -> Result<Result<mfa::Factor, Refused>, AppError> {
    let Some(answer) = answer.filter(|a| !a.trim().is_empty()) else {
        return check_code(state, req, user, code).await;
    };
    let (Some(rp), Some(ceremony)) = (state.passkeys.clone(), session.take_passkey_challenge())
    else {
        return Ok(Err(Refused::PasskeyWrong));
    };
    if answer.len() > 16 * 1024 {
        return Ok(Err(Refused::PasskeyWrong));
    }
    let (account, answer, address) = (user.clone(), answer.to_owned(), client_address(req));
    let outcome = db::run(&state.pool, move |conn| {
        mfa::verify_passkey(conn, &rp, &account, &ceremony, &answer, &address)
    })
    .await?;
    Ok(outcome.map_err(|failure| match failure {
        SignInError::Invalid => Refused::PasskeyWrong,
        SignInError::Locked { minutes } => Refused::CodeLocked { minutes },
    }))
}

/// What a page asking for a second factor offers: whether the account has an authenticator
/// app (else the code field takes recovery codes only), and, if it has passkeys and this
/// server can use them, the options of a new passkey challenge (kept in the session).
#[derive(Debug, Default, serde::Serialize)]
pub struct Offer {
    pub totp: bool,
    pub passkey_options: Option<String>,
}

pub async fn offer(
    state: &AppState,
    session: &TypedSession,
    user_id: crate::domain::UserId,
) -> Result<Offer, AppError> {
    let rp = state.passkeys.clone();
    let (totp, challenge) = db::run(&state.pool, move |conn| {
        let totp = crate::db::models::UserTotp::find(conn, user_id)?.is_some();
        let challenge = match rp {
            Some(rp) => crate::passkeys::start_authentication(&rp, conn, user_id)?,
            None => None,
        };
        Ok::<_, db::DbError>((totp, challenge))
    })
    .await?;
    let passkey_options = match challenge {
        Some((options, ceremony)) => {
            session.keep_passkey_challenge(&ceremony)?;
            Some(options)
        }
        None => None,
    };
    Ok(Offer {
        totp,
        passkey_options,
    })
}

/// Whether the account has a second factor.
pub async fn has_factor(state: &AppState, user: &User) -> Result<bool, AppError> {
    let user_id = user.id;
    Ok(db::run(&state.pool, move |conn| mfa::has_factor(conn, user_id)).await?)
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

/// What a step-up form sends, flattened into the form it guards (`#[serde(flatten)]`): the
/// password, or a code of the account's second factor, in `password`; or a passkey's signed
/// answer to the page's challenge in `passkey`.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Given {
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub passkey: Option<String>,
}

impl Given {
    fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }
}

/// Passes if the account confirmed it is itself within the re-authentication window;
/// otherwise checks what was `given` (a factor's code or passkey when the account has a
/// factor, else the password) and, if it is right, opens the window.
pub async fn confirm(
    state: &AppState,
    req: &HttpRequest,
    session: &TypedSession,
    user: &User,
    given: &Given,
) -> Result<Result<(), Refused>, AppError> {
    if session.recently_authenticated() {
        return Ok(Ok(()));
    }
    if has_factor(state, user).await? {
        let code = given.password().unwrap_or_default();
        let checked =
            check_factor(state, req, session, user, code, given.passkey.as_deref()).await?;
        if checked.is_ok() {
            session.reauthenticated()?;
        }
        return Ok(checked.map(|_| ()));
    }
    let Some(given) = given.password() else {
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

/// What a step-up page confirms (`to {purpose}`), where its form goes, where Cancel leads, and
/// the fields of the original form it carries along.
pub struct Ask<'a> {
    pub purpose: &'a str,
    pub action: &'a str,
    pub cancel: &'a str,
    pub hidden: &'a Hidden,
}

/// What an irreversible or far-reaching action does, said on the page that confirms it: the
/// same page then asks for the step-up when the window is closed, so one click both confirms
/// and proves who is clicking ([`ask_confirming`]).
#[derive(Debug, serde::Serialize)]
pub struct Consequences<'a> {
    /// The page's heading, a question (`Disable “Shop”?`).
    pub title: &'a str,
    /// What happens, before the list.
    pub lead: &'a str,
    pub points: &'a [String],
    /// After the list: a way to do less, if there is one.
    pub note: Option<&'a str>,
    /// The label of the button that does it.
    pub button: &'a str,
    /// A name the person types to confirm (deleting a live application), and why what they
    /// typed did not match.
    pub type_to_confirm: Option<TypeToConfirm<'a>>,
}

/// "Type “Acme Shop” to confirm": the field, and its error once something else was typed.
#[derive(Debug, serde::Serialize)]
pub struct TypeToConfirm<'a> {
    pub name: &'a str,
    pub typed: &'a str,
    pub error: Option<&'a str>,
}

/// The step-up page (`portal/reauth.html`): the password, or a code for an account with a
/// factor, with `refused` beside the field once something was tried (422), or plain (200).
pub async fn ask(
    state: &AppState,
    session: &TypedSession,
    user: &User,
    ask: &Ask<'_>,
    refused: Refused,
) -> Result<HttpResponse, AppError> {
    confirmation_page(state, session, user, ask, None, Some(refused)).await
}

/// What the step-up asks for first, or `None` while the window is open: the page then only
/// confirms.
pub async fn pending(
    state: &AppState,
    session: &TypedSession,
    user: &User,
) -> Result<Option<Refused>, AppError> {
    if session.recently_authenticated() {
        return Ok(None);
    }
    Ok(Some(if has_factor(state, user).await? {
        Refused::CodeMissing
    } else {
        Refused::Missing
    }))
}

/// The page that says what an action does (`consequences`) with its button, and the step-up's
/// fields unless the window is open (`refused` is `None`, see [`pending`]).
pub async fn ask_confirming(
    state: &AppState,
    session: &TypedSession,
    user: &User,
    ask: &Ask<'_>,
    consequences: &Consequences<'_>,
    refused: Option<Refused>,
) -> Result<HttpResponse, AppError> {
    confirmation_page(state, session, user, ask, Some(consequences), refused).await
}

async fn confirmation_page(
    state: &AppState,
    session: &TypedSession,
    user: &User,
    ask: &Ask<'_>,
    consequences: Option<&Consequences<'_>>,
    refused: Option<Refused>,
) -> Result<HttpResponse, AppError> {
    let mut ctx = page_context(ask.purpose, ask.action, ask.cancel, ask.hidden, refused);
    if refused.is_some_and(Refused::asks_code) {
        ctx.insert("offer", &offer(state, session, user.id).await?);
    }
    if let Some(consequences) = consequences {
        ctx.insert("consequences", consequences);
    }
    let mistyped = consequences
        .and_then(|c| c.type_to_confirm.as_ref())
        .is_some_and(|t| t.error.is_some());
    let status = if refused.is_none_or(Refused::is_missing) && !mistyped {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    render(
        state,
        session,
        Some(user),
        "portal/reauth.html",
        ctx,
        status,
    )
}

/// `portal/reauth.html`'s context: what the password confirms, where the form goes, and the
/// fields of the original form it carries along; `error` is `None` when nothing is asked.
fn page_context(
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
    ctx.insert("asks", &error.is_some());
    ctx.insert("factor", &error.is_some_and(Refused::asks_code));
    if let Some(refused) = error.filter(|r| !r.is_missing()) {
        ctx.insert("error", &refused.message());
    }
    ctx
}
