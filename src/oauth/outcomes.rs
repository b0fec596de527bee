//! Token requests, counted for the client's owner: the activity page shows tokens issued and
//! failed requests by day, and the failures by error code and reason, which is what a merchant
//! debugging an integration needs first.
//!
//! A request costs a counter in memory ([`Outcomes::issued`], [`Outcomes::failed`]: one short
//! mutex hold, no allocation once its key is counted), not a row. [`Outcomes::flush`] adds what
//! this instance counted to `token_requests` (one upsert per distinct key) every
//! `LATCHKEY_COUNTS_INTERVAL` (5 s by default), and when the activity page is opened; so every
//! instance's counts reach the page within that interval. Counts not yet written when a process dies are lost: they
//! are statistics, and the tokens' own rows are written before they are answered.
//!
//! Only requests naming a client that exists are counted (a request for an unknown client id
//! has no owner to show it to). A failure's reason is either the description the caller was
//! answered or, for client authentication failures (which all answer the caller the same, RFC
//! 6749 §5.2), a fixed phrase for the owner ([`OAuthError::reason`]): never a credential.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use parking_lot::Mutex;

use super::error::OAuthError;
use crate::db::models::token_request::ISSUED;
use crate::db::models::{RequestCount, TokenRequests};
use crate::db::{self, DbError};
use crate::domain::ClientRowId;
use crate::domain::GrantType;

/// Distinct (client, day, outcome, detail) keys held between two flushes; failures past it are
/// not counted (and the flush logs how many), so a flood of distinct reasons cannot grow memory.
pub const MAX_PENDING: usize = 10_000;

/// A reason is cut to this many characters (descriptions are short; this is a bound, not a
/// format).
pub const MAX_REASON: usize = 200;

