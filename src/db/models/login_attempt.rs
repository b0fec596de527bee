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

/// A key's window just after [`LoginAttempt::count_attempts`] added an attempt to it.
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

    /// Adds an attempt to each of `keys`' windows (each `window` long) and returns each window
    /// as this attempt left it, in the order of `keys`, in one statement: the first attempt of
    /// all inserts a key's row, the others count on it (`INSERT … VALUES (…), (…) ON CONFLICT DO
    /// UPDATE … RETURNING`), so concurrent attempts on any instance never get the same number.
    /// PostgreSQL runs concurrent upserts of a row one after the other, each against the row
    /// the one before left (rows are taken in the order of `keys`, the same order in every
    /// caller, so two attempts never wait on each other's rows); SQLite has one writer at a
    /// time. The number is the one this statement wrote (`RETURNING`), never a second read. A
    /// window that is over, or whose lock has passed, starts again at 1 in the same statement.
    pub fn count_attempts(
        conn: &mut AnyConnection,
        keys: &[&str],
        window: TimeDelta,
        now: NaiveDateTime,
    ) -> QueryResult<Vec<Counted>> {
        use login_attempts::{
            failures, first_failure_at, last_failure_at, locked_until, throttle_key,
        };
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
        let rows: Vec<_> = keys
            .iter()
            .map(|key| {
                (
                    throttle_key.eq(*key),
                    failures.eq(1_i64),
                    first_failure_at.eq(now),
                    last_failure_at.eq(now),
                )
            })
            .collect();
        let upsert = diesel::insert_into(login_attempts::table)
            .values(rows)
            .on_conflict(throttle_key)
            .do_update()
            .set((
                failures.eq(number),
                first_failure_at.eq(start),
                locked_until.eq(lock),
                // The latest attempt: what the clean-up goes by.
                last_failure_at.eq(now),
            ))
            // The window's start as stored (PostgreSQL keeps microseconds), for `in_window`.
            .returning((throttle_key, failures, first_failure_at, locked_until));
        // diesel's MultiConnection has no ON CONFLICT, but both backends do.
        type Row = (String, i64, NaiveDateTime, Option<NaiveDateTime>);
        let returned = crate::db::native!(conn, c => upsert.get_results::<Row>(c))?;
        // RETURNING promises no order: each key's row is found by its key.
        keys.iter()
            .map(|key| {
                returned
                    .iter()
                    .find(|row| row.0 == *key)
                    .map(|&(_, number, window, until)| Counted {
                        number,
                        window,
                        locked_until: until,
                    })
                    .ok_or(diesel::result::Error::NotFound)
            })
            .collect()
    }

    /// Ends successful attempts in one statement: deletes the rows of `clear` (their failures
    /// forgotten), and each row of `single` that is still the window that began at the time
    /// given and holds a single attempt. Returns the keys of the rows deleted.
    pub fn delete_after_success(
        conn: &mut AnyConnection,
        clear: &[&str],
        single: &[(&str, NaiveDateTime)],
    ) -> QueryResult<Vec<String>> {
        if clear.is_empty() && single.is_empty() {
            return Ok(Vec::new());
        }
        crate::db::native!(conn, c => {
            // Nothing matches `false`; each key then adds its own `OR`.
            let mut delete = diesel::delete(login_attempts::table)
                .into_boxed()
                .filter(diesel::dsl::sql::<diesel::sql_types::Bool>("1 = 0"));
            if !clear.is_empty() {
                delete = delete.or_filter(login_attempts::throttle_key.eq_any(clear.to_vec()));
            }
            for &(key, window) in single {
                delete = delete
                    .or_filter(in_window(key, window).and(login_attempts::failures.eq(1)));
            }
            delete
                .returning(login_attempts::throttle_key)
                .get_results::<String>(c)
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
