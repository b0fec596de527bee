//! `signing_keys`: the keys that sign access tokens.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::signing_keys;

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = signing_keys)]
pub struct SigningKeyRow {
    pub id: i64,
    pub kid: String,
    pub algorithm: String,
    /// Encrypted PKCS#8 DER.
    pub private_key: String,
    pub public_jwk: String,
    pub created_at: NaiveDateTime,
    pub retired_at: Option<NaiveDateTime>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = signing_keys)]
pub struct NewSigningKey<'a> {
    pub kid: &'a str,
    pub algorithm: &'a str,
    pub private_key: &'a str,
    pub public_jwk: &'a str,
    pub created_at: NaiveDateTime,
}

impl SigningKeyRow {
    pub fn insert(conn: &mut AnyConnection, new: &NewSigningKey<'_>) -> QueryResult<SigningKeyRow> {
        diesel::insert_into(signing_keys::table)
            .values(new)
            // The whole row comes back; `as_returning()` does not compile for MultiBackend.
            .get_result::<SigningKeyRow>(conn)
    }

    /// Every key, newest first.
    pub fn all(conn: &mut AnyConnection) -> QueryResult<Vec<SigningKeyRow>> {
        signing_keys::table
            .order(signing_keys::id.desc())
            .select(SigningKeyRow::as_select())
            .load(conn)
    }

    /// Retires every active key but `keep`, at `now`: `keep` becomes the only one that signs.
    pub fn retire_all_but(
        conn: &mut AnyConnection,
        keep: i64,
        now: NaiveDateTime,
    ) -> QueryResult<usize> {
        diesel::update(
            signing_keys::table
                .filter(signing_keys::id.ne(keep))
                .filter(signing_keys::retired_at.is_null()),
        )
        .set(signing_keys::retired_at.eq(now))
        .execute(conn)
    }

    /// Replaces the encrypted private half (moving to a new server key).
    pub fn set_private_key(
        conn: &mut AnyConnection,
        id: i64,
        private_key: &str,
    ) -> QueryResult<()> {
        diesel::update(signing_keys::table.find(id))
            .set(signing_keys::private_key.eq(private_key))
            .execute(conn)
            .map(|_| ())
    }

    /// Takes the lock under which a first key is created, until the transaction ends: on
    /// PostgreSQL a transaction-scoped advisory lock (waiting for whoever holds it), so that
    /// instances starting together do not each see no key and create one. On SQLite nothing:
    /// the write transaction already holds the database's one write lock. Call it inside
    /// [`write_transaction`](crate::db::write_transaction).
    pub fn lock_for_creation(conn: &mut AnyConnection) -> QueryResult<()> {
        if let AnyConnection::Postgres(pg) = conn {
            use diesel::connection::SimpleConnection as _;
            pg.batch_execute("SELECT pg_advisory_xact_lock(1281450851, 2)")?;
        }
        Ok(())
    }
}
