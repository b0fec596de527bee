//! `login_attempts`: failed sign-in counters, see [`crate::auth::throttle`].

use chrono::NaiveDateTime;
use diesel::prelude::*;

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

impl LoginAttempt {
    pub fn find(conn: &mut AnyConnection, key: &str) -> QueryResult<Option<LoginAttempt>> {
        login_attempts::table
            .filter(login_attempts::throttle_key.eq(key))
            .select(LoginAttempt::as_select())
            .first(conn)
            .optional()
    }

    pub fn delete(conn: &mut AnyConnection, key: &str) -> QueryResult<usize> {
        diesel::delete(login_attempts::table.filter(login_attempts::throttle_key.eq(key)))
            .execute(conn)
    }
}
