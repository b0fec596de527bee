//! One file per table: the row type, the insertable type, and every query on that table.
//!
//! **A table's queries live in its model file**, as documented methods or associated
//! functions of its row type (`Client::list_owned`, `AccessToken::find_with_user`,
//! `LoginAttempt::count_attempts`…); a join goes with the table it is mainly about (the one
//! filtered on). Nothing outside `src/db` names `db::schema` or builds a diesel query: the
//! modules that call these methods (`accounts`, `clients`, `authorizations`, `oauth::*`,
//! `auth::*`, `cleanup`, `rekey`, the CLI, the routes) hold the rules, and decide which calls
//! share a transaction ([`db::write_transaction`](crate::db::write_transaction)). A method
//! runs a fixed number of statements, said in its doc when more than one: the flows' statement
//! counts (`FLOW_STATEMENTS` in the API tests, `bench/`) are made of them.
//!
//! **A lookup by a unique key ends in `.get_result(…).optional()`, not `.first(…)`**: `first`
//! adds `LIMIT ?`, and SQLite (3.53, `sqlite3ExprIsInteger`) plans a bound `LIMIT` by its
//! value, so every new binding marks the cached statement expired and the next step parses
//! and plans it again. On `/v1/user/profile` that re-preparation was 64% of the request's
//! instructions. A bound `LIMIT` stays only off the request path (the audit log's pages, the
//! clean-up's batches).
//!
//! Methods take ids and plain values, and the time as `now` from the caller, rather than
//! reading the clock themselves, so one operation uses one instant throughout. The ids that
//! travel between modules are typed (`crate::domain::{UserId, ClientRowId, AuthorizationCodeId,
//! RefreshTokenId}`), in the row types' fields as in the methods' parameters, so a user's id
//! cannot be passed where an application's is expected.

/// Deletes the rows of `$table` matching `$condition`, at most `$batch` per statement, until
/// none is left, and evaluates to how many went: a `SELECT id … LIMIT` then a `DELETE … WHERE
/// id IN`, since PostgreSQL has no `DELETE … LIMIT`. For the clean-up's
/// `delete_expired` methods; `?` returns from the enclosing function.
macro_rules! delete_in_batches {
    ($conn:expr, $table:ident, $condition:expr, $batch:expr) => {{
        let mut removed = 0;
        loop {
            let ids: Vec<i64> = $table::table
                .select($table::id)
                .filter($condition)
                .limit($batch)
                .load($conn)?;
            if ids.is_empty() {
                break removed;
            }
            let n = diesel::delete($table::table.filter($table::id.eq_any(&ids))).execute($conn)?;
            removed += n;
            if (ids.len() as i64) < $batch {
                break removed;
            }
        }
    }};
}

pub mod access_token;
pub mod account_notice;
pub mod audit_event;
pub mod authorization_code;
pub mod client;
pub mod client_change;
pub mod client_secret;
pub mod consent;
pub mod email_token;
pub mod login_attempt;
pub mod passkey;
pub mod pushed_request;
pub mod refresh_token;
pub mod scope;
pub mod second_factor;
pub mod session;
pub mod signing_key;
pub mod token_request;
pub mod used_jti;
pub mod user;

pub use access_token::{AccessToken, NewAccessToken};
pub use account_notice::AccountNotice;
pub use audit_event::AuditEvent;
pub use authorization_code::{AuthorizationCode, ClaimTerms, NewAuthorizationCode};
pub use client::{Client, ClientSettings, NewClient, Security};
pub use client_change::ClientChanges;
pub use client_secret::{ClientSecret, NewClientSecret};
pub use consent::Consent;
pub use email_token::{EmailToken, Purpose};
pub use login_attempt::{Counted, LoginAttempt};
pub use passkey::{NewPasskey, StoredPasskey};
pub use pushed_request::PushedRequest;
pub use refresh_token::{NewRefreshToken, RefreshToken};
pub use scope::Scope;
pub use second_factor::{RecoveryCode, UserTotp};
pub use session::SessionRow;
pub use signing_key::{NewSigningKey, SigningKeyRow};
pub use token_request::{RequestCount, TokenRequests};
pub use used_jti::UsedJti;
pub use user::{NewUser, User};
