//! What clients and resource servers fetch to work with us: the server's metadata (RFC 8414,
//! OpenID Connect Discovery, built by `oauth::metadata`) and the public signing keys (RFC 7517).

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::db::{self, DbError};
use crate::error::AppError;
use crate::oauth::metadata::Metadata;
use crate::state::AppState;

/// `GET /.well-known/oauth-authorization-server` and `/.well-known/openid-configuration`.
pub async fn metadata(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let clients = state.oauth.clients.clone();
    let scopes = db::run(&state.pool, move |conn| {
        clients.scopes(conn).map_err(DbError::from)
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "public, max-age=300"))
        .json(Metadata::new(&state.oauth.issuer, &scopes)))
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
