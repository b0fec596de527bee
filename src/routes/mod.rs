//! HTTP handlers: thin functions that extract, call one function, and render or redirect.
//!
//! Two groups: the API (token endpoint, resources, probes), which never touches a session, and
//! the pages, which run inside the session middleware and get the browser security headers.

mod account;
mod authorize;
mod authorized;
mod discovery;
mod health;
mod home;
mod introspect;
pub mod limits;
mod openapi;
mod page;
mod passkeys;
mod password;
mod portal;
mod profile;
mod security;
mod session;
mod signup;
mod static_files;
mod step_up;
mod token;

use actix_web::web;

/// The metrics listener's one route (`LATCHKEY_METRICS_BIND`), apart from the public ones.
pub fn metrics(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/metrics").route(web::get().to(health::metrics)));
}

/// Routes for programs: no cookies, no session lookups.
pub fn api(cfg: &mut web::ServiceConfig) {
    // Resources rather than bare routes, so that another method on one of these paths is
    // answered 405 with `Allow` (RFC 9110 §15.5.6), not 404.
    cfg.service(web::resource("/healthz").route(web::get().to(health::healthz)))
        .service(web::resource("/readyz").route(web::get().to(health::readyz)))
        // Two resources, not one with two paths: a resource of several paths is matched with a
        // regex, which every token request paid for.
        .service(web::resource("/oauth/token").route(web::post().to(token::token)))
        .service(web::resource("/v1/token").route(web::post().to(token::token)))
        .service(web::resource("/v1/user/profile").route(web::get().to(profile::profile)))
        .service(
            web::resource("/oauth/introspect")
                .app_data(web::PayloadConfig::new(limits::MAX_API_BODY))
                .route(web::post().to(introspect::introspect)),
        )
        .service(
            web::resource("/oauth/revoke")
                .app_data(web::PayloadConfig::new(limits::MAX_API_BODY))
                .route(web::post().to(introspect::revoke)),
        )
        .service(
            web::resource("/oauth/par")
                .app_data(web::PayloadConfig::new(limits::MAX_API_BODY))
                .route(web::post().to(introspect::par)),
        )
        .service(web::resource("/.well-known/jwks.json").route(web::get().to(discovery::jwks)))
        .service(
            web::resource("/.well-known/oauth-authorization-server")
                .route(web::get().to(discovery::metadata)),
        )
        .service(
            web::resource("/.well-known/openid-configuration")
                .route(web::get().to(discovery::metadata)),
        )
        .service(web::resource("/openapi.json").route(web::get().to(openapi::openapi)))
        .service(
            web::resource("/oauth/userinfo")
                .route(web::get().to(profile::userinfo))
                .route(web::post().to(profile::userinfo)),
        )
        .route("/favicon.ico", web::get().to(static_files::favicon))
        // The one pattern route, last: the router tries routes in order, and a pattern costs a
        // regex match, which every API request paid while it came first.
        .route("/static/{path:.*}", web::get().to(static_files::serve));
}

