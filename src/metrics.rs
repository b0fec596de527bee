//! Prometheus metrics, recorded through the `metrics` facade and rendered by
//! `metrics-exporter-prometheus` on the metrics listener (`LATCHKEY_METRICS_BIND`), never on
//! the public one.
//!
//! Names and units follow Prometheus' conventions: `_total` counters, `_seconds` histograms,
//! base units. Labels are bounded sets (route patterns, not paths; status classes; grant
//! types; error codes): nothing names a person, a client or a token. Counters and histograms
//! are recorded where things happen; gauges that describe a state (the pool, the signing keys,
//! the password hashers) are read when the listener is scraped ([`render`]).

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram, gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::state::AppState;

pub const HTTP_REQUESTS: &str = "latchkey_http_requests_total";
pub const HTTP_DURATION: &str = "latchkey_http_request_duration_seconds";
pub const TOKENS_ISSUED: &str = "latchkey_tokens_issued_total";
pub const TOKEN_ERRORS: &str = "latchkey_token_errors_total";
pub const CLIENT_AUTH_FAILURES: &str = "latchkey_client_authentication_failures_total";
pub const SIGN_INS: &str = "latchkey_sign_ins_total";
pub const LOCKOUTS: &str = "latchkey_lockouts_total";
pub const DB_CONNECTIONS: &str = "latchkey_db_pool_connections";
pub const DB_WAIT: &str = "latchkey_db_pool_wait_seconds";
pub const SQL_STATEMENTS: &str = "latchkey_sql_statements_total";
pub const WRITER_WAITING: &str = "latchkey_sqlite_writer_waiting";
pub const WRITER_BATCH: &str = "latchkey_sqlite_writer_batch_size";
pub const PASSWORD_WAITING: &str = "latchkey_password_checks_waiting";
pub const PASSWORD_RUNNING: &str = "latchkey_password_checks_running";
pub const SIGNING_KEYS: &str = "latchkey_signing_keys";
pub const SIGNING_KEY_AGE: &str = "latchkey_signing_key_age_seconds";
pub const BUILD_INFO: &str = "latchkey_build_info";
pub const DRAINING: &str = "latchkey_draining";

/// Every metric: name, kind, unit and help, for the README's table and the exporter's `HELP`.
pub const CATALOGUE: &[(&str, &str, &str)] = &[
    (
        HTTP_REQUESTS,
        "counter",
        "HTTP requests answered, by `route` (the route's pattern, or `unmatched`), `method` and `status` class (`2xx`…`5xx`).",
    ),
    (
        HTTP_DURATION,
        "histogram",
        "Time from a request's arrival to its response, by `route`.",
    ),
    (
        TOKENS_ISSUED,
        "counter",
        "Token responses with tokens, by `grant_type` and `dialect` (`rfc6749` or `json`).",
    ),
    (
        TOKEN_ERRORS,
        "counter",
        "Token requests refused, by `error` (the RFC 6749 error code).",
    ),
    (
        CLIENT_AUTH_FAILURES,
        "counter",
        "Token requests whose client authentication failed, by the `method` tried (`client_secret_basic`, `client_secret_post`, `private_key_jwt`, `none`).",
    ),
    (
        SIGN_INS,
        "counter",
        "Password checks (sign-in, step-up, password grant), by `outcome` (`success`, `invalid`, `locked`).",
    ),
    (
        LOCKOUTS,
        "counter",
        "Throttle locks set: an account or an address had too many failures.",
    ),
    (
        DB_CONNECTIONS,
        "gauge",
        "This instance's database connections, by `state` (`in_use`, `idle`).",
    ),
    (
        DB_WAIT,
        "histogram",
        "Time a request waited for a pooled database connection.",
    ),
    (
        SQL_STATEMENTS,
        "counter",
        "SQL statements run by this instance.",
    ),
    (
        WRITER_WAITING,
        "gauge",
        "Writes waiting for the next SQLite group commit.",
    ),
    (WRITER_BATCH, "histogram", "Writes per SQLite group commit."),
    (
        PASSWORD_WAITING,
        "gauge",
        "Requests waiting for a password-hashing slot (argon2id).",
    ),
    (PASSWORD_RUNNING, "gauge", "Password hashing slots in use."),
    (
        SIGNING_KEYS,
        "gauge",
        "Published signing keys (the signer and retired keys still verifying).",
    ),
    (
        SIGNING_KEY_AGE,
        "gauge",
        "Age of the key that signs new tokens, by `algorithm`.",
    ),
    (
        BUILD_INFO,
        "gauge",
        "Always 1, with the `version` and `commit` running.",
    ),
    (
        DRAINING,
        "gauge",
        "1 from SIGTERM until the process exits (`/readyz` answers 503).",
    ),
];

