//! `GET /v1/user/profile`: the resource behind scope `get_user_profile`, the token's user.

use actix_web::http::StatusCode;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use crate::db::{self, DbError};
use crate::oauth::bearer::{self, BearerError};
use crate::state::AppState;

pub const SCOPE: &str = "get_user_profile";

pub async fn profile(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let token =
        match bearer::token_from_header(req.headers().get(AUTHORIZATION).map(|v| v.as_bytes())) {
            Ok(token) => token,
            Err(e) => return refuse(&e),
        };
    let oauth = state.oauth.clone();
    let result = db::run(&state.pool, move |conn| {
        let verified = match bearer::verify(conn, &oauth, &token) {
            Ok(v) => v,
            Err(e) => return Ok::<_, DbError>(Err(e)),
        };
        if !verified.claims.has_scope(SCOPE) {
            return Ok(Err(BearerError::InsufficientScope(SCOPE)));
        }
        Ok(Ok(verified.user))
    })
    .await;
    match result {
        Ok(Ok(user)) => HttpResponse::Ok()
            .insert_header(("Cache-Control", "no-store"))
            .json(json!({ "id": user.id, "username": user.username, "name": user.name })),
        Ok(Err(e)) => refuse(&e),
        Err(e) => {
            tracing::warn!(error = %crate::error::error_chain(&e), "profile lookup failed");
            crate::error::unavailable_json()
        }
    }
}

/// RFC 6750 §3: a `WWW-Authenticate: Bearer` challenge with the error, and the same in the body.
pub fn refuse(e: &BearerError) -> HttpResponse {
    let (status, challenge, body) = match e {
        // Not the token's fault: no challenge, the same answer as any database outage.
        BearerError::Unavailable => return crate::error::unavailable_json(),
        BearerError::Missing => (
            StatusCode::UNAUTHORIZED,
            r#"Bearer realm="latchkey""#.to_owned(),
            json!({ "error": "invalid_request", "error_description": "An access token is required: send `Authorization: Bearer <token>`." }),
        ),
        BearerError::InvalidToken(why) => (
            StatusCode::UNAUTHORIZED,
            format!(
                r#"Bearer realm="latchkey", error="invalid_token", error_description="{}""#,
                quoted(why)
            ),
            json!({ "error": "invalid_token", "error_description": why }),
        ),
        BearerError::InsufficientScope(scope) => (
            StatusCode::FORBIDDEN,
            format!(r#"Bearer realm="latchkey", error="insufficient_scope", scope="{scope}""#),
            json!({ "error": "insufficient_scope", "error_description": format!("The token lacks the `{scope}` scope."), "scope": scope }),
        ),
        BearerError::InvalidRequest(why) => (
            StatusCode::BAD_REQUEST,
            format!(
                r#"Bearer realm="latchkey", error="invalid_request", error_description="{}""#,
                quoted(why)
            ),
            json!({ "error": "invalid_request", "error_description": why }),
        ),
    };
    HttpResponse::build(status)
        .insert_header(("WWW-Authenticate", challenge))
        .insert_header(("Cache-Control", "no-store"))
        .json(body)
}

/// RFC 6750 §3: error_description is restricted to printable ASCII without `"` and `\`.
fn quoted(text: &str) -> String {
    text.chars()
        .filter(|c| matches!(c, ' '..='~') && *c != '"' && *c != '\\')
        .collect()
}

/// `GET|POST /oauth/userinfo` (OpenID Connect Core §5.3): who the token's user is. Needs scope
/// `openid`; the email address only with scope `email`.
pub async fn userinfo(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let token =
        match bearer::token_from_header(req.headers().get(AUTHORIZATION).map(|v| v.as_bytes())) {
            Ok(token) => token,
            Err(e) => return refuse(&e),
        };
    let oauth = state.oauth.clone();
    let result = db::run(&state.pool, move |conn| {
        let verified = match bearer::verify(conn, &oauth, &token) {
            Ok(v) => v,
            Err(e) => return Ok::<_, DbError>(Err(e)),
        };
        if !verified.claims.has_scope("openid") {
            return Ok(Err(BearerError::InsufficientScope("openid")));
        }
        let email = verified.claims.has_scope("email");
        Ok(Ok((verified.user, email)))
    })
    .await;
    match result {
        Ok(Ok((user, email))) => {
            let mut body = json!({ "sub": user.id.to_string(), "name": user.name, "preferred_username": user.username });
            if email {
                body["email"] = json!(user.email);
                body["email_verified"] = json!(user.email_verified_at.is_some());
            }
            HttpResponse::Ok()
                .insert_header(("Cache-Control", "no-store"))
                .json(body)
        }
        Ok(Err(e)) => refuse(&e),
        Err(e) => {
            tracing::warn!(error = %crate::error::error_chain(&e), "userinfo lookup failed");
            crate::error::unavailable_json()
        }
    }
}
