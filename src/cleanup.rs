//! Removing what has expired, so tables do not grow without bound: codes, access and refresh
//! tokens, sessions, email tokens and stale sign-in counters. A background task runs [`sweep`]
//! every `LATCHKEY_CLEANUP_INTERVAL` seconds; each statement deletes at most [`BATCH`] rows, so
//! it never holds a lock for long.

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::{
    client_access_tokens, client_authorization_codes, client_refresh_tokens, email_tokens,
    login_attempts, sessions,
};

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
}

impl Removed {
    pub fn total(&self) -> usize {
        self.codes
            + self.access_tokens
            + self.refresh_tokens
            + self.sessions
            + self.email_tokens
            + self.login_attempts
    }
}

/// Deletes in batches of [`BATCH`] until nothing matches.
macro_rules! sweep_table {
    ($conn:expr, $table:ident, $condition:expr) => {{
        let mut removed = 0;
        loop {
            let ids: Vec<i64> = $table::table
                .select($table::id)
                .filter($condition)
                .limit(BATCH)
                .load($conn)?;
            if ids.is_empty() {
                break removed;
            }
            let n = diesel::delete($table::table.filter($table::id.eq_any(&ids))).execute($conn)?;
            removed += n;
            if (ids.len() as i64) < BATCH {
                break removed;
            }
        }
    }};
}

/// Deletes everything that expired before `now` (codes an hour later, so a late replay still
/// finds its code and is refused as used).
pub fn sweep(conn: &mut AnyConnection, now: NaiveDateTime) -> QueryResult<Removed> {
    let hour_ago = now - TimeDelta::hours(1);
    let day_ago = now - TimeDelta::days(1);
    Ok(Removed {
        codes: sweep_table!(
            conn,
            client_authorization_codes,
            client_authorization_codes::expired_at.lt(hour_ago)
        ),
        access_tokens: sweep_table!(
            conn,
            client_access_tokens,
            client_access_tokens::expired_at.lt(now)
        ),
        // Rotated and revoked refresh tokens stay until they expire, for reuse detection.
        refresh_tokens: sweep_table!(
            conn,
            client_refresh_tokens,
            client_refresh_tokens::expired_at.lt(now)
        ),
        sessions: sweep_table!(conn, sessions, sessions::expires_at.lt(now)),
        email_tokens: sweep_table!(conn, email_tokens, email_tokens::expires_at.lt(now)),
        login_attempts: sweep_table!(
            conn,
            login_attempts,
            login_attempts::last_failure_at.lt(day_ago).and(
                login_attempts::locked_until
                    .is_null()
                    .or(login_attempts::locked_until.lt(now))
            )
        ),
    })
}
