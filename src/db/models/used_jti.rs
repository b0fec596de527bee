//! `used_jtis`: identifiers that may be used once within their lifetime (a client assertion's
//! `jti`, `oauth::assertion`), shared by every instance, so a replay is refused whichever
//! instance it reaches.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::used_jtis;

pub struct UsedJti;

impl UsedJti {
    /// Records `id` as used until `expires_at`. `false` if it was recorded already: a replay.
    /// One statement; a row still there after its expiry (the clean-up not yet run) still
    /// counts, which only errs on the side of refusing.
    pub fn record(
        conn: &mut AnyConnection,
        id: &str,
        expires_at: NaiveDateTime,
    ) -> QueryResult<bool> {
        let insert = diesel::insert_into(used_jtis::table)
            .values((used_jtis::id.eq(id), used_jtis::expires_at.eq(expires_at)))
            .on_conflict(used_jtis::id)
            .do_nothing();
        // diesel's MultiConnection has no ON CONFLICT, but both backends do.
        crate::db::native!(conn, c => insert.execute(c)).map(|inserted| inserted == 1)
    }

    /// Deletes the identifiers that expired before `now`: no assertion carrying them would be
    /// accepted any more. Returns how many went.
    pub fn delete_expired(conn: &mut AnyConnection, now: NaiveDateTime) -> QueryResult<usize> {
        diesel::delete(used_jtis::table.filter(used_jtis::expires_at.lt(now))).execute(conn)
    }
}