/// Routes for people, served inside the session middleware.
pub fn pages(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(home::home))
        .service(
            web::resource("/oauth/authorize")
                .route(web::get().to(authorize::start))
                .route(web::post().to(authorize::decide)),
        )
        // Revenue Monster's authorization URL (its documentation builds `/authorize?…` with
        // camelCase names): the same endpoint. The consent form still posts to the one above.
        .route("/authorize", web::get().to(authorize::start))
        .route("/oauth/authorize/resume", web::get().to(authorize::resume))
        .route("/oauth/authorize/switch", web::post().to(authorize::switch))
        .service(
            web::resource("/login/verify")
                .route(web::get().to(session::verify_form))
                .route(web::post().to(session::verify)),
        )
        .service(
            web::resource("/login")
                .route(web::get().to(session::login_form))
                .route(web::post().to(session::login)),
        )
        .route("/logout", web::post().to(session::logout))
        .service(
            web::resource("/signup")
                .route(web::get().to(signup::start_form))
                .route(web::post().to(signup::start)),
        )
        .service(
            web::resource("/signup/{token}")
                .route(web::get().to(signup::finish_form))
                .route(web::post().to(signup::finish)),
        )
        .route(
            "/verify-email/resend",
            web::post().to(session::resend_verification),
        )
        .route(
            "/verify-email/{token}",
            web::get().to(session::verify_email),
        )
        .service(
            web::resource("/password/forgot")
                .route(web::get().to(password::forgot_form))
                .route(web::post().to(password::forgot)),
        )
        .service(
            web::resource("/password/reset/{token}")
                .route(web::get().to(password::reset_form))
                .route(web::post().to(password::reset)),
        )
        .route("/account", web::get().to(account::show))
        .route("/account/profile", web::post().to(account::update_profile))
        .service(
            web::resource("/account/confirm")
                .route(web::get().to(account::confirm_form))
                .route(web::post().to(account::confirm)),
        )
        .route(
            "/account/password",
            web::post().to(account::change_password),
        )
        .service(
            web::resource("/account/email/undo/{token}")
                .route(web::get().to(account::undo_email_form))
                .route(web::post().to(account::undo_email)),
        )
        .route("/account/security", web::get().to(security::show))
        .service(
            web::resource("/account/security/totp")
                .route(web::get().to(security::totp_form))
                .route(web::post().to(security::totp_enable)),
        )
        .service(
            web::resource("/account/security/totp/remove")
                .route(web::get().to(security::remove_form))
                .route(web::post().to(security::remove)),
        )
        .route(
            "/account/security/passkeys/new",
            web::get().to(passkeys::add_form),
        )
        .route("/account/security/passkeys", web::post().to(passkeys::add))
        .route(
            "/account/security/passkeys/{id}/name",
            web::post().to(passkeys::rename),
        )
        .service(
            web::resource("/account/security/passkeys/{id}/remove")
                .route(web::get().to(passkeys::remove_form))
                .route(web::post().to(passkeys::remove)),
        )
        .route(
            "/account/security/recovery-codes",
            web::post().to(security::new_recovery_codes),
        )
        .route(
            "/account/security/sessions/end-others",
            web::post().to(security::end_other_sessions),
        )
        .route(
            "/account/security/sessions/{id}/end",
            web::post().to(security::end_session),
        )
        .route("/account/authorized-apps", web::get().to(authorized::list))
        .service(
            web::resource("/account/authorized-apps/{client_id}/scopes/{scope}/revoke")
                .route(web::get().to(authorized::confirm_scope))
                .route(web::post().to(authorized::revoke_scope)),
        )
        .service(
            web::resource("/account/authorized-apps/{client_id}/revoke")
                .route(web::get().to(authorized::confirm))
                .route(web::post().to(authorized::revoke)),
        )
        .service(
            web::resource("/developer/applications")
                .route(web::get().to(portal::list))
                .route(web::post().to(portal::create)),
        )
        .route("/developer/applications/new", web::get().to(portal::new))
        .route("/developer/applications/{id}", web::get().to(portal::show))
        .service(
            web::resource("/developer/applications/{id}/edit")
                .route(web::get().to(portal::edit))
                .route(web::post().to(portal::update)),
        )
        .route(
            "/developer/applications/{id}/disable",
            web::get().to(portal::disable_confirm),
        )
        .route(
            "/developer/applications/{id}/toggle",
            web::post().to(portal::toggle),
        )
        .service(
            web::resource("/developer/applications/{id}/delete")
                .route(web::get().to(portal::delete_confirm))
                .route(web::post().to(portal::delete)),
        )
        .route(
            "/developer/applications/{id}/secret",
            web::post().to(portal::reveal),
        )
        .route(
            "/developer/applications/{id}/secret/rotate",
            web::post().to(portal::rotate),
        )
        .route(
            "/developer/applications/{id}/secrets/{secret}/revoke",
            web::post().to(portal::revoke_old),
        )
        .service(
            web::resource("/developer/applications/{id}/keys")
                .route(web::get().to(portal::keys))
                .route(web::post().to(portal::add_keys)),
        )
        .service(
            web::resource("/developer/applications/{id}/keys/remove")
                .route(web::get().to(portal::remove_key_confirm))
                .route(web::post().to(portal::remove_key)),
        )
        .route(
            "/developer/applications/{id}/activity",
            web::get().to(portal::activity),
        )
        .route(
            "/developer/applications/{id}/activity.csv",
            web::get().to(portal::activity_csv),
        );
}

/// Any other path: our 404 page.
pub async fn not_found() -> Result<actix_web::HttpResponse, crate::error::AppError> {
    Err(crate::error::AppError::NotFound)
}
