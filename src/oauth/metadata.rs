//! The authorization server's metadata (RFC 8414, OpenID Connect Discovery 1.0 §3): what the
//! server actually does, in one place, so a new endpoint or feature is advertised where it is
//! built. A test calls every endpoint listed.

use serde::Serialize;

use super::prompt::Prompt;
use crate::db::models::Scope;
use crate::domain::ASSERTION_ALGORITHMS;

/// Client authentication methods: the token and revocation endpoints also take public clients.
const CONFIDENTIAL_METHODS: [&str; 3] = [
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
];
const ANY_METHOD: [&str; 4] = [
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
    "none",
];

/// The metadata document, field for field as RFC 8414 §2 and Discovery §3 name them.
#[derive(Debug, Serialize)]
pub struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    pub userinfo_endpoint: String,
    pub introspection_endpoint: String,
    pub revocation_endpoint: String,
    /// RFC 9126 (`oauth::par`); each client may require it (`require_par`), the server does not.
    pub pushed_authorization_request_endpoint: String,
    pub require_pushed_authorization_requests: bool,
    pub scopes_supported: Vec<String>,
    pub response_types_supported: [&'static str; 1],
    pub response_modes_supported: [&'static str; 1],
    pub grant_types_supported: [&'static str; 4],
    pub token_endpoint_auth_methods_supported: [&'static str; 4],
    /// `private_key_jwt` assertions (`oauth::assertion`), at each endpoint that takes them.
    pub token_endpoint_auth_signing_alg_values_supported: [&'static str; 4],
    /// Introspection is for confidential clients only (`oauth::introspect`).
    pub introspection_endpoint_auth_methods_supported: [&'static str; 3],
    pub introspection_endpoint_auth_signing_alg_values_supported: [&'static str; 4],
    pub revocation_endpoint_auth_methods_supported: [&'static str; 4],
    pub revocation_endpoint_auth_signing_alg_values_supported: [&'static str; 4],
    /// RFC 7636: `plain` is refused.
    pub code_challenge_methods_supported: [&'static str; 1],
    pub subject_types_supported: [&'static str; 1],
    pub id_token_signing_alg_values_supported: [&'static str; 2],
    pub claims_supported: [&'static str; 12],
    /// RFC 9207: every authorization response carries `iss`.
    pub authorization_response_iss_parameter_supported: bool,
    /// OIDC Core §3.1.2.1; `oauth::authorize` reads each.
    pub prompt_values_supported: [&'static str; 4],
    /// OIDC Core §6: a request object is refused with `request_not_supported`, and a
    /// `request_uri` is only one of our pushed requests (RFC 9126), never a URL to fetch.
    /// Discovery reads a missing `request_uri_parameter_supported` as true, so it is said.
    pub request_parameter_supported: bool,
    pub request_uri_parameter_supported: bool,
    /// RFC 9449 §5.1 (`oauth::dpop`).
    pub dpop_signing_alg_values_supported: [&'static str; 4],
}

impl Metadata {
    /// The document for `issuer`, advertising the scopes of the catalogue.
    pub fn new(issuer: &str, scopes: &[Scope]) -> Self {
        Self {
            issuer: issuer.to_owned(),
            authorization_endpoint: format!("{issuer}/oauth/authorize"),
            token_endpoint: format!("{issuer}/oauth/token"),
            jwks_uri: format!("{issuer}/.well-known/jwks.json"),
            userinfo_endpoint: format!("{issuer}/oauth/userinfo"),
            introspection_endpoint: format!("{issuer}/oauth/introspect"),
            revocation_endpoint: format!("{issuer}/oauth/revoke"),
            pushed_authorization_request_endpoint: format!("{issuer}/oauth/par"),
            require_pushed_authorization_requests: false,
            scopes_supported: scopes.iter().map(|s| s.name.clone()).collect(),
            response_types_supported: ["code"],
            response_modes_supported: ["query"],
            grant_types_supported: [
                "authorization_code",
                "client_credentials",
                "password",
                "refresh_token",
            ],
            token_endpoint_auth_methods_supported: ANY_METHOD,
            token_endpoint_auth_signing_alg_values_supported: ASSERTION_ALGORITHMS,
            introspection_endpoint_auth_methods_supported: CONFIDENTIAL_METHODS,
            introspection_endpoint_auth_signing_alg_values_supported: ASSERTION_ALGORITHMS,
            revocation_endpoint_auth_methods_supported: ANY_METHOD,
            revocation_endpoint_auth_signing_alg_values_supported: ASSERTION_ALGORITHMS,
            code_challenge_methods_supported: [super::pkce::S256],
            subject_types_supported: ["public"],
            id_token_signing_alg_values_supported: ["RS256", "ES256"],
            claims_supported: [
                "sub",
                "iss",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "nonce",
                "at_hash",
                "name",
                "preferred_username",
                "email",
                "email_verified",
            ],
            authorization_response_iss_parameter_supported: true,
            prompt_values_supported: Prompt::ALL.map(Prompt::as_str),
            request_parameter_supported: false,
            request_uri_parameter_supported: false,
            dpop_signing_alg_values_supported: super::dpop::ALGORITHMS,
        }
    }
}
