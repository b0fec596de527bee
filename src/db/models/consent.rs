//! `consents`: the scopes a person granted an application, one row per (person, application).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{Client, User};
use crate::db::AnyConnection;
use crate::db::schema::{clients, consents, users};
use crate::domain::{ClientRowId, UserId};

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = consents)]
pub struct Consent {
    pub id: i64,
    pub user_id: UserId,
    /// `clients.id`
    pub client_id: ClientRowId,
    pub scope: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl Consent {
    /// The person and the application's owner (one row when they are the same account, none
    /// for an account that is gone), with the scopes the person granted the application, in
    /// one statement: `SELECT users.*, (SELECT scope FROM consents …) FROM users WHERE id IN
    /// (…)`. The consent comes back only with the person's own row, so a consent can never be
    /// read for an account that no longer exists (its rows went with it anyway, ON DELETE
    /// CASCADE). What the authorization endpoint needs to decide and to show the consent page.
    pub fn find_with_people(
        conn: &mut AnyConnection,
        user_id: UserId,
        client: &Client,
    ) -> QueryResult<(Vec<User>, Option<String>)> {
        let consent = consents::table
            .filter(consents::user_id.eq(users::id))
            .filter(consents::client_id.eq(client.id))
            .select(consents::scope)
            .single_value();
        let rows: Vec<(User, Option<String>)> = users::table
            .filter(users::id.eq_any([user_id, client.user_id]))
            .select((User::as_select(), consent))
            .load(conn)?;
        let mut granted = None;
        let people = rows
            .into_iter()
            .map(|(user, scope)| {
                if user.id == user_id {
                    granted = scope;
                }
                user
            })
            .collect();
        Ok((people, granted))
    }

    pub fn find(
        conn: &mut AnyConnection,
        user_id: UserId,
        client: ClientRowId,
    ) -> QueryResult<Option<Consent>> {
        consents::table
            .filter(consents::user_id.eq(user_id))
            .filter(consents::client_id.eq(client))
            .select(Consent::as_select())
            .get_result(conn)
            .optional()
    }

    /// Records a grant of `scope`, replacing the stored scopes (callers pass the union): one
    /// `INSERT … ON CONFLICT DO UPDATE` on either backend.
    pub fn grant(
        conn: &mut AnyConnection,
        user_id: UserId,
        client: ClientRowId,
        scope: &str,
        now: NaiveDateTime,
    ) -> QueryResult<()> {
        let upsert = diesel::insert_into(consents::table)
            .values((
                consents::user_id.eq(user_id),
                consents::client_id.eq(client),
                consents::scope.eq(scope),
                consents::created_at.eq(now),
                consents::updated_at.eq(now),
            ))
            .on_conflict((consents::user_id, consents::client_id))
            .do_update()
            .set((consents::scope.eq(scope), consents::updated_at.eq(now)));
        // diesel's MultiConnection has no ON CONFLICT, but both backends do.
        match conn {
            AnyConnection::Sqlite(c) => upsert.execute(c),
            AnyConnection::Postgres(c) => upsert.execute(c),
        }
        .map(|_| ())
    }

    /// Replaces the stored scopes with `scope` if they are still exactly `before` (`None`: if
    /// there is no consent yet), in one statement. False if they were not, and nothing changed.
    pub fn grant_if_unchanged(
        conn: &mut AnyConnection,
        user_id: UserId,
        client: ClientRowId,
        before: Option<&str>,
        scope: &str,
        now: NaiveDateTime,
    ) -> QueryResult<bool> {
        let changed = match before {
            Some(before) => diesel::update(
                consents::table
                    .filter(consents::user_id.eq(user_id))
                    .filter(consents::client_id.eq(client))
                    .filter(consents::scope.eq(before)),
            )
            .set((consents::scope.eq(scope), consents::updated_at.eq(now)))
            .execute(conn)?,
            None => {
                let insert = diesel::insert_into(consents::table)
                    .values((
                        consents::user_id.eq(user_id),
                        consents::client_id.eq(client),
                        consents::scope.eq(scope),
                        consents::created_at.eq(now),
                        consents::updated_at.eq(now),
                    ))
                    .on_conflict((consents::user_id, consents::client_id))
                    .do_nothing();
                match conn {
                    AnyConnection::Sqlite(c) => insert.execute(c)?,
                    AnyConnection::Postgres(c) => insert.execute(c)?,
                }
            }
        };
        Ok(changed == 1)
    }

    pub fn delete(
        conn: &mut AnyConnection,
        user_id: UserId,
        client: ClientRowId,
    ) -> QueryResult<usize> {
        diesel::delete(
            consents::table
                .filter(consents::user_id.eq(user_id))
                .filter(consents::client_id.eq(client)),
        )
        .execute(conn)
    }

    /// Replaces the stored scopes (one scope revoked).
    pub fn set_scope(
        conn: &mut AnyConnection,
        user_id: UserId,
        client: ClientRowId,
        scope: &str,
        now: NaiveDateTime,
    ) -> QueryResult<usize> {
        diesel::update(
            consents::table
                .filter(consents::user_id.eq(user_id))
                .filter(consents::client_id.eq(client)),
        )
        .set((consents::scope.eq(scope), consents::updated_at.eq(now)))
        .execute(conn)
    }

    pub fn for_user(conn: &mut AnyConnection, user_id: UserId) -> QueryResult<Vec<Consent>> {
        consents::table
            .filter(consents::user_id.eq(user_id))
            .select(Consent::as_select())
            .load(conn)
    }

    /// Every application `user_id` approved on the consent page, with the scope granted and
    /// when, in one statement (`authorizations::list`).
    pub fn granted_by(
        conn: &mut AnyConnection,
        user_id: UserId,
    ) -> QueryResult<Vec<(Client, String, NaiveDateTime)>> {
        consents::table
            .inner_join(clients::table)
            .filter(consents::user_id.eq(user_id))
            .select((Client::as_select(), consents::scope, consents::created_at))
            .load(conn)
    }
}
