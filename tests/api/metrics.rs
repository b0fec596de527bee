//! Metrics: served on `LATCHKEY_METRICS_BIND` only, with what an operator watches. The recorder
//! is one per process and the tests run side by side, so counts are compared as increases of at
//! least what this test did.

use serde_json::json;

use crate::helpers::{MERCHANT_PASSWORD, TestApp, spawn_app};
use crate::served::metric;

async fn scrape(app: &TestApp) -> String {
    let res = reqwest::get(format!("{}/metrics", app.metrics_address))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    res.text().await.unwrap()
}

#[tokio::test]
async fn metrics_are_not_served_on_the_public_listener() {
    let app = spawn_app().await;
    let res = app.get("/metrics").await;
    assert_eq!(res.status(), 404);
    // And the metrics listener serves nothing else.
    let res = reqwest::get(format!("{}/oauth/token", app.metrics_address))
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let text = scrape(&app).await;
    let version = env!("CARGO_PKG_VERSION");
    let build = text
        .lines()
        .find(|l| l.starts_with("latchkey_build_info{"))
        .unwrap_or_else(|| panic!("no build info in {text}"));
    assert!(build.contains(&format!("version=\"{version}\"")), "{build}");
    assert!(build.contains("commit=\""), "{build}");
    assert!(build.ends_with(" 1"), "{build}");
}

#[tokio::test]
async fn tokens_errors_and_client_authentication_failures_are_counted() {
    let app = spawn_app().await;
    let client = app.merchant_client(&[]);
    let before = scrape(&app).await;

    let res = app
        .token_json(Some(&client), json!({ "grantType": "client_credentials" }))
        .await;
    assert_eq!(res.status(), 200);
    let res = app
        .token_form(Some(&client), &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(res.status(), 200);
    let wrong = crate::helpers::TestClient {
        client_id: client.client_id.clone(),
        secret: "not the secret".into(),
        owner_id: client.owner_id,
    };
    let res = app
        .token_form(Some(&wrong), &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(res.status(), 401);
    let res = app
        .api
        .post(app.url("/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client.client_id.as_str()),
            ("client_secret", "not the secret"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = app
        .token_form(Some(&client), &[("grant_type", "magic")])
        .await;
    assert_eq!(res.status(), 400);

    let after = scrape(&app).await;
    let grew = |name: &str, labels: &[(&str, &str)]| {
        metric(&after, name, labels) - metric(&before, name, labels)
    };
    let issued = "latchkey_tokens_issued_total";
    let cc = ("grant_type", "client_credentials");
    assert!(grew(issued, &[cc, ("dialect", "json")]) >= 1.0, "{after}");
    assert!(
        grew(issued, &[cc, ("dialect", "rfc6749")]) >= 1.0,
        "{after}"
    );
    let errors = "latchkey_token_errors_total";
    assert!(grew(errors, &[("error", "invalid_client")]) >= 2.0);
    assert!(grew(errors, &[("error", "unsupported_grant_type")]) >= 1.0);
    let failures = "latchkey_client_authentication_failures_total";
    assert!(grew(failures, &[("method", "client_secret_basic")]) >= 1.0);
    assert!(grew(failures, &[("method", "client_secret_post")]) >= 1.0);

    // Requests by route pattern and status class, with their latency.
    let requests = "latchkey_http_requests_total";
    let token_route = [("route", "/oauth/token"), ("method", "POST")];
    assert!(
        grew(
            requests,
            &[token_route[0], token_route[1], ("status", "2xx")]
        ) >= 1.0
    );
    assert!(
        grew(
            requests,
            &[token_route[0], token_route[1], ("status", "4xx")]
        ) >= 3.0
    );
    assert!(grew(requests, &[("route", "/v1/token"), ("status", "2xx")]) >= 1.0);
    let count = "latchkey_http_request_duration_seconds_count";
    assert!(grew(count, &[("route", "/oauth/token")]) >= 4.0);
    assert!(
        after.contains(
            "latchkey_http_request_duration_seconds_bucket{route=\"/oauth/token\",le=\"0.0005\"}"
        ),
        "{after}"
    );

    // The state read at each scrape.
    for (name, labels) in [
        ("latchkey_db_pool_connections", vec![("state", "idle")]),
        ("latchkey_db_pool_connections", vec![("state", "in_use")]),
        ("latchkey_signing_keys", vec![]),
        (
            "latchkey_signing_key_age_seconds",
            vec![("algorithm", "RS256")],
        ),
        ("latchkey_password_checks_running", vec![]),
        ("latchkey_draining", vec![]),
    ] {
        assert!(
            after.lines().any(|l| l.starts_with(name)
                && labels
                    .iter()
                    .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))),
            "{name} {labels:?} missing: {after}"
        );
    }
    assert!(metric(&after, "latchkey_signing_keys", &[]) >= 1.0);
    // Set from the server's own counter at each scrape (the servers of this process take turns
    // with it, so only its presence is checked here).
    assert!(
        after.contains("\nlatchkey_sql_statements_total "),
        "{after}"
    );
    assert!(grew("latchkey_db_pool_wait_seconds_count", &[]) >= 1.0);
    // Every metric has its help text, with the unit in the name.
    for name in [issued, errors, failures, requests] {
        assert!(after.contains(&format!("# HELP {name} ")), "{name}");
        assert!(after.contains(&format!("# TYPE {name} counter")), "{name}");
    }
    assert!(after.contains("# TYPE latchkey_http_request_duration_seconds histogram"));
}

#[tokio::test]
async fn unknown_paths_are_one_series_not_one_per_path() {
    let app = spawn_app().await;
    let path = format!("/no/such/{}", crate::helpers::hex_id());
    assert_eq!(app.get(&path).await.status(), 404);
    let text = scrape(&app).await;
    assert!(!text.contains(&path), "a raw path became a label");
    assert!(
        metric(
            &text,
            "latchkey_http_requests_total",
            &[("route", "unmatched"), ("status", "4xx")]
        ) >= 1.0
    );
}

#[tokio::test]
async fn sign_ins_and_lockouts_are_counted() {
    let app = spawn_app().await;
    app.create_user("merchant", MERCHANT_PASSWORD);
    let before = scrape(&app).await;
    let res = app
        .post_form(
            "/login",
            "/login",
            &[("username", "merchant"), ("password", MERCHANT_PASSWORD)],
        )
        .await;
    assert_eq!(res.status(), 303);
    let stranger = app.new_browser();
    for _ in 0..5 {
        let res = app
            .post_form_in(
                &stranger,
                "/login",
                "/login",
                &[("username", "merchant"), ("password", "wrong password!")],
            )
            .await;
        assert_eq!(res.status(), 422);
    }
    let after = scrape(&app).await;
    let grew = |name: &str, labels: &[(&str, &str)]| {
        metric(&after, name, labels) - metric(&before, name, labels)
    };
    assert!(grew("latchkey_sign_ins_total", &[("outcome", "success")]) >= 1.0);
    assert!(grew("latchkey_sign_ins_total", &[("outcome", "invalid")]) >= 5.0);
    assert!(grew("latchkey_lockouts_total", &[]) >= 1.0, "{after}");
}

/// The README's table of metrics is the catalogue the exporter describes: a metric added
/// without a row fails here.
#[test]
fn the_readme_lists_every_metric() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for (name, kind, _) in latchkey::metrics::CATALOGUE {
        assert!(
            readme.contains(&format!("| `{name}` | {kind} |")),
            "README.md has no row for {name} ({kind})"
        );
    }
}
