//! `POST /oauth/token` and `POST /v1/token`: read the body, hand it to `oauth::token`, and spell
//! the result in the dialect the request spoke.

use actix_web::http::StatusCode;
use actix_web::http::header::{AUTHORIZATION, CONTENT_TYPE};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt as _;
use serde::Serialize;
use serde_json::json;

use super::page::client_address;
use crate::db;
use crate::oauth::error::{ErrorCode, OAuthError};
use crate::oauth::issue::Issued;
use crate::oauth::params;
use crate::oauth::request::{Dialect, Grant, TokenRequest};
use crate::oauth::token::{self, Caller};
use crate::oauth::{client_auth, dpop};
use crate::state::AppState;

/// Token requests are small; anything bigger is refused before it is parsed.
pub const MAX_BODY: usize = super::limits::MAX_API_BODY;

pub async fn token(
    req: HttpRequest,
    mut payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let dialect = Dialect::from_content_type(content_type);
    let spoken = dialect.unwrap_or(Dialect::Rfc6749);

    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let Ok(chunk) = chunk else {
            return refuse(
                spoken,
                &OAuthError::invalid_request("The request body could not be read."),
            );
        };
        if body.len() + chunk.len() > MAX_BODY {
            let mut response = refuse(
                spoken,
                &OAuthError::invalid_request(format!(
                    "The request body is larger than {MAX_BODY} bytes."
                )),
            );
            *response.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
            return response;
        }
        body.extend_from_slice(&chunk);
    }

    if let Err(e) = params::refuse_secret_in_query(req.query_string()) {
        return refuse(spoken, &e);
    }
    let Some(dialect) = dialect else {
        return refuse(
            spoken,
            &OAuthError::invalid_request(
                "Content-Type must be application/x-www-form-urlencoded (RFC 6749) or application/json.",
            ),
        );
    };
    let request = match TokenRequest::parse(dialect, &body) {
        Ok(request) => request,
        Err(e) => return refuse(dialect, &e),
    };
    let dpop = match dpop::header(req.headers()) {
        Ok(proof) => proof.map(str::to_owned),
        Err(e) => return with_nonce(&state, refuse(dialect, &e.into())),
    };
    // What a proof's `htu` must name; only built when there is a proof to check.
    let url = dpop
        .as_ref()
        .map(|_| format!("{}{}", state.oauth.issuer, req.path()))
        .unwrap_or_default();
    let authorization = req
        .headers()
        .get(AUTHORIZATION)
        .map(|v| v.as_bytes().to_vec());
    // The login page's notion of the caller, so one address has one sign-in budget.
    let address = client_address(&req);
    let oauth = state.oauth.clone();
    let _admitted = match request.grant {
        Grant::Password { .. } => state.oauth.passwords.admit().await,
        _ => None,
    };
    let on_worker = token::runs_on_worker(&state.oauth, &request, dialect);
    let grant = request.grant.grant_type();
    let auth_method =
        client_auth::method_tried(authorization.as_deref(), &request.body_credentials);
    // The request's span (`telemetry::log_request`) carries the grant and the client named.
    let span = tracing::Span::current();
    if !span.is_disabled() {
        span.record("grant_type", grant.as_str());
        span.record("dialect", dialect.as_str());
        if let Some(id) =
            client_auth::named_client_id(authorization.as_deref(), &request.body_credentials)
        {
            span.record("client_id", id.as_str());
        }
    }
    // Which client the request named, once found: a failure is counted for its owner.
    let client = std::sync::Arc::new(std::sync::OnceLock::new());
    let named = std::sync::Arc::clone(&client);
    let exchange = move |conn: &mut db::AnyConnection| {
        let caller = Caller {
            authorization: authorization.as_deref(),
            address: &address,
            dpop: dpop.as_deref(),
            url: &url,
            client: &named,
        };
        token::exchange(conn, &oauth, &caller, request, dialect)
    };
    let result = if on_worker {
        db::run_here(&state.pool, exchange).await
    } else {
        db::run(&state.pool, exchange).await
    };
    // A client_credentials token's row is written in a group commit; the tokens are answered
    // only once it is committed, and no thread waits meanwhile.
    let result = match result {
        Ok(uncommitted) => uncommitted
            .commit(&state.oauth.writer, &state.pool)
            .await
            .map_err(OAuthError::from)
            .and_then(Issued::single_use_kept),
        Err(e) => Err(e),
    };
    let response = match result {
        Ok(issued) => {
            if let Some(client) = client.get() {
                state.oauth.outcomes.issued(*client, grant, db::now());
            }
            crate::metrics::count(
                crate::metrics::TOKENS_ISSUED,
                [
                    ("grant_type", grant.as_str()),
                    ("dialect", dialect.as_str()),
                ],
            );
            success(dialect, &issued)
        }
        Err(e) => {
            if let Some(client) = client.get() {
                state.oauth.outcomes.failed(*client, &e, db::now());
            }
            if e.code == ErrorCode::InvalidClient {
                crate::metrics::count(
                    crate::metrics::CLIENT_AUTH_FAILURES,
                    [("method", auth_method), ("", "")],
                );
            }
            refuse(dialect, &e)
        }
    };
    with_nonce(&state, response)
}

