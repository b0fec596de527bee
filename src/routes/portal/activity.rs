//! `GET /developer/applications/{id}/activity`: the audit log, tokens issued per day over the
//! last 14 days (a bar chart drawn with CSS), and how many people have authorized the app.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde_json::json;

use super::{owned, summary};
use crate::auth::session::TypedSession;
use crate::clients;
use crate::db::models::{AuditEvent, User};
use crate::db::{self, DbError};
use crate::error::AppError;
use crate::routes::page::{CurrentUser, render};
use crate::state::AppState;

pub async fn show(
    state: web::Data<AppState>,
    session: TypedSession,
    CurrentUser(user): CurrentUser,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let client = owned(&state, &user, path.into_inner()).await?;
    let target = client.clone();
    let (usage, events, actors) = db::run(&state.pool, move |conn| {
        let usage = clients::usage(conn, &target)?;
        let events = AuditEvent::for_client(conn, target.id, 100)?;
        let mut actors = std::collections::HashMap::new();
        for id in events.iter().filter_map(|e| e.user_id) {
            if let std::collections::hash_map::Entry::Vacant(slot) = actors.entry(id) {
                slot.insert(
                    User::find(conn, id)?
                        .map(|u| u.username)
                        .unwrap_or_else(|| "deleted user".into()),
                );
            }
        }
        Ok::<_, DbError>((usage, events, actors))
    })
    .await?;
    let max = usage
        .tokens_per_day
        .iter()
        .map(|(_, n)| *n)
        .max()
        .unwrap_or(0)
        .max(1);
    let bars: Vec<_> = usage
        .tokens_per_day
        .iter()
        .map(|(day, n)| json!({ "day": day, "label": day.get(8..).unwrap_or(day), "count": n, "percent": n * 100 / max }))
        .collect();
    let total: i64 = usage.tokens_per_day.iter().map(|(_, n)| n).sum();
    let events: Vec<_> = events
        .iter()
        .map(|e| {
            json!({
                "action": e.action.replace('_', " "),
                "detail": e.detail,
                "who": e.user_id.and_then(|id| actors.get(&id).cloned()).unwrap_or_else(|| "system".into()),
                "ip": e.ip,
                "when": e.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            })
        })
        .collect();
    let mut ctx = tera::Context::new();
    ctx.insert("app", &summary(&client));
    ctx.insert("bars", &bars);
    ctx.insert("total_tokens", &total);
    ctx.insert("authorized_users", &usage.authorized_users);
    ctx.insert("events", &events);
    render(
        &state,
        &session,
        Some(&user),
        "portal/activity.html",
        ctx,
        StatusCode::OK,
    )
}
