//! Signing in and out, and confirming an email address.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::page::{
    CsrfForm, CsrfOnly, CsrfProtected, CurrentUser, client_address, render, safe_next, see_other,
};
use crate::accounts::{self, SignInError};
use crate::auth::session::TypedSession;
use crate::db::models::{AuditEvent, Purpose, User};
use crate::db::{self, DbError};
use crate::domain::{NewPassword, Username};
use crate::email::Template;
use crate::error::AppError;
use crate::mfa;
use crate::oauth::authorize;
use crate::state::AppState;

/// Where people land after signing in, unless a `next` page asked for them.
pub(super) const HOME: &str = "/developer/applications";

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
    signed_out: Option<String>,
    password_reset: Option<String>,
}

pub async fn login_form(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: TypedSession,
    query: web::Query<NextQuery>,
) -> Result<HttpResponse, AppError> {
    let pending = super::authorize::waiting(&req, &state, &session);
    let again = session.user_id().is_some()
        && super::authorize::wants_fresh_sign_in(&session, pending.as_ref());
    if session.user_id().is_some() && !again {
        return Ok(see_other(
            &safe_next(query.next.as_deref()).unwrap_or_else(|| HOME.to_owned()),
        ));
    }
    let mut ctx = tera::Context::new();
    if again {
        ctx.insert(
            "notice",
            "The application asks you to enter your password again before it goes on.",
        );
    }
    let next = safe_next(query.next.as_deref());
    // During an authorization request: which application the person signs in for.
    if next.as_deref() == Some(super::authorize::RESUME)
        && let Some(pending) = &pending
        && !pending.client_name.is_empty()
    {
        ctx.insert("app_name", &pending.client_name);
    }
    ctx.insert("next", &next);
    if query.signed_out.is_some() {
        ctx.insert("notice", "You have signed out.");
    }
    if query.password_reset.is_some() {
        ctx.insert("notice", "Your password was changed and every session of your account was ended. Sign in with your new password.");
    }
    render(&state, &session, None, "login.html", ctx, StatusCode::OK)
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
    #[serde(default)]
    csrf_token: String,
}

