//! `/account/authorized-apps`: the applications a person has let act for them, and revoking one.

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
