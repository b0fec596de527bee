//! `/account/security/passkeys`: add passkeys (WebAuthn, [`crate::passkeys`]), name them,
//! remove them.
//!
//! Adding one is a change of the account's factors: it needs the account to confirm it is
//! itself within the last 10 minutes (the password if it has no factor yet, else a factor),
//! and is in the activity log and emailed. The first factor brings ten recovery codes, shown
//! once. Removing one needs a factor too; removing the last factor voids the recovery codes.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::page::{CsrfForm, CsrfProtected, CurrentUser, render, see_other};
use super::security::{PAGE, ask_code, codes_page, record};
use super::step_up::{self, Refused};
use crate::auth::session::TypedSession;
use crate::db::models::{StoredPasskey, User};
use crate::db::{self, DbError};
use crate::error::AppError;
use crate::passkeys;
use crate::state::AppState;

const ADD: &str = "/account/security/passkeys";

/// Renders the page that creates a passkey: a name and the browser's prompt, with a new
/// registration challenge kept in the session.
async fn add_page(
    state: &AppState,
    session: &TypedSession,
    user: &User,
    name: &str,
    errors: &[(&str, String)],
) -> Result<HttpResponse, AppError> {
    let Some(rp) = state.passkeys.clone() else {
        return unavailable(state, session);
    };
    let account = user.clone();
    let started = db::run(&state.pool, move |conn| {
        passkeys::start_registration(&rp, conn, &account)
    })
    .await?;
    let Some((options, ceremony)) = started else {
        return Err(AppError::Internal(
            "a passkey registration could not be started".to_owned(),
        ));
    };
    session.keep_passkey_registration(&ceremony)?;
    let mut ctx = tera::Context::new();
    ctx.insert("options", &options);
    ctx.insert("name", name);
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
        "account/passkey_add.html",
        ctx,
        status,
    )
}

/// Passkeys need the issuer to be a domain name: said plainly rather than failing in the
/// browser.
fn unavailable(state: &AppState, session: &TypedSession) -> Result<HttpResponse, AppError> {
    session.flash(
        "error",
        "Passkeys are not available on this server: its address (LATCHKEY_ISSUER) is not a domain name. Use an authenticator app instead.",
    );
    let _ = state;
    Ok(see_other(PAGE))
}

/// `GET /account/security/passkeys/new`: after confirming it is you, the page that creates one.
pub async fn add_form(
    state: web::Data<AppState>,
    session: TypedSession,
    CurrentUser(user): CurrentUser,
) -> Result<HttpResponse, AppError> {
    if state.passkeys.is_none() {
        return unavailable(&state, &session);
    }
    if !session.recently_authenticated() {
        let refused = if step_up::has_factor(&state, &user).await? {
            Refused::CodeMissing
        } else {
            Refused::Missing
        };
        return ask_code(&state, &session, &user, "add a passkey", ADD, refused).await;
    }
    add_page(&state, &session, &user, "", &[]).await
}

#[derive(Deserialize)]
pub struct AddForm {
    /// Absent when the step-up page posts here.
    name: Option<String>,
    /// The browser's answer (JSON), filled in by `passkey.js`.
    #[serde(default)]
    credential: String,
    #[serde(flatten)]
    given: step_up::Given,
    #[serde(default)]
    csrf_token: String,
}

impl CsrfProtected for AddForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

/// `POST /account/security/passkeys`: from the step-up page, on to the page that creates a
/// passkey; from that page, stores the passkey the browser made.
pub async fn add(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: TypedSession,
    CurrentUser(user): CurrentUser,
    CsrfForm(form): CsrfForm<AddForm>,
) -> Result<HttpResponse, AppError> {
    let Some(rp) = state.passkeys.clone() else {
        return unavailable(&state, &session);
    };
    if let Err(refused) = step_up::confirm(&state, &req, &session, &user, &form.given).await? {
        return ask_code(&state, &session, &user, "add a passkey", ADD, refused).await;
    }
    let Some(raw_name) = form.name.as_deref() else {
        return add_page(&state, &session, &user, "", &[]).await;
    };
    let name = match passkeys::check_name(raw_name) {
        Ok(name) => name,
        Err(message) => {
            return add_page(&state, &session, &user, raw_name, &[("name", message)]).await;
        }
    };
    let Some(ceremony) = session.take_passkey_registration() else {
        let again = passkeys::Refusal::NotVerified.message();
        return add_page(&state, &session, &user, &name, &[("credential", again)]).await;
    };
    if form.credential.len() > 64 * 1024 {
        let again = passkeys::Refusal::Malformed.message();
        return add_page(&state, &session, &user, &name, &[("credential", again)]).await;
    }
    let had_factor = step_up::has_factor(&state, &user).await?;
    let (account, answer, stored_name, key) = (
        user.clone(),
        form.credential.clone(),
        name.clone(),
        state.server_key.clone(),
    );
    let outcome = db::run(&state.pool, move |conn| {
        let now = db::now();
        let added = passkeys::finish_registration(
            &rp,
            conn,
            &account,
            &ceremony,
            &answer,
            &stored_name,
            now,
        )?;
        if added.is_err() {
            return Ok::<_, DbError>((added, None));
        }
        let codes = crate::mfa::first_recovery_codes(conn, &key, account.id, now)?;
        Ok((added, codes))
    })
    .await?;
    let codes = match outcome {
        (Ok(()), codes) => codes,
        (Err(refusal), _) => {
            return add_page(
                &state,
                &session,
                &user,
                &name,
                &[("credential", refusal.message())],
            )
            .await;
        }
    };
    record(
        &state,
        &req,
        &user,
        "passkey_added",
        &format!("a passkey was added: “{name}”"),
    )
    .await;
    if let Some(codes) = codes.filter(|_| !had_factor) {
        return codes_page(&state, &session, &user, &codes, true);
    }
    session.flash("success", format!("Passkey “{name}” was added."));
    Ok(see_other(PAGE))
}

