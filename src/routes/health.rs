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

/// `GET /readyz`: the instance is not shutting down, and the database answers (and, on
/// SQLite, its write lock can be taken), so this instance can take traffic. Answers within
/// about [`db::CHECKOUT_TIMEOUT`] when it does not.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.draining() {
        // SIGTERM: this instance is going away. Requests are still served until the listener
        // closes; a balancer that sees this stops sending new ones.
        return HttpResponse::ServiceUnavailable()
            .insert_header(("Cache-Control", "no-store"))
            .insert_header(crate::error::retry_after())
            .json(json!({ "status": "draining" }));
    }
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

/// `GET /metrics` on the metrics listener: Prometheus' text format (version 0.0.4), every
/// metric in [`crate::metrics::CATALOGUE`]. Only counts: nothing here names a user, a client or
/// a token.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let body = crate::metrics::render(&state);
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(body)
}
