//! Logging and tracing: the subscriber set up once by `main`, a span per HTTP request, one log
//! line per request, the HTTP metrics, and OTLP export of the spans when
//! `LATCHKEY_OTLP_ENDPOINT` is set.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use opentelemetry::trace::TracerProvider as _;
use tracing::Instrument as _;
use tracing::field::Empty;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::LogFormat;

/// Header carrying the request id, echoed from the client when well-formed, else generated.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Whether spans are exported (an OTLP endpoint was set and its exporter built).
static EXPORTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Keeps the trace exporter running; dropping it sends what is buffered and stops it.
#[must_use = "traces are exported only while this is held"]
pub struct Telemetry {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// Installs the global subscriber: log lines to standard error, filtered by `filter`, and,
/// with `otlp`, every span at `info` and above sent to that collector (OTLP/HTTP, protobuf, to
/// `<otlp>/v1/traces`). Calling it twice is harmless. Call it before any async runtime starts
/// (the exporter's HTTP client makes its own).
pub fn init(format: LogFormat, filter: &str, otlp: Option<&url::Url>) -> Telemetry {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let logs: BoxedLayer = match format {
        LogFormat::Text => Box::new(fmt.with_filter(filter)),
        LogFormat::Json => Box::new(fmt.json().flatten_event(true).with_filter(filter)),
    };
    let mut layers = vec![logs];
    let mut provider = None;
    if let Some(endpoint) = otlp {
        match exporter(endpoint) {
            Ok(built) => {
                let tracer = built.tracer("latchkey");
                layers.push(Box::new(
                    tracing_opentelemetry::layer()
                        .with_tracer(tracer)
                        .with_filter(tracing::level_filters::LevelFilter::INFO),
                ));
                provider = Some(built);
                EXPORTING.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            Err(error) => eprintln!("latchkey: LATCHKEY_OTLP_ENDPOINT: traces are off: {error}"),
        }
    }
    let _ = tracing_subscriber::registry().with(layers).try_init();
    Telemetry { provider }
}

/// The tracer provider: spans batched and sent by the SDK's own thread.
fn exporter(
    endpoint: &url::Url,
) -> Result<opentelemetry_sdk::trace::SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    use opentelemetry_otlp::{Protocol, WithExportConfig as _};
    let traces = format!("{}/v1/traces", endpoint.as_str().trim_end_matches('/'));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(traces)
        .with_timeout(std::time::Duration::from_secs(5))
        .build()?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("latchkey")
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    Ok(opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// Middleware: gives each request an id (the `X-Request-Id` response header) and a span
/// carrying it (so every event logged while handling the request names it, and a trace shows
/// it), logs one line when it completes (method, path, status, latency, request id), and counts
/// it in the HTTP metrics by route pattern and status class.
pub async fn log_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_safe_request_id(v))
        .map(str::to_owned)
        .unwrap_or_else(|| crate::crypto::random_token(12));
    let method = req.method().clone();
    // The path only: query strings may carry codes and tokens, which never go to the log.
    let path = req.path().to_owned();
    // Named as OpenTelemetry's HTTP conventions name them; the token endpoint records the grant,
    // dialect and client it was asked for (`routes::token`).
    let span = tracing::info_span!(
        "request",
        otel.kind = "server",
        request_id = %request_id,
        http.request.method = %method,
        http.route = Empty,
        http.response.status_code = Empty,
        grant_type = Empty,
        dialect = Empty,
        client_id = Empty,
    );

    let result = next.call(req).instrument(span.clone()).await;
    let latency = started.elapsed();
    let latency_ms = latency.as_secs_f64() * 1000.0;
    let (status, route) = match &result {
        Ok(res) => (
            res.status().as_u16(),
            res.request().match_pattern().unwrap_or_default(),
        ),
        Err(error) => (
            error.as_response_error().status_code().as_u16(),
            String::new(),
        ),
    };
    let route = if route.is_empty() {
        "unmatched".to_owned()
    } else {
        route
    };
    // The log line below says the path and status; the span gets them for the trace only
    // (recording a field reformats the span's fields for the log, at a cost on every request).
    if EXPORTING.load(std::sync::atomic::Ordering::Relaxed) && !span.is_disabled() {
        span.record("http.route", route.as_str());
        span.record("http.response.status_code", status);
        // OpenTelemetry's name for a server span, "{method} {route}", known only now that the
        // request was routed (a field recorded this late no longer renames it).
        use opentelemetry::trace::TraceContextExt as _;
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        span.context()
            .span()
            .update_name(format!("{method} {route}"));
    }
    crate::metrics::http_request(
        &route,
        method_label(&method),
        crate::metrics::status_class(status),
        latency.as_secs_f64(),
    );
    let method = method.as_str();
    tracing::info!(%request_id, %method, %path, status, latency_ms = format_args!("{latency_ms:.2}"), "request");
    match result {
        Ok(mut res) => {
            if let Ok(value) = HeaderValue::from_str(&request_id) {
                res.headers_mut().insert(REQUEST_ID, value);
            }
            Ok(res)
        }
        Err(error) => Err(error),
    }
}

/// A bounded label: the standard methods by name, anything else as `other`.
fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// Accept a caller's request id only if it cannot forge log lines or headers.
fn is_safe_request_id(value: &str) -> bool {
    (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_ids_from_clients_are_restricted() {
        assert!(super::is_safe_request_id("abc-123_x.y"));
        assert!(!super::is_safe_request_id("bad\nline"));
        assert!(!super::is_safe_request_id(""));
        assert!(!super::is_safe_request_id(&"a".repeat(65)));
    }
}
