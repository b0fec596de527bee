//! The resources behind this server: `GET /v1/user/profile` and OpenID Connect's userinfo. The
//! answers are `oauth::resource`'s; this reads the bearer token and spells the refusals as
//! RFC 6750 §3 challenges.

use actix_web::http::StatusCode;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use serde_json::json;

use crate::db::{self, AnyConnection, DbError};
use crate::oauth::bearer::{self, BearerError};
use crate::oauth::context::OAuthContext;
use crate::oauth::resource;
use crate::state::AppState;

/// `GET /v1/user/profile`: the resource behind scope `get_user_profile`, the token's user.
pub async fn profile(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    answer(&req, &state, "profile", resource::profile).await
}

/// `GET|POST /oauth/userinfo` (OpenID Connect Core §5.3): who the token's user is. Needs scope
/// `openid`; the email address only with scope `email`.
pub async fn userinfo(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    answer(&req, &state, "userinfo", resource::userinfo).await
}

/// Reads the bearer token, asks `resource` in a blocking task, and answers `no-store`.
async fn answer<T: Serialize + Send + 'static>(
    req: &HttpRequest,
    state: &AppState,
    what: &'static str,
    resource: fn(&mut AnyConnection, &OAuthContext, &str) -> Result<T, BearerError>,
) -> HttpResponse {
    let token =
        match bearer::token_from_header(req.headers().get(AUTHORIZATION).map(|v| v.as_bytes())) {
            Ok(token) => token,
            Err(e) => return refuse(&e),
        };
    let oauth = state.oauth.clone();
    let result = db::run_here(&state.pool, move |conn| {
        Ok::<_, DbError>(resource(conn, &oauth, &token))
    })
    .await;
    match result {
        Ok(Ok(body)) => HttpResponse::Ok()
            .insert_header(("Cache-Control", "no-store"))
            .json(body),
        Ok(Err(e)) => refuse(&e),
        Err(e) => {
            tracing::warn!(error = %crate::error::error_chain(&e), "{what} lookup failed");
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