/// A token error response, counted by its error code for the metrics.
fn refuse(dialect: Dialect, e: &OAuthError) -> HttpResponse {
    crate::metrics::count(
        crate::metrics::TOKEN_ERRORS,
        [("error", e.code.rfc()), ("", "")],
    );
    error(dialect, e)
}

/// RFC 9449 §8.2: when DPoP proofs must carry a server nonce, every token response names the
/// current one, so a client keeps up without a failed request.
fn with_nonce(state: &AppState, mut response: HttpResponse) -> HttpResponse {
    if state.oauth.dpop_nonce {
        let nonce = dpop::nonce(&state.oauth.server_key, db::now().and_utc().timestamp());
        if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&nonce) {
            response.headers_mut().insert(
                actix_web::http::header::HeaderName::from_static("dpop-nonce"),
                value,
            );
        }
    }
    response
}

/// RFC 6749 §5.1: token responses must not be cached (and RFC 7662 §4 the same for
/// introspection).
pub fn no_store(status: StatusCode) -> actix_web::HttpResponseBuilder {
    let mut builder = HttpResponse::build(status);
    builder
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("Pragma", "no-cache"));
    builder
}

/// RFC 6749 §5.1's token response.
#[derive(Serialize)]
struct Rfc6749Body<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u64,
    scope: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token: Option<&'a str>,
}

/// Revenue Monster's field names, as its clients parse them: camelCase, the refresh token's own
/// lifetime beside it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RevenueMonsterBody<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token_expires_in: Option<u64>,
    scope: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token: Option<&'a str>,
}

/// Serialised straight from the structs above, not through a `serde_json::Value`.
fn success(dialect: Dialect, issued: &Issued) -> HttpResponse {
    let scope = issued.scope.to_stored();
    let mut response = no_store(StatusCode::OK);
    match dialect {
        Dialect::Rfc6749 => response.json(Rfc6749Body {
            access_token: &issued.access_token,
            token_type: issued.token_type(),
            expires_in: issued.expires_in,
            scope: &scope,
            refresh_token: issued.refresh_token.as_deref(),
            id_token: issued.id_token.as_deref(),
        }),
        Dialect::RevenueMonster => response.json(RevenueMonsterBody {
            access_token: &issued.access_token,
            token_type: issued.token_type(),
            expires_in: issued.expires_in,
            refresh_token: issued.refresh_token.as_deref(),
            refresh_token_expires_in: issued
                .refresh_token
                .as_ref()
                .and(issued.refresh_token_expires_in),
            scope: &scope,
            id_token: issued.id_token.as_deref(),
        }),
    }
}

/// An error in the request's dialect. `invalid_client` is 401 with a Basic challenge
/// (RFC 6749 §5.2); `temporarily_unavailable` is 503 with `Retry-After`.
pub fn error(dialect: Dialect, e: &OAuthError) -> HttpResponse {
    let status = StatusCode::from_u16(e.code.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = no_store(status);
    if e.code == ErrorCode::TemporarilyUnavailable {
        response.insert_header(crate::error::retry_after());
    }
    if matches!(e.code, ErrorCode::InvalidClient | ErrorCode::InactiveClient) {
        response.insert_header((
            "WWW-Authenticate",
            r#"Basic realm="latchkey", charset="UTF-8""#,
        ));
    }
    let body = match dialect {
        Dialect::Rfc6749 => json!({ "error": e.code.rfc(), "error_description": e.description }),
        Dialect::RevenueMonster => {
            json!({ "error": { "code": e.code.revenue_monster(), "message": e.description } })
        }
    };
    response.json(body)
}
