//! Token request bodies in both dialects (`oauth::params` with the token endpoint's names,
//! `TokenRequest::from_params`) and the `Content-Type` that picks the dialect.
//!
//! Invariants besides "no panic":
//! - a parsed grant never carries an empty value (RFC 6749 §3.1: empty counts as absent);
//! - the dialects agree: the parameters of a form body that parses, written as a JSON object
//!   (snake_case or camelCase names), parse to the same grant and credentials, or fail with
//!   the same error code.
#![no_main]

use latchkey::oauth::params::{self, Params, TOKEN};
use latchkey::oauth::request::{Dialect, Grant, TokenRequest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Dialect::from_content_type(Some(text));
    }

    if let Ok(params) = Params::from_json(data, TOKEN) {
        check(TokenRequest::from_params(params));
    }

    let Ok(form) = Params::from_form(data, TOKEN) else {
        return;
    };
    for snake in [true, false] {
        let object: serde_json::Map<String, serde_json::Value> = params::aliases(TOKEN)
            .filter_map(|(s, c)| {
                let name = if snake { s } else { c };
                form.get(s).map(|v| (name.to_owned(), v.into()))
            })
            .collect();
        let json = serde_json::to_vec(&object).expect("a map serializes");
        let from_json = Params::from_json(&json, TOKEN).expect("a JSON object of strings parses");
        for (s, _) in params::aliases(TOKEN) {
            assert_eq!(
                form.get(s),
                from_json.get(s),
                "{s} differs between dialects"
            );
        }
        let a = TokenRequest::from_params(Params::from_form(data, TOKEN).expect("parsed before"));
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
