//! Logging: the subscriber set up once by `main`, and one line per HTTP request.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Header carrying the request id, echoed from the client when well-formed, else generated.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Installs the global log subscriber, writing to standard error. Calling it twice is harmless.
pub fn init(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Middleware: gives each request an id (the `X-Request-Id` response header) and logs one line
/// when it completes: method, path, status, latency and request id.
pub async fn log_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_safe_request_id(v))
        .map(str::to_owned)
        .unwrap_or_else(|| crate::crypto::random_token(12));
    let method = req.method().to_string();
    // The path only: query strings may carry codes and tokens, which never go to the log.
    let path = req.path().to_owned();

    let result = next.call(req).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    match result {
        Ok(mut res) => {
            if let Ok(value) = HeaderValue::from_str(&request_id) {
                res.headers_mut().insert(REQUEST_ID, value);
            }
            let status = res.status().as_u16();
            tracing::info!(%request_id, %method, %path, status, latency_ms = format_args!("{latency_ms:.2}"), "request");
            Ok(res)
        }
        Err(error) => {
            let status = error.as_response_error().status_code().as_u16();
            tracing::info!(%request_id, %method, %path, status, latency_ms = format_args!("{latency_ms:.2}"), "request");
            Err(error)
        }
    }
}

/// Accept a caller's request id only if it cannot forge log lines or headers.
fn is_safe_request_id(value: &str) -> bool {
    (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_ids_from_clients_are_restricted() {
        assert!(super::is_safe_request_id("abc-123_x.y"));
        assert!(!super::is_safe_request_id("bad\nline"));
        assert!(!super::is_safe_request_id(""));
        assert!(!super::is_safe_request_id(&"a".repeat(65)));
    }
}