impl CsrfProtected for LoginForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: TypedSession,
    CsrfForm(form): CsrfForm<LoginForm>,
) -> Result<HttpResponse, AppError> {
    // Longer than any account's can be: refused before hashing, and not counted as a failure.
    if form.username.chars().count() > Username::MAX || form.password.len() > NewPassword::MAX {
        let mut ctx = tera::Context::new();
        ctx.insert("next", &safe_next(form.next.as_deref()));
        ctx.insert("username", "");
        ctx.insert(
            "error",
            &format!(
                "A username has at most {} characters and a password at most {}.",
                Username::MAX,
                NewPassword::MAX
            ),
        );
        return render(
            &state,
            &session,
            None,
            "login.html",
            ctx,
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    }
    let address = client_address(&req);
    let (username, password) = (form.username.clone(), form.password.clone());
    let addr = address.clone();
    let passwords = state.passwords.clone();
    let _admitted = passwords.admit().await;
    let next = safe_next(form.next.as_deref());
    // Signing in for an authorization request: the consent to its application is read with the
    // account, and one that covers the request finishes it here (the code, and the redirect to
    // the application) instead of sending the browser back to read it all again.
    let pending = (next.as_deref() == Some(super::authorize::RESUME))
        .then(|| super::authorize::waiting(&req, &state, &session))
        .flatten();
    let ctx = state.oauth.clone();
    let (outcome, finished) = db::run(&state.pool, move |conn| {
        let consent_for = match &pending {
            Some(pending) => authorize::waiting_client(conn, &ctx, pending)?,
            None => None,
        };
        let outcome =
            accounts::sign_in(conn, &passwords, &username, &password, &addr, consent_for)?;
        let finished = match (&outcome, &pending) {
            (Ok(signed_in), Some(pending)) if !signed_in.has_factor => {
                let at = chrono::Utc::now().timestamp();
                match authorize::Person::new(signed_in.user.id, at) {
                    Some(person) => authorize::finish_at_sign_in(
                        conn,
                        &ctx,
                        pending,
                        person,
                        signed_in.consent.as_deref(),
                        at,
                    )?,
                    None => None,
                }
            }
            _ => None,
        };
        Ok::<_, DbError>((outcome, finished))
    })
    .await?;
    match outcome {
        Ok(accounts::SignedIn {
            user, has_factor, ..
        }) => {
            if has_factor {
                // Not signed in yet: the code comes first.
                session.await_second_factor(user.id, next)?;
                return Ok(see_other(VERIFY));
            }
            session.log_in(
                user.id,
                &super::page::user_agent(&req),
                &super::page::client_address(&req),
            )?;
            notify_new_sign_in(&state, &user, &address, None).await;
            if let Some(finished) = finished {
                return super::authorize::answer_at_sign_in(&state, &session, finished);
            }
            Ok(see_other(next.as_deref().unwrap_or(HOME)))
        }
        Err(failure) => {
            let message = match failure {
                SignInError::Invalid => "Incorrect username or password.".to_owned(),
                SignInError::Locked { minutes } => format!(
                    "Too many failed sign-in attempts. Try again in {minutes} minute{}.",
                    if minutes == 1 { "" } else { "s" }
                ),
            };
            let mut ctx = tera::Context::new();
            ctx.insert("next", &next);
            ctx.insert("username", &form.username);
            ctx.insert("error", &message);
            render(
                &state,
                &session,
                None,
                "login.html",
                ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
        }
    }
}

/// The second step of signing in to an account with a second factor.
pub const VERIFY: &str = "/login/verify";

#[derive(Deserialize)]
pub struct VerifyForm {
    #[serde(default)]
    code: String,
    /// A passkey's answer to the page's challenge (filled in by `passkey.js`).
    #[serde(default)]
    passkey: Option<String>,
    #[serde(default)]
    csrf_token: String,
}

impl CsrfProtected for VerifyForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

/// The second step's page for `user_id`: the code field, and a passkey button when the
/// account has passkeys (with a new challenge).
async fn verify_page(
    state: &AppState,
    session: &TypedSession,
    user_id: crate::domain::UserId,
    error: Option<String>,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    let mut ctx = tera::Context::new();
    ctx.insert("error", &error);
    ctx.insert(
        "offer",
        &super::step_up::offer(state, session, user_id).await?,
    );
    render(state, session, None, "login_verify.html", ctx, status)
}

/// `GET /login/verify`: the code field, after the right password for an account with a factor.
pub async fn verify_form(
    state: web::Data<AppState>,
    session: TypedSession,
) -> Result<HttpResponse, AppError> {
    let Some(waiting) = session.awaiting_second_factor() else {
        return Ok(see_other("/login"));
    };
    verify_page(&state, &session, waiting.user_id, None, StatusCode::OK).await
}

/// `POST /login/verify`: a code from the authenticator app or a recovery code, checked in the
/// sign-in lockout; right, the session is signed in (a new id) and goes where the sign-in was
/// headed.
pub async fn verify(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: TypedSession,
    CsrfForm(form): CsrfForm<VerifyForm>,
) -> Result<HttpResponse, AppError> {
    let Some(waiting) = session.awaiting_second_factor() else {
        session.flash(
            "info",
            "Sign in again: the password you gave is more than 10 minutes old.",
        );
        return Ok(see_other("/login"));
    };
    let user_id = waiting.user_id;
    let Some(user) = db::run(&state.pool, move |conn| {
        User::find(conn, user_id).map_err(DbError::from)
    })
    .await?
    else {
        session.forget_second_factor();
        return Ok(see_other("/login"));
    };
    let checked = super::step_up::check_factor(
        &state,
        &req,
        &session,
        &user,
        &form.code,
        form.passkey.as_deref(),
    )
    .await?;
    match checked {
        Ok(factor) => {
            session.log_in(
                user.id,
                &super::page::user_agent(&req),
                &super::page::client_address(&req),
            )?;
            // The second factor was just given: the step-up window is open.
            session.reauthenticated()?;
            let address = client_address(&req);
            notify_new_sign_in(&state, &user, &address, Some(factor)).await;
            if factor == mfa::Factor::RecoveryCode {
                let left = db::run(&state.pool, move |conn| {
                    crate::db::models::RecoveryCode::unused(conn, user_id).map_err(DbError::from)
                })
                .await?;
                session.flash(
                    "info",
                    format!(
                        "You signed in with a recovery code: {left} left. Make new ones on your security page if you are running low."
                    ),
                );
            }
            Ok(see_other(waiting.next.as_deref().unwrap_or(HOME)))
        }
        Err(refused) => {
            verify_page(
                &state,
                &session,
                user.id,
                Some(refused.message()),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}

/// Records the sign-in, and emails the account holder when it comes from an address not seen
/// for this account in the last 30 days, naming the second factor used, if any.
async fn notify_new_sign_in(
    state: &web::Data<AppState>,
    user: &User,
    address: &str,
    factor: Option<mfa::Factor>,
) {
    let (user_id, addr) = (user.id, address.to_owned());
    let new = db::run(&state.pool, move |conn| {
        AuditEvent::record_sign_in(conn, user_id, &addr).map_err(DbError::from)
    })
    .await;
    if let (Ok(true), Some(email)) = (new, user.email.as_deref()) {
        let when = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string();
        let how = match factor {
            Some(factor) => format!("with your password and {}", factor.describe()),
            None => "with your password".to_owned(),
        };
        let message = Template::NewSignIn {
            name: &user.name,
            when: &when,
            ip: address,
            how: &how,
        }
        .render(&state.templates, email);
        state.mailer.deliver(message).await;
    }
}

pub async fn logout(session: TypedSession, _form: CsrfForm<CsrfOnly>) -> HttpResponse {
    session.log_out();
    see_other("/login?signed_out=1")
}

async fn send_verification(state: &web::Data<AppState>, user: &User, token: &str) {
    let Some(email) = user.email.as_deref() else {
        return;
    };
    let link = format!("{}/verify-email/{token}", state.issuer);
    let message = Template::VerifyEmail {
        name: &user.name,
        link: &link,
    }
    .render(&state.templates, email);
    state.mailer.deliver(message).await;
}

pub async fn verify_email(
    state: web::Data<AppState>,
    session: TypedSession,
    token: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let token = token.into_inner();
    let verified = db::run(&state.pool, move |conn| {
        accounts::verify_email(conn, &token).map_err(DbError::from)
    })
    .await?;
    let (title, message) = match verified {
        accounts::Confirmation::Confirmed { user, previous } => {
            if let Some(undo) = previous {
                super::account::tell_previous_address(&state, &user, &undo).await;
            }
            session.flash(
                "success",
                format!(
                    "Thank you: {} is confirmed.",
                    user.email.as_deref().unwrap_or_default()
                ),
            );
            return Ok(see_other(if session.user_id().is_some() {
                HOME
            } else {
                "/login"
            }));
        }
        accounts::Confirmation::Invalid => (
            "This link does not work",
            "The confirmation link is invalid, was already used, or has expired. Sign in and ask for a new one from your account page.",
        ),
        accounts::Confirmation::Taken => (
            "This address is taken",
            "Another account started using this email address after the link was sent, so your account keeps its address. Sign in to choose another one.",
        ),
    };
    super::page::message(&state, &session, title, message, StatusCode::BAD_REQUEST)
}

/// `POST /verify-email/resend`: a fresh confirmation link.
pub async fn resend_verification(
    state: web::Data<AppState>,
    session: TypedSession,
    CurrentUser(user): CurrentUser,
    _form: CsrfForm<CsrfOnly>,
) -> Result<HttpResponse, AppError> {
    if user.email_verified_at.is_some() || user.email.is_none() {
        session.flash("info", "Your email address is already confirmed.");
        return Ok(see_other("/account"));
    }
    let (user_id, email) = (user.id, user.email.clone());
    let token = db::run(&state.pool, move |conn| {
        accounts::issue_email_token(conn, user_id, Purpose::VerifyEmail, email.as_deref())
            .map_err(DbError::from)
    })
    .await?;
    send_verification(&state, &user, &token).await;
    session.flash(
        "success",
        format!(
            "We sent a new link to {}.",
            user.email.as_deref().unwrap_or_default()
        ),
    );
    Ok(see_other("/account"))
}
