//! Errors of the HTTP layer and how each becomes a response.
//!
//! Use [`AppError`] in handlers that render pages or plain responses. The person sees a short,
//! clear message (or an opaque "something went wrong" for faults); the log gets the whole cause
//! chain with the request id. OAuth endpoints have their own error types, which render RFC 6749
//! error bodies instead.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::db::DbError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("template rendering failed: {0}")]
    Template(#[from] tera::Error),
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Db(DbError::Pool(_)) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Db(_) | Self::Template(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(error = %error_chain(self), "request failed");
        }
        let message = match self {
            Self::NotFound => "Not found.",
            Self::Db(DbError::Pool(_)) => "The service is busy. Please try again in a moment.",
            _ => "Something went wrong on our side. Please try again.",
        };
        HttpResponse::build(status)
            .content_type("text/plain; charset=utf-8")
            .body(message)
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
