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
}
