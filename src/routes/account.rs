//! `/account`: the signed-in person's name, email address and password. Changing the address
//! or the password needs the current password; an account with a second factor must also have
//! given it within the step-up window (`/account/confirm`), since the password alone is what a
//! thief who learnt it would give.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::page::{
    CsrfForm, CsrfOnly, CsrfProtected, CurrentUser, message, render, safe_next, see_other,
};
use super::signup::already_registered;
use super::step_up;
use crate::accounts::{self, Recipient};
use crate::auth::session::TypedSession;
use crate::db::models::{Purpose, User};
use crate::db::{self, DbError};
use crate::domain::{DisplayName, Email, NewPassword, Username};
use crate::email::Template;
use crate::error::AppError;
use crate::state::AppState;

const PAGE: &str = "/account";

/// Beside the password fields while [`factor_pending`].
const FACTOR_FIRST: &str =
    "Your account has two-step sign-in: confirm it is you with it first (above), then save again.";

/// Whether the account has a second factor that was not given within the step-up window: its
/// email address and password wait for it.
async fn factor_pending(
    state: &AppState,
    session: &TypedSession,
    user: &User,
) -> Result<bool, AppError> {
    Ok(!session.recently_authenticated() && step_up::has_factor(state, user).await?)
}

async fn page(
    state: &AppState,
    session: &TypedSession,
    user: &User,
    values: &HashMap<&str, String>,
    errors: &HashMap<&str, String>,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    let mut ctx = tera::Context::new();
    ctx.insert("values", values);
    ctx.insert("errors", errors);
    ctx.insert("min_password", &NewPassword::MIN);
    ctx.insert(
        "factor_pending",
        &factor_pending(state, session, user).await?,
    );
    render(state, session, Some(user), "account.html", ctx, status)
}

pub async fn show(
    state: web::Data<AppState>,
    session: TypedSession,
    CurrentUser(user): CurrentUser,
) -> Result<HttpResponse, AppError> {
    let values = HashMap::from([
        ("name", user.name.clone()),
        ("email", user.email.clone().unwrap_or_default()),
    ]);
    page(
        &state,
        &session,
        &user,
        &values,
        &HashMap::new(),
        StatusCode::OK,
    )
    .await
}

#[derive(Deserialize)]
pub struct ProfileForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    /// Needed only to change the address (step-up).
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf_token: String,
}

impl CsrfProtected for ProfileForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

