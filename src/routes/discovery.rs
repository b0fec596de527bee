//! What clients and resource servers fetch to work with us: the server's metadata (RFC 8414,
//! OpenID Connect Discovery, built by `oauth::metadata`) and the public signing keys (RFC 7517).

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::db::{self, DbError};
use crate::oauth::metadata::Metadata;
use crate::state::AppState;

/// `GET /.well-known/oauth-authorization-server` and `/.well-known/openid-configuration`.
/// A database that cannot be read is answered as the other API endpoints answer it:
/// `temporarily_unavailable` (503, `Retry-After`) in JSON, not the pages' HTML.
pub async fn metadata(state: web::Data<AppState>) -> HttpResponse {
    let clients = state.oauth.clients.clone();
    let scopes = db::run(&state.pool, move |conn| {
        clients.scopes(conn).map_err(DbError::from)
    })
    .await;
    match scopes {
        Ok(scopes) => HttpResponse::Ok()
            .insert_header(("Cache-Control", "public, max-age=300"))
            .json(Metadata::new(&state.oauth.issuer, &scopes)),
        Err(e) => super::token::error(
            crate::oauth::request::Dialect::Rfc6749,
            &crate::oauth::error::OAuthError::from(e),
        ),
    }
}

/// `GET /.well-known/jwks.json`: every key that signed a token still valid, newest first.
/// Caches may keep it a minute; a verifier meeting an unknown `kid` should fetch it again.
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    let ring = state.oauth.keys.current();
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "public, max-age=60"))
        .content_type("application/jwk-set+json")
        .json(json!({ "keys": ring.jwks }))
}
