//! `client_changes`: one row whose counter the database's triggers bump on every change to
//! `clients` and `client_secrets` (except a secret's `last_used_at`), in the transaction of the
//! change, whoever writes. The client cache ([`crate::db::ClientCache`]) reads it to learn of
//! changes made outside its process.

use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::client_changes;

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = client_changes)]
pub struct ClientChanges {
    /// Always 1.
    pub id: i64,
    pub counter: i64,
}

impl ClientChanges {
    /// The counter now: it differs from an earlier read exactly when a client or a secret was
    /// changed in between. On the request path, once a second at most.
    pub fn counter(conn: &mut AnyConnection) -> QueryResult<i64> {
        crate::db::native!(conn, c => client_changes::table
            .find(1_i64)
            .select(client_changes::counter)
            .first(c))
    }
}
