//! `GET /`: what this server is and where its endpoints are; for someone signed in, the way to
//! their pages; on a fresh server (no account yet), the operator's first steps.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};

use super::page::render;
use crate::auth::session::TypedSession;
use crate::db::models::User;
use crate::db::{self, DbError};
use crate::error::AppError;
use crate::state::AppState;

pub async fn home(
    state: web::Data<AppState>,
    session: TypedSession,
) -> Result<HttpResponse, AppError> {
    let user_id = session.user_id();
    let (user, fresh) = db::run(&state.pool, move |conn| {
        let user = match user_id {
            Some(id) => User::find(conn, id)?,
            None => None,
        };
        let fresh = user.is_none() && !User::any(conn)?;
        Ok::<_, DbError>((user, fresh))
    })
    .await?;
    let mut ctx = tera::Context::new();
    ctx.insert("issuer", &state.issuer);
    ctx.insert("fresh", &fresh);
    if fresh {
        ctx.insert(
            "mail_folder",
            &state
                .mailer
                .mail_folder()
                .map(|dir| dir.display().to_string()),
        );
        ctx.insert("smtp", &state.mailer.uses_smtp());
    }
    render(
        &state,
        &session,
        user.as_ref(),
        "home.html",
        ctx,
        StatusCode::OK,
    )
}
