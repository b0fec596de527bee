//! `GET /developer/applications/{id}/activity`: token requests per day over the last 14 days
//! (issued and failed, a bar chart drawn as SVG with a table beside it for screen readers), the
//! failed requests by error code and reason with what to check, how many people have
//! authorized the app, and the audit log with filters (kind of event, dates), pages and a CSV
//! download (`…/activity.csv`, the same filters).

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use chrono::{NaiveDate, NaiveDateTime, TimeDelta};
use serde::Deserialize;
use serde_json::json;

use super::{owned, summary};
use crate::auth::session::TypedSession;
use crate::clients;
use crate::db::models::audit_event::EventFilter;
use crate::db::models::{AuditEvent, User};
use crate::db::{self, AnyConnection, DbError};
use crate::domain::UserId;
use crate::error::AppError;
use crate::routes::page::{CurrentUser, render};
use crate::state::AppState;

/// Events per page of the audit log.
pub const PAGE_SIZE: i64 = 50;

/// Most events one CSV download holds (the newest that match).
pub const CSV_LIMIT: i64 = 10_000;

/// The audit log's filters as the query string gives them: kept as typed, to show them again
/// beside their errors.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Filters {
    /// The kind of event (`audit_events.action`); empty for any.
    action: String,
    /// First day, `YYYY-MM-DD` (UTC); empty for no bound.
    from: String,
    /// Last day, `YYYY-MM-DD` (UTC), included; empty for no bound.
    to: String,
    page: String,
}

/// The filters read, or what is wrong with each field.
struct Read {
    filter: EventFilter,
    page: i64,
    errors: HashMap<&'static str, String>,
}

fn day(value: &str) -> Result<Option<NaiveDate>, ()> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map(Some)
        .map_err(|_| ())
}

fn midnight(day: NaiveDate) -> NaiveDateTime {
    day.and_hms_opt(0, 0, 0).unwrap_or_default()
}

impl Filters {
    fn read(&self, actions: &[String]) -> Read {
        let mut errors = HashMap::new();
        let action = self.action.trim();
        let action = if action.is_empty() {
            None
        } else if actions.iter().any(|a| a == action) {
            Some(action.to_owned())
        } else {
            errors.insert(
                "action",
                "Event type: choose one of the types in the list.".to_owned(),
            );
            None
        };
        let from = day(&self.from).unwrap_or_else(|()| {
            errors.insert(
                "from",
                "From: enter a date as year-month-day, for example 2026-12-01.".to_owned(),
            );
            None
        });
        let to = day(&self.to).unwrap_or_else(|()| {
            errors.insert(
                "to",
                "To: enter a date as year-month-day, for example 2026-12-31.".to_owned(),
            );
            None
        });
        if let (Some(from), Some(to)) = (from, to)
            && to < from
        {
            errors.insert("to", "To: choose a day on or after From.".to_owned());
        }
        let page = self
            .page
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|p| (1..=1_000_000).contains(p))
            .unwrap_or(1);
        Read {
            filter: EventFilter {
                action,
                from: from.map(midnight),
                // The whole of the last day.
                until: to.map(|to| midnight(to) + TimeDelta::days(1)),
            },
            page,
            errors,
        }
    }

    /// The query string for these filters on another page (empty fields left out).
    fn query(&self, page: Option<i64>) -> String {
        let mut pairs = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("action", &self.action),
            ("from", &self.from),
            ("to", &self.to),
        ] {
            if !value.trim().is_empty() {
                pairs.append_pair(name, value.trim());
            }
        }
        if let Some(page) = page {
            pairs.append_pair("page", &page.to_string());
        }
        pairs.finish()
    }
}

/// What to check for each error code, in the words of the failures table.
fn hint(error: &str) -> &'static str {
    match error {
        "invalid_client" => {
            "Check the client ID and secret the integration sends, and that the secret has not expired (Secrets, on the application's page)."
        }
        "invalid_grant" => {
            "A code, refresh token or password was refused: codes work once and for minutes, a refresh token is replaced each time it is used."
        }
        "unauthorized_client" => "Allow the grant type in the application's settings.",
        "invalid_scope" => "Ask only for scopes the application is allowed (its settings).",
        "invalid_request" => "A parameter is missing or malformed: the reason says which.",
        "unsupported_grant_type" => "The grant_type sent is not one this server implements.",
        "invalid_dpop_proof" | "use_dpop_nonce" => {
            "The DPoP proof was refused: see RFC 9449, or the reason."
        }
        "server_error" | "temporarily_unavailable" => {
            "The server could not answer: retry; if it persists, tell the operator."
        }
        _ => "",
    }
}

