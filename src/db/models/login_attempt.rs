//! `login_attempts`: failed sign-in counters, see [`crate::auth::throttle`]. One row per key
//! (`account:…`, `address:…`, `mail:…`) holds the current window: its attempts, when it began,
//! and its lock.
//!
//! Every statement that changes a window names it by its key *and* its start
//! (`first_failure_at`, as stored), so an attempt that ends late never touches a window that
//! started afresh since.

use chrono::{NaiveDateTime, TimeDelta};
use diesel::dsl::case_when;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Timestamp};

use crate::db::AnyConnection;
use crate::db::schema::login_attempts;

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = login_attempts)]
pub struct LoginAttempt {
    pub id: i64,
    pub throttle_key: String,
    pub failures: i64,
    pub first_failure_at: NaiveDateTime,
    pub last_failure_at: NaiveDateTime,
    pub locked_until: Option<NaiveDateTime>,
}

/// A key's window just after [`LoginAttempt::count_attempt`] added an attempt to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted {
    /// Which of the window's attempts this one is, from 1.
    pub number: i64,
    /// When the window began, as stored (PostgreSQL keeps microseconds): the window's name in
    /// every later statement about it.
    pub window: NaiveDateTime,
    pub locked_until: Option<NaiveDateTime>,
}

type InWindow<'a> = diesel::dsl::And<
    diesel::dsl::Eq<login_attempts::throttle_key, &'a str>,
    diesel::dsl::Eq<login_attempts::first_failure_at, NaiveDateTime>,
>;

/// The row of `key`, as long as it is still the window that began at `window`.
fn in_window(key: &str, window: NaiveDateTime) -> InWindow<'_> {
    login_attempts::throttle_key
        .eq(key)
        .and(login_attempts::first_failure_at.eq(window))
}

impl LoginAttempt {
    pub fn find(conn: &mut AnyConnection, key: &str) -> QueryResult<Option<LoginAttempt>> {
        login_attempts::table
            .filter(login_attempts::throttle_key.eq(key))
            .select(LoginAttempt::as_select())
            .get_result(conn)
            .optional()
    }

    pub fn delete(conn: &mut AnyConnection, key: &str) -> QueryResult<usize> {
        diesel::delete(login_attempts::table.filter(login_attempts::throttle_key.eq(key)))
            .execute(conn)
    }

    /// Adds an attempt to `key`'s window (`window` long) and returns the window as this
    /// attempt left it, in one statement: the first attempt of all inserts the row, the others
    /// count on it (`INSERT … ON CONFLICT DO UPDATE … RETURNING`), so concurrent attempts on
    /// any instance never get the same number. PostgreSQL runs concurrent upserts of a row one
    /// after the other, each against the row the one before left; SQLite has one writer at a
    /// time. The number is the one this statement wrote (`RETURNING`), never a second read. A
    /// window that is over, or whose lock has passed, starts again at 1 in the same statement.
    pub fn count_attempt(
        conn: &mut AnyConnection,
        key: &str,
        window: TimeDelta,
        now: NaiveDateTime,
    ) -> QueryResult<Counted> {
        use login_attempts::{failures, first_failure_at, last_failure_at, locked_until};
        // A lock that has passed, or a window that began too long ago and never locked (of
        // the row already there: in `DO UPDATE`, the columns are the existing row's).
        let stale = || {
            locked_until.le(now).or(locked_until
                .is_null()
                .and(first_failure_at.lt(now - window)))
        };
        let number = case_when::<_, _, BigInt>(stale(), 1_i64).otherwise(failures + 1_i64);
        let start = case_when::<_, _, Timestamp>(stale(), now).otherwise(first_failure_at);
        let lock = case_when::<_, _, Nullable<Timestamp>>(stale(), None::<NaiveDateTime>)
            .otherwise(locked_until);
        let upsert = diesel::insert_into(login_attempts::table)
            .values((
                login_attempts::throttle_key.eq(key),
                failures.eq(1_i64),
                first_failure_at.eq(now),
                last_failure_at.eq(now),
            ))
            .on_conflict(login_attempts::throttle_key)
            .do_update()
            .set((
                failures.eq(number),
                first_failure_at.eq(start),
                locked_until.eq(lock),
                // The latest attempt: what the clean-up goes by.
                last_failure_at.eq(now),
            ))
            // The window's start as stored (PostgreSQL keeps microseconds), for `in_window`.
            .returning((failures, first_failure_at, locked_until));
        // diesel's MultiConnection has no ON CONFLICT, but both backends do.
        crate::db::native!(conn, c => upsert.get_result::<(i64, NaiveDateTime, Option<NaiveDateTime>)>(c))
            .map(|(number, window, until)| Counted {
                number,
                window,
                locked_until: until,
            })
    }

    /// Locks `key`'s window that began at `window` until `until`, unless it is locked already.
    /// False when there was nothing to lock: that window is gone (a success cleared the key
    /// meanwhile) or is locked already.
    pub fn lock(
        conn: &mut AnyConnection,
        key: &str,
        window: NaiveDateTime,
        until: NaiveDateTime,
    ) -> QueryResult<bool> {
        diesel::update(
            login_attempts::table
                .filter(in_window(key, window))
                .filter(login_attempts::locked_until.is_null()),
        )
        .set(login_attempts::locked_until.eq(until))
        .execute(conn)
        .map(|rows| rows == 1)
    }

    /// Deletes `key`'s row if it is still the window that began at `window` and holds a single
    /// attempt, in one statement. Returns whether it did.
    pub fn delete_if_single(
        conn: &mut AnyConnection,
        key: &str,
        window: NaiveDateTime,
    ) -> QueryResult<bool> {
        diesel::delete(
            login_attempts::table
                .filter(in_window(key, window))
                .filter(login_attempts::failures.eq(1)),
        )
        .execute(conn)
        .map(|rows| rows == 1)
    }

    /// Takes one attempt off `key`'s window that began at `window`, if it still has any.
    pub fn uncount(conn: &mut AnyConnection, key: &str, window: NaiveDateTime) -> QueryResult<()> {
        diesel::update(
            login_attempts::table
                .filter(in_window(key, window))
                .filter(login_attempts::failures.gt(0)),
        )
        .set(login_attempts::failures.eq(login_attempts::failures - 1))
        .execute(conn)?;
        Ok(())
    }

    /// Deletes the counters last counted on before `idle_since` that hold no lock still in
    /// force at `now`, at most `batch` rows per statement. Returns how many went.
    pub fn delete_stale(
        conn: &mut AnyConnection,
        idle_since: NaiveDateTime,
        now: NaiveDateTime,
        batch: i64,
    ) -> QueryResult<usize> {
        Ok(delete_in_batches!(
            conn,
            login_attempts,
            login_attempts::last_failure_at.lt(idle_since).and(
                login_attempts::locked_until
                    .is_null()
                    .or(login_attempts::locked_until.lt(now))
            ),
            batch
        ))
    }
}
