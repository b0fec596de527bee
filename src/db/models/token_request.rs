//! `token_requests`: token requests of a known client, counted per UTC day, outcome (`issued`
//! or the error code) and detail (the grant type, or the failure's reason). Rows are added to,
//! never inserted per request: `oauth::outcomes` counts in memory and [`TokenRequests::add`]
//! adds each instance's counts every few seconds.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::token_requests;
use crate::domain::ClientRowId;

/// The `outcome` of requests that got tokens.
pub const ISSUED: &str = "issued";

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = token_requests)]
pub struct TokenRequests {
    pub client_id: ClientRowId,
    /// The UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// [`ISSUED`], or the RFC 6749 `error` code.
    pub outcome: String,
    /// The grant type for [`ISSUED`]; the reason for a failure.
    pub detail: String,
    pub count: i64,
    /// The last request counted in this row.
    pub last_at: NaiveDateTime,
}

/// Counts to add, as `oauth::outcomes` gathered them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestCount {
    pub client_id: ClientRowId,
    pub day: String,
    pub outcome: &'static str,
    pub detail: String,
    pub count: i64,
    pub last_at: NaiveDateTime,
}

impl TokenRequests {
    /// Adds the counts to their rows (creating those not there yet), skipping those of
    /// applications deleted since they were counted (their rows went with them; counting them
    /// would break the foreign key and hold every other count back). Returns how many counts
    /// were written. One statement to find the applications, then one per count; run it in one
    /// write transaction.
    pub fn add(conn: &mut AnyConnection, counts: &[RequestCount]) -> QueryResult<usize> {
        use crate::db::schema::clients;
        use diesel::upsert::excluded;
        let mut ids: Vec<ClientRowId> = counts.iter().map(|c| c.client_id).collect();
        ids.sort();
        ids.dedup();
        let existing: Vec<ClientRowId> = clients::table
            .filter(clients::id.eq_any(ids))
            .select(clients::id)
            .load(conn)?;
        let mut written = 0;
        for c in counts.iter().filter(|c| existing.contains(&c.client_id)) {
            written += 1;
            let upsert = diesel::insert_into(token_requests::table)
                .values((
                    token_requests::client_id.eq(c.client_id),
                    token_requests::day.eq(&c.day),
                    token_requests::outcome.eq(c.outcome),
                    token_requests::detail.eq(&c.detail),
                    token_requests::count.eq(c.count),
                    token_requests::last_at.eq(c.last_at),
                ))
                .on_conflict((
                    token_requests::client_id,
                    token_requests::day,
                    token_requests::outcome,
                    token_requests::detail,
                ))
                .do_update()
                .set((
                    token_requests::count
                        .eq(token_requests::count + excluded(token_requests::count)),
                    token_requests::last_at.eq(excluded(token_requests::last_at)),
                ));
            // diesel's MultiConnection has no ON CONFLICT, but both backends do.
            crate::db::native!(conn, c => upsert.execute(c))?;
        }
        Ok(written)
    }

    /// An application's rows from `since` (a `YYYY-MM-DD` day) on, newest day first, the
    /// largest counts first within a day.
    pub fn for_client(
        conn: &mut AnyConnection,
        client_id: ClientRowId,
        since: &str,
    ) -> QueryResult<Vec<TokenRequests>> {
        token_requests::table
            .filter(token_requests::client_id.eq(client_id))
            .filter(token_requests::day.ge(since))
            .order((
                token_requests::day.desc(),
                token_requests::count.desc(),
                token_requests::outcome,
                token_requests::detail,
            ))
            .select(TokenRequests::as_select())
            .load(conn)
    }

    /// Deletes the rows of days before `before` (`YYYY-MM-DD`). Returns how many went.
    pub fn delete_before(conn: &mut AnyConnection, before: &str) -> QueryResult<usize> {
        diesel::delete(token_requests::table.filter(token_requests::day.lt(before))).execute(conn)
    }
}
