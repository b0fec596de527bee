//! Reading a token request in either dialect into one typed value.
//!
//! - RFC 6749: `application/x-www-form-urlencoded`, snake_case names (§4, Appendix B).
//! - Revenue Monster: `application/json`, names in snake_case (`grant_type`, seed 000) or
//!   camelCase (`grantType`, seed 003).
//!
//! Either way a parameter may appear once (RFC 6749 §3.2); unknown parameters are ignored
//! (§3.2); empty values count as absent (§3.1).

use std::collections::HashMap;
use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};

use super::error::OAuthError;
use crate::domain::GrantType;

/// Which dialect a request spoke, and so which one the response speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// RFC 6749: form body, snake_case JSON response, `{"error": "…"}` errors.
    Rfc6749,
    /// Revenue Monster: JSON body, camelCase response, `{"error": {"code", "message"}}` errors.
    RevenueMonster,
}

impl Dialect {
    /// From the request's `Content-Type`; `None` for any type the endpoint does not take.
    pub fn from_content_type(content_type: Option<&str>) -> Option<Self> {
        let essence = content_type?
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/x-www-form-urlencoded" => Some(Self::Rfc6749),
            "application/json" => Some(Self::RevenueMonster),
            _ => None,
        }
    }
}

/// The token request's parameters, by their RFC 6749 (snake_case) names.
#[derive(Debug, Default)]
pub struct Params(HashMap<&'static str, String>);

/// Every parameter the token endpoint reads, with its camelCase alias.
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

impl Params {
    /// Parses a form body. Non-UTF-8 text is refused rather than silently replaced.
    pub fn from_form(body: &[u8]) -> Result<Self, OAuthError> {
        if std::str::from_utf8(body).is_err() {
            return Err(OAuthError::invalid_request(
                "The request body must be UTF-8.",
            ));
        }
        let mut params = Self::default();
        for (name, value) in url::form_urlencoded::parse(body) {
            if value.contains('\u{FFFD}') || name.contains('\u{FFFD}') {
                return Err(OAuthError::invalid_request("Parameters must be UTF-8."));
            }
            params.insert(&name, value.into_owned())?;
        }
        Ok(params)
    }

    /// Parses a JSON object body whose values are strings (numbers and booleans are read as
    /// their text; nested values are refused). Duplicate keys are refused, which serde_json
    /// alone would silently resolve to the last one.
    pub fn from_json(body: &[u8]) -> Result<Self, OAuthError> {
        let entries: Entries = serde_json::from_slice(body).map_err(|e| {
            OAuthError::invalid_request(format!("The request body is not a JSON object: {e}."))
        })?;
        let mut params = Self::default();
        for (name, value) in entries.0 {
            let text = match value {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                serde_json::Value::Null => continue,
                _ => {
                    if known_name(&name).is_some() {
                        return Err(OAuthError::invalid_request(format!(
                            "`{name}` must be a string."
                        )));
                    }
                    continue;
                }
            };
            params.insert(&name, text)?;
        }
        Ok(params)
    }

    fn insert(&mut self, name: &str, value: String) -> Result<(), OAuthError> {
        let Some(canonical) = known_name(name) else {
            return Ok(());
        };
        if value.is_empty() {
            return Ok(());
        }
        if self.0.insert(canonical, value).is_some() {
            return Err(OAuthError::invalid_request(format!(
                "`{canonical}` was sent more than once."
            )));
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    fn take(&mut self, name: &str) -> Option<String> {
        self.0.remove(name)
    }

    fn require(&mut self, name: &'static str) -> Result<String, OAuthError> {
        self.take(name).ok_or_else(|| {
            OAuthError::invalid_request(format!("The `{name}` parameter is missing."))
        })
    }
}

fn known_name(name: &str) -> Option<&'static str> {
    KNOWN
        .iter()
        .find(|(snake, camel)| *snake == name || *camel == name)
        .map(|(snake, _)| *snake)
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

/// A grant with its parameters, checked for presence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    ClientCredentials {
        scope: Option<String>,
    },
    Password {
        username: String,
        password: String,
        scope: Option<String>,
    },
    RefreshToken {
        refresh_token: String,
        scope: Option<String>,
    },
    AuthorizationCode {
        code: String,
        redirect_uri: Option<String>,
        code_verifier: Option<String>,
    },
}

impl Grant {
    pub fn grant_type(&self) -> GrantType {
        match self {
            Self::ClientCredentials { .. } => GrantType::ClientCredentials,
            Self::Password { .. } => GrantType::Password,
            Self::RefreshToken { .. } => GrantType::RefreshToken,
            Self::AuthorizationCode { .. } => GrantType::AuthorizationCode,
        }
    }
}

/// Client credentials sent in the body (`client_secret_post`, RFC 6749 §2.3.1).
#[derive(Clone, PartialEq, Eq)]
pub struct BodyCredentials {
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

impl fmt::Debug for BodyCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyCredentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "***"))
            .finish()
    }
}

