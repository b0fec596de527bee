//! Throttling sign-ins, per account and per client address, with counters in the database so
//! that every instance sees the same ones. The login page and the password grant share both
//! (both sign in through [`crate::accounts`]): guessing through one counts against the other,
//! and an address locked at one is locked at the other. The password grant counts per address
//! although an app's server sends every user's attempts from one: otherwise any merchant could
//! spray passwords at many accounts through its own client without limit. RFC 9700 §2.4 says
//! that grant must not be used; a server that sends many users' passwords from one address
//! should move to the authorization-code flow.
//!
//! The same counters also ration mail to one recipient ([`allow_mail`]).
//!
//! A key allows `max_failures` failures inside `window`; the failure that reaches the limit
//! locks it for `lockout`, then it starts afresh. Unknown usernames are counted like known
//! ones, so the lock itself reveals nothing about which accounts exist.
//!
//! # Reserve, then verify
//!
//! An attempt takes a slot of each key's budget *before* the password is checked
//! ([`reserve`]): one `INSERT … ON CONFLICT DO UPDATE SET failures = failures + 1 … RETURNING` for all the keys, so attempts in
//! flight together, on any instance, each get a number of their own. Only an attempt whose
//! number is within every budget is checked; the others are refused at once, without running
//! argon2, and give their slots back. (Checking the lock first and counting the failure after
//! argon2 let every guess already in flight through: of 30 sent at once to a two-core server,
//! 8 were checked, 12 with two instances, instead of 5.) So an attempt counts as a failure
//! from the moment it is let in: a failure keeps its slot ([`Reservation::failed`]),
//! and the one that used the last slot sets the lock; a success ([`Reservation::succeeded`])
//! clears an account's failures and gives back its slot of an address's. It follows that no
//! key has more attempts being checked at once than its budget has room for.

use chrono::{NaiveDateTime, TimeDelta};
use diesel::QueryResult;

use crate::db::AnyConnection;
use crate::db::models::{Counted, LoginAttempt};

/// When a key gets locked, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub max_failures: i64,
    pub window: TimeDelta,
    pub lockout: TimeDelta,
    pub on_success: OnSuccess,
}

/// What a successful attempt does to a key's earlier failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnSuccess {
    /// Forgets them: the account's owner has just proved the password.
    Clear,
    /// Keeps them, and gives back only the attempt's own slot: otherwise an attacker who owns
    /// one account could wipe out, between guesses, what their guesses at everyone else's cost.
    Release,
}

/// One account: five wrong passwords in 15 minutes lock it for 15 minutes (OWASP ASVS V6.3).
pub const ACCOUNT: Policy = Policy {
    max_failures: 5,
    window: TimeDelta::minutes(15),
    lockout: TimeDelta::minutes(15),
    on_success: OnSuccess::Clear,
};

/// One client address: more room, since many people may share an address.
pub const ADDRESS: Policy = Policy {
    max_failures: 20,
    window: TimeDelta::minutes(15),
    lockout: TimeDelta::minutes(15),
    on_success: OnSuccess::Release,
};

/// One recipient of mail that anyone can ask us to send (sign-up links and reminders, reset
/// links, address changes): five messages an hour, so no form can flood somebody's inbox.
pub const MAIL: Policy = Policy {
    max_failures: 5,
    window: TimeDelta::hours(1),
    lockout: TimeDelta::hours(1),
    // Never used: a message is never given back.
    on_success: OnSuccess::Release,
};

pub fn mail_key(email: &str) -> String {
    format!("mail:{}", email.trim().to_lowercase())
}