/// `POST /account/profile`: the display name and the email address. A new address needs the
/// password (a stolen session alone must not move the account to another inbox, from which a
/// password reset would take it) and the second factor if the account has one ([`confirm`]),
/// and is stored only once its owner opens the link sent there;
/// if another account has it, that account's owner is told instead. The page says the same
/// either way, so it reveals no addresses.
pub async fn update_profile(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: TypedSession,
    CurrentUser(user): CurrentUser,
    CsrfForm(form): CsrfForm<ProfileForm>,
) -> Result<HttpResponse, AppError> {
    let values = HashMap::from([("name", form.name.clone()), ("email", form.email.clone())]);
    let mut errors = HashMap::new();
    let name = DisplayName::parse(&form.name)
        .map_err(|e| errors.insert("name", format!("Display name {e}.")));
    let email = Email::parse(&form.email)
        .map_err(|e| errors.insert("email", format!("Email address {e}.")));
    let (Ok(name), Ok(email)) = (name, email) else {
        return page(
            &state,
            &session,
            &user,
            &values,
            &errors,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    };
    let moving = user.email.as_deref() != Some(email.as_str());
    let step_up = if !moving {
        Ok(())
    } else if factor_pending(&state, &session, &user).await? {
        Err(FACTOR_FIRST.to_owned())
    } else {
        step_up::check_password(&state, &req, &user, &form.password)
            .await?
            .map_err(|refused| match refused {
                step_up::Refused::Missing => {
                    "Enter your password to change your email address.".to_owned()
                }
                other => other.message(),
            })
    };
    if let Err(message) = step_up {
        errors.insert("password", message);
        return page(
            &state,
            &session,
            &user,
            &values,
            &errors,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    let user_id = user.id;
    db::run(&state.pool, move |conn| {
        User::rename(conn, user_id, name.as_str(), db::now()).map_err(DbError::from)
    })
    .await?;
    if !moving {
        session.flash("success", "Your profile was saved.");
        return Ok(see_other("/account"));
    }
    let background = state.clone();
    let address = email.clone();
    actix_web::rt::spawn(async move { confirm_new_address(&background, user, address).await });
    session.flash(
        "success",
        format!(
            "Saved. We sent a link to {}: your address changes when you open it.",
            email.as_str()
        ),
    );
    Ok(see_other("/account"))
}

#[derive(Deserialize)]
pub struct ConfirmQuery {
    next: Option<String>,
}

/// Where the step-up goes on to: a path on this site, else the account page.
fn next_page(next: Option<&str>) -> String {
    safe_next(next).unwrap_or_else(|| PAGE.to_owned())
}

/// The step-up page of `/account/confirm`, going on to `next`.
async fn ask_confirm(
    state: &AppState,
    session: &TypedSession,
    user: &User,
    next: String,
    refused: step_up::Refused,
) -> Result<HttpResponse, AppError> {
    step_up::ask(
        state,
        session,
        user,
        &step_up::Ask {
            purpose: "change your email address or password",
            action: "/account/confirm",
            cancel: &next,
            hidden: &vec![("next", next.clone())],
        },
        refused,
    )
    .await
}

/// `GET /account/confirm?next=…`: the step-up on its own, for the forms whose own field is the
/// password (the account page): a factor's code or passkey, or the password for an account
/// without one. Straight on to `next` while the window is open.
pub async fn confirm_form(
    state: web::Data<AppState>,
    session: TypedSession,
    CurrentUser(user): CurrentUser,
    query: web::Query<ConfirmQuery>,
) -> Result<HttpResponse, AppError> {
    let next = next_page(query.next.as_deref());
    match step_up::pending(&state, &session, &user).await? {
        None => Ok(see_other(&next)),
        Some(refused) => ask_confirm(&state, &session, &user, next, refused).await,
    }
}

#[derive(Deserialize)]
pub struct ConfirmForm {
    #[serde(default)]
    next: Option<String>,
    #[serde(flatten)]
    given: step_up::Given,
    #[serde(default)]
    csrf_token: String,
}

impl CsrfProtected for ConfirmForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

/// `POST /account/confirm`: opens the step-up window, then goes on to `next`.
pub async fn confirm(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: TypedSession,
    CurrentUser(user): CurrentUser,
    CsrfForm(form): CsrfForm<ConfirmForm>,
) -> Result<HttpResponse, AppError> {
    let next = next_page(form.next.as_deref());
    if let Err(refused) = step_up::confirm(&state, &req, &session, &user, &form.given).await? {
        return ask_confirm(&state, &session, &user, next, refused).await;
    }
    session.flash(
        "success",
        "Confirmed: you will not be asked again for 10 minutes.",
    );
    Ok(see_other(&next))
}

/// Mails the link that moves `user` to `email`, or, if the address has an account, a reminder
/// to that account's owner.
async fn confirm_new_address(state: &AppState, user: User, email: Email) {
    let address = email.as_str().to_owned();
    let user_id = user.id;
    let next = db::run(&state.pool, move |conn| {
        Ok::<_, DbError>(match accounts::recipient(conn, &address, db::now())? {
            Recipient::Free => Ok(accounts::issue_email_token(
                conn,
                user_id,
                Purpose::VerifyEmail,
                Some(&address),
            )?),
            other => Err(other),
        })
    })
    .await;
    let message = match next {
        Ok(Ok(token)) => {
            let link = format!("{}/verify-email/{token}", state.issuer);
            Template::VerifyEmail {
                name: &user.name,
                link: &link,
            }
            .render(&state.templates, email.as_str())
        }
        Ok(Err(Recipient::Registered(owner))) => already_registered(state, &owner),
        Ok(Err(_)) => {
            tracing::warn!("address confirmation withheld: too many for this address");
            return;
        }
        Err(e) => {
            tracing::error!(error = %crate::error::error_chain(&e), "address change lookup failed");
            return;
        }
    };
    state.mailer.deliver(message).await;
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    confirm: String,
    #[serde(default)]
    csrf_token: String,
}

impl CsrfProtected for PasswordForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

/// `POST /account/password`: needs the current password, and the second factor if the account
/// has one ([`confirm`]). Ends every other session, and the API access that the password grant
/// gave with the old password.
pub async fn change_password(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: TypedSession,
    CurrentUser(user): CurrentUser,
    CsrfForm(form): CsrfForm<PasswordForm>,
) -> Result<HttpResponse, AppError> {
    let values = HashMap::from([
        ("name", user.name.clone()),
        ("email", user.email.clone().unwrap_or_default()),
    ]);
    let mut errors = HashMap::new();
    let username = Username::parse(&user.username).map_err(|_| AppError::NotFound)?;
    match NewPassword::parse(&form.new_password, &username) {
        Err(e) => {
            errors.insert("new_password", format!("New password {e}."));
        }
        Ok(_) if form.new_password != form.confirm => {
            errors.insert("confirm", "The two passwords differ.".to_owned());
        }
        Ok(_) => {}
    }
    // Checked like a sign-in: every wrong one counts in the account's lockout.
    if factor_pending(&state, &session, &user).await? {
        errors.insert("current_password", FACTOR_FIRST.to_owned());
    } else if let Err(refused) =
        step_up::check_password(&state, &req, &user, &form.current_password).await?
    {
        errors.insert(
            "current_password",
            match refused {
                step_up::Refused::Missing => "Enter your current password.".to_owned(),
                step_up::Refused::Wrong => "This is not your current password.".to_owned(),
                locked => locked.message(),
            },
        );
    }
    if !errors.is_empty() {
        return page(
            &state,
            &session,
            &user,
            &values,
            &errors,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    let (user_id, new_password) = (user.id, form.new_password);
    let passwords = state.passwords.clone();
    let _admitted = passwords.admit().await;
    db::run(&state.pool, move |conn| {
        let hash = passwords.hash(&new_password)?;
        db::write_transaction(conn, |conn| {
            accounts::set_password(conn, user_id, &hash, db::now())
        })
        .map_err(|e| AppError::from(DbError::from(e)))
    })
    .await?;
    // Every session ended with the change, this one too: start a fresh one.
    session.log_in(
        user.id,
        &super::page::user_agent(&req),
        &super::page::client_address(&req),
    )?;
    session.flash(
        "success",
        "Your password was changed. Every other session of your account was signed out.",
    );
    Ok(see_other("/account"))
}

/// Tells the address an account just left that it changed, with the link that undoes it
/// ([`accounts::undo_email_change`]): whoever moved the account away from its owner's inbox
/// cannot keep them from hearing of it.
pub(super) async fn tell_previous_address(state: &AppState, user: &User, undo: &accounts::Undo) {
    let link = format!("{}/account/email/undo/{}", state.issuer, undo.token);
    let when = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string();
    let message = Template::EmailChanged {
        name: &user.name,
        username: &user.username,
        new_address: user.email.as_deref().unwrap_or_default(),
        when: &when,
        link: &link,
        hours: accounts::VERIFY_TTL.num_hours(),
    }
    .render(&state.templates, &undo.address);
    state.mailer.deliver(message).await;
}

fn undo_invalid(state: &AppState, session: &TypedSession) -> Result<HttpResponse, AppError> {
    message(
        state,
        session,
        "This link does not work",
        "The link is invalid, was already used, or has expired. If someone else changed your address, ask for a password reset from the sign-in page.",
        StatusCode::BAD_REQUEST,
    )
}

/// `GET /account/email/undo/{token}`: asks before putting the address back. Opening the link
/// changes nothing, so a mail scanner that follows links does no harm.
pub async fn undo_email_form(
    state: web::Data<AppState>,
    session: TypedSession,
    token: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let token = token.into_inner();
    let probe = token.clone();
    let found = db::run(&state.pool, move |conn| {
        accounts::token_user(conn, &probe, Purpose::UndoEmailChange).map_err(DbError::from)
    })
    .await?;
    let Some((row, user)) = found else {
        return undo_invalid(&state, &session);
    };
    let mut ctx = tera::Context::new();
    ctx.insert("token", &token);
    ctx.insert("username", &user.username);
    ctx.insert("address", &row.email.unwrap_or_default());
    render(
        &state,
        &session,
        None,
        "account/undo_email.html",
        ctx,
        StatusCode::OK,
    )
}

/// `POST /account/email/undo/{token}`: puts the address back, signs the account out
/// everywhere, and goes on to choosing a new password.
pub async fn undo_email(
    state: web::Data<AppState>,
    session: TypedSession,
    token: web::Path<String>,
    _form: CsrfForm<CsrfOnly>,
) -> Result<HttpResponse, AppError> {
    let token = token.into_inner();
    let restored = db::run(&state.pool, move |conn| {
        accounts::undo_email_change(conn, &token).map_err(DbError::from)
    })
    .await?;
    match restored {
        accounts::Restored::Done { user, reset } => {
            // The account's sessions are gone from the store; this browser starts afresh.
            session.switch_account()?;
            session.flash(
                "success",
                format!(
                    "{} is the address of {} again, and every session was signed out. Choose a new password now.",
                    user.email.as_deref().unwrap_or_default(),
                    user.username
                ),
            );
            Ok(see_other(&format!("/password/reset/{reset}")))
        }
        accounts::Restored::Invalid => undo_invalid(&state, &session),
        accounts::Restored::Taken => message(
            &state,
            &session,
            "This address is taken",
            "Another account uses this address now, so it cannot be put back. Ask for a password reset from the sign-in page with the address your account has.",
            StatusCode::CONFLICT,
        ),
    }
}