/// Bucket bounds of the `_seconds` histograms: 0.5 ms to 10 s.
const SECONDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Bucket bounds of the group commit's batch sizes.
const BATCH: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process's recorder on first use (the tests start many servers in one process;
/// they share it) and returns the handle that renders it. `None` when another recorder was
/// installed first, which only an embedding program could do.
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE.get_or_init(install).as_ref()
}

fn install() -> Option<PrometheusHandle> {
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(WRITER_BATCH.into()), &BATCH));
    let handle = match builder.and_then(|b| b.install_recorder()) {
        Ok(handle) => handle,
        Err(error) => {
            tracing::warn!(%error, "metrics are off: the Prometheus recorder could not be installed");
            return None;
        }
    };
    for (name, kind, help) in CATALOGUE {
        let unit = name.ends_with("_seconds").then_some(Unit::Seconds);
        match (*kind, unit) {
            ("counter", _) => describe_counter!(*name, *help),
            ("histogram", Some(unit)) => describe_histogram!(*name, unit, *help),
            ("histogram", None) => describe_histogram!(*name, *help),
            (_, Some(unit)) => describe_gauge!(*name, unit, *help),
            _ => describe_gauge!(*name, *help),
        }
    }
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "commit" => env!("LATCHKEY_COMMIT"))
        .set(1.0);
    // Histogram samples are buffered until drained: drain them every few seconds whether or
    // not anyone scrapes, so memory stays flat.
    let upkeep = handle.clone();
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(5));
                upkeep.run_upkeep();
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "metrics upkeep thread did not start");
    }
    Some(handle)
}

/// Whether the recorder is installed: handles taken before it would record nothing forever.
fn recording() -> bool {
    matches!(HANDLE.get(), Some(Some(_)))
}

