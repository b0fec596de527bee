//! Authorization request query strings (`authorize::Params::from_query`) and the checks of
//! `authorize::validate` that need no database: the scope, the PKCE challenge, the redirect
//! URI, and the error redirect built from it (`redirect_with`, RFC 6749 §4.1.2.1).
//!
//! Invariants besides "no panic":
//! - a parameter read back is never empty (RFC 6749 §3.1), and equals the query's own value
//!   (by its RFC name or its camelCase alias) when the name appears once;
//! - an error redirect to a redirect URI that parses always exists, keeps the URI's scheme,
//!   host and path, has no fragment, and ends with exactly the pairs appended (so `state`
//!   comes back to the client byte for byte).
#![no_main]

use latchkey::domain::{RedirectUri, Scopes};
use latchkey::oauth::authorize::{Params, redirect_with};
use latchkey::oauth::pkce;
use libfuzzer_sys::fuzz_target;

const KNOWN: &[(&str, &str)] = &[
    ("client_id", "clientId"),
    ("redirect_uri", "redirectUri"),
    ("response_type", "responseType"),
    ("scope", "scope"),
    ("state", "state"),
    ("code_challenge", "codeChallenge"),
    ("code_challenge_method", "codeChallengeMethod"),
    ("nonce", "nonce"),
    ("response_mode", "responseMode"),
];

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    let params = Params::from_query(query);
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    for &(snake, camel) in KNOWN {
        let sent: Vec<&str> = pairs
            .iter()
            .filter(|(n, v)| (n == snake || n == camel) && !v.is_empty())
            .map(|(_, v)| v.as_str())
            .collect();
        match params.get(snake) {
            Some(value) => {
                assert!(!value.is_empty());
                assert!(sent.contains(&value), "{snake}: {value:?} not in {sent:?}");
            }
            None => assert!(sent.is_empty(), "{snake} was sent but not read"),
        }
        if let [only] = sent.as_slice() {
            assert_eq!(params.get(snake), Some(*only));
        }
    }

    if let Some(scope) = params.get("scope")
        && let Ok(scopes) = Scopes::parse(scope)
    {
        assert_eq!(Scopes::from_stored(&scopes.to_stored()), scopes);
    }
    if let Some(challenge) = params.get("code_challenge") {
        let _ = pkce::is_valid_challenge(challenge);
    }

    let Some(raw) = params.get("redirect_uri") else {
        return;
    };
    let Ok(uri) = RedirectUri::parse(raw) else {
        return;
    };
    let state = params.get("state").unwrap_or("");
    let appended = [
        ("error", "invalid_scope"),
        ("error_description", "The scope is not allowed."),
        ("state", state),
    ];
    let url = redirect_with(uri.as_str(), &appended).expect("a registered URI can redirect");
    let base = url::Url::parse(uri.as_str()).expect("checked by RedirectUri::parse");
    assert_eq!(url.scheme(), base.scheme());
    assert_eq!(url.host_str(), base.host_str());
    assert_eq!(url.path(), base.path());
    assert_eq!(url.fragment(), None);
    let back: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    assert!(back.len() >= appended.len());
    let tail = &back[back.len() - appended.len()..];
    for ((name, value), (n, v)) in appended.iter().zip(tail) {
        assert_eq!((*name, *value), (n.as_str(), v.as_str()));
    }
});
