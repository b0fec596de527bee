//! Token request bodies in both dialects (`Params::from_form`, `Params::from_json`,
//! `TokenRequest::from_params`) and the `Content-Type` that picks the dialect.
//!
//! Invariants besides "no panic":
//! - a parsed grant never carries an empty value (RFC 6749 §3.1: empty counts as absent);
//! - the dialects agree: the parameters of a form body that parses, written as a JSON object
//!   (snake_case or camelCase names), parse to the same grant and credentials, or fail with
//!   the same error code.
#![no_main]

use latchkey::oauth::request::{Dialect, Grant, Params, TokenRequest};
use libfuzzer_sys::fuzz_target;

/// Every parameter the token endpoint reads, with its camelCase alias (as in `request.rs`).
const KNOWN: &[(&str, &str)] = &[
    ("grant_type", "grantType"),
    ("scope", "scope"),
    ("username", "username"),
    ("password", "password"),
    ("refresh_token", "refreshToken"),
    ("code", "code"),
    ("redirect_uri", "redirectUri"),
    ("code_verifier", "codeVerifier"),
    ("client_id", "clientId"),
    ("client_secret", "clientSecret"),
];

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Dialect::from_content_type(Some(text));
    }

    if let Ok(params) = Params::from_json(data) {
        check(TokenRequest::from_params(params));
    }

    let Ok(form) = Params::from_form(data) else {
        return;
    };
    for snake in [true, false] {
        let object: serde_json::Map<String, serde_json::Value> = KNOWN
            .iter()
            .filter_map(|&(s, c)| {
                let name = if snake { s } else { c };
                form.get(s).map(|v| (name.to_owned(), v.into()))
            })
            .collect();
        let json = serde_json::to_vec(&object).expect("a map serializes");
        let from_json = Params::from_json(&json).expect("a JSON object of strings parses");
        for (s, _) in KNOWN {
            assert_eq!(
                form.get(s),
                from_json.get(s),
                "{s} differs between dialects"
            );
        }
        let a = TokenRequest::from_params(Params::from_form(data).expect("parsed before"));
        let b = TokenRequest::from_params(from_json);
        match (a, b) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a.grant, b.grant);
                assert_eq!(a.body_credentials, b.body_credentials);
            }
            (Err(a), Err(b)) => assert_eq!(a.code, b.code),
            (a, b) => panic!("the dialects disagree: {a:?} vs {b:?}"),
        }
    }
    check(TokenRequest::from_params(form));
});

fn check(request: Result<TokenRequest, latchkey::oauth::error::OAuthError>) {
    let Ok(request) = request else {
        return;
    };
    let nonempty = |v: &Option<String>| v.as_ref().is_none_or(|v| !v.is_empty());
    assert!(nonempty(&request.body_credentials.client_id));
    assert!(nonempty(&request.body_credentials.client_secret));
    match &request.grant {
        Grant::ClientCredentials { scope } => assert!(nonempty(scope)),
        Grant::Password {
            username,
            password,
            scope,
        } => assert!(!username.is_empty() && !password.is_empty() && nonempty(scope)),
        Grant::RefreshToken {
            refresh_token,
            scope,
        } => assert!(!refresh_token.is_empty() && nonempty(scope)),
        Grant::AuthorizationCode {
            code,
            redirect_uri,
            code_verifier,
        } => assert!(!code.is_empty() && nonempty(redirect_uri) && nonempty(code_verifier)),
    }
}
