//! `scopes`: the permissions clients may ask for, with the text end users read on the consent page.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::scopes;

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = scopes)]
pub struct Scope {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = scopes)]
pub struct NewScope<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub created_at: NaiveDateTime,
}

impl Scope {
    pub fn insert(conn: &mut AnyConnection, new: &NewScope<'_>) -> QueryResult<Scope> {
        crate::db::note_client_change(conn);
        diesel::insert_into(scopes::table)
            .values(new)
            // The whole row comes back; `as_returning()` does not compile for MultiBackend.
            .get_result::<Scope>(conn)
    }

    /// Every registered scope, by name.
    pub fn all(conn: &mut AnyConnection) -> QueryResult<Vec<Scope>> {
        scopes::table
            .order(scopes::name.asc())
            .select(Scope::as_select())
            .load(conn)
    }
}