/// Counts one message to `email` under [`MAIL`]; false once the address has had its share.
pub fn allow_mail(conn: &mut AnyConnection, email: &str, now: NaiveDateTime) -> QueryResult<bool> {
    match reserve(conn, &[(&mail_key(email), MAIL)], now)? {
        Ok(message) => {
            // A message spends its slot for good, as a failed sign-in does.
            message.failed(conn, now)?;
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

/// An attempt let in: one slot of each key's budget, held until the attempt says how it ended.
/// Dropped without [`succeeded`](Self::succeeded) or [`failed`](Self::failed) (a database
/// error, say), its slots stay taken, as failures that lock nothing: the budget errs on the
/// side of refusing.
#[derive(Debug)]
#[must_use = "end the attempt with `succeeded` or `failed`"]
pub struct Reservation {
    slots: Vec<Slot>,
}

/// One key's slot.
#[derive(Debug)]
struct Slot {
    key: String,
    policy: Policy,
    /// Which of the window's attempts this is, from 1.
    number: i64,
    /// When the window began, as stored: the slot belongs to this window only, so giving it
    /// back or locking never touches a window that started afresh since.
    window: NaiveDateTime,
    locked_until: Option<NaiveDateTime>,
}

/// Takes a slot of each key's budget, in the order given, for an attempt about to be checked.
/// `Err` when a key is locked or has no slot left (attempts in flight hold the rest): refuse
/// the attempt without checking anything. The slots are then given back, so a refused attempt
/// costs no key anything. Of several keys, the first one refused is the one reported.
pub fn reserve(
    conn: &mut AnyConnection,
    keys: &[(&str, Policy)],
    now: NaiveDateTime,
) -> QueryResult<Result<Reservation, Locked>> {
    let slots = take_slots(conn, keys, now)?;
    let refused = slots.iter().find_map(|slot| {
        let locked = slot.locked_until.filter(|until| *until > now);
        // Over budget but not locked: the attempts holding the slots are still running, and
        // the last of them will lock the key if it fails.
        (locked.is_some() || slot.number > slot.policy.max_failures)
            .then(|| locked.unwrap_or(now + slot.policy.lockout))
    });
    if let Some(until) = refused {
        for taken in &slots {
            release(conn, taken)?;
        }
        return Ok(Err(Locked { until }));
    }
    Ok(Ok(Reservation { slots }))
}

impl Reservation {
    /// The password was right: an account's failures are cleared (as a password reset clears
    /// them), an address gets its slot back. One statement in the usual case (an address whose
    /// window holds only this attempt): a second one per address that has other attempts.
    pub fn succeeded(self, conn: &mut AnyConnection) -> QueryResult<()> {
        let clear: Vec<&str> = self
            .slots
            .iter()
            .filter(|slot| slot.policy.on_success == OnSuccess::Clear)
            .map(|slot| slot.key.as_str())
            .collect();
        let releasing = || {
            self.slots
                .iter()
                .filter(|slot| slot.policy.on_success == OnSuccess::Release)
        };
        // The first attempt of its window, and still the only one: the row goes.
        let single: Vec<(&str, NaiveDateTime)> = releasing()
            .filter(|slot| slot.number == 1)
            .map(|slot| (slot.key.as_str(), slot.window))
            .collect();
        let deleted = LoginAttempt::delete_after_success(conn, &clear, &single)?;
        for slot in releasing().filter(|slot| !deleted.contains(&slot.key)) {
            LoginAttempt::uncount(conn, &slot.key, slot.window)?;
        }
        Ok(())
    }

    /// The password was wrong: the slots stay taken, as failures. A failure that used a key's
    /// last slot locks it for the policy's `lockout`; returns that lock (the first key's, of
    /// several).
    pub fn failed(
        self,
        conn: &mut AnyConnection,
        now: NaiveDateTime,
    ) -> QueryResult<Option<Locked>> {
        let mut locked = None;
        for slot in &self.slots {
            if slot.number < slot.policy.max_failures {
                continue;
            }
            let until = now + slot.policy.lockout;
            // Nothing to lock if a success cleared the key meanwhile.
            if LoginAttempt::lock(conn, &slot.key, slot.window, until)? {
                locked = locked.or(Some(Locked { until }));
            }
        }
        Ok(locked)
    }
}

/// Adds this attempt to each key's window ([`LoginAttempt::count_attempts`]) and returns
/// their slots, in the order given: in one statement for keys whose windows are as long (the
/// account and the address of a sign-in), one per length otherwise.
fn take_slots(
    conn: &mut AnyConnection,
    keys: &[(&str, Policy)],
    now: NaiveDateTime,
) -> QueryResult<Vec<Slot>> {
    let mut slots = Vec::with_capacity(keys.len());
    for run in keys.chunk_by(|a, b| a.1.window == b.1.window) {
        let names: Vec<&str> = run.iter().map(|&(key, _)| key).collect();
        let counted = LoginAttempt::count_attempts(conn, &names, run[0].1.window, now)?;
        for (&(key, policy), counted) in run.iter().zip(counted) {
            let Counted {
                number,
                window,
                locked_until,
            } = counted;
            slots.push(Slot {
                key: key.to_owned(),
                policy,
                number,
                window,
                locked_until,
            });
        }
    }
    Ok(slots)
}

/// Gives back a slot, in its own window only.
fn release(conn: &mut AnyConnection, slot: &Slot) -> QueryResult<()> {
    // The first attempt of its window, and still the only one: the row goes, in one
    // statement (the usual success from an address without failures).
    if slot.number == 1 && LoginAttempt::delete_if_single(conn, &slot.key, slot.window)? {
        return Ok(());
    }
    LoginAttempt::uncount(conn, &slot.key, slot.window)
}

/// Forgets a key's failures (after a successful sign-in or a password reset).
pub fn clear(conn: &mut AnyConnection, key: &str) -> QueryResult<()> {
    LoginAttempt::delete(conn, key).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DatabaseUrl;
    use crate::db::ConnectionManager;

    fn conn() -> AnyConnection {
        let mut conn = ConnectionManager::new(DatabaseUrl::Sqlite(":memory:".into()))
            .establish()
            .unwrap();
        crate::db::migrate(&mut conn).unwrap();
        conn
    }

    fn at(minutes: i64) -> NaiveDateTime {
        chrono::DateTime::from_timestamp(1_800_000_000, 0)
            .unwrap()
            .naive_utc()
            + TimeDelta::minutes(minutes)
    }

    fn failures(conn: &mut AnyConnection, key: &str) -> Option<i64> {
        LoginAttempt::find(conn, key).unwrap().map(|r| r.failures)
    }

    fn fail(
        conn: &mut AnyConnection,
        keys: &[(&str, Policy)],
        now: NaiveDateTime,
    ) -> Option<Locked> {
        reserve(conn, keys, now)
            .unwrap()
            .unwrap()
            .failed(conn, now)
            .unwrap()
    }

    #[test]
    fn the_failure_that_uses_the_last_slot_locks_and_refusals_leave_no_trace() {
        let mut conn = conn();
        let keys = [("account:a", ACCOUNT)];
        for minute in 0..4 {
            assert_eq!(fail(&mut conn, &keys, at(minute)), None);
        }
        assert_eq!(
            fail(&mut conn, &keys, at(4)),
            Some(Locked { until: at(19) })
        );
        for minute in [5, 10, 18] {
            assert_eq!(
                reserve(&mut conn, &keys, at(minute)).unwrap().unwrap_err(),
                Locked { until: at(19) }
            );
        }
        assert_eq!(failures(&mut conn, "account:a"), Some(5));
        // The lock has passed: a new window.
        assert_eq!(fail(&mut conn, &keys, at(19)), None);
        assert_eq!(failures(&mut conn, "account:a"), Some(1));
    }

    #[test]
    fn attempts_in_flight_hold_the_budget_until_they_end() {
        let mut conn = conn();
        let keys = [("account:a", ACCOUNT)];
        let now = at(0);
        let held: Vec<Reservation> = (0..5)
            .map(|_| reserve(&mut conn, &keys, now).unwrap().unwrap())
            .collect();
        // Five are being checked: a sixth is refused before the lock exists.
        let refused = reserve(&mut conn, &keys, now).unwrap().unwrap_err();
        assert_eq!(refused.until, now + ACCOUNT.lockout);
        assert_eq!(failures(&mut conn, "account:a"), Some(5));
        let locks: Vec<Option<Locked>> = held
            .into_iter()
            .map(|r| r.failed(&mut conn, now).unwrap())
            .collect();
        assert_eq!(locks.iter().flatten().count(), 1, "{locks:?}");
        assert!(reserve(&mut conn, &keys, at(1)).unwrap().is_err());
    }

    #[test]
    fn a_window_that_is_over_starts_afresh() {
        let mut conn = conn();
        let keys = [("account:a", ACCOUNT)];
        for minute in 0..4 {
            fail(&mut conn, &keys, at(minute));
        }
        assert_eq!(fail(&mut conn, &keys, at(16)), None);
        assert_eq!(failures(&mut conn, "account:a"), Some(1));
    }

    #[test]
    fn a_success_clears_an_account_and_gives_an_address_its_slot_back() {
        let mut conn = conn();
        let keys = [("account:a", ACCOUNT), ("address:x", ADDRESS)];
        fail(&mut conn, &keys, at(0));
        fail(&mut conn, &keys, at(1));
        reserve(&mut conn, &keys, at(2))
            .unwrap()
            .unwrap()
            .succeeded(&mut conn)
            .unwrap();
        assert_eq!(failures(&mut conn, "account:a"), None);
        assert_eq!(failures(&mut conn, "address:x"), Some(2));
        // A success from a fresh address leaves no row behind.
        let fresh = [("account:b", ACCOUNT), ("address:y", ADDRESS)];
        reserve(&mut conn, &fresh, at(2))
            .unwrap()
            .unwrap()
            .succeeded(&mut conn)
            .unwrap();
        assert_eq!(failures(&mut conn, "address:y"), None);
    }

    #[test]
    fn a_refusal_by_a_later_key_gives_back_the_earlier_slots() {
        let mut conn = conn();
        for i in 0..20 {
            fail(
                &mut conn,
                &[(&format!("account:{i}"), ACCOUNT), ("address:x", ADDRESS)],
                at(0),
            );
        }
        let keys = [("account:victim", ACCOUNT), ("address:x", ADDRESS)];
        assert!(reserve(&mut conn, &keys, at(1)).unwrap().is_err());
        assert_eq!(failures(&mut conn, "account:victim"), None);
        assert_eq!(failures(&mut conn, "address:x"), Some(20));
    }

    #[test]
    fn a_lock_holds_even_when_successes_in_its_window_gave_slots_back() {
        let mut conn = conn();
        let keys = [("address:x", ADDRESS)];
        let now = at(0);
        let good: Vec<Reservation> = (0..19)
            .map(|_| reserve(&mut conn, &keys, now).unwrap().unwrap())
            .collect();
        assert!(fail(&mut conn, &keys, now).is_some(), "the 20th slot locks");
        for attempt in good {
            attempt.succeeded(&mut conn).unwrap();
        }
        assert_eq!(failures(&mut conn, "address:x"), Some(1));
        assert!(reserve(&mut conn, &keys, at(1)).unwrap().is_err());
    }

    #[test]
    fn mail_is_rationed_per_recipient_per_hour() {
        let mut conn = conn();
        for _ in 0..5 {
            assert!(allow_mail(&mut conn, "a@example.com", at(0)).unwrap());
        }
        assert!(!allow_mail(&mut conn, " A@example.com", at(1)).unwrap());
        assert!(allow_mail(&mut conn, "b@example.com", at(1)).unwrap());
        assert!(allow_mail(&mut conn, "a@example.com", at(60)).unwrap());
    }
}
