//! Parse, don't validate: values that reach the database or the protocol code have been
//! through one of these types, so an invalid username, redirect URI or scope cannot exist.
//!
//! Each `parse` returns [`Invalid`] with a message written to sit beside the field it is about
//! ("must be at least 10 characters"); the caller adds the field's name.
//!
//! Row ids that cross modules have a type per table too ([`UserId`], [`ClientRowId`],
//! [`AuthorizationCodeId`], [`RefreshTokenId`]), so that one cannot be passed for another.

mod account;
mod client;
mod client_keys;
mod ids;
mod scope;

pub use account::{DisplayName, Email, NewPassword, Username};
pub use client::{ClientId, ClientName, GrantType, RedirectUri, RedirectUris, initials};
pub use client_keys::{ASSERTION_ALGORITHMS, ClientKey, ClientKeys, KeyKind, MAX_KEYS, public_key};
pub use ids::{AuthorizationCodeId, ClientRowId, RefreshTokenId, UserId};
pub use scope::{Granted, ScopeName, ScopeRefusal, Scopes};

/// Keys made for tests elsewhere in the crate.
#[cfg(test)]
pub(crate) mod tests_support {
    pub(crate) use super::client_keys::tests::p256;
}

/// Why a raw value was refused. The text completes a sentence that begins with the field name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl Invalid {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// Rejects text with control characters (newlines included), which no single-line field needs.
fn no_control_chars(value: &str) -> Result<(), Invalid> {
    if value.chars().any(char::is_control) {
        return Err(Invalid::new("must not contain control characters"));
    }
    Ok(())
}
