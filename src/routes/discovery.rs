//! What resource servers fetch to trust our tokens: the public signing keys (RFC 7517).

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::startup::AppState;

/// `GET /.well-known/jwks.json`: every key that signed a token still valid, newest first.
/// Caches may keep it a minute; a verifier meeting an unknown `kid` should fetch it again.
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    let ring = state.oauth.keys.current();
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "public, max-age=60"))
        .content_type("application/jwk-set+json")
        .json(json!({ "keys": ring.jwks }))
}