/// A client's requests of one day with one outcome; the details under it.
type Group = (ClientRowId, chrono::NaiveDate, &'static str);

#[derive(Debug, Clone, Copy)]
struct Tally {
    count: i64,
    last_at: NaiveDateTime,
}

/// This instance's counts since the last flush.
#[derive(Debug, Default)]
pub struct Outcomes {
    pending: Mutex<Pending>,
}

#[derive(Debug, Default)]
struct Pending {
    counts: HashMap<Group, HashMap<Box<str>, Tally>>,
    /// How many (group, reason) keys `counts` holds.
    keys: usize,
    /// Requests not counted because [`MAX_PENDING`] keys were held.
    dropped: u64,
}

impl Pending {
    fn add(&mut self, group: Group, detail: &str, count: i64, at: NaiveDateTime) {
        let keys = self.keys;
        let reasons = self.counts.entry(group).or_default();
        // Looked up by the borrowed detail first, so a repeated outcome allocates nothing.
        if let Some(tally) = reasons.get_mut(detail) {
            tally.count += count;
            tally.last_at = tally.last_at.max(at);
            return;
        }
        if keys >= MAX_PENDING {
            self.dropped += count as u64;
            return;
        }
        reasons.insert(detail.into(), Tally { count, last_at: at });
        self.keys += 1;
    }
}

/// What the owner reads for `error`: its fixed reason, else its description (cut to
/// [`MAX_REASON`] characters).
pub fn reason_of(error: &OAuthError) -> &str {
    let text = error.reason.unwrap_or(&error.description);
    match text.char_indices().nth(MAX_REASON) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

impl Outcomes {
    /// Counts a token request of `client` that got tokens by `grant`.
    pub fn issued(&self, client: ClientRowId, grant: GrantType, now: NaiveDateTime) {
        let group = (client, now.date(), ISSUED);
        self.pending.lock().add(group, grant.as_str(), 1, now);
    }

    /// Counts a failed token request of `client`.
    pub fn failed(&self, client: ClientRowId, error: &OAuthError, now: NaiveDateTime) {
        let group = (client, now.date(), error.code.rfc());
        self.pending.lock().add(group, reason_of(error), 1, now);
    }

    /// Takes the counts gathered since the last call.
    fn take(&self) -> (Vec<RequestCount>, u64) {
        let mut pending = self.pending.lock();
        let dropped = std::mem::take(&mut pending.dropped);
        pending.keys = 0;
        let counts = pending
            .counts
            .drain()
            .flat_map(|((client, day, outcome), details)| {
                let day = day.format("%Y-%m-%d").to_string();
                details
                    .into_iter()
                    .map(move |(detail, tally)| RequestCount {
                        client_id: client,
                        day: day.clone(),
                        outcome,
                        detail: detail.into(),
                        count: tally.count,
                        last_at: tally.last_at,
                    })
            })
            .collect();
        (counts, dropped)
    }

    /// Puts counts back after a failed write, to be written next time.
    fn restore(&self, counts: Vec<RequestCount>) {
        let mut pending = self.pending.lock();
        for c in counts {
            let Ok(day) = chrono::NaiveDate::parse_from_str(&c.day, "%Y-%m-%d") else {
                continue;
            };
            pending.add((c.client_id, day, c.outcome), &c.detail, c.count, c.last_at);
        }
    }

    /// Adds what was counted to `token_requests`, in one write transaction. Returns how many
    /// keys were written (those of applications deleted meanwhile are dropped); on failure the
    /// counts are kept for the next flush.
    pub async fn flush(&self, pool: &db::Pool) -> Result<usize, DbError> {
        let (counts, dropped) = self.take();
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "token requests not counted: too many distinct reasons between two flushes"
            );
        }
        if counts.is_empty() {
            return Ok(0);
        }
        let written = db::run(pool, move |conn| {
            let result = db::write_transaction(conn, |conn| TokenRequests::add(conn, &counts))
                .map_err(DbError::from);
            Ok::<_, DbError>((result, counts))
        })
        .await;
        match written {
            Ok((Ok(n), _)) => Ok(n),
            Ok((Err(e), counts)) => {
                self.restore(counts);
                Err(e)
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::error::ErrorCode;

    fn at(day: u32, hour: u32) -> NaiveDateTime {
        chrono::NaiveDate::from_ymd_opt(2026, 12, day)
            .and_then(|d| d.and_hms_opt(hour, 0, 0))
            .unwrap_or_default()
    }

    #[test]
    fn counts_by_client_day_outcome_and_detail() {
        let outcomes = Outcomes::default();
        let a = ClientRowId::new(1);
        let b = ClientRowId::new(2);
        let wrong = OAuthError::invalid_client().because("the secret does not match");
        outcomes.failed(a, &wrong, at(7, 1));
        outcomes.failed(a, &wrong, at(7, 9));
        outcomes.failed(a, &wrong, at(8, 1));
        outcomes.failed(b, &wrong, at(7, 1));
        outcomes.failed(
            a,
            &OAuthError::invalid_grant("The code was used before."),
            at(7, 2),
        );
        outcomes.issued(a, GrantType::ClientCredentials, at(7, 3));
        let (mut counts, dropped) = outcomes.take();
        assert_eq!(dropped, 0);
        counts.sort_by(|x, y| {
            (x.client_id, &x.day, x.outcome).cmp(&(y.client_id, &y.day, y.outcome))
        });
        let seen: Vec<_> = counts
            .iter()
            .map(|c| {
                (
                    c.client_id,
                    c.day.as_str(),
                    c.outcome,
                    c.detail.as_str(),
                    c.count,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (
                    a,
                    "2026-12-07",
                    "invalid_client",
                    "the secret does not match",
                    2
                ),
                (
                    a,
                    "2026-12-07",
                    "invalid_grant",
                    "The code was used before.",
                    1
                ),
                (a, "2026-12-07", "issued", "client_credentials", 1),
                (
                    a,
                    "2026-12-08",
                    "invalid_client",
                    "the secret does not match",
                    1
                ),
                (
                    b,
                    "2026-12-07",
                    "invalid_client",
                    "the secret does not match",
                    1
                ),
            ]
        );
        assert_eq!(counts[0].last_at, at(7, 9));
        assert!(outcomes.take().0.is_empty(), "taken once");
    }

    #[test]
    fn the_answer_to_the_caller_is_not_the_reason_for_client_authentication() {
        let e = OAuthError::invalid_client().because("every secret has expired");
        assert_eq!(e.description, "Client authentication failed.");
        assert_eq!(reason_of(&e), "every secret has expired");
        let long = OAuthError::new(ErrorCode::InvalidScope, "é".repeat(500));
        assert_eq!(reason_of(&long).chars().count(), MAX_REASON);
    }

    #[test]
    fn distinct_keys_are_bounded() {
        let outcomes = Outcomes::default();
        for i in 0..(MAX_PENDING + 5) {
            outcomes.failed(
                ClientRowId::new(1),
                &OAuthError::invalid_scope(format!("scope {i}")),
                at(7, 1),
            );
        }
        let (counts, dropped) = outcomes.take();
        assert_eq!(counts.len(), MAX_PENDING);
        assert_eq!(dropped, 5);
    }

    #[test]
    fn restored_counts_add_up() {
        let outcomes = Outcomes::default();
        let e = OAuthError::invalid_grant("expired");
        outcomes.failed(ClientRowId::new(1), &e, at(7, 1));
        let (counts, _) = outcomes.take();
        outcomes.failed(ClientRowId::new(1), &e, at(7, 3));
        outcomes.restore(counts);
        let (counts, _) = outcomes.take();
        assert_eq!(counts.len(), 1);
        assert_eq!(counts[0].count, 2);
        assert_eq!(counts[0].last_at, at(7, 3));
    }
}
