//! Attacks on client authentication (RFC 6749 §2.3, §5.2): two methods at once, a secret in the
//! URL, malformed credentials, unknown client against wrong secret (status, body and time),
//! disabled and deleted clients.

use std::time::{Duration, Instant};

use diesel::prelude::*;
use latchkey::db::schema::clients;
use serde_json::json;

use super::{Expect, H, assert_similar_times, check, median};
use crate::helpers::{MERCHANT_PASSWORD, TestApp, TestClient, spawn_app};

/// A case: name, query string, `Authorization` header, form, expectation.
type Row<'a> = (
    &'a str,
    &'a str,
    Option<String>,
    Vec<(&'a str, &'a str)>,
    Expect,
);

const BASIC: &str = r#"Basic realm="latchkey", charset="UTF-8""#;

fn invalid_client() -> Expect {
    Expect::new(401)
        .error("invalid_client")
        .no_store()
        .header(H::Is("www-authenticate", BASIC))
}

fn invalid_request() -> Expect {
    Expect::new(400).error("invalid_request").no_store()
}

/// A raw form request to the token endpoint: `query` appended to the URL, optional
/// `Authorization` header.
async fn raw(
    app: &TestApp,
    query: &str,
    authorization: Option<&str>,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = app
        .api
        .post(app.url(&format!("/oauth/token{query}")))
        .form(form);
    if let Some(a) = authorization {
        req = req.header("Authorization", a);
    }
    req.send().await.unwrap()
}

