//! `/account/security`: the account's second factor (`mfa`): set up an authenticator app
//! (TOTP), see how many recovery codes are left and make new ones, remove the app.
//!
//! Adding a factor needs the password within the last 10 minutes (a stolen session must not
//! be able to lock its owner out with a factor of its own); making new recovery codes and
//! removing the factor need a code from the factor (step-up). Each change is in the activity
//! log and emailed to the owner.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::page::{
    CsrfForm, CsrfOnly, CsrfProtected, CurrentUser, client_address, render, see_other,
};
use super::step_up::{self, Refused};
use crate::auth::session::{Listed, TypedSession};
use crate::db::models::{SessionRow, User};
use crate::db::{self, DbError};
use crate::email::Template;
use crate::error::AppError;
use crate::mfa;
use crate::state::AppState;

pub(super) const PAGE: &str = "/account/security";

fn enrolment_context(user: &User) -> String {
    format!("totp-enrolment:{}", user.id)
}

/// The issuer label authenticator apps show: "Latchkey" and this server's host.
fn issuer_label(state: &AppState) -> String {
    let host = url::Url::parse(&state.issuer)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    format!("Latchkey {host}").trim().to_owned()
}

pub async fn show(
    state: web::Data<AppState>,
    session: TypedSession,
    CurrentUser(user): CurrentUser,
) -> Result<HttpResponse, AppError> {
    let user_id = user.id;
    let (status, rows) = db::run(&state.pool, move |conn| {
        let status = mfa::status(conn, user_id)?;
        let rows = SessionRow::for_user(conn, user_id, db::now())?;
        Ok::<_, DbError>((status, rows))
    })
    .await?;
    let mark = session.mark();
    let sessions: Vec<Listed> = rows
        .iter()
        .map(|row| Listed::from_row(row, mark.as_deref()))
        .collect();
    let mut ctx = tera::Context::new();
    ctx.insert("status", &status);
    ctx.insert("passkeys_available", &state.passkeys.is_some());
    ctx.insert("others", &sessions.iter().filter(|s| !s.current).count());
    ctx.insert("sessions", &sessions);
    render(
        &state,
        &session,
        Some(&user),
        "account/security.html",
        ctx,
        StatusCode::OK,
    )
}

/// The setup page for `secret` (sealed in the session), with `errors` beside their fields.
fn setup_page(
    state: &AppState,
    session: &TypedSession,
    user: &User,
    secret: &[u8],
    errors: &[(&str, String)],
) -> Result<HttpResponse, AppError> {
    let Some(enrolment) = mfa::enrolment(secret, &issuer_label(state), &user.username) else {
        return Err(AppError::Internal(
            "the TOTP enrolment could not be drawn".to_owned(),
        ));
    };
    let mut ctx = tera::Context::new();
    ctx.insert("enrolment", &enrolment);
    ctx.insert("needs_password", &!session.recently_authenticated());
    for (field, message) in errors {
        ctx.insert(format!("{field}_error"), message);
    }
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    render(
        state,
        session,
        Some(user),
        "account/totp_setup.html",
        ctx,
        status,
    )
}

/// The secret being set up, from the session; a new one (sealed into the session) if there is
/// none or it does not open.
fn enrolment_secret(
    state: &AppState,
    session: &TypedSession,
    user: &User,
) -> Result<Vec<u8>, AppError> {
    if let Some(sealed) = session.totp_enrolment()
        && let Ok(secret) = state.server_key.decrypt(&sealed, &enrolment_context(user))
    {
        return Ok(secret.to_vec());
    }
    let secret = mfa::new_secret();
    session.set_totp_enrolment(&state.server_key.encrypt(&secret, &enrolment_context(user)))?;
    Ok(secret)
}

