//! `POST /oauth/introspect` (RFC 7662) and `POST /oauth/revoke` (RFC 7009). Both take a form
//! body and client authentication like the token endpoint, and answer with `no-store`.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{HttpRequest, HttpResponse, web};

use super::token::error;
use crate::db;
use crate::oauth::client_auth::{self, Presented};
use crate::oauth::error::OAuthError;
use crate::oauth::introspect::{self, Hint};
use crate::oauth::request::{BodyCredentials, Dialect};
use crate::state::AppState;

/// The form's fields; a repeated one is refused (RFC 6749 §3.2).
fn fields(body: &[u8]) -> Result<HashMap<String, String>, OAuthError> {
    if std::str::from_utf8(body).is_err() {
        return Err(OAuthError::invalid_request(
            "The request body must be UTF-8.",
        ));
    }
    let mut map = HashMap::new();
    for (name, value) in url::form_urlencoded::parse(body) {
        if value.is_empty() {
            continue;
        }
        if map
            .insert(name.clone().into_owned(), value.into_owned())
            .is_some()
        {
            return Err(OAuthError::invalid_request(format!(
                "`{name}` was sent more than once."
            )));
        }
    }
    Ok(map)
}

fn no_store(status: StatusCode) -> actix_web::HttpResponseBuilder {
    let mut builder = HttpResponse::build(status);
    builder
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("Pragma", "no-cache"));
    builder
}

enum Action {
    Introspect,
    Revoke,
}

async fn handle(
    req: HttpRequest,
    body: Result<web::Bytes, actix_web::Error>,
    state: web::Data<AppState>,
    action: Action,
) -> HttpResponse {
    let body = match body {
        Ok(body) => body,
        Err(e) if super::limits::is_too_large(&e) => {
            let mut response = error(
                Dialect::Rfc6749,
                &OAuthError::invalid_request(format!(
                    "The request body is larger than {} bytes.",
                    super::limits::MAX_API_BODY
                )),
            );
            *response.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
            return response;
        }
        Err(_) => {
            return error(
                Dialect::Rfc6749,
                &OAuthError::invalid_request("The request body could not be read."),
            );
        }
    };
    if let Err(e) = super::token::no_secret_in_url(&req) {
        return error(Dialect::Rfc6749, &e);
    }
    let mut form = match fields(&body) {
        Ok(form) => form,
        Err(e) => return error(Dialect::Rfc6749, &e),
    };
    let credentials = BodyCredentials {
        client_id: form.remove("client_id"),
        client_secret: form.remove("client_secret"),
    };
    let authorization = req
        .headers()
        .get(AUTHORIZATION)
        .map(|v| v.as_bytes().to_vec());
    let Some(token) = form.remove("token") else {
        return error(
            Dialect::Rfc6749,
            &OAuthError::invalid_request("The `token` parameter is missing."),
        );
    };
    let hint = Hint::parse(form.get("token_type_hint").map(String::as_str));
    let oauth = state.oauth.clone();
    let result = db::run(&state.pool, move |conn| {
        let presented = client_auth::presented(authorization.as_deref(), &credentials)?;
        // Introspection reveals who a token acts for: only clients that can prove who they are.
        if matches!(action, Action::Introspect)
            && matches!(presented, Presented::PublicClient { .. })
        {
            return Err(OAuthError::invalid_client());
        }
        let caller =
            client_auth::authenticate(conn, &oauth.server_key, &presented, db::now())?.client;
        match action {
            Action::Introspect => Ok(Some(introspect::introspect(
                conn, &oauth, &caller, &token, hint,
            )?)),
            Action::Revoke => {
                introspect::revoke(conn, &caller, &token, hint)?;
                Ok(None)
            }
        }
    })
    .await;
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
