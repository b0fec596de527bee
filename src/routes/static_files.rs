//! `GET /static/...`: the stylesheet and scripts compiled into the binary.

use actix_web::{HttpResponse, web};

use crate::error::AppError;
use crate::templates::STATIC_FILES;

pub async fn serve(path: web::Path<String>) -> Result<HttpResponse, AppError> {
    let file = STATIC_FILES
        .iter()
        .find(|f| f.path == path.as_str())
        .ok_or(AppError::NotFound)?;
    Ok(HttpResponse::Ok()
        .content_type(file.content_type)
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(file.body))
}

/// `GET /favicon.ico`: a keyhole (a 32×32 PNG in an ICO), where browsers ask for it.
pub async fn favicon() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("image/x-icon")
        .insert_header(("Cache-Control", "public, max-age=86400"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(&include_bytes!("../../static/favicon.ico")[..])
}
