//! One reader for the parameters of every OAuth request — token, authorization, introspection
//! and revocation — and the one table of their names.
//!
//! Each parameter has its RFC name and, where Revenue Monster spells it otherwise, a camelCase
//! alias (`grantType`, `clientId`, `redirectUri`…); either spelling reads as the RFC name. Each
//! endpoint names the parameters it reads ([`TOKEN`], [`AUTHORIZE`], [`INTROSPECT`]); others
//! are ignored (RFC 6749 §3.2). Empty values count as absent (§3.1). A parameter may appear once
//! (§3.1): the form and JSON readers refuse a repeat with `invalid_request`, while the query
//! reader records it ([`Params::repeated`]) for the authorization endpoint, which may only say
//! so once it knows the redirect URI the error can go to (§4.1.2.1). The fuzz targets read this
//! table too, so their checks cover every parameter an endpoint reads.

use std::collections::HashMap;
use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};

use super::error::OAuthError;

/// Every parameter any endpoint reads: its RFC name, and the camelCase spelling Revenue
/// Monster's clients send (the RFC name again where the two agree).
pub const NAMES: &[(&str, &str)] = &[
    // RFC 6749 §4, §6 and client authentication (§2.3.1).
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
    // private_key_jwt (RFC 7523 §2.2, RFC 7521 §4.2).
    ("client_assertion", "clientAssertion"),
    ("client_assertion_type", "clientAssertionType"),
    // The authorization request (§4.1.1), PKCE (RFC 7636 §4.3), OAuth 2.0 Multiple Response
    // Type Encoding Practices (response_mode) and OpenID Connect Core §3.1.2.1.
    ("response_type", "responseType"),
    ("state", "state"),
    ("code_challenge", "codeChallenge"),
    ("code_challenge_method", "codeChallengeMethod"),
    ("nonce", "nonce"),
    ("response_mode", "responseMode"),
    ("prompt", "prompt"),
    ("max_age", "max_age"),
    // Request objects (OIDC Core §6) and pushed requests (RFC 9126): read only to be refused,
    // never ignored, since they may carry parameters that differ from the outer ones.
    ("request", "request"),
    ("request_uri", "request_uri"),
    // Introspection (RFC 7662 §2.1) and revocation (RFC 7009 §2.1).
    ("token", "token"),
    ("token_type_hint", "token_type_hint"),
];

/// What the token endpoint reads (RFC 6749 §4.1.3, §4.3.2, §4.4.2, §6, §2.3.1).
pub const TOKEN: &[&str] = &[
    "grant_type",
    "scope",
    "username",
    "password",
    "refresh_token",
    "code",
    "redirect_uri",
    "code_verifier",
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
];

/// What the authorization endpoint reads (RFC 6749 §4.1.1, RFC 7636, OIDC Core §3.1.2.1, §6).
pub const AUTHORIZE: &[&str] = &[
    "client_id",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "nonce",
    "response_mode",
    "prompt",
    "max_age",
    "request",
    "request_uri",
];

/// What the pushed-authorization-request endpoint reads (RFC 9126 §2.1): the authorization
/// request's parameters and client authentication.
pub const PAR: &[&str] = &[
    "client_id",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "nonce",
    "response_mode",
    "prompt",
    "max_age",
    "request",
    "request_uri",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
];

/// What introspection (RFC 7662 §2.1) and revocation (RFC 7009 §2.1) read, client
/// authentication included.
pub const INTROSPECT: &[&str] = &[
    "token",
    "token_type_hint",
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
];

