//! `/password/forgot` and `/password/reset/{token}`.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::page::{CsrfForm, CsrfProtected, EmailForm, message, render, see_other};
use crate::accounts;
use crate::auth::session::TypedSession;
use crate::auth::throttle;
use crate::db::models::{Purpose, User};
use crate::db::{self, DbError};
use crate::domain::{Email, NewPassword, Username};
use crate::email::Template;
use crate::error::AppError;
use crate::state::AppState;

/// The same words whether or not an account exists, so the form reveals nothing.
const NEUTRAL: &str = "If an account with that email address exists, we sent it a link to reset the password. The link works for one hour.";

pub async fn forgot_form(
    state: web::Data<AppState>,
    session: TypedSession,
) -> Result<HttpResponse, AppError> {
    render(
        &state,
        &session,
        None,
        "forgot.html",
        tera::Context::new(),
        StatusCode::OK,
    )
}

pub async fn forgot(
    state: web::Data<AppState>,
    session: TypedSession,
    CsrfForm(form): CsrfForm<EmailForm>,
) -> Result<HttpResponse, AppError> {
    let Ok(email) = Email::parse(&form.email) else {
        let mut ctx = tera::Context::new();
        ctx.insert("email", &form.email);
        ctx.insert(
            "error",
            "Enter the email address of your account, such as name@example.com.",
        );
        return render(
            &state,
            &session,
            None,
            "forgot.html",
            ctx,
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    };
    // The lookup and the email happen after the answer, so its timing says nothing either.
    let background = state.clone();
    actix_web::rt::spawn(async move {
        let address = email.as_str().to_owned();
        let found = db::run(&background.pool, move |conn| {
            let Some(user) = User::find_by_email(conn, &address)? else {
                return Ok::<_, DbError>(None);
            };
            if !throttle::allow_mail(conn, &address, db::now())? {
                tracing::warn!("password reset mail withheld: too many for this address");
                return Ok(None);
            }
            let token = accounts::issue_email_token(conn, user.id, Purpose::ResetPassword, None)?;
            Ok(Some((user, token)))
        })
        .await;
        match found {
            Ok(Some((user, token))) => {
                let link = format!("{}/password/reset/{token}", background.issuer);
                let to = user.email.clone().unwrap_or_default();
                let message = Template::ResetPassword {
                    name: &user.name,
                    link: &link,
                }
                .render(&background.templates, &to);
                background.mailer.deliver(message).await;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %crate::error::error_chain(&e), "password reset lookup failed")
            }
        }
    });
    session.flash("info", NEUTRAL);
    Ok(see_other("/login"))
}

fn invalid_link(state: &AppState, session: &TypedSession) -> Result<HttpResponse, AppError> {
    message(
        state,
        session,
        "This link does not work",
        "The password reset link is invalid, was already used, or has expired. Ask for a new one from the sign-in page.",
        StatusCode::BAD_REQUEST,
    )
}

pub async fn reset_form(
    state: web::Data<AppState>,
    session: TypedSession,
    token: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let token = token.into_inner();
    let probe = token.clone();
    let found = db::run(&state.pool, move |conn| {
        accounts::token_user(conn, &probe, Purpose::ResetPassword).map_err(DbError::from)
    })
    .await?;
    if found.is_none() {
        return invalid_link(&state, &session);
    }
    let mut ctx = tera::Context::new();
    ctx.insert("token", &token);
    ctx.insert("errors", &HashMap::<&str, String>::new());
    ctx.insert("min_password", &NewPassword::MIN);
    render(&state, &session, None, "reset.html", ctx, StatusCode::OK)
}

#[derive(Deserialize)]
pub struct ResetForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
    #[serde(default)]
    csrf_token: String,
}

impl CsrfProtected for ResetForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

pub async fn reset(
    state: web::Data<AppState>,
    session: TypedSession,
    token: web::Path<String>,
    CsrfForm(form): CsrfForm<ResetForm>,
) -> Result<HttpResponse, AppError> {
    let token = token.into_inner();
    let probe = token.clone();
    let Some((row, user)) = db::run(&state.pool, move |conn| {
        accounts::token_user(conn, &probe, Purpose::ResetPassword).map_err(DbError::from)
    })
    .await?
    else {
        return invalid_link(&state, &session);
    };
    let username = Username::parse(&user.username).map_err(|_| AppError::NotFound)?;
    let mut errors = HashMap::new();
    match NewPassword::parse(&form.password, &username) {
        Err(e) => {
            errors.insert("password", format!("New password {e}."));
        }
        Ok(_) if form.password != form.confirm => {
            errors.insert("confirm", "The two passwords differ.".to_owned());
        }
        Ok(_) => {}
    }
    if !errors.is_empty() {
        let mut ctx = tera::Context::new();
        ctx.insert("token", &token);
        ctx.insert("errors", &errors);
        ctx.insert("min_password", &NewPassword::MIN);
        return render(
            &state,
            &session,
            None,
            "reset.html",
            ctx,
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    }
    let new_password = form.password;
    let passwords = state.passwords.clone();
    let _admitted = passwords.admit().await;
    let changed = db::run(&state.pool, move |conn| {
        let hash = passwords.hash(&new_password)?;
        accounts::reset_password(conn, &row, &hash).map_err(|e| AppError::from(DbError::from(e)))
    })
    .await?;
    if !changed {
        return invalid_link(&state, &session);
    }
    session.log_out();
    Ok(see_other("/login?password_reset=1"))
}
