//! Size limits on what a request may carry, so that no request costs more to read than it is
//! worth. Each refusal is a 4xx that says which limit was hit.
//!
//! | what | limit | answer |
//! |---|---|---|
//! | request head (all headers) | [`MAX_HEADER_BYTES`] | 431 (actix-http itself closes at 128 KiB with 431, and at 96 headers with 400) |
//! | one header value | [`MAX_HEADER_VALUE`] | 431 |
//! | token endpoint, introspection, revocation body | [`MAX_API_BODY`] | 413 `invalid_request` |
//! | a page's form | [`MAX_FORM_BODY`] | 413 page |
//!
//! Field lengths, redirect URIs (10) and scopes (20) per client are the domain types' limits.

use actix_web::HttpResponse;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;

/// All request headers together, names and values.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// One header value (a session cookie is well under 1 KiB, a Basic header under 600 bytes).
pub const MAX_HEADER_VALUE: usize = 8 * 1024;
/// Bodies of the OAuth endpoints: a few short parameters.
pub const MAX_API_BODY: usize = 16 * 1024;
/// Bodies of page forms: the largest, the application form, is about 25 KiB when every field is
/// at its limit.
pub const MAX_FORM_BODY: usize = 64 * 1024;

/// Refuses requests whose headers are over [`MAX_HEADER_BYTES`] or [`MAX_HEADER_VALUE`] with
/// 431 (RFC 6585 §5) before any handler, session lookup or database work.
pub async fn header_limits(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut total = 0;
    let mut longest = 0;
    for (name, value) in req.headers() {
        total += name.as_str().len() + value.len();
        longest = longest.max(value.len());
    }
    if total > MAX_HEADER_BYTES || longest > MAX_HEADER_VALUE {
        let response = HttpResponse::build(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
            .insert_header(("Cache-Control", "no-store"))
            .content_type("text/plain; charset=utf-8")
            .body(format!(
                "Request headers too large: at most {MAX_HEADER_VALUE} bytes per header and {MAX_HEADER_BYTES} bytes in all.\n"
            ));
        return Ok(req.into_response(response).map_into_right_body());
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

/// Whether a body extractor failed because the body was over its limit.
pub fn is_too_large(error: &actix_web::Error) -> bool {
    error.as_response_error().status_code() == StatusCode::PAYLOAD_TOO_LARGE
}

/// Merges repeated slashes in the path (`//oauth//token` is `/oauth/token`), as actix's
/// `NormalizePath::new(TrailingSlash::MergeOnly)` did, but without its regex pass over every
/// request's path: a path without `//`, which is every path a client library sends, is left as
/// it is after one scan.
pub async fn merge_slashes(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if req.path().contains("//") {
        let merged = merged_path(req.path());
        let mut parts = req.uri().clone().into_parts();
        let path_and_query = match parts.path_and_query.as_ref().and_then(|pq| pq.query()) {
            Some(query) => format!("{merged}?{query}"),
            None => merged,
        };
        if let Ok(path_and_query) = path_and_query.parse() {
            parts.path_and_query = Some(path_and_query);
            if let Ok(uri) = actix_web::http::Uri::from_parts(parts) {
                req.match_info_mut().get_mut().update(&uri);
                req.head_mut().uri = uri;
            }
        }
    }
    next.call(req).await
}

/// `path` with every run of slashes replaced by one.
fn merged_path(path: &str) -> String {
    let mut merged = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && merged.ends_with('/')) {
            merged.push(c);
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    #[test]
    fn runs_of_slashes_become_one() {
        assert_eq!(super::merged_path("//oauth///token"), "/oauth/token");
        assert_eq!(super::merged_path("/oauth/token/"), "/oauth/token/");
        assert_eq!(super::merged_path("/"), "/");
    }
}
