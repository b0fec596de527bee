//! A token request in either dialect, as one typed value.
//!
//! - RFC 6749: `application/x-www-form-urlencoded`, snake_case names (§4, Appendix B).
//! - Revenue Monster: `application/json`, names in snake_case (`grant_type`) or camelCase
//!   (`grantType`), as Revenue Monster's clients send them.
//!
//! [`super::params`] reads either body ([`TokenRequest::parse`]); this module turns the
//! parameters into a [`Grant`], checking that each grant has what it needs.

use std::fmt;

use super::error::OAuthError;
use super::params::{self, Params};
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
    /// The metrics' and traces' name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rfc6749 => "rfc6749",
            Self::RevenueMonster => "json",
        }
    }

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
#[derive(Clone, PartialEq, Eq, Default)]
pub struct BodyCredentials {
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// `private_key_jwt` (RFC 7523 §2.2): the JWT, and its type, which must be
    /// `oauth::assertion::ASSERTION_TYPE`.
    pub client_assertion: Option<String>,
    pub client_assertion_type: Option<String>,
}

impl BodyCredentials {
    /// The credentials among `params` (RFC 6749 §2.3.1, RFC 7523 §2.2).
    pub fn take(params: &mut Params) -> Self {
        Self {
            client_id: params.take("client_id"),
            client_secret: params.take("client_secret"),
            client_assertion: params.take("client_assertion"),
            client_assertion_type: params.take("client_assertion_type"),
        }
    }
}

impl fmt::Debug for BodyCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyCredentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "***"))
            .field(
                "client_assertion",
                &self.client_assertion.as_ref().map(|_| "***"),
            )
            .field("client_assertion_type", &self.client_assertion_type)
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
    /// Reads a body in `dialect` ([`params::TOKEN`]'s names) into a request.
    pub fn parse(dialect: Dialect, body: &[u8]) -> Result<Self, OAuthError> {
        Self::from_params(match dialect {
            Dialect::Rfc6749 => Params::from_form(body, params::TOKEN)?,
            Dialect::RevenueMonster => Params::from_json(body, params::TOKEN)?,
        })
    }

    pub fn from_params(mut params: Params) -> Result<Self, OAuthError> {
        let grant_type = params.require("grant_type")?;
        let body_credentials = BodyCredentials::take(&mut params);
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
    use crate::oauth::params::TOKEN;

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
        let camel = Params::from_json(
            br#"{"grantType":"refresh_token","refreshToken":"r1"}"#,
            TOKEN,
        )
        .unwrap();
        let req = TokenRequest::from_params(camel).unwrap();
        assert_eq!(
            req.grant,
            Grant::RefreshToken {
                refresh_token: "r1".into(),
                scope: None
            }
        );
        let snake = Params::from_json(
            br#"{"grant_type":"client_credentials","scope":"get_user_profile"}"#,
            TOKEN,
        )
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
    fn missing_unknown_and_malformed() {
        let form = |body: &[u8]| TokenRequest::parse(Dialect::Rfc6749, body);
        let err = form(b"scope=x").unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        let err = form(b"grant_type=implicit").unwrap_err();
        assert_eq!(err.code, ErrorCode::UnsupportedGrantType);
        let err = form(b"grant_type=password&username=a").unwrap_err();
        assert!(err.description.contains("password"));
        assert!(form(b"grant_type=%FF").is_err());
        assert!(TokenRequest::parse(Dialect::RevenueMonster, b"[1,2]").is_err());
        // Unknown parameters are ignored, empty ones are absent.
        let p = Params::from_form(b"grant_type=client_credentials&foo=bar&scope=", TOKEN).unwrap();
        assert_eq!(p.get("scope"), None);
    }
}
