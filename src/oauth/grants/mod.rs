//! One file per grant type (RFC 6749 §4). Each takes an authenticated client that is allowed the
//! grant, and returns what to issue.
//!
//! Transactions here start with their conditional write (claiming a code or a refresh token):
//! on SQLite a transaction that reads first and writes later can fail at once when another
//! writer got in between, while one that writes first waits its turn (`busy_timeout`).

pub mod authorization_code;
pub mod client_credentials;
pub mod password;
pub mod refresh_token;
