//! `pushed_requests`: authorization requests pushed by clients (RFC 9126), kept for a minute
//! under the digest of their `request_uri`, and taken once by `/oauth/authorize`.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::pushed_requests;
use crate::domain::ClientRowId;

pub struct PushedRequest;

impl PushedRequest {
    /// Keeps a checked request (`request`, JSON) of `client` under `id` until `expires_at`.
    pub fn insert(
        conn: &mut AnyConnection,
        id: &str,
        client: ClientRowId,
        request: &str,
        expires_at: NaiveDateTime,
    ) -> QueryResult<()> {
        diesel::insert_into(pushed_requests::table)
            .values((
                pushed_requests::id.eq(id),
                pushed_requests::client_id.eq(client),
                pushed_requests::request.eq(request),
                pushed_requests::expires_at.eq(expires_at),
            ))
            .execute(conn)
            .map(|_| ())
    }

    /// Takes the request kept under `id`, deleting it in the same statement so that it can be
    /// used once, whoever asks second: its client's row id, the request, and its expiry.
    pub fn take(
        conn: &mut AnyConnection,
        id: &str,
    ) -> QueryResult<Option<(ClientRowId, String, NaiveDateTime)>> {
        diesel::delete(pushed_requests::table.filter(pushed_requests::id.eq(id)))
            .returning((
                pushed_requests::client_id,
                pushed_requests::request,
                pushed_requests::expires_at,
            ))
            .get_result(conn)
            .optional()
    }

    /// Deletes the requests that expired before `now`; how many went.
    pub fn delete_expired(conn: &mut AnyConnection, now: NaiveDateTime) -> QueryResult<usize> {
        diesel::delete(pushed_requests::table.filter(pushed_requests::expires_at.lt(now)))
            .execute(conn)
    }
}
