//! Request spans: what is logged while a request is handled names its request id (JSON logs),
//! and with `LATCHKEY_OTLP_ENDPOINT` the spans reach an OpenTelemetry collector over OTLP/HTTP,
//! here a small receiver that keeps what it is sent.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use crate::helpers::{TestApp, spawn_app};
use crate::served::Served;

fn served_env(app: &TestApp, extra: &[(&str, String)]) -> Vec<(String, String)> {
    let mut env = app.cli_env();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
    env
}

async fn token_request(served: &Served, client_id: &str, secret: &str, request_id: &str) {
    let res = reqwest::Client::new()
        .post(format!("{}/oauth/token", served.base()))
        .basic_auth(client_id, Some(secret))
        .header("X-Request-Id", request_id)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-request-id"], request_id);
}

/// An event logged deep inside a request (here each SQL statement, on a database thread)
/// carries the request's span: its id, route and grant.
#[tokio::test]
async fn what_a_request_logs_names_its_request_id() {
    let app = spawn_app().await;
    let client = app.merchant_client(&[]);
    let served = Served::start(
        &served_env(&app, &[("LATCHKEY_LOG", "info,latchkey::sql=trace".into())]),
        &[],
    );
    let request_id = format!("span-test-{}", crate::helpers::hex_id());
    token_request(&served, &client.client_id, &client.secret, &request_id).await;
    let wanted = request_id.clone();
    let statement = served
        .line(Duration::from_secs(10), move |line| {
            line["query"].is_string() && line["span"]["request_id"] == wanted.as_str()
        })
        .expect("no SQL statement logged under the request's span");
    assert_eq!(statement["span"]["grant_type"], "client_credentials");
    assert_eq!(statement["span"]["client_id"], client.client_id.as_str());
    assert_eq!(statement["span"]["http.request.method"], "POST");
}

/// A collector's OTLP/HTTP endpoint: answers 200 to every POST and keeps the bodies.
async fn receiver() -> (String, Arc<Mutex<Vec<(String, Vec<u8>)>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let received = Arc::new(Mutex::new(Vec::new()));
    let kept = received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let kept = kept.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let Ok(n) = stream.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                    let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buffer[..end]).to_string();
                    let length = head
                        .lines()
                        .find_map(|l| {
                            let (name, value) = l.split_once(':')?;
                            name.eq_ignore_ascii_case("content-length")
                                .then(|| value.trim().parse::<usize>().ok())
                                .flatten()
                        })
                        .unwrap_or(0);
                    if buffer.len() < end + 4 + length {
                        continue;
                    }
                    let body = buffer[end + 4..end + 4 + length].to_vec();
                    kept.lock().unwrap().push((head, body));
                    buffer.drain(..end + 4 + length);
                    let _ = stream
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n")
                        .await;
                }
            });
        }
    });
    (address, received)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

// The receiver must answer while this test waits for the process (a blocking wait).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_over_otlp_when_an_endpoint_is_set() {
    let app = spawn_app().await;
    let client = app.merchant_client(&[]);
    let (endpoint, received) = receiver().await;
    let mut served = Served::start(
        &served_env(&app, &[("LATCHKEY_OTLP_ENDPOINT", endpoint)]),
        &[],
    );
    let request_id = format!("otlp-test-{}", crate::helpers::hex_id());
    token_request(&served, &client.client_id, &client.secret, &request_id).await;
    // Stopping flushes what is batched.
    served.signal("INT");
    assert!(served.wait(Duration::from_secs(20)).success());

    let received = received.lock().unwrap();
    let (head, body) = received
        .iter()
        .find(|(_, body)| contains(body, &request_id))
        .unwrap_or_else(|| {
            panic!(
                "the request's span was not exported ({} posts)",
                received.len()
            )
        });
    assert!(head.starts_with("POST /v1/traces "), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/x-protobuf"),
        "{head}"
    );
    for wanted in [
        "latchkey",
        "POST /oauth/token",
        "client_credentials",
        client.client_id.as_str(),
        "http.route",
    ] {
        assert!(
            contains(body, wanted),
            "{wanted} is not in the exported span"
        );
    }
}
