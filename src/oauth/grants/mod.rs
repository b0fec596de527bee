//! One file per grant type (RFC 6749 §4). Each takes an authenticated client that is allowed the
//! grant, decides what to issue, and issues it through [`crate::oauth::issue`]; the token endpoint
//! dispatches to them, and none of them depends on it.
//!
//! Writes go through `OAuthContext::writer` ([`crate::db::Writer`]), and single-use credentials (codes,
//! refresh tokens) are spent with one conditional `UPDATE … WHERE unused`, so that of any number
//! of concurrent requests exactly one wins.

pub mod authorization_code;
pub mod client_credentials;
pub mod password;
pub mod refresh_token;
