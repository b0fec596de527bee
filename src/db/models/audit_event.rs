//! `audit_events`: who did what to an application, when, from where.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::audit_events;
use crate::domain::{ClientRowId, UserId};

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = audit_events)]
pub struct AuditEvent {
    pub id: i64,
    pub user_id: Option<UserId>,
    pub client_id: Option<ClientRowId>,
    pub action: String,
    pub detail: String,
    pub ip: Option<String>,
    pub created_at: NaiveDateTime,
}

impl AuditEvent {
    pub fn record(
        conn: &mut AnyConnection,
        user_id: Option<UserId>,
        client_id: Option<ClientRowId>,
        action: &str,
        detail: &str,
        ip: Option<&str>,
    ) -> QueryResult<()> {
        diesel::insert_into(audit_events::table)
            .values((
                audit_events::user_id.eq(user_id),
                audit_events::client_id.eq(client_id),
                audit_events::action.eq(action),
                audit_events::detail.eq(detail),
                audit_events::ip.eq(ip),
                audit_events::created_at.eq(crate::db::now()),
            ))
            .execute(conn)
            .map(|_| ())
    }

    /// The latest events of an application, newest first.
    pub fn for_client(
        conn: &mut AnyConnection,
        client_id: ClientRowId,
        limit: i64,
    ) -> QueryResult<Vec<AuditEvent>> {
        audit_events::table
            .filter(audit_events::client_id.eq(client_id))
            .order((audit_events::created_at.desc(), audit_events::id.desc()))
            .limit(limit)
            .select(AuditEvent::as_select())
            .load(conn)
    }
}

/// Which of an application's events to show (the activity page's filters); `None` is any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub action: Option<String>,
    /// From this instant on.
    pub from: Option<NaiveDateTime>,
    /// Before this instant.
    pub until: Option<NaiveDateTime>,
}

impl AuditEvent {
    /// A page of an application's events that match `filter`, newest first, and how many match
    /// in all. Two statements.
    pub fn page_for_client(
        conn: &mut AnyConnection,
        client_id: ClientRowId,
        filter: &EventFilter,
        limit: i64,
        offset: i64,
    ) -> QueryResult<(Vec<AuditEvent>, i64)> {
        crate::db::native!(conn, c => {
            let matching = || {
                let mut query = audit_events::table
                    .filter(audit_events::client_id.eq(client_id))
                    .into_boxed();
                if let Some(action) = &filter.action {
                    query = query.filter(audit_events::action.eq(action.clone()));
                }
                if let Some(from) = filter.from {
                    query = query.filter(audit_events::created_at.ge(from));
                }
                if let Some(until) = filter.until {
                    query = query.filter(audit_events::created_at.lt(until));
                }
                query
            };
            let total = matching().count().get_result::<i64>(c)?;
            let rows = matching()
                .order((audit_events::created_at.desc(), audit_events::id.desc()))
                .limit(limit)
                .offset(offset)
                .select(AuditEvent::as_select())
                .load(c)?;
            Ok((rows, total))
        })
    }

    /// The kinds of event an application's log holds, for the filter's choices.
    pub fn actions_for_client(
        conn: &mut AnyConnection,
        client_id: ClientRowId,
    ) -> QueryResult<Vec<String>> {
        audit_events::table
            .filter(audit_events::client_id.eq(client_id))
            .select(audit_events::action)
            .distinct()
            .order(audit_events::action)
            .load(conn)
    }
}

/// `detail` of a sign-in from an address the account had not signed in from for 30 days.
pub const NEW_ADDRESS: &str = "new address";

impl AuditEvent {
    /// Records that `user_id` signed in from `ip`, and says whether that address is new: no
    /// sign-in from it in the 30 days before. One statement (`INSERT … SELECT … RETURNING`):
    /// the event's `detail` is [`NEW_ADDRESS`] or empty, decided by the `SELECT` before the row
    /// goes in.
    pub fn record_sign_in(
        conn: &mut AnyConnection,
        user_id: UserId,
        ip: &str,
    ) -> QueryResult<bool> {
        use diesel::dsl::{case_when, exists, select};
        use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};
        let now = crate::db::now();
        let since = now - chrono::TimeDelta::days(30);
        let seen = audit_events::table
            .filter(audit_events::user_id.eq(user_id))
            .filter(audit_events::action.eq("signed_in"))
            .filter(audit_events::ip.eq(ip))
            .filter(audit_events::created_at.gt(since));
        let detail = case_when::<_, _, Text>(exists(seen), "").otherwise(NEW_ADDRESS);
        let row = select((
            Some(user_id).into_sql::<Nullable<BigInt>>(),
            None::<i64>.into_sql::<Nullable<BigInt>>(),
            "signed_in".into_sql::<Text>(),
            detail,
            Some(ip).into_sql::<Nullable<Text>>(),
            now.into_sql::<Timestamp>(),
        ));
        let insert = diesel::insert_into(audit_events::table)
            .values(row)
            .into_columns((
                audit_events::user_id,
                audit_events::client_id,
                audit_events::action,
                audit_events::detail,
                audit_events::ip,
                audit_events::created_at,
            ))
            .returning(audit_events::detail);
        crate::db::native!(conn, c => insert.get_result::<String>(c)).map(|d| d == NEW_ADDRESS)
    }
}
