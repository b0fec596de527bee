//! Removing what has expired, so tables do not grow without bound: codes, access and refresh
//! tokens, sessions, email tokens, stale sign-in counters, used assertion identifiers and old
//! counts of token requests. A background task runs [`sweep`]
//! every `LATCHKEY_CLEANUP_INTERVAL` seconds; each statement deletes at most [`BATCH`] rows, so
//! it never holds a lock for long.

use chrono::{NaiveDateTime, TimeDelta};
use diesel::QueryResult;

use crate::db::AnyConnection;
use crate::db::models::{
    AccessToken, AuthorizationCode, EmailToken, LoginAttempt, PushedRequest, RefreshToken,
    SessionRow, TokenRequests, UsedJti,
};

/// How long the counts of token requests are kept (the activity page shows 14 days).
pub const COUNT_DAYS: i64 = 90;

/// Rows deleted by one statement.
pub const BATCH: i64 = 500;

/// How many rows of each kind one sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    pub codes: usize,
    pub access_tokens: usize,
    pub refresh_tokens: usize,
    pub sessions: usize,
    pub email_tokens: usize,
    pub login_attempts: usize,
    /// Single-use identifiers (client assertions' `jti`s) past their expiry.
    pub used_jtis: usize,
    /// Pushed authorization requests past their minute.
    pub pushed_requests: usize,
    /// Days of token-request counts older than [`COUNT_DAYS`].
    pub token_requests: usize,
}

impl Removed {
    pub fn total(&self) -> usize {
        self.codes
            + self.access_tokens
            + self.refresh_tokens
            + self.sessions
            + self.email_tokens
            + self.login_attempts
            + self.used_jtis
            + self.pushed_requests
            + self.token_requests
    }
}

/// Deletes everything that expired before `now` (codes an hour later, so a late replay still
/// finds its code and is refused as used), each kind in batches of [`BATCH`] until none is
/// left.
pub fn sweep(conn: &mut AnyConnection, now: NaiveDateTime) -> QueryResult<Removed> {
    let hour_ago = now - TimeDelta::hours(1);
    let day_ago = now - TimeDelta::days(1);
    Ok(Removed {
        codes: AuthorizationCode::delete_expired(conn, hour_ago, BATCH)?,
        access_tokens: AccessToken::delete_expired(conn, now, BATCH)?,
        // Rotated and revoked refresh tokens stay until they expire, for reuse detection.
        refresh_tokens: RefreshToken::delete_expired(conn, now, BATCH)?,
        sessions: SessionRow::delete_expired(conn, now, BATCH)?,
        email_tokens: EmailToken::delete_expired(conn, now, BATCH)?,
        // Counters idle for a day, unless still locked.
        login_attempts: LoginAttempt::delete_stale(conn, day_ago, now, BATCH)?,
        used_jtis: UsedJti::delete_expired(conn, now)?,
        pushed_requests: PushedRequest::delete_expired(conn, now)?,
        token_requests: TokenRequests::delete_before(
            conn,
            &(now - TimeDelta::days(COUNT_DAYS))
                .format("%Y-%m-%d")
                .to_string(),
        )?,
    })
}
