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

impl AuditEvent {
    /// Whether `user_id` signed in from `ip` in the last 30 days.
    pub fn seen_sign_in_from(
        conn: &mut AnyConnection,
        user_id: UserId,
        ip: &str,
    ) -> QueryResult<bool> {
        let since = crate::db::now() - chrono::TimeDelta::days(30);
        audit_events::table
            .filter(audit_events::user_id.eq(user_id))
            .filter(audit_events::action.eq("signed_in"))
            .filter(audit_events::ip.eq(ip))
            .filter(audit_events::created_at.gt(since))
            .count()
            .get_result::<i64>(conn)
            .map(|n| n > 0)
    }
}
