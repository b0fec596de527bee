//! What clients and resource servers fetch to work with us: the server's metadata (RFC 8414,
//! OpenID Connect Discovery) and the public signing keys (RFC 7517). Every value describes what
//! the server actually does; a test calls each endpoint listed.

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::db::models::Scope;
use crate::db::{self, DbError};
use crate::error::AppError;
use crate::oauth::prompt::Prompt;
use crate::state::AppState;

/// `GET /.well-known/oauth-authorization-server` and `/.well-known/openid-configuration`.
pub async fn metadata(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let scopes = db::run(&state.pool, |conn| Scope::all(conn).map_err(DbError::from)).await?;
    let issuer = &state.oauth.issuer;
    let auth_methods = ["client_secret_basic", "client_secret_post"];
    let body = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/oauth/authorize"),
        "token_endpoint": format!("{issuer}/oauth/token"),
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "userinfo_endpoint": format!("{issuer}/oauth/userinfo"),
        "introspection_endpoint": format!("{issuer}/oauth/introspect"),
        "revocation_endpoint": format!("{issuer}/oauth/revoke"),
        "scopes_supported": scopes.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "client_credentials", "password", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "name", "preferred_username", "email", "email_verified"],
        "authorization_response_iss_parameter_supported": true,
        // OIDC Core §3.1.2.1; `oauth::authorize` reads each.
        "prompt_values_supported": Prompt::ALL.map(Prompt::as_str),
        // OIDC Core §6: refused with request_not_supported / request_uri_not_supported.
        // Discovery reads a missing request_uri_parameter_supported as true, so say it.
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
    });
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "public, max-age=300"))
        .json(body))
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