// Each thread keeps the handles it has used. Looking a metric up by name and labels takes the
// registry's shared lock and builds the key each time; under load on two cores that cost
// client_credentials (ES256) 18 % of its throughput (bench/run.sh, 20,180 req/s without the
// recorder, 16,459 with it), though callgrind, one request at a time, counted only 1 %. A
// handle is an `Arc` to the series' atomics: recording is one atomic operation.
thread_local! {
    static HTTP: std::cell::RefCell<std::collections::HashMap<String, Route>> =
        Default::default();
    static COUNTERS: std::cell::RefCell<
        std::collections::HashMap<(&'static str, &'static str, &'static str), metrics::Counter>,
    > = Default::default();
    static HISTOGRAMS: std::cell::RefCell<std::collections::HashMap<&'static str, metrics::Histogram>> =
        Default::default();
    static GAUGES: std::cell::RefCell<std::collections::HashMap<&'static str, metrics::Gauge>> =
        Default::default();
}

/// Adds `delta` (negative to take away) to gauge `name` (no labels).
pub fn add(name: &'static str, delta: f64) {
    if !recording() {
        return;
    }
    GAUGES.with_borrow_mut(|gauges| {
        gauges
            .entry(name)
            .or_insert_with(|| metrics::gauge!(name))
            .increment(delta);
    });
}

/// One route's handles: its latency histogram and its counters by method and status class.
struct Route {
    duration: metrics::Histogram,
    requests: std::collections::HashMap<(&'static str, &'static str), metrics::Counter>,
}

/// Counts an HTTP request of `route` (a pattern, or `unmatched`) and records its latency.
pub fn http_request(route: &str, method: &'static str, status: &'static str, seconds: f64) {
    if !recording() {
        return;
    }
    HTTP.with_borrow_mut(|routes| {
        if !routes.contains_key(route) {
            let owned = route.to_owned();
            let duration = metrics::histogram!(HTTP_DURATION, "route" => owned.clone());
            routes.insert(
                owned,
                Route {
                    duration,
                    requests: Default::default(),
                },
            );
        }
        let Some(entry) = routes.get_mut(route) else {
            return;
        };
        entry.duration.record(seconds);
        entry
            .requests
            .entry((method, status))
            .or_insert_with(|| {
                metrics::counter!(HTTP_REQUESTS, "route" => route.to_owned(), "method" => method, "status" => status)
            })
            .increment(1);
    });
}

/// Adds one to counter `name` with up to two static labels (`""` keys are left out).
pub fn count(name: &'static str, labels: [(&'static str, &'static str); 2]) {
    if !recording() {
        return;
    }
    let [(k1, v1), (k2, v2)] = labels;
    COUNTERS.with_borrow_mut(|counters| {
        counters
            .entry((name, v1, v2))
            .or_insert_with(|| match (k1.is_empty(), k2.is_empty()) {
                (true, _) => metrics::counter!(name),
                (false, true) => metrics::counter!(name, k1 => v1),
                (false, false) => metrics::counter!(name, k1 => v1, k2 => v2),
            })
            .increment(1);
    });
}

/// Records `value` in histogram `name` (no labels).
pub fn record(name: &'static str, value: f64) {
    if !recording() {
        return;
    }
    HISTOGRAMS.with_borrow_mut(|histograms| {
        histograms
            .entry(name)
            .or_insert_with(|| metrics::histogram!(name))
            .record(value);
    });
}

/// `2xx` for 200…299, and so on.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// The text a scrape gets: the state gauges read now, then everything recorded.
pub fn render(state: &AppState) -> String {
    let Some(handle) = handle() else {
        return String::new();
    };
    let pool = state.pool.state();
    let idle = f64::from(pool.idle_connections);
    let in_use = f64::from(pool.connections.saturating_sub(pool.idle_connections));
    gauge!(DB_CONNECTIONS, "state" => "in_use").set(in_use);
    gauge!(DB_CONNECTIONS, "state" => "idle").set(idle);
    metrics::counter!(SQL_STATEMENTS).absolute(state.statements.get());
    let ring = state.oauth.keys.current();
    gauge!(SIGNING_KEYS).set(ring.published() as f64);
    let age = (crate::db::now() - ring.signer_created_at)
        .num_seconds()
        .max(0);
    gauge!(SIGNING_KEY_AGE, "algorithm" => ring.signer.algorithm.as_str()).set(age as f64);
    gauge!(PASSWORD_RUNNING).set(state.passwords.running() as f64);
    gauge!(DRAINING).set(if state.draining() { 1.0 } else { 0.0 });
    handle.render()
}

#[cfg(test)]
mod tests {
    #[test]
    fn status_classes() {
        assert_eq!(super::status_class(204), "2xx");
        assert_eq!(super::status_class(302), "3xx");
        assert_eq!(super::status_class(429), "4xx");
        assert_eq!(super::status_class(503), "5xx");
    }

    #[test]
    fn names_follow_prometheus_conventions() {
        for (name, kind, _) in super::CATALOGUE {
            assert!(name.starts_with("latchkey_"), "{name}");
            assert_eq!(*kind == "counter", name.ends_with("_total"), "{name}");
        }
    }
}