#[derive(Deserialize)]
pub struct NameForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    csrf_token: String,
}

impl CsrfProtected for NameForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

/// `POST /account/security/passkeys/{id}/name`: renames one of the account's passkeys.
pub async fn rename(
    state: web::Data<AppState>,
    session: TypedSession,
    CurrentUser(user): CurrentUser,
    path: web::Path<i64>,
    CsrfForm(form): CsrfForm<NameForm>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let name = match passkeys::check_name(&form.name) {
        Ok(name) => name,
        Err(message) => {
            session.flash("error", message);
            return Ok(see_other(PAGE));
        }
    };
    let (user_id, new_name) = (user.id, name.clone());
    let renamed = db::run(&state.pool, move |conn| {
        StoredPasskey::rename(conn, user_id, id, &new_name).map_err(DbError::from)
    })
    .await?;
    if !renamed {
        return Err(AppError::NotFound);
    }
    session.flash("success", format!("The passkey is now called “{name}”."));
    Ok(see_other(PAGE))
}

/// One of the account's passkeys, or 404 (another account's is not found either).
async fn owned(state: &AppState, user: &User, id: i64) -> Result<StoredPasskey, AppError> {
    let user_id = user.id;
    let all = db::run(&state.pool, move |conn| {
        StoredPasskey::for_user(conn, user_id).map_err(DbError::from)
    })
    .await?;
    all.into_iter()
        .find(|p| p.id == id)
        .ok_or(AppError::NotFound)
}

/// `GET /account/security/passkeys/{id}/remove`: what removing it means.
pub async fn remove_form(
    state: web::Data<AppState>,
    session: TypedSession,
    CurrentUser(user): CurrentUser,
    path: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    let passkey = owned(&state, &user, path.into_inner()).await?;
    let user_id = user.id;
    let status = db::run(&state.pool, move |conn| crate::mfa::status(conn, user_id)).await?;
    let mut ctx = tera::Context::new();
    ctx.insert("id", &passkey.id);
    ctx.insert("name", &passkey.name);
    ctx.insert(
        "last",
        &(status.totp_since.is_none() && status.passkeys.len() == 1),
    );
    render(
        &state,
        &session,
        Some(&user),
        "account/passkey_remove.html",
        ctx,
        StatusCode::OK,
    )
}

#[derive(Deserialize)]
pub struct RemoveForm {
    #[serde(flatten)]
    given: step_up::Given,
    #[serde(default)]
    csrf_token: String,
}

impl CsrfProtected for RemoveForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

/// `POST /account/security/passkeys/{id}/remove`: after a factor (step-up), the passkey is
/// removed; with it the recovery codes if it was the last factor.
pub async fn remove(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: TypedSession,
    CurrentUser(user): CurrentUser,
    path: web::Path<i64>,
    CsrfForm(form): CsrfForm<RemoveForm>,
) -> Result<HttpResponse, AppError> {
    let passkey = owned(&state, &user, path.into_inner()).await?;
    let action = format!("/account/security/passkeys/{}/remove", passkey.id);
    if let Err(refused) = step_up::confirm(&state, &req, &session, &user, &form.given).await? {
        let purpose = format!("remove the passkey “{}”", passkey.name);
        return ask_code(&state, &session, &user, &purpose, &action, refused).await;
    }
    let (user_id, id) = (user.id, passkey.id);
    let left = db::run(&state.pool, move |conn| {
        crate::mfa::remove_passkey(conn, user_id, id)
    })
    .await?;
    let flash = match left {
        crate::mfa::Left::NotFound => return Err(AppError::NotFound),
        crate::mfa::Left::OtherFactor => format!("Passkey “{}” was removed.", passkey.name),
        crate::mfa::Left::Nothing => format!(
            "Passkey “{}” was removed. Signing in needs your password alone again.",
            passkey.name
        ),
    };
    let change = match left {
        crate::mfa::Left::Nothing => format!(
            "the passkey “{}” and the recovery codes were removed",
            passkey.name
        ),
        _ => format!("the passkey “{}” was removed", passkey.name),
    };
    record(&state, &req, &user, "passkey_removed", &change).await;
    session.flash("success", flash);
    Ok(see_other(PAGE))
}
