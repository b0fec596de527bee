//! The attack suite: one module per threat, each case a request sequence from outside with the
//! exact status, error code, headers and whether (and where) it redirects. Tables where cases
//! share a setup; every row is a case and a failure names its row.
//!
//! Runs on SQLite and, with `TEST_DATABASE_URL`, on PostgreSQL, like the rest of the suite.

mod assertions;
mod authorize;
mod brute_force;
mod client_auth;
mod codes;
mod dpop;
mod headers;
mod introspection;
mod jwt;
mod par;
mod prompt;
mod refresh;
mod revocation;
mod sessions;
mod takeover;

use std::collections::HashMap;

use serde_json::Value;

/// One header expectation.
#[derive(Debug, Clone, Copy)]
pub enum H {
    /// Present with exactly this value.
    Is(&'static str, &'static str),
    /// Present and containing this text.
    Has(&'static str, &'static str),
    /// Not sent at all.
    Absent(&'static str),
}

/// What a case must answer.
#[derive(Debug, Clone)]
pub struct Expect {
    pub status: u16,
    /// The OAuth error: `error` of a JSON body (or `error.code` in Revenue Monster's dialect), or
    /// of the redirect's query, or of a `WWW-Authenticate: Bearer` challenge. `None`: no error.
    pub error: Option<&'static str>,
    /// `Some(prefix)`: a `Location` starting with it; `None`: no `Location` at all.
    pub redirect: Option<String>,
    pub headers: Vec<H>,
}

impl Expect {
    pub fn new(status: u16) -> Self {
        Self {
            status,
            error: None,
            redirect: None,
            headers: Vec::new(),
        }
    }

    pub fn error(mut self, error: &'static str) -> Self {
        self.error = Some(error);
        self
    }

    pub fn redirect(mut self, prefix: impl Into<String>) -> Self {
        self.redirect = Some(prefix.into());
        self
    }

    pub fn header(mut self, h: H) -> Self {
        self.headers.push(h);
        self
    }

    /// RFC 6749 §5.1/§5.2: token-endpoint answers are never cached.
    pub fn no_store(self) -> Self {
        self.header(H::Is("cache-control", "no-store"))
    }
}

/// What a case answered, for further checks.
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub location: Option<String>,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    pub fn query(&self) -> HashMap<String, String> {
        self.location
            .as_deref()
            .and_then(|l| url::Url::parse(l).ok())
            .map(|u| u.query_pairs().into_owned().collect())
            .unwrap_or_default()
    }
}

fn header_str(headers: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// The error an answer carries, wherever the protocol puts it.
fn error_of(answer: &Answer) -> Option<String> {
    if let Some(e) = answer.query().get("error") {
        return Some(e.clone());
    }
    let body = answer.json();
    if let Some(e) = body["error"].as_str() {
        return Some(e.to_owned());
    }
    if let Some(e) = body["error"]["code"].as_str() {
        return Some(e.to_owned());
    }
    let challenge = header_str(&answer.headers, "www-authenticate")?;
    let (_, rest) = challenge.split_once("error=\"")?;
    rest.split('"').next().map(str::to_owned)
}

/// Reads the response and asserts every expectation, naming the case on failure.
pub async fn check(case: &str, res: reqwest::Response, expect: &Expect) -> Answer {
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let location = header_str(&headers, "location");
    let body = res.text().await.unwrap_or_default();
    let answer = Answer {
        status,
        headers,
        location,
        body,
    };
    let short: String = answer.body.chars().take(300).collect();
    assert_eq!(
        answer.status, expect.status,
        "case `{case}`: status (location {:?}, body {short})",
        answer.location
    );
    match (&expect.redirect, &answer.location) {
        (None, None) => {}
        (None, Some(l)) => panic!("case `{case}`: redirected to {l}, expected no redirect"),
        (Some(p), None) => panic!("case `{case}`: no redirect, expected one to {p}"),
        (Some(p), Some(l)) => assert!(
            l.starts_with(p.as_str()),
            "case `{case}`: redirected to {l}, expected {p}…"
        ),
    }
    assert_eq!(
        error_of(&answer).as_deref(),
        expect.error,
        "case `{case}`: error (body {short})"
    );
    for h in &expect.headers {
        match *h {
            H::Is(name, value) => assert_eq!(
                header_str(&answer.headers, name).as_deref(),
                Some(value),
                "case `{case}`: header {name}"
            ),
            H::Has(name, value) => assert!(
                header_str(&answer.headers, name).is_some_and(|v| v.contains(value)),
                "case `{case}`: header {name} should contain {value:?}, got {:?}",
                header_str(&answer.headers, name)
            ),
            H::Absent(name) => assert!(
                !answer.headers.contains_key(name),
                "case `{case}`: header {name} should be absent"
            ),
        }
    }
    answer
}

/// The median of some durations.
pub fn median(mut times: Vec<std::time::Duration>) -> std::time::Duration {
    times.sort();
    times[times.len() / 2]
}

/// Asserts two medians are within an order of magnitude of each other: loose enough for a
/// shared machine, tight enough to catch a skipped password hash (argon2 against nothing).
pub fn assert_similar_times(what: &str, a: std::time::Duration, b: std::time::Duration) {
    let ratio = a.as_secs_f64() / b.as_secs_f64().max(1e-6);
    assert!(
        (0.1..10.0).contains(&ratio),
        "{what}: medians {a:?} vs {b:?} differ measurably"
    );
}