/// The usernames of the events' actors.
fn actors(
    conn: &mut AnyConnection,
    events: &[AuditEvent],
) -> Result<HashMap<UserId, String>, DbError> {
    let mut names = HashMap::new();
    for id in events.iter().filter_map(|e| e.user_id) {
        if let std::collections::hash_map::Entry::Vacant(slot) = names.entry(id) {
            slot.insert(
                User::find(conn, id)?
                    .map(|u| u.username)
                    .unwrap_or_else(|| "deleted user".into()),
            );
        }
    }
    Ok(names)
}

fn who(event: &AuditEvent, names: &HashMap<UserId, String>) -> String {
    event
        .user_id
        .and_then(|id| names.get(&id).cloned())
        .unwrap_or_else(|| "system".into())
}

/// The token-request counts this instance holds are written first, so the page includes them.
async fn flush_counts(state: &AppState) {
    if let Err(e) = state.oauth.outcomes.flush(&state.pool).await {
        tracing::warn!(error = %crate::error::error_chain(&e), "token request counts not written");
    }
}

pub async fn show(
    state: web::Data<AppState>,
    session: TypedSession,
    CurrentUser(user): CurrentUser,
    path: web::Path<String>,
    query: web::Query<Filters>,
) -> Result<HttpResponse, AppError> {
    let client = owned(&state, &user, path.into_inner()).await?;
    flush_counts(&state).await;
    let filters = query.into_inner();
    let target = client.clone();
    let (usage, actions, read, page, total, names) = db::run(&state.pool, move |conn| {
        let usage = clients::usage(conn, &target)?;
        let actions = AuditEvent::actions_for_client(conn, target.id)?;
        let read = filters.read(&actions);
        let (events, total) = if read.errors.is_empty() {
            let offset = (read.page - 1) * PAGE_SIZE;
            let (mut events, total) =
                AuditEvent::page_for_client(conn, target.id, &read.filter, PAGE_SIZE, offset)?;
            // Past the last page: the last page.
            if events.is_empty() && total > 0 {
                let last = (total - 1) / PAGE_SIZE;
                events = AuditEvent::page_for_client(
                    conn,
                    target.id,
                    &read.filter,
                    PAGE_SIZE,
                    last * PAGE_SIZE,
                )?
                .0;
            }
            (events, total)
        } else {
            (Vec::new(), 0)
        };
        let names = actors(conn, &events)?;
        Ok::<_, DbError>((usage, actions, (filters, read), events, total, names))
    })
    .await?;
    let (filters, read) = read;
    let pages = ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
    let current = read.page.min(pages);

    let max = usage
        .per_day
        .iter()
        .map(|d| d.issued.max(d.failed))
        .max()
        .unwrap_or(0)
        .max(1);
    let bars: Vec<_> = usage
        .per_day
        .iter()
        .map(|d| {
            json!({
                "day": d.day,
                "label": d.day.get(8..).unwrap_or(&d.day),
                "issued": d.issued,
                "failed": d.failed,
                "issued_percent": d.issued * 100 / max,
                "failed_percent": d.failed * 100 / max,
            })
        })
        .collect();
    let issued: i64 = usage.per_day.iter().map(|d| d.issued).sum();
    let failed: i64 = usage.per_day.iter().map(|d| d.failed).sum();
    let failures: Vec<_> = usage
        .failures
        .iter()
        .map(|f| {
            json!({
                "error": f.error,
                "reason": f.reason,
                "count": f.count,
                "hint": hint(&f.error),
                "last": f.last_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            })
        })
        .collect();
    let events: Vec<_> = page
        .iter()
        .map(|e| {
            json!({
                "action": e.action.replace('_', " "),
                "detail": e.detail,
                "who": who(e, &names),
                "ip": e.ip,
                "when": e.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            })
        })
        .collect();
    let choices: Vec<_> = actions
        .iter()
        .map(|a| json!({ "value": a, "label": a.replace('_', " ") }))
        .collect();
    let filtered = read.filter != EventFilter::default();
    let mut ctx = tera::Context::new();
    ctx.insert("app", &summary(&client));
    ctx.insert("bars", &bars);
    ctx.insert("issued", &issued);
    ctx.insert("failed", &failed);
    ctx.insert("failures", &failures);
    ctx.insert("authorized_users", &usage.authorized_users);
    ctx.insert("events", &events);
    ctx.insert("actions", &choices);
    ctx.insert(
        "values",
        &json!({ "action": filters.action.trim(), "from": filters.from.trim(), "to": filters.to.trim() }),
    );
    ctx.insert("errors", &read.errors);
    ctx.insert("filtered", &filtered);
    ctx.insert("total", &total);
    ctx.insert("first", &((current - 1) * PAGE_SIZE + 1).min(total));
    ctx.insert("last", &(current * PAGE_SIZE).min(total));
    ctx.insert("page", &current);
    ctx.insert("pages", &pages);
    if current > 1 {
        ctx.insert("newer", &filters.query(Some(current - 1)));
    }
    if current < pages {
        ctx.insert("older", &filters.query(Some(current + 1)));
    }
    ctx.insert("csv_query", &filters.query(None));
    ctx.insert("csv_limit", &CSV_LIMIT);
    let status = if read.errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    render(
        &state,
        &session,
        Some(&user),
        "portal/activity.html",
        ctx,
        status,
    )
}

