//! Errors of the page layer and how each becomes a response.
//!
//! Use [`AppError`] in handlers that render pages or plain responses. The person sees a short,
//! clear page (or an opaque "something went wrong" for faults); the log gets the whole cause
//! chain. OAuth endpoints have their own error types, which render RFC 6749 error bodies instead.
//!
//! A database that is down or busy ([`DbError::is_unavailable`]) is never a 500: pages answer 503
//! with `Retry-After` and say to try again shortly; the API answers `temporarily_unavailable`
//! (see [`unavailable_json`]).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{HttpResponse, ResponseError};

use crate::db::DbError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    /// A form without the session's CSRF token: refused, nothing changed.
    #[error("CSRF token missing or wrong")]
    Csrf,
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("template rendering failed: {0}")]
    Template(#[from] tera::Error),
    /// A failure inside the server (session storage, hashing) with its cause for the log.
    #[error("internal failure: {0}")]
    Internal(String),
    /// The session store (the database) could not be read or written.
    #[error("session storage unavailable: {0}")]
    SessionStore(String),
    /// A request body over its limit: refused before it is parsed.
    #[error("request body larger than {limit} bytes")]
    TooLarge { limit: usize },
}

impl From<actix_session::SessionInsertError> for AppError {
    fn from(e: actix_session::SessionInsertError) -> Self {
        Self::Internal(format!("session storage: {e}"))
    }
}

impl From<crate::auth::password::HashError> for AppError {
    fn from(e: crate::auth::password::HashError) -> Self {
        Self::Internal(e.to_string())
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Csrf => StatusCode::FORBIDDEN,
            Self::Db(e) if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            Self::SessionStore(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Db(_) | Self::Template(_) | Self::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(error = %error_chain(self), "request failed");
        }
        let (title, message) = match self {
            Self::NotFound => ("Page not found", "There is nothing at this address."),
            Self::Csrf => (
                "This form has expired",
                "The form was not sent from this page, or your session changed since it was shown. Go back, reload the page and try again.",
            ),
            Self::Db(_) | Self::SessionStore(_) if status == StatusCode::SERVICE_UNAVAILABLE => (
                "Temporarily unavailable",
                "Latchkey cannot reach its database right now. Nothing was changed. Please try again in a few seconds.",
            ),
            Self::TooLarge { .. } => (
                "Too much data",
                "The form sent more data than any of our forms accept. Go back, shorten what you typed and try again.",
            ),
            _ => (
                "Something went wrong",
                "Something went wrong on our side. Please try again.",
            ),
        };
        // Fixed texts only: nothing from the request is echoed here.
        let html = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title} · Latchkey</title><link rel=\"stylesheet\" href=\"/static/css/latchkey.css\"></head><body><main class=\"container\"><section class=\"card narrow\"><h1>{title}</h1><p>{message}</p><p><a href=\"/\">Go to the start page</a></p></section></main></body></html>"
        );
        let mut response = HttpResponse::build(status);
        response
            .content_type("text/html; charset=utf-8")
            .insert_header(("Cache-Control", "no-store"));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header(retry_after());
        }
        response.body(html)
    }
}

/// `Retry-After` for a 503 caused by the database (RFC 9110 §10.2.3).
pub fn retry_after() -> (&'static str, String) {
    ("Retry-After", crate::db::RETRY_AFTER_SECS.to_string())
}

/// The API's answer while the database is unavailable: RFC 6749's `temporarily_unavailable`
/// (§4.1.2.1, used the same way by the other endpoints), not cached, with `Retry-After`.
pub fn unavailable_json() -> HttpResponse {
    HttpResponse::ServiceUnavailable()
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(retry_after())
        .json(serde_json::json!({
            "error": "temporarily_unavailable",
            "error_description": "The database is unavailable. Please try again in a few seconds.",
        }))
}

/// `error: cause: cause…` on one line, for logs and the command line. A cause whose text the
/// message already includes (thiserror's `"…: {0}"` with `#[from]`) is not repeated.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Wraps the session middleware: when the session store (the database) fails, actix-session
/// fails the request with an opaque 500; this turns that into our 503 page with `Retry-After`.
/// Handlers' own errors are already responses by then, so an error here comes from the store.
pub async fn session_store_outage(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    next.call(req)
        .await
        .map_err(|error| AppError::SessionStore(error.to_string()).into())
}
