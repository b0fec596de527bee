//! HTTP handlers: thin functions that extract, call one function, and render or redirect.

mod health;
mod home;
mod profile;
mod static_files;
mod token;

use actix_web::web;

/// Registers every route. Shared by the server and the tests.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/", web::get().to(home::home))
        .route("/static/{path:.*}", web::get().to(static_files::serve))
        .service(web::resource(["/oauth/token", "/v1/token"]).route(web::post().to(token::token)))
        .service(web::resource("/v1/user/profile").route(web::get().to(profile::profile)));
}
