//! Token-endpoint errors (RFC 6749 §5.2) and how each dialect spells them.
//!
//! Errors that go back to a redirect URI (§4.1.2.1) are a different type, in the authorization
//! module: the two never mix.

use std::fmt;

/// The error codes of RFC 6749 §5.2, plus Revenue Monster's `InActiveClient`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    /// A disabled client. RFC dialect: `invalid_client`; Revenue Monster: `InActiveClient`.
    InactiveClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    ServerError,
    TemporarilyUnavailable,
    /// RFC 9449 §5: the `DPoP` header is missing where required, or its proof is refused.
    InvalidDpopProof,
    /// RFC 9449 §8: the proof must carry the server's current nonce (sent in `DPoP-Nonce`).
    UseDpopNonce,
}

impl ErrorCode {
    /// The RFC 6749 `error` value.
    pub fn rfc(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient | Self::InactiveClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::UseDpopNonce => "use_dpop_nonce",
        }
    }

    /// Revenue Monster's `error.code` value (their error-code table).
    pub fn revenue_monster(self) -> &'static str {
        match self {
            Self::InvalidRequest => "InvalidRequest",
            Self::InvalidClient => "InvalidClient",
            Self::InactiveClient => "InActiveClient",
            Self::InvalidGrant => "InvalidGrant",
            Self::UnauthorizedClient => "UnAuthorizedClient",
            Self::UnsupportedGrantType => "UnSupportedGrantType",
            Self::InvalidScope => "InvalidScope",
            Self::ServerError => "InternalError",
            Self::TemporarilyUnavailable => "TemporaryUnAvailable",
            Self::InvalidDpopProof => "InvalidDPoPProof",
            Self::UseDpopNonce => "UseDPoPNonce",
        }
    }

    /// HTTP status: 401 for client authentication failures (§5.2), 5xx for our faults,
    /// 400 for everything else. The same in both dialects.
    pub fn status(self) -> u16 {
        match self {
            Self::InvalidClient | Self::InactiveClient => 401,
            Self::ServerError => 500,
            Self::TemporarilyUnavailable => 503,
            _ => 400,
        }
    }
}

/// An error answered by the token endpoint: a code and a human-readable description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: String,
    /// Why, for the client's owner (the activity page's failed requests), where the caller is
    /// told less: every client authentication failure answers the same description, so that an
    /// unknown client and a wrong secret cannot be told apart. Never sent to the caller.
    pub reason: Option<&'static str>,
}

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
            reason: None,
        }
    }

    /// The same error, with why it happened for the client's owner ([`Self::reason`]).
    pub fn because(mut self, reason: &'static str) -> Self {
        self.reason = Some(reason);
        self
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }

    /// The one answer for every client authentication failure, so that an unknown client and a
    /// wrong secret cannot be told apart.
    pub fn invalid_client() -> Self {
        Self::new(ErrorCode::InvalidClient, "Client authentication failed.")
    }

    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidGrant, description)
    }

    pub fn invalid_scope(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidScope, description)
    }

    pub fn server_error() -> Self {
        Self::new(
            ErrorCode::ServerError,
            "The server could not complete the request. Please try again.",
        )
    }

    pub fn unavailable() -> Self {
        Self::new(
            ErrorCode::TemporarilyUnavailable,
            "The database is unavailable. Please try again in a few seconds.",
        )
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.rfc(), self.description)
    }
}

impl std::error::Error for OAuthError {}

/// Database failures become `temporarily_unavailable` (503, `Retry-After`) when the database is
/// down or busy, else `server_error`; the cause is logged, never sent.
impl From<crate::db::DbError> for OAuthError {
    fn from(error: crate::db::DbError) -> Self {
        let chain = crate::error::error_chain(&error);
        if error.is_unavailable() {
            tracing::warn!(error = %chain, "database unavailable");
            Self::unavailable()
        } else {
            tracing::error!(error = %chain, "token endpoint database error");
            Self::server_error()
        }
    }
}

impl From<diesel::result::Error> for OAuthError {
    fn from(error: diesel::result::Error) -> Self {
        crate::db::DbError::from(error).into()
    }
}
