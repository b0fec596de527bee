//! `POST /oauth/introspect` (RFC 7662), `POST /oauth/revoke` (RFC 7009) and `POST /oauth/par`
//! (RFC 9126): read the body, hand it to `oauth::introspect::answer` or `oauth::par::push`, and
//! answer with `no-store`. Each takes a form body and client authentication like the token
//! endpoint.

use actix_web::http::StatusCode;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{HttpRequest, HttpResponse, web};

use super::token::{error, no_store};
use crate::db;
use crate::oauth::error::OAuthError;
use crate::oauth::introspect::{self, Action, TokenQuery};
use crate::oauth::params;
use crate::oauth::request::Dialect;
use crate::state::AppState;

/// The body, or the error response for one too large or unreadable.
fn read_body(body: Result<web::Bytes, actix_web::Error>) -> Result<web::Bytes, Box<HttpResponse>> {
    match body {
        Ok(body) => Ok(body),
        Err(e) if super::limits::is_too_large(&e) => {
            let mut response = error(
                Dialect::Rfc6749,
                &OAuthError::invalid_request(format!(
                    "The request body is larger than {} bytes.",
                    super::limits::MAX_API_BODY
                )),
            );
            *response.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
            Err(Box::new(response))
        }
        Err(_) => Err(Box::new(error(
            Dialect::Rfc6749,
            &OAuthError::invalid_request("The request body could not be read."),
        ))),
    }
}

/// `POST /oauth/par`: 201 with the `request_uri` (RFC 9126 §2.2), or the token endpoint's
/// errors (§2.3).
pub async fn par(
    req: HttpRequest,
    body: Result<web::Bytes, actix_web::Error>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let body = match read_body(body) {
        Ok(body) => body,
        Err(response) => return *response,
    };
    if let Err(e) = params::refuse_secret_in_query(req.query_string()) {
        return error(Dialect::Rfc6749, &e);
    }
    let authorization = req
        .headers()
        .get(AUTHORIZATION)
        .map(|v| v.as_bytes().to_vec());
    let oauth = state.oauth.clone();
    let result = db::run(&state.pool, move |conn| {
        crate::oauth::par::push(conn, &oauth, authorization.as_deref(), &body)
    })
    .await;
    match result {
        Ok(pushed) => no_store(StatusCode::CREATED).json(pushed),
        Err(e) => error(Dialect::Rfc6749, &e),
    }
}

async fn handle(
    req: HttpRequest,
    body: Result<web::Bytes, actix_web::Error>,
    state: web::Data<AppState>,
    action: Action,
) -> HttpResponse {
    let body = match read_body(body) {
        Ok(body) => body,
        Err(response) => return *response,
    };
    if let Err(e) = params::refuse_secret_in_query(req.query_string()) {
        return error(Dialect::Rfc6749, &e);
    }
    let request = match TokenQuery::parse(&body) {
        Ok(request) => request,
        Err(e) => return error(Dialect::Rfc6749, &e),
    };
    let authorization = req
        .headers()
        .get(AUTHORIZATION)
        .map(|v| v.as_bytes().to_vec());
    let oauth = state.oauth.clone();
    // A client assertion records its `jti`, a write that may wait for the writer's turn: not on
    // the async worker. Everything else here is a cached lookup and one read.
    let on_worker = request.body_credentials.client_assertion.is_none();
    let answer = move |conn: &mut db::AnyConnection| {
        introspect::answer(conn, &oauth, action, authorization.as_deref(), &request)
    };
    let result = if on_worker {
        db::run_here(&state.pool, answer).await
    } else {
        db::run(&state.pool, answer).await
    };
    match result {
        Ok(Some(body)) => no_store(StatusCode::OK).json(body),
        // RFC 7009 §2.2: 200 whether or not there was anything to revoke.
        Ok(None) => no_store(StatusCode::OK).finish(),
        Err(e) => error(Dialect::Rfc6749, &e),
    }
}

pub async fn introspect(
    req: HttpRequest,
    body: Result<web::Bytes, actix_web::Error>,
    state: web::Data<AppState>,
) -> HttpResponse {
    handle(req, body, state, Action::Introspect).await
}

pub async fn revoke(
    req: HttpRequest,
    body: Result<web::Bytes, actix_web::Error>,
    state: web::Data<AppState>,
) -> HttpResponse {
    handle(req, body, state, Action::Revoke).await
}
