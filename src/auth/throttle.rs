//! Throttling failed sign-ins, per account and per client address, with counters in the
//! database so that every instance sees the same ones. The password grant and the login page
//! share the account counters: guessing through one counts against the other. (The password
//! grant does not count per address: an app's server sends every user's attempts from one.)
//!
//! The same counters also ration mail to one recipient ([`allow_mail`]).
//!
//! A key is locked once it has `max_failures` failures inside `window`; it stays locked for
//! `lockout`, then starts afresh. Unknown usernames are counted like known ones, so the lock
//! itself reveals nothing about which accounts exist.

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::db::AnyConnection;
use crate::db::models::LoginAttempt;
use crate::db::schema::login_attempts;

/// When a key gets locked, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub max_failures: i64,
    pub window: TimeDelta,
    pub lockout: TimeDelta,
}

/// One account: five wrong passwords in 15 minutes lock it for 15 minutes (OWASP ASVS V6.3).
pub const ACCOUNT: Policy = Policy {
    max_failures: 5,
    window: TimeDelta::minutes(15),
    lockout: TimeDelta::minutes(15),
};

/// One client address: more room, since many people may share an address.
pub const ADDRESS: Policy = Policy {
    max_failures: 20,
    window: TimeDelta::minutes(15),
    lockout: TimeDelta::minutes(15),
};

/// One recipient of mail that anyone can ask us to send (sign-up links and reminders, reset
/// links, address changes): five messages an hour, so no form can flood somebody's inbox.
pub const MAIL: Policy = Policy {
    max_failures: 5,
    window: TimeDelta::hours(1),
    lockout: TimeDelta::hours(1),
};

pub fn mail_key(email: &str) -> String {
    format!("mail:{}", email.trim().to_lowercase())
}

/// Counts one message to `email` under [`MAIL`]; false once the address has had its share.
pub fn allow_mail(conn: &mut AnyConnection, email: &str, now: NaiveDateTime) -> QueryResult<bool> {
    let key = mail_key(email);
    match check(conn, &key, now)? {
        Ok(previous) => {
            record_failure(conn, &key, previous.as_ref(), MAIL, now)?;
            Ok(true)
        }
        Err(_) => Ok(false),
    }
}

pub fn address_key(address: &str) -> String {
    format!("address:{address}")
}

pub fn account_key(username: &str) -> String {
    format!("account:{}", username.trim().to_lowercase())
}

/// A locked key, and when it opens again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locked {
    pub until: NaiveDateTime,
}

impl Locked {
    /// Whole minutes until the lock opens, at least 1, for "try again in N minutes".
    pub fn minutes_left(&self, now: NaiveDateTime) -> i64 {
        let seconds = (self.until - now).num_seconds().max(0);
        ((seconds + 59) / 60).max(1)
    }
}

/// The key's state before an attempt: locked, or the row to update after it (if any).
pub fn check(
    conn: &mut AnyConnection,
    key: &str,
    now: NaiveDateTime,
) -> QueryResult<Result<Option<LoginAttempt>, Locked>> {
    let row = LoginAttempt::find(conn, key)?;
    match row.as_ref().and_then(|r| r.locked_until) {
        Some(until) if until > now => Ok(Err(Locked { until })),
        _ => Ok(Ok(row)),
    }
}

/// [`check`] for several keys in one statement, in the order given: the first locked key wins.
pub fn check_all<const N: usize>(
    conn: &mut AnyConnection,
    keys: [&str; N],
    now: NaiveDateTime,
) -> QueryResult<Result<[Option<LoginAttempt>; N], Locked>> {
    let rows = LoginAttempt::find_many(conn, &keys)?;
    let found = keys.map(|key| rows.iter().find(|r| r.throttle_key == key).cloned());
    for row in found.iter().flatten() {
        if let Some(until) = row.locked_until.filter(|until| *until > now) {
            return Ok(Err(Locked { until }));
        }
    }
    Ok(Ok(found))
}

/// Counts a failure. `previous` is what [`check`] returned. Returns the lock if this failure
/// reached the limit.
pub fn record_failure(
    conn: &mut AnyConnection,
    key: &str,
    previous: Option<&LoginAttempt>,
    policy: Policy,
    now: NaiveDateTime,
) -> QueryResult<Option<Locked>> {
    let stale = |r: &LoginAttempt| {
        r.first_failure_at < now - policy.window || r.locked_until.is_some_and(|t| t <= now)
    };
    let failures = match previous {
        Some(r) if !stale(r) => increment(conn, key, now)?,
        _ => restart(conn, key, previous, now)?,
    };
    lock_if_reached(conn, key, failures, policy, now)
}

/// Starts a new window with one failure.
fn restart(
    conn: &mut AnyConnection,
    key: &str,
    previous: Option<&LoginAttempt>,
    now: NaiveDateTime,
) -> QueryResult<i64> {
    if let Some(r) = previous {
        let updated = diesel::update(login_attempts::table.find(r.id))
            .set((
                login_attempts::failures.eq(1),
                login_attempts::first_failure_at.eq(now),
                login_attempts::last_failure_at.eq(now),
                login_attempts::locked_until.eq(None::<NaiveDateTime>),
            ))
            .execute(conn)?;
        if updated == 1 {
            return Ok(1);
        }
    }
    let inserted = diesel::insert_into(login_attempts::table)
        .values((
            login_attempts::throttle_key.eq(key),
            login_attempts::failures.eq(1),
            login_attempts::first_failure_at.eq(now),
            login_attempts::last_failure_at.eq(now),
        ))
        .execute(conn);
    match inserted {
        Ok(_) => Ok(1),
        // Another request inserted the row first: count on top of it.
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
            increment(conn, key, now)
        }
        Err(e) => Err(e),
    }
}

/// Adds one failure atomically, so concurrent failures are all counted; returns the total.
fn increment(conn: &mut AnyConnection, key: &str, now: NaiveDateTime) -> QueryResult<i64> {
    diesel::update(login_attempts::table.filter(login_attempts::throttle_key.eq(key)))
        .set((
            login_attempts::failures.eq(login_attempts::failures + 1),
            login_attempts::last_failure_at.eq(now),
        ))
        .execute(conn)?;
    Ok(LoginAttempt::find(conn, key)?
        .map(|r| r.failures)
        .unwrap_or(1))
}

fn lock_if_reached(
    conn: &mut AnyConnection,
    key: &str,
    failures: i64,
    policy: Policy,
    now: NaiveDateTime,
) -> QueryResult<Option<Locked>> {
    if failures < policy.max_failures {
        return Ok(None);
    }
    let until = now + policy.lockout;
    diesel::update(
        login_attempts::table
            .filter(login_attempts::throttle_key.eq(key))
            .filter(login_attempts::locked_until.is_null()),
    )
    .set(login_attempts::locked_until.eq(until))
    .execute(conn)?;
    Ok(Some(Locked { until }))
}

/// A successful sign-in clears the key's failures. Writes only if there were any.
pub fn record_success(
    conn: &mut AnyConnection,
    key: &str,
    previous: Option<&LoginAttempt>,
) -> QueryResult<()> {
    if previous.is_some() {
        LoginAttempt::delete(conn, key)?;
    }
    Ok(())
}

/// Forgets a key's failures (after a password reset).
pub fn clear(conn: &mut AnyConnection, key: &str) -> QueryResult<()> {
    LoginAttempt::delete(conn, key).map(|_| ())
}