/// A parsed token request.
#[derive(Debug)]
pub struct TokenRequest {
    pub grant: Grant,
    pub body_credentials: BodyCredentials,
}

impl TokenRequest {
    pub fn from_params(mut params: Params) -> Result<Self, OAuthError> {
        let grant_type = params.require("grant_type")?;
        let body_credentials = BodyCredentials {
            client_id: params.take("client_id"),
            client_secret: params.take("client_secret"),
        };
        let grant = match grant_type.as_str() {
            "client_credentials" => Grant::ClientCredentials {
                scope: params.take("scope"),
            },
            "password" => Grant::Password {
                username: params.require("username")?,
                password: params.require("password")?,
                scope: params.take("scope"),
            },
            "refresh_token" => Grant::RefreshToken {
                refresh_token: params.require("refresh_token")?,
                scope: params.take("scope"),
            },
            "authorization_code" => Grant::AuthorizationCode {
                code: params.require("code")?,
                redirect_uri: params.take("redirect_uri"),
                code_verifier: params.take("code_verifier"),
            },
            other => {
                return Err(OAuthError::new(
                    super::error::ErrorCode::UnsupportedGrantType,
                    format!(
                        "The grant type `{}` is not supported. Use client_credentials, password, authorization_code or refresh_token.",
                        other.chars().take(64).collect::<String>()
                    ),
                ));
            }
        };
        Ok(Self {
            grant,
            body_credentials,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::error::ErrorCode;

    #[test]
    fn content_types_choose_the_dialect() {
        assert_eq!(
            Dialect::from_content_type(Some("application/x-www-form-urlencoded; charset=UTF-8")),
            Some(Dialect::Rfc6749)
        );
        assert_eq!(
            Dialect::from_content_type(Some("Application/JSON")),
            Some(Dialect::RevenueMonster)
        );
        assert_eq!(Dialect::from_content_type(Some("text/plain")), None);
        assert_eq!(Dialect::from_content_type(None), None);
    }

    #[test]
    fn json_accepts_snake_and_camel_case() {
        let camel =
            Params::from_json(br#"{"grantType":"refresh_token","refreshToken":"r1"}"#).unwrap();
        let req = TokenRequest::from_params(camel).unwrap();
        assert_eq!(
            req.grant,
            Grant::RefreshToken {
                refresh_token: "r1".into(),
                scope: None
            }
        );
        let snake =
            Params::from_json(br#"{"grant_type":"client_credentials","scope":"get_user_profile"}"#)
                .unwrap();
        let req = TokenRequest::from_params(snake).unwrap();
        assert_eq!(
            req.grant,
            Grant::ClientCredentials {
                scope: Some("get_user_profile".into())
            }
        );
    }

    #[test]
    fn duplicates_are_refused_in_both_dialects() {
        let err =
            Params::from_form(b"grant_type=password&grant_type=client_credentials").unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        let err = Params::from_json(br#"{"grant_type":"a","grantType":"b"}"#).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        let err = Params::from_json(br#"{"scope":"a","scope":"b"}"#).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
    }

    #[test]
    fn missing_unknown_and_malformed() {
        let err = TokenRequest::from_params(Params::from_form(b"scope=x").unwrap()).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        let err = TokenRequest::from_params(Params::from_form(b"grant_type=implicit").unwrap())
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::UnsupportedGrantType);
        let err = TokenRequest::from_params(
            Params::from_form(b"grant_type=password&username=a").unwrap(),
        )
        .unwrap_err();
        assert!(err.description.contains("password"));
        assert!(Params::from_form(b"grant_type=%FF").is_err());
        assert!(Params::from_form(&[0x67, 0xff]).is_err());
        assert!(Params::from_json(b"[1,2]").is_err());
        assert!(Params::from_json(br#"{"grantType":["a"]}"#).is_err());
        // Unknown parameters are ignored, empty ones are absent.
        let p = Params::from_form(b"grant_type=client_credentials&foo=bar&scope=").unwrap();
        assert_eq!(p.get("scope"), None);
    }
}