fn basic(id: &str, secret: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

#[tokio::test]
async fn malformed_doubled_and_misplaced_credentials() {
    let app = spawn_app().await;
    let client = app.merchant_client(&[]);
    let (id, secret) = (client.client_id.as_str(), client.secret.as_str());
    let good = basic(id, secret);
    let cc = ("grant_type", "client_credentials");
    let long = "x".repeat(300);
    let query = format!("?client_id={id}&client_secret={secret}");
    let rows: Vec<Row> = vec![
        (
            "baseline: Basic",
            "",
            Some(good.clone()),
            vec![cc],
            Expect::new(200).no_store(),
        ),
        (
            "baseline: in the body",
            "",
            None,
            vec![cc, ("client_id", id), ("client_secret", secret)],
            Expect::new(200).no_store(),
        ),
        (
            "Basic and client_secret in the body",
            "",
            Some(good.clone()),
            vec![cc, ("client_secret", secret)],
            invalid_request(),
        ),
        (
            "Basic and another client_id in the body",
            "",
            Some(good.clone()),
            vec![cc, ("client_id", "1234567890123456789")],
            invalid_request(),
        ),
        (
            "secret in the query string only",
            &query,
            None,
            vec![cc],
            invalid_request(),
        ),
        (
            "secret in the query string and Basic",
            &query,
            Some(good.clone()),
            vec![cc],
            invalid_request(),
        ),
        (
            "camelCase clientSecret in the query string",
            "?clientSecret=x",
            Some(good.clone()),
            vec![cc],
            invalid_request(),
        ),
        ("no credentials", "", None, vec![cc], invalid_client()),
        (
            "Basic that is not base64",
            "",
            Some("Basic !!!".into()),
            vec![cc],
            invalid_client(),
        ),
        (
            "Basic without a colon",
            "",
            Some(format!("Basic {}", base64_of(id))),
            vec![cc],
            invalid_client(),
        ),
        (
            "Bearer instead of Basic",
            "",
            Some(format!("Bearer {secret}")),
            vec![cc],
            invalid_client(),
        ),
        (
            "empty secret",
            "",
            Some(basic(id, "")),
            vec![cc],
            invalid_client(),
        ),
        (
            "empty client_id",
            "",
            Some(basic("", secret)),
            vec![cc],
            invalid_client(),
        ),
        (
            "oversized secret",
            "",
            Some(basic(id, &long)),
            vec![cc],
            invalid_client(),
        ),
        (
            "oversized client_id",
            "",
            Some(basic(&long, secret)),
            vec![cc],
            invalid_client(),
        ),
        (
            "secret with a different case",
            "",
            Some(basic(id, &secret.to_uppercase())),
            vec![cc],
            invalid_client(),
        ),
        (
            "secret missing its last character",
            "",
            Some(basic(id, &secret[..secret.len() - 1])),
            vec![cc],
            invalid_client(),
        ),
        (
            "a confidential client posing as public",
            "",
            None,
            vec![cc, ("client_id", id)],
            invalid_client(),
        ),
    ];
    for (name, query, authorization, form, expect) in rows {
        check(
            name,
            raw(&app, query, authorization.as_deref(), &form).await,
            &expect,
        )
        .await;
    }
    // The other endpoints that authenticate clients refuse a secret in the URL too.
    for path in ["/oauth/introspect", "/oauth/revoke"] {
        let res = app
            .api
            .post(app.url(&format!("{path}?client_secret={secret}")))
            .header("Authorization", good.as_str())
            .form(&[("token", "anything")])
            .send()
            .await
            .unwrap();
        check(
            &format!("secret in the query string at {path}"),
            res,
            &invalid_request(),
        )
        .await;
    }
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[tokio::test]
async fn unknown_client_and_wrong_secret_are_indistinguishable() {
    let app = spawn_app().await;
    let client = app.merchant_client(&[]);
    let wrong = TestClient {
        client_id: client.client_id.clone(),
        secret: format!("{}x", &client.secret[..client.secret.len() - 1]),
        owner_id: 0,
    };
    let unknown = TestClient {
        client_id: "1234567890123456789".into(),
        secret: client.secret.clone(),
        owner_id: 0,
    };
    // Status, headers and bodies, byte for byte, in both dialects.
    let mut seen = Vec::new();
    for (name, who) in [("wrong secret", &wrong), ("unknown client", &unknown)] {
        let form = app
            .token_form(Some(who), &[("grant_type", "client_credentials")])
            .await;
        let form = check(&format!("{name}, form"), form, &invalid_client()).await;
        let rm = app
            .token_json(Some(who), json!({"grantType": "client_credentials"}))
            .await;
        let rm = check(
            &format!("{name}, JSON"),
            rm,
            &Expect::new(401)
                .error("InvalidClient")
                .no_store()
                .header(H::Is("www-authenticate", BASIC)),
        )
        .await;
        seen.push((form.body, rm.body));
    }
    assert_eq!(seen[0], seen[1], "case `bodies differ`");

    // Time: medians of alternating requests, so load on the machine hits both alike.
    let mut times: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..15 {
        for (i, who) in [&wrong, &unknown].into_iter().enumerate() {
            let started = Instant::now();
            let res = app
                .token_form(Some(who), &[("grant_type", "client_credentials")])
                .await;
            assert_eq!(res.status(), 401);
            times[i].push(started.elapsed());
        }
    }
    let [a, b] = times;
    assert_similar_times(
        "case `wrong secret vs unknown client, time`",
        median(a),
        median(b),
    );
}

#[tokio::test]
async fn disabled_and_deleted_clients_are_refused() {
    let app = spawn_app().await;
    let client = app.merchant_client(&[]);
    let doomed = app.merchant_client(&[]);
    let cc = [("grant_type", "client_credentials")];
    diesel::update(clients::table.filter(clients::client_id.eq(&client.client_id)))
        .set(clients::is_enabled.eq(false))
        .execute(&mut app.db.connect())
        .unwrap();
    check(
        "disabled client, form",
        app.token_form(Some(&client), &cc).await,
        &invalid_client(),
    )
    .await;
    let res = app
        .token_json(Some(&client), json!({"grantType": "client_credentials"}))
        .await;
    check(
        "disabled client, JSON",
        res,
        &Expect::new(401)
            .error("InActiveClient")
            .no_store()
            .header(H::Is("www-authenticate", BASIC)),
    )
    .await;

    // Deleted through the portal, as its owner would.
    let token: serde_json::Value = app
        .token_form(Some(&doomed), &cc)
        .await
        .json()
        .await
        .unwrap();
    let access = token["access_token"].as_str().unwrap();
    app.log_in("merchant", MERCHANT_PASSWORD).await;
    let show = format!("/developer/applications/{}", doomed.client_id);
    let res = app.delete_app(&show).await;
    assert_eq!(res.status(), 303, "delete failed");
    let deleted = check(
        "deleted client",
        app.token_form(Some(&doomed), &cc).await,
        &invalid_client(),
    )
    .await;
    let unknown = TestClient {
        client_id: "1234567890123456789".into(),
        secret: doomed.secret.clone(),
        owner_id: 0,
    };
    let never = check(
        "never existed",
        app.token_form(Some(&unknown), &cc).await,
        &invalid_client(),
    )
    .await;
    assert_eq!(
        deleted.body, never.body,
        "case `deleted looks like unknown`"
    );
    check(
        "a deleted client's access token",
        app.profile(access).await,
        &Expect::new(401).error("invalid_token"),
    )
    .await;
    // Introspection by a deleted client.
    let res = app
        .api
        .post(app.url("/oauth/introspect"))
        .basic_auth(&doomed.client_id, Some(&doomed.secret))
        .form(&[("token", access)])
        .send()
        .await
        .unwrap();
    check(
        "introspection by a deleted client",
        res,
        &Expect::new(401).error("invalid_client").no_store(),
    )
    .await;
}
