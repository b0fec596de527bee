//! `GET /openapi.json`: the OpenAPI 3.1 description of the machine API (every route of
//! [`super::api`] but the icon and the static files).
//!
//! The document is `docs/openapi.json`, compiled in, so the copy kept in the repository and the
//! one served cannot drift apart. Only its `servers` entry changes: the kept copy says `/`, the
//! served one names this server's issuer, so a tool pointed at the URL calls the right server.
//! That one value is spliced into the text rather than the document being re-serialised, so the
//! served copy keeps the kept one's order and layout (serde_json's map would sort the keys).

use actix_web::HttpResponse;
use actix_web::web;

use crate::state::AppState;

/// The description, as kept in the repository.
pub const DOCUMENT: &str = include_str!("../../docs/openapi.json");

/// The kept copy's server URL: relative, the server the document was fetched from.
const RELATIVE_SERVER: &str = r#""url": "/""#;

/// The document with its first server's URL set to `issuer`. A document without the relative
/// server entry (which a test rules out) is served as it is.
pub fn document(issuer: &str) -> String {
    let at = DOCUMENT.find(r#""servers": ["#).and_then(|servers| {
        DOCUMENT[servers..]
            .find(RELATIVE_SERVER)
            .map(|offset| servers + offset)
    });
    match at {
        Some(at) => {
            let url = serde_json::Value::String(issuer.to_owned());
            format!(
                "{}\"url\": {url}{}",
                &DOCUMENT[..at],
                &DOCUMENT[at + RELATIVE_SERVER.len()..]
            )
        }
        None => DOCUMENT.to_owned(),
    }
}

/// `GET /openapi.json`.
pub async fn openapi(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "public, max-age=300"))
        .content_type("application/json")
        .body(document(&state.issuer))
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    #[test]
    fn only_the_server_changes() {
        let issuer = "https://auth.example.com/a\"b";
        let served: Value = serde_json::from_str(&super::document(issuer)).unwrap();
        let mut kept: Value = serde_json::from_str(super::DOCUMENT).unwrap();
        assert_eq!(kept["servers"][0]["url"], "/");
        assert_eq!(served["servers"][0]["url"], issuer);
        kept["servers"][0]["url"] = Value::String(issuer.to_owned());
        assert_eq!(served, kept);
    }
}
