//! One file per grant type (RFC 6749 §4). Each takes an authenticated client that is allowed the
//! grant, decides what to issue, and issues it through [`crate::oauth::issue`]; the token endpoint
//! dispatches to them, and none of them depends on it.
//!
//! Every write transaction goes through [`crate::db::write_transaction`], the one write path
//! (on SQLite it waits in the process's writer queue); a lone statement outside a transaction
//! takes its turn with `OAuthContext::writer`'s `hold`. Single-use credentials (codes, refresh
//! tokens) are spent with one conditional `UPDATE … WHERE unused`, so that of any number of
//! concurrent requests exactly one wins.

pub mod authorization_code;
pub mod client_credentials;
pub mod password;
pub mod refresh_token;
