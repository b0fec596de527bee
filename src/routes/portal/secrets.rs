//! A client secret after creation: viewing it again (after re-entering the password), rotating
//! it with a grace period, and ending an old one early. Each is audited and emailed.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::{app_path, audit, keep_fresh_secret, owned, summary};
use crate::auth::session::TypedSession;
use crate::clients::{self, Grace};
use crate::db::models::{Client, ClientSecret, User};
use crate::db::{self, DbError};
use crate::email::Template;
use crate::error::AppError;
use crate::routes::page::{
    CsrfForm, CsrfOnly, CsrfProtected, CurrentUser, client_address, render, see_other,
};
use crate::routes::step_up;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct RevealForm {
    #[serde(flatten)]
    given: step_up::Given,
    #[serde(default)]
    csrf_token: String,
}

impl CsrfProtected for RevealForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

/// Emails the owner that a secret of `client` was `action` (revealed, rotated).
async fn notify(state: &AppState, req: &HttpRequest, user: &User, client: &Client, action: &str) {
    let Some(to) = user.email.as_deref() else {
        return;
    };
    let when = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string();
    let ip = client_address(req);
    let message = Template::SecretEvent {
        name: &user.name,
        app: &client.name,
        action,
        when: &when,
        ip: &ip,
    }
    .render(&state.templates, to);
    state.mailer.deliver(message).await;
}

/// The secret actions that need the password within the re-authentication window.
enum Guarded<'a> {
    View,
    Rotate { grace: &'a str },
}

/// Asks for the password before `action` on `client`'s secret ([`super::ask_password`]).
async fn ask_password(
    state: &AppState,
    session: &TypedSession,
    user: &User,
    client: &Client,
    action: Guarded<'_>,
    refused: step_up::Refused,
) -> Result<HttpResponse, AppError> {
    let (purpose, path, hidden) = match action {
        Guarded::View => ("view the secret", "secret", Vec::new()),
        Guarded::Rotate { grace } => (
            "rotate the secret",
            "secret/rotate",
            vec![("grace", grace.to_owned())],
        ),
    };
    super::ask_password(
        state,
        session,
        user,
        client,
        purpose,
        &format!("{}/{path}", app_path(client)),
        &app_path(client),
        &hidden,
        refused,
    )
    .await
}

/// `POST /developer/applications/{id}/secret`: shows the current secret, if the password was
/// entered in the last 10 minutes; otherwise asks for it first.
pub async fn reveal(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: TypedSession,
    CurrentUser(user): CurrentUser,
    path: web::Path<String>,
    CsrfForm(form): CsrfForm<RevealForm>,
) -> Result<HttpResponse, AppError> {
    let client = owned(&state, &user, path.into_inner()).await?;
    if let Err(refused) = step_up::confirm(&state, &req, &session, &user, &form.given).await? {
        return ask_password(&state, &session, &user, &client, Guarded::View, refused).await;
    }
    let mut ctx = tera::Context::new();
    ctx.insert("app", &summary(&client));
    let lookup = client.id;
    let secrets = db::run(&state.pool, move |conn| {
        ClientSecret::all_for(conn, lookup).map_err(DbError::from)
    })
    .await?;
    let Some(current) = secrets.iter().find(|s| s.expires_at.is_none()) else {
        session.flash("error", "This application has no current secret.");
        return Ok(see_other(&app_path(&client)));
    };
    let secret = clients::reveal(&state.server_key, &client, current)
        .map_err(|e| AppError::Internal(e.to_string()))?;
    audit(
        &state,
        &req,
        &user,
        Some(&client),
        "secret_viewed",
        format!("…{}", current.secret_hint),
    )
    .await;
    notify(&state, &req, &user, &client, "revealed").await;
    ctx.insert(
        "connect",
        &super::connect::card(&state.issuer, &client, Some(&secret)),
    );
    ctx.insert("secret", &secret);
    render(
        &state,
        &session,
        Some(&user),
        "portal/secret.html",
        ctx,
        StatusCode::OK,
    )
}

#[derive(Deserialize)]
pub struct RotateForm {
    #[serde(default)]
    grace: String,
    #[serde(flatten)]
    given: step_up::Given,
    #[serde(default)]
    csrf_token: String,
}

impl CsrfProtected for RotateForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

/// `POST /developer/applications/{id}/secret/rotate`: a new secret, shown once; the old one
/// works on for the chosen grace period. Like viewing, it needs the password within 10 minutes:
/// a new live secret on screen is as good as the old one.
pub async fn rotate(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: TypedSession,
    CurrentUser(user): CurrentUser,
    path: web::Path<String>,
    CsrfForm(form): CsrfForm<RotateForm>,
) -> Result<HttpResponse, AppError> {
    let client = owned(&state, &user, path.into_inner()).await?;
    if !client.is_confidential {
        session.flash("error", "Public applications have no secret.");
        return Ok(see_other(&app_path(&client)));
    }
    if client.jwks.is_some() {
        session.flash(
            "error",
            "This application authenticates with private_key_jwt: it has no secret to rotate.",
        );
        return Ok(see_other(&app_path(&client)));
    }
    let Some(grace) = Grace::parse(&form.grace) else {
        session.flash("error", "Choose how long the old secret keeps working.");
        return Ok(see_other(&app_path(&client)));
    };
    if let Err(refused) = step_up::confirm(&state, &req, &session, &user, &form.given).await? {
        return ask_password(
            &state,
            &session,
            &user,
            &client,
            Guarded::Rotate { grace: &form.grace },
            refused,
        )
        .await;
    }
    let key = state.server_key.clone();
    let target = client.clone();
    let secret = db::run(&state.pool, move |conn| {
        clients::rotate_secret(conn, &key, &target, grace)
    })
    .await?;
    audit(
        &state,
        &req,
        &user,
        Some(&client),
        "secret_rotated",
        format!("old secret works for {}", form.grace),
    )
    .await;
    notify(&state, &req, &user, &client, "rotated").await;
    keep_fresh_secret(&state, &session, &client, &secret)?;
    session.flash(
        "success",
        match grace {
            Grace::Now => "New secret issued. The old one stopped working.".to_owned(),
            _ => format!(
                "New secret issued. The old one keeps working for {}.",
                human(grace)
            ),
        },
    );
    Ok(see_other(&app_path(&client)))
}

fn human(grace: Grace) -> &'static str {
    match grace {
        Grace::Now => "no time",
        Grace::OneHour => "1 hour",
        Grace::OneDay => "24 hours",
        Grace::SevenDays => "7 days",
    }
}

/// `POST /developer/applications/{id}/secrets/{secret}/revoke`: ends an old secret now.
pub async fn revoke_old(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: TypedSession,
    CurrentUser(user): CurrentUser,
    path: web::Path<(String, i64)>,
    _form: CsrfForm<CsrfOnly>,
) -> Result<HttpResponse, AppError> {
    let (client_id, secret_id) = path.into_inner();
    let client = owned(&state, &user, client_id).await?;
    let target = client.id;
    let revoked = db::run(&state.pool, move |conn| {
        ClientSecret::end_grace(conn, target, secret_id, db::now()).map_err(DbError::from)
    })
    .await?;
    if !revoked {
        return Err(AppError::NotFound);
    }
    audit(
        &state,
        &req,
        &user,
        Some(&client),
        "secret_revoked",
        String::new(),
    )
    .await;
    session.flash("success", "The old secret stopped working.");
    Ok(see_other(&app_path(&client)))
}
