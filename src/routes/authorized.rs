//! `/account/authorized-apps`: the applications a person has let act for them, what each may
//! do (every scope, described, with when it was granted and last used), and taking back one
//! scope or the whole application.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};

use super::page::{CsrfForm, CsrfOnly, CurrentUser, render, see_other};
use crate::auth::session::TypedSession;
use crate::authorizations;
use crate::db::{self, DbError};
use crate::error::AppError;
use crate::state::AppState;

pub async fn list(
    state: web::Data<AppState>,
    session: TypedSession,
    CurrentUser(user): CurrentUser,
) -> Result<HttpResponse, AppError> {
    let user_id = user.id;
    let apps = db::run(&state.pool, move |conn| {
        authorizations::list(conn, user_id).map_err(DbError::from)
    })
    .await?;
    let mut ctx = tera::Context::new();
    ctx.insert("apps", &apps);
    render(
        &state,
        &session,
        Some(&user),
        "account/authorized.html",
        ctx,
        StatusCode::OK,
    )
}

/// The confirmation page: what revoking means.
pub async fn confirm(
    state: web::Data<AppState>,
    session: TypedSession,
    CurrentUser(user): CurrentUser,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let client_id = path.into_inner();
    let user_id = user.id;
    let apps = db::run(&state.pool, move |conn| {
        authorizations::list(conn, user_id).map_err(DbError::from)
    })
    .await?;
    let app = apps
        .into_iter()
        .find(|a| a.client_id == client_id)
        .ok_or(AppError::NotFound)?;
    let mut ctx = tera::Context::new();
    ctx.insert("app", &app);
    render(
        &state,
        &session,
        Some(&user),
        "account/revoke.html",
        ctx,
        StatusCode::OK,
    )
}

pub async fn revoke(
    state: web::Data<AppState>,
    session: TypedSession,
    CurrentUser(user): CurrentUser,
    path: web::Path<String>,
    _form: CsrfForm<CsrfOnly>,
) -> Result<HttpResponse, AppError> {
    let client_id = path.into_inner();
    let user_id = user.id;
    let revoked = db::run(&state.pool, move |conn| {
        authorizations::revoke(conn, user_id, &client_id).map_err(DbError::from)
    })
    .await?;
    if revoked == 0 {
        return Err(AppError::NotFound);
    }
    session.flash(
        "success",
        "Access revoked. The application can no longer act for you.",
    );
    Ok(see_other("/account/authorized-apps"))
}

/// The application `client_id` and its scope `scope`, as the list shows them, or 404.
async fn held_scope(
    state: &AppState,
    user: &crate::db::models::User,
    client_id: &str,
    scope: &str,
) -> Result<(authorizations::Authorized, authorizations::AuthorizedScope), AppError> {
    let user_id = user.id;
    let apps = db::run(&state.pool, move |conn| {
        authorizations::list(conn, user_id).map_err(DbError::from)
    })
    .await?;
    let app = apps
        .into_iter()
        .find(|a| a.client_id == client_id)
        .ok_or(AppError::NotFound)?;
    let held = app
        .scopes
        .iter()
        .find(|s| s.name == scope)
        .cloned()
        .ok_or(AppError::NotFound)?;
    Ok((app, held))
}

/// `GET /account/authorized-apps/{client_id}/scopes/{scope}/revoke`: what taking back one
/// scope means.
pub async fn confirm_scope(
    state: web::Data<AppState>,
    session: TypedSession,
    CurrentUser(user): CurrentUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AppError> {
    let (client_id, scope) = path.into_inner();
    let (app, held) = held_scope(&state, &user, &client_id, &scope).await?;
    let mut ctx = tera::Context::new();
    ctx.insert("app", &app);
    ctx.insert("scope", &held);
    ctx.insert(
        "others",
        &app.scopes
            .iter()
            .filter(|s| s.name != held.name)
            .map(|s| s.description.clone())
            .collect::<Vec<_>>(),
    );
    render(
        &state,
        &session,
        Some(&user),
        "account/revoke_scope.html",
        ctx,
        StatusCode::OK,
    )
}

/// `POST /account/authorized-apps/{client_id}/scopes/{scope}/revoke`: takes back one scope,
/// keeping the others ([`authorizations::revoke_scope`]).
pub async fn revoke_scope(
    state: web::Data<AppState>,
    session: TypedSession,
    CurrentUser(user): CurrentUser,
    path: web::Path<(String, String)>,
    _form: CsrfForm<CsrfOnly>,
) -> Result<HttpResponse, AppError> {
    let (client_id, scope) = path.into_inner();
    let (app, held) = held_scope(&state, &user, &client_id, &scope).await?;
    let user_id = user.id;
    let done = db::run(&state.pool, move |conn| {
        authorizations::revoke_scope(conn, user_id, &client_id, &scope).map_err(DbError::from)
    })
    .await?;
    match done {
        authorizations::ScopeRevoked::NotFound => return Err(AppError::NotFound),
        authorizations::ScopeRevoked::Narrowed => session.flash(
            "success",
            format!(
                "{} can no longer “{}”. It keeps the rest.",
                app.name, held.description
            ),
        ),
        authorizations::ScopeRevoked::Everything => session.flash(
            "success",
            format!(
                "That was all {} could do: access revoked. It can no longer act for you.",
                app.name
            ),
        ),
    }
    Ok(see_other("/account/authorized-apps"))
}
