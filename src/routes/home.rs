//! `GET /`: a short page saying what this server is and where its endpoints are.

use actix_web::{HttpResponse, web};

use crate::error::AppError;
use crate::state::AppState;

pub async fn home(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let mut ctx = tera::Context::new();
    ctx.insert("issuer", &state.issuer);
    let html = state.templates.render("home.html", &ctx)?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(html))
}