/// `GET /account/security/totp`: the QR code and the secret to type in, and the first code.
pub async fn totp_form(
    state: web::Data<AppState>,
    session: TypedSession,
    CurrentUser(user): CurrentUser,
) -> Result<HttpResponse, AppError> {
    if has_totp(&state, &user).await? {
        session.flash("info", "Your account already has an authenticator app.");
        return Ok(see_other(PAGE));
    }
    // An account with a passkey confirms with it (or a recovery code) first; one without a
    // factor gives its password on the setup page itself.
    if step_up::has_factor(&state, &user).await? && !session.recently_authenticated() {
        return ask_code(
            &state,
            &session,
            &user,
            "add an authenticator app",
            "/account/security/totp",
            Refused::CodeMissing,
        )
        .await;
    }
    let secret = enrolment_secret(&state, &session, &user)?;
    setup_page(&state, &session, &user, &secret, &[])
}

/// Whether the account has an authenticator app.
async fn has_totp(state: &AppState, user: &User) -> Result<bool, AppError> {
    let user_id = user.id;
    Ok(db::run(&state.pool, move |conn| {
        crate::db::models::UserTotp::find(conn, user_id)
            .map(|t| t.is_some())
            .map_err(DbError::from)
    })
    .await?)
}

#[derive(Deserialize)]
pub struct SetupForm {
    /// Absent when the step-up page (for an account with a passkey) posts here.
    code: Option<String>,
    #[serde(flatten)]
    given: step_up::Given,
    #[serde(default)]
    csrf_token: String,
}

impl CsrfProtected for SetupForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

/// `POST /account/security/totp`: the password (unless given in the last 10 minutes) and a
/// first code from the app; then the recovery codes, once.
pub async fn totp_enable(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: TypedSession,
    CurrentUser(user): CurrentUser,
    CsrfForm(form): CsrfForm<SetupForm>,
) -> Result<HttpResponse, AppError> {
    if has_totp(&state, &user).await? {
        session.flash("info", "Your account already has an authenticator app.");
        return Ok(see_other(PAGE));
    }
    let confirmed = step_up::confirm(&state, &req, &session, &user, &form.given).await?;
    let Some(code) = form.code.as_deref() else {
        // The step-up page of an account with a passkey: on to the setup page.
        return match confirmed {
            Ok(()) => {
                let secret = enrolment_secret(&state, &session, &user)?;
                setup_page(&state, &session, &user, &secret, &[])
            }
            Err(refused) => {
                ask_code(
                    &state,
                    &session,
                    &user,
                    "add an authenticator app",
                    "/account/security/totp",
                    refused,
                )
                .await
            }
        };
    };
    let secret = enrolment_secret(&state, &session, &user)?;
    let mut errors = Vec::new();
    if let Err(refused) = confirmed {
        errors.push(("password", refused.message()));
    }
    if mfa::matching_step(&secret, code, db::now().and_utc().timestamp().max(0) as u64).is_none() {
        errors.push((
            "code",
            if code.trim().is_empty() {
                "Enter the 6-digit code your app shows for Latchkey.".to_owned()
            } else {
                "That code is not right. Check that the app shows Latchkey and enter its current code."
                    .to_owned()
            },
        ));
    }
    if !errors.is_empty() {
        return setup_page(&state, &session, &user, &secret, &errors);
    }
    let (key, account, code) = (state.server_key.clone(), user.clone(), code.to_owned());
    let now = db::now();
    let codes = db::run(&state.pool, move |conn| {
        mfa::enable_totp(conn, &key, &account, &secret, &code, now)
    })
    .await?;
    let Some(codes) = codes else {
        // Right a moment ago, wrong now: the step turned over. Ask again.
        let secret = enrolment_secret(&state, &session, &user)?;
        let again = [(
            "code",
            "That code has just expired. Enter the next one.".to_owned(),
        )];
        return setup_page(&state, &session, &user, &secret, &again);
    };
    session.forget_totp_enrolment();
    record(
        &state,
        &req,
        &user,
        "mfa_enabled",
        "an authenticator app was added",
    )
    .await;
    if codes.is_empty() {
        // The account had a passkey, and its recovery codes stay good.
        session.flash(
            "success",
            "The authenticator app was added. Your recovery codes stay the same.",
        );
        return Ok(see_other(PAGE));
    }
    codes_page(&state, &session, &user, &codes, true)
}

