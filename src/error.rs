//! Errors of the page layer and how each becomes a response.
//!
//! Use [`AppError`] in handlers that render pages or plain responses. The person sees a short,
//! clear page (or an opaque "something went wrong" for faults); the log gets the whole cause
//! chain. OAuth endpoints have their own error types, which render RFC 6749 error bodies instead.

use actix_web::http::StatusCode;
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
            Self::Db(DbError::Pool(_)) => StatusCode::SERVICE_UNAVAILABLE,
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
            Self::Db(DbError::Pool(_)) => {
                ("Busy", "The service is busy. Please try again in a moment.")
            }
            _ => (
                "Something went wrong",
                "Something went wrong on our side. Please try again.",
            ),
        };
        // Fixed texts only: nothing from the request is echoed here.
        let html = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title} · Latchkey</title><link rel=\"stylesheet\" href=\"/static/css/latchkey.css\"></head><body><main class=\"container\"><section class=\"card narrow\"><h1>{title}</h1><p>{message}</p><p><a href=\"/\">Go to the start page</a></p></section></main></body></html>"
        );
        HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .insert_header(("Cache-Control", "no-store"))
            .body(html)
    }
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