/// The RFC name of `name` (either spelling), if `reads` lists it.
fn canonical(name: &str, reads: &[&'static str]) -> Option<&'static str> {
    NAMES
        .iter()
        .find(|(rfc, camel)| *rfc == name || *camel == name)
        .map(|(rfc, _)| *rfc)
        .filter(|rfc| reads.contains(rfc))
}

/// The (RFC name, camelCase alias) pairs of the parameters in `reads`.
pub fn aliases(reads: &[&'static str]) -> impl Iterator<Item = (&'static str, &'static str)> {
    NAMES
        .iter()
        .copied()
        .filter(move |(rfc, _)| reads.contains(rfc))
}

/// A request's parameters, by their RFC names.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Params {
    values: HashMap<&'static str, String>,
    /// The first parameter sent more than once.
    repeated: Option<&'static str>,
}

impl Params {
    /// Reads pairs: the names in `reads` (either spelling), non-empty values, the last of a
    /// repeat kept and the first repeated name noted.
    fn collect<N, V>(pairs: impl IntoIterator<Item = (N, V)>, reads: &[&'static str]) -> Self
    where
        N: AsRef<str>,
        V: Into<String>,
    {
        let mut params = Self::default();
        for (name, value) in pairs {
            let Some(rfc) = canonical(name.as_ref(), reads) else {
                continue;
            };
            let value: String = value.into();
            if value.is_empty() {
                continue;
            }
            if params.values.insert(rfc, value).is_some() {
                params.repeated.get_or_insert(rfc);
            }
        }
        params
    }

    /// The form and JSON bodies refuse a repeated parameter at once: their errors need no
    /// redirect URI.
    fn refusing_repeats(self) -> Result<Self, OAuthError> {
        match self.repeated {
            Some(name) => Err(OAuthError::invalid_request(format!(
                "`{name}` was sent more than once."
            ))),
            None => Ok(self),
        }
    }

    /// An `application/x-www-form-urlencoded` body (RFC 6749 Appendix B). Text that is not
    /// UTF-8, raw or percent-encoded, is refused rather than silently replaced.
    pub fn from_form(body: &[u8], reads: &[&'static str]) -> Result<Self, OAuthError> {
        if std::str::from_utf8(body).is_err() {
            return Err(OAuthError::invalid_request(
                "The request body must be UTF-8.",
            ));
        }
        let pairs: Vec<_> = url::form_urlencoded::parse(body).collect();
        if pairs
            .iter()
            .any(|(name, value)| name.contains('\u{FFFD}') || value.contains('\u{FFFD}'))
        {
            return Err(OAuthError::invalid_request("Parameters must be UTF-8."));
        }
        Self::collect(pairs, reads).refusing_repeats()
    }

    /// A JSON object body (Revenue Monster's dialect) whose values are strings; numbers and
    /// booleans are read as their text, `null` as absent, and a nested value of a parameter
    /// that `reads` names is refused. Duplicate keys are refused, which serde_json alone would
    /// silently resolve to the last one.
    pub fn from_json(body: &[u8], reads: &[&'static str]) -> Result<Self, OAuthError> {
        let entries: Entries = serde_json::from_slice(body).map_err(|e| {
            OAuthError::invalid_request(format!("The request body is not a JSON object: {e}."))
        })?;
        let mut pairs = Vec::with_capacity(entries.0.len());
        for (name, value) in entries.0 {
            let text = match value {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                serde_json::Value::Null => continue,
                _ if canonical(&name, reads).is_some() => {
                    return Err(OAuthError::invalid_request(format!(
                        "`{name}` must be a string."
                    )));
                }
                _ => continue,
            };
            pairs.push((name, text));
        }
        Self::collect(pairs, reads).refusing_repeats()
    }

    /// A query string (the authorization request). A repeated parameter is not refused here
    /// but noted in [`Self::repeated`], since where its error goes depends on which one it is.
    pub fn from_query(query: &str, reads: &[&'static str]) -> Self {
        Self::collect(url::form_urlencoded::parse(query.as_bytes()), reads)
    }

    /// A parameter by its RFC name; `None` when absent or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The first parameter that was sent more than once (from a query string).
    pub fn repeated(&self) -> Option<&'static str> {
        self.repeated
    }

    /// Sets a parameter (by its RFC name), replacing what was sent: the pushed-request endpoint
    /// puts the authenticated client's id where the authorization checks read it.
    pub fn set(&mut self, name: &'static str, value: String) {
        self.values.insert(name, value);
    }

    /// Removes and returns a parameter.
    pub fn take(&mut self, name: &str) -> Option<String> {
        self.values.remove(name)
    }

    /// Removes and returns a parameter that must be there (`invalid_request` otherwise).
    pub fn require(&mut self, name: &'static str) -> Result<String, OAuthError> {
        self.take(name).ok_or_else(|| {
            OAuthError::invalid_request(format!("The `{name}` parameter is missing."))
        })
    }
}

/// A JSON object read as an ordered list of entries, so duplicate keys can be seen.
struct Entries(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, serde_json::Value>()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_map(EntriesVisitor)
    }
}

/// RFC 6749 §2.3.1: client credentials "MUST NOT be included in the request URI". A secret in
/// the query string has already leaked into access logs and proxies; refusing it (rather than
/// ignoring it) makes the client's developer notice and rotate it. Every endpoint that
/// authenticates clients checks its query string with this, whatever its value.
pub fn refuse_secret_in_query(query: &str) -> Result<(), OAuthError> {
    let secret_in_url = url::form_urlencoded::parse(query.as_bytes()).any(|(name, _)| {
        NAMES
            .iter()
            .any(|&(snake, camel)| snake == "client_secret" && (name == snake || name == camel))
    });
    if secret_in_url {
        return Err(OAuthError::invalid_request(
            "The client secret must not be sent in the URL; send it in the Authorization header or the body, and rotate it.",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::error::ErrorCode;

    #[test]
    fn every_endpoint_reads_only_names_of_the_table() {
        for reads in [TOKEN, AUTHORIZE, INTROSPECT, PAR] {
            for name in reads {
                assert!(
                    NAMES.iter().any(|(rfc, _)| rfc == name),
                    "{name} is not in NAMES"
                );
            }
        }
        // A pushed request carries every authorization parameter, and client authentication.
        for name in
            AUTHORIZE
                .iter()
                .chain(&["client_secret", "client_assertion", "client_assertion_type"])
        {
            assert!(PAR.contains(name), "PAR does not read {name}");
        }
        let mut spellings: Vec<&str> = NAMES.iter().flat_map(|(a, b)| [*a, *b]).collect();
        spellings.sort_unstable();
        let all = spellings.len();
        spellings.dedup();
        // Each spelling names one parameter (an alias equal to its own name counts once).
        assert_eq!(
            spellings.len(),
            all - NAMES.iter().filter(|(a, b)| a == b).count()
        );
    }

    #[test]
    fn aliases_repeats_and_unknown_names_in_a_query() {
        let p = Params::from_query(
            "clientId=1&redirectUri=https%3A%2F%2Fa.example%2Fcb&responseType=code&scope=a,b&state=s",
            AUTHORIZE,
        );
        assert_eq!(p.get("client_id"), Some("1"));
        assert_eq!(p.get("redirect_uri"), Some("https://a.example/cb"));
        assert_eq!(p.get("response_type"), Some("code"));
        assert_eq!(p.get("scope"), Some("a,b"));
        assert_eq!(p.repeated(), None);
        let p = Params::from_query("client_id=1&clientId=2", AUTHORIZE);
        assert_eq!(p.repeated(), Some("client_id"));
        let p = Params::from_query("state=&scope=x&unknown=y", AUTHORIZE);
        assert_eq!(p.get("state"), None);
        // A name another endpoint reads is not this endpoint's.
        let p = Params::from_query("grant_type=a&grant_type=b&scope=x", AUTHORIZE);
        assert_eq!((p.get("grant_type"), p.repeated()), (None, None));
    }

    #[test]
    fn bodies_refuse_repeats_and_bad_text() {
        for body in [
            &b"grant_type=password&grant_type=client_credentials"[..],
            b"grant_type=%FF",
            &[0x67, 0xff],
        ] {
            let err = Params::from_form(body, TOKEN).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidRequest);
        }
        for body in [
            &br#"{"grant_type":"a","grantType":"b"}"#[..],
            br#"{"scope":"a","scope":"b"}"#,
            b"[1,2]",
            br#"{"grantType":["a"]}"#,
        ] {
            let err = Params::from_json(body, TOKEN).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidRequest);
        }
        // Unknown and unread names are ignored, a nested value among them too.
        let p =
            Params::from_json(br#"{"grantType":"x","other":{"a":1},"token":"t"}"#, TOKEN).unwrap();
        assert_eq!((p.get("grant_type"), p.get("token")), (Some("x"), None));
        let p =
            Params::from_form(b"token=t&token_type_hint=access_token&x=1&x=2", INTROSPECT).unwrap();
        assert_eq!(p.get("token"), Some("t"));
    }
}