/// The recovery codes, shown this once.
pub(super) fn codes_page(
    state: &AppState,
    session: &TypedSession,
    user: &User,
    codes: &[String],
    first: bool,
) -> Result<HttpResponse, AppError> {
    let mut ctx = tera::Context::new();
    ctx.insert("codes", codes);
    ctx.insert("first", &first);
    render(
        state,
        session,
        Some(user),
        "account/recovery_codes.html",
        ctx,
        StatusCode::OK,
    )
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(flatten)]
    given: step_up::Given,
    #[serde(default)]
    csrf_token: String,
}

impl CsrfProtected for CodeForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

/// The step-up page for `purpose`, posting back to `action`, with Cancel back to this page.
pub(super) async fn ask_code(
    state: &AppState,
    session: &TypedSession,
    user: &User,
    purpose: &str,
    action: &str,
    refused: Refused,
) -> Result<HttpResponse, AppError> {
    let ask = step_up::Ask {
        purpose,
        action,
        cancel: PAGE,
        hidden: &Vec::new(),
    };
    step_up::ask(state, session, user, &ask, refused).await
}

/// `POST /account/security/recovery-codes`: ten new codes after a code from the factor; the
/// old ones stop working.
pub async fn new_recovery_codes(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: TypedSession,
    CurrentUser(user): CurrentUser,
    CsrfForm(form): CsrfForm<CodeForm>,
) -> Result<HttpResponse, AppError> {
    if !step_up::has_factor(&state, &user).await? {
        session.flash(
            "info",
            "Set up an authenticator app first: recovery codes go with it.",
        );
        return Ok(see_other(PAGE));
    }
    if let Err(refused) = step_up::confirm(&state, &req, &session, &user, &form.given).await? {
        return ask_code(
            &state,
            &session,
            &user,
            "make new recovery codes",
            "/account/security/recovery-codes",
            refused,
        )
        .await;
    }
    let (key, user_id, now) = (state.server_key.clone(), user.id, db::now());
    let codes = db::run(&state.pool, move |conn| {
        mfa::regenerate_recovery_codes(conn, &key, user_id, now)
    })
    .await?;
    record(
        &state,
        &req,
        &user,
        "recovery_codes_renewed",
        "new recovery codes were made; the old ones no longer work",
    )
    .await;
    codes_page(&state, &session, &user, &codes, false)
}

/// `GET /account/security/totp/remove`: what removing the app means, and the code to do it.
pub async fn remove_form(
    state: web::Data<AppState>,
    session: TypedSession,
    CurrentUser(user): CurrentUser,
) -> Result<HttpResponse, AppError> {
    if !step_up::has_factor(&state, &user).await? {
        return Ok(see_other(PAGE));
    }
    render(
        &state,
        &session,
        Some(&user),
        "account/totp_remove.html",
        tera::Context::new(),
        StatusCode::OK,
    )
}

/// `POST /account/security/totp/remove`: after a code from the factor (step-up), the app and
/// the recovery codes are removed; signing in needs the password alone again.
pub async fn remove(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: TypedSession,
    CurrentUser(user): CurrentUser,
    CsrfForm(form): CsrfForm<CodeForm>,
) -> Result<HttpResponse, AppError> {
    if !step_up::has_factor(&state, &user).await? {
        return Ok(see_other(PAGE));
    }
    if let Err(refused) = step_up::confirm(&state, &req, &session, &user, &form.given).await? {
        return ask_code(
            &state,
            &session,
            &user,
            "remove your authenticator app",
            "/account/security/totp/remove",
            refused,
        )
        .await;
    }
    let user_id = user.id;
    let left = db::run(&state.pool, move |conn| mfa::remove_totp(conn, user_id)).await?;
    let (change, flash) = match left {
        mfa::Left::NotFound => {
            session.flash("info", "Your account has no authenticator app.");
            return Ok(see_other(PAGE));
        }
        mfa::Left::OtherFactor => (
            "the authenticator app was removed",
            "The authenticator app was removed. Signing in still needs one of your passkeys.",
        ),
        mfa::Left::Nothing => (
            "the authenticator app and the recovery codes were removed",
            "The authenticator app was removed. Signing in needs your password alone again.",
        ),
    };
    record(&state, &req, &user, "mfa_removed", change).await;
    session.flash("success", flash);
    Ok(see_other(PAGE))
}

