//! Liveness and readiness probes for load balancers and orchestrators, and counters for
//! Prometheus.

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::db;
use crate::state::AppState;

/// `GET /healthz`: the process is up and serving. Touches nothing else, so a slow database
/// never gets a healthy process restarted.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(json!({ "status": "ok" }))
}

/// `GET /readyz`: the database answers (and, on SQLite, its write lock can be taken), so this
/// instance can take traffic. Answers within about [`db::CHECKOUT_TIMEOUT`] when it does not.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match db::run(&state.pool, db::ping).await {
        Ok(()) => HttpResponse::Ok()
            .insert_header(("Cache-Control", "no-store"))
            .json(json!({ "status": "ok", "database": "ok" })),
        Err(error) => {
            tracing::warn!(error = %crate::error::error_chain(&error), "readiness check failed");
            HttpResponse::ServiceUnavailable()
                .insert_header(("Cache-Control", "no-store"))
                .insert_header(crate::error::retry_after())
                .json(json!({ "status": "unavailable", "database": "unreachable" }))
        }
    }
}

/// `GET /metrics`: counters in Prometheus' text format (version 0.0.4). Only counts: nothing
/// here names a user, a client or a token.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let pool = state.pool.state();
    let body = format!(
        "# HELP latchkey_sql_statements_total SQL statements run by this instance.\n\
         # TYPE latchkey_sql_statements_total counter\n\
         latchkey_sql_statements_total {}\n\
         # HELP latchkey_db_connections Open database connections in this instance's pool.\n\
         # TYPE latchkey_db_connections gauge\n\
         latchkey_db_connections {}\n\
         # HELP latchkey_db_connections_idle Idle database connections in this instance's pool.\n\
         # TYPE latchkey_db_connections_idle gauge\n\
         latchkey_db_connections_idle {}\n",
        state.statements.get(),
        pool.connections,
        pool.idle_connections,
    );
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(body)
}