/// `GET …/activity.csv`: the audit log's events that match the filters, newest first (at most
/// [`CSV_LIMIT`]), as CSV for a spreadsheet: a cell that a spreadsheet would run as a formula
/// is written with a leading `'`.
pub async fn csv(
    state: web::Data<AppState>,
    CurrentUser(user): CurrentUser,
    path: web::Path<String>,
    query: web::Query<Filters>,
) -> Result<HttpResponse, AppError> {
    let client = owned(&state, &user, path.into_inner()).await?;
    let filters = query.into_inner();
    let target = client.clone();
    let found = db::run(&state.pool, move |conn| {
        let actions = AuditEvent::actions_for_client(conn, target.id)?;
        let read = filters.read(&actions);
        if !read.errors.is_empty() {
            let mut errors: Vec<_> = read.errors.into_values().collect();
            errors.sort();
            return Ok::<_, DbError>(Err(errors.join(" ")));
        }
        let (events, _) = AuditEvent::page_for_client(conn, target.id, &read.filter, CSV_LIMIT, 0)?;
        let names = actors(conn, &events)?;
        Ok(Ok((events, names)))
    })
    .await?;
    let (events, names) = match found {
        Ok(found) => found,
        Err(message) => {
            return Ok(HttpResponse::BadRequest()
                .content_type("text/plain; charset=utf-8")
                .body(message));
        }
    };
    let body = to_csv(&events, &names).map_err(|e| AppError::Internal(format!("CSV: {e}")))?;
    let filename = format!(
        "activity-{}-{}.csv",
        client.client_id,
        db::now().format("%Y-%m-%d")
    );
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{filename}\""),
        ))
        .insert_header(("Cache-Control", "no-store"))
        .body(body))
}

/// A cell as a spreadsheet should show it: text that starts like a formula (`=`, `+`, `-`,
/// `@`, a tab or a carriage return) gets a leading `'` (OWASP's advice on CSV injection).
fn cell(value: &str) -> std::borrow::Cow<'_, str> {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}").into()
    } else {
        value.into()
    }
}

fn to_csv(events: &[AuditEvent], names: &HashMap<UserId, String>) -> Result<Vec<u8>, csv::Error> {
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(["time_utc", "event", "detail", "who", "address"])?;
    for e in events {
        let when = e.created_at.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let who = who(e, names);
        out.write_record([
            when.as_str(),
            &cell(&e.action),
            &cell(&e.detail),
            &cell(&who),
            &cell(e.ip.as_deref().unwrap_or("")),
        ])?;
    }
    out.into_inner().map_err(|e| e.into_error().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_like_cells_are_defused() {
        assert_eq!(cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(cell("+1"), "'+1");
        assert_eq!(cell("-1"), "'-1");
        assert_eq!(cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(cell("created"), "created");
    }

    #[test]
    fn filters_are_checked_and_kept() {
        let actions = vec!["created".to_owned(), "edited".to_owned()];
        let read = Filters {
            action: "edited".into(),
            from: "2026-12-01".into(),
            to: "2026-12-03".into(),
            page: "2".into(),
        }
        .read(&actions);
        assert!(read.errors.is_empty());
        assert_eq!(read.page, 2);
        assert_eq!(read.filter.action.as_deref(), Some("edited"));
        assert_eq!(
            read.filter.until.map(|t| t.to_string()).as_deref(),
            Some("2026-12-04 00:00:00")
        );
        let read = Filters {
            action: "dropped_tables".into(),
            from: "yesterday".into(),
            to: "2026-12-03".into(),
            page: "-4".into(),
        }
        .read(&actions);
        assert_eq!(read.page, 1);
        assert!(read.errors["action"].starts_with("Event type:"));
        assert!(read.errors["from"].starts_with("From:"));
        let read = Filters {
            from: "2026-12-05".into(),
            to: "2026-12-03".into(),
            ..Default::default()
        }
        .read(&actions);
        assert_eq!(read.errors["to"], "To: choose a day on or after From.");
    }
}