/// This session's row among the account's, found by its mark.
async fn current_row(
    state: &AppState,
    session: &TypedSession,
    user: &User,
) -> Result<Option<i64>, AppError> {
    let Some(mark) = session.mark() else {
        return Ok(None);
    };
    let user_id = user.id;
    let rows = db::run(&state.pool, move |conn| {
        SessionRow::for_user(conn, user_id, db::now()).map_err(DbError::from)
    })
    .await?;
    Ok(rows
        .iter()
        .map(|row| Listed::from_row(row, Some(&mark)))
        .find(|listed| listed.current)
        .map(|listed| listed.id))
}

/// `POST /account/security/sessions/{id}/end`: signs that session out on the server, at once,
/// whichever instance it uses. Another account's session, or an unknown one, is left alone.
pub async fn end_session(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: TypedSession,
    CurrentUser(user): CurrentUser,
    path: web::Path<String>,
    _form: CsrfForm<CsrfOnly>,
) -> Result<HttpResponse, AppError> {
    let Ok(id) = path.into_inner().parse::<i64>() else {
        return Err(AppError::NotFound);
    };
    if current_row(&state, &session, &user).await? == Some(id) {
        session.flash("info", "That is this session: use Sign out instead.");
        return Ok(see_other(PAGE));
    }
    let user_id = user.id;
    let ended = db::run(&state.pool, move |conn| {
        SessionRow::delete_for_user_by_id(conn, user_id, id).map_err(DbError::from)
    })
    .await?;
    if !ended {
        return Err(AppError::NotFound);
    }
    log_sessions_ended(&state, &req, &user, 1).await;
    session.flash("success", "That session was signed out.");
    Ok(see_other(PAGE))
}

/// `POST /account/security/sessions/end-others`: signs out every other session of the account.
pub async fn end_other_sessions(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: TypedSession,
    CurrentUser(user): CurrentUser,
    _form: CsrfForm<CsrfOnly>,
) -> Result<HttpResponse, AppError> {
    let Some(keep) = current_row(&state, &session, &user).await? else {
        session.flash(
            "error",
            "Sign in again first: this session cannot be told apart from the others.",
        );
        return Ok(see_other(PAGE));
    };
    let user_id = user.id;
    let ended = db::run(&state.pool, move |conn| {
        SessionRow::delete_others(conn, user_id, keep).map_err(DbError::from)
    })
    .await?;
    log_sessions_ended(&state, &req, &user, ended).await;
    session.flash(
        "success",
        match ended {
            0 => "There was no other session.".to_owned(),
            1 => "1 other session was signed out.".to_owned(),
            n => format!("{n} other sessions were signed out."),
        },
    );
    Ok(see_other(PAGE))
}

async fn log_sessions_ended(state: &AppState, req: &HttpRequest, user: &User, count: usize) {
    let detail = format!("{count} session(s) signed out from the Security page");
    super::portal::audit(state, req, user, None, "sessions_ended", detail).await;
}

/// The activity log's entry and the owner's email for a change of the factor.
pub(super) async fn record(
    state: &AppState,
    req: &HttpRequest,
    user: &User,
    action: &'static str,
    change: &str,
) {
    super::portal::audit(state, req, user, None, action, change.to_owned()).await;
    let ip = client_address(req);
    if let Some(email) = user.email.as_deref() {
        let when = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string();
        let message = Template::SecurityEvent {
            name: &user.name,
            change,
            when: &when,
            ip: &ip,
        }
        .render(&state.templates, email);
        state.mailer.deliver(message).await;
    }
}
