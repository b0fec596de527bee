//! The resources behind this server: `GET /v1/user/profile` and OpenID Connect's userinfo. The
//! answers are `oauth::resource`'s; this reads the access token (Bearer, or DPoP with its
//! proof) and spells the refusals as RFC 6750 §3 and RFC 9449 §7.1 challenges.

use actix_web::http::StatusCode;
use actix_web::http::header::{AUTHORIZATION, HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use serde_json::json;

use crate::db::{self, AnyConnection, DbError};
use crate::oauth::bearer::{self, BearerError, Presented, Scheme};
use crate::oauth::context::OAuthContext;
use crate::oauth::dpop::{self, DpopError, Proof};
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

/// Reads the access token (and for `DPoP`, checks its proof: RFC 9449 §7), asks `resource`,
/// and answers `no-store`. A bearer token is checked on the worker (one read); a DPoP proof's
/// `jti` is written, which may wait for the writer's turn, so that goes to the blocking pool.
async fn answer<T: Serialize + Send + 'static>(
    req: &HttpRequest,
    state: &AppState,
    what: &'static str,
    resource: fn(&mut AnyConnection, &OAuthContext, &Presented) -> Result<T, BearerError>,
) -> HttpResponse {
    let header = req.headers().get(AUTHORIZATION).map(|v| v.as_bytes());
    let (scheme, token) = match bearer::from_header(header) {
        Ok(found) => found,
        Err(e) => return refuse(state, &e, Scheme::Bearer),
    };
    let proof = match scheme {
        Scheme::Bearer => None,
        Scheme::Dpop => match dpop_proof(req, state, &token) {
            Ok(proof) => Some(proof),
            Err(e) => return refuse(state, &BearerError::Dpop(e), scheme),
        },
    };
    let presented = Presented { token, proof };
    let oauth = state.oauth.clone();
    let ask = move |conn: &mut AnyConnection| Ok::<_, DbError>(resource(conn, &oauth, &presented));
    let result = match scheme {
        Scheme::Bearer => db::run_here(&state.pool, ask).await,
        Scheme::Dpop => db::run(&state.pool, ask).await,
    };
    match result {
        Ok(Ok(body)) => with_nonce(
            state,
            HttpResponse::Ok()
                .insert_header(("Cache-Control", "no-store"))
                .json(body),
        ),
        Ok(Err(e)) => refuse(state, &e, scheme),
        Err(e) => {
            tracing::warn!(error = %crate::error::error_chain(&e), "{what} lookup failed");
            crate::error::unavailable_json()
        }
    }
}

/// The request's `DPoP` header, checked for this method and URL and bound to `token` (`ath`).
fn dpop_proof(req: &HttpRequest, state: &AppState, token: &str) -> Result<Proof, DpopError> {
    let Some(proof) = dpop::header(req.headers())? else {
        return Err(DpopError::Invalid(
            "no DPoP header came with the DPoP access token",
        ));
    };
    let url = format!("{}{}", state.oauth.issuer, req.path());
    dpop::check(
        &state.oauth,
        proof,
        req.method().as_str(),
        &url,
        Some(token),
    )
}

/// RFC 9449 §9: with server nonces on, each answer names the current one.
fn with_nonce(state: &AppState, mut response: HttpResponse) -> HttpResponse {
    if state.oauth.dpop_nonce {
        let nonce = dpop::nonce(&state.oauth.server_key, db::now().and_utc().timestamp());
        if let Ok(value) = HeaderValue::from_str(&nonce) {
            response
                .headers_mut()
                .insert(HeaderName::from_static("dpop-nonce"), value);
        }
    }
    response
}

/// The `DPoP` challenge's parameters (RFC 9449 §7.1): the algorithms a proof may use.
fn dpop_algs() -> String {
    format!(r#"algs="{}""#, dpop::ALGORITHMS.join(" "))
}

/// RFC 6750 §3 and RFC 9449 §7.1: a challenge in the scheme the token came in (a DPoP-bound
/// token sent as Bearer, and any proof trouble, get a `DPoP` one), with the error, and the same
/// in the body. A request without a token gets both challenges.
pub fn refuse(state: &AppState, e: &BearerError, scheme: Scheme) -> HttpResponse {
    let challenge = |params: String| match scheme {
        Scheme::Bearer => format!(r#"Bearer realm="latchkey", {params}"#),
        Scheme::Dpop => format!(r#"DPoP realm="latchkey", {params}, {}"#, dpop_algs()),
    };
    let described =
        |code: &str, why: &str| format!(r#"error="{code}", error_description="{}""#, quoted(why));
    let (status, challenges, body) = match e {
        // Not the token's fault: no challenge, the same answer as any database outage.
        BearerError::Unavailable => return crate::error::unavailable_json(),
        BearerError::Missing => (
            StatusCode::UNAUTHORIZED,
            vec![
                r#"Bearer realm="latchkey""#.to_owned(),
                format!(r#"DPoP realm="latchkey", {}"#, dpop_algs()),
            ],
            json!({ "error": "invalid_request", "error_description": "An access token is required: send `Authorization: Bearer <token>` (or `DPoP <token>` with a DPoP proof)." }),
        ),
        BearerError::InvalidToken(why) => (
            StatusCode::UNAUTHORIZED,
            vec![challenge(described("invalid_token", why))],
            json!({ "error": "invalid_token", "error_description": why }),
        ),
        BearerError::BoundToKey => {
            let why = "This token is bound to a DPoP key: send it as `Authorization: DPoP <token>` with a DPoP proof signed by that key.";
            (
                StatusCode::UNAUTHORIZED,
                vec![format!(
                    r#"DPoP realm="latchkey", {}, {}"#,
                    described("invalid_token", why),
                    dpop_algs()
                )],
                json!({ "error": "invalid_token", "error_description": why }),
            )
        }
        BearerError::Dpop(e) => {
            let why = e.to_string();
            (
                StatusCode::UNAUTHORIZED,
                vec![format!(
                    r#"DPoP realm="latchkey", {}, {}"#,
                    described(e.code(), &why),
                    dpop_algs()
                )],
                json!({ "error": e.code(), "error_description": why }),
            )
        }
        BearerError::InsufficientScope(scope) => (
            StatusCode::FORBIDDEN,
            vec![challenge(format!(
                r#"error="insufficient_scope", scope="{scope}""#
            ))],
            json!({ "error": "insufficient_scope", "error_description": format!("The token lacks the `{scope}` scope."), "scope": scope }),
        ),
        BearerError::InvalidRequest(why) => (
            StatusCode::BAD_REQUEST,
            vec![challenge(described("invalid_request", why))],
            json!({ "error": "invalid_request", "error_description": why }),
        ),
    };
    let mut response = HttpResponse::build(status);
    for c in challenges {
        response.append_header(("WWW-Authenticate", c));
    }
    with_nonce(
        state,
        response
            .insert_header(("Cache-Control", "no-store"))
            .json(body),
    )
}

/// RFC 6750 §3: error_description is restricted to printable ASCII without `"` and `\`.
fn quoted(text: &str) -> String {
    text.chars()
        .filter(|c| matches!(c, ' '..='~') && *c != '"' && *c != '\\')
        .collect()
}
