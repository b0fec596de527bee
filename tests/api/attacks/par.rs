//! Attacks on pushed authorization requests (RFC 9126): a `request_uri` used twice, by
//! another client, after its minute, made up, or a URL to fetch; outer parameters that try to
//! override the pushed ones; a client that requires PAR started with a crafted URL; and pushes
//! that the authorization endpoint's checks refuse.

use serde_json::Value;

use super::{Expect, H, check};
use crate::helpers::{CALLBACK, CHALLENGE, TestApp, TestClient, authorize_path, setup, spawn_app};

const PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// Our error page: never a redirect.
fn page() -> Expect {
    Expect::new(400)
        .header(H::Is("x-frame-options", "DENY"))
        .header(H::Absent("location"))
}

/// A push: its name, who pushes, the form, the answer.
type Push<'a> = (&'a str, &'a TestClient, Vec<(&'a str, &'a str)>, Expect);

fn json_error(status: u16, error: &'static str) -> Expect {
    Expect::new(status).error(error).no_store()
}

fn request() -> Vec<(&'static str, &'static str)> {
    vec![
        ("response_type", "code"),
        ("redirect_uri", CALLBACK),
        ("scope", "get_user_profile"),
        ("state", "pushed"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ]
}

async fn push(app: &TestApp, client: &TestClient, form: &[(&str, &str)]) -> reqwest::Response {
    app.api
        .post(app.url("/oauth/par"))
        .basic_auth(&client.client_id, Some(&client.secret))
        .form(form)
        .send()
        .await
        .unwrap()
}

async fn pushed(app: &TestApp, client: &TestClient) -> String {
    let res = push(app, client, &request()).await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    body["request_uri"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn request_uris_serve_once_their_own_client_within_their_minute() {
    let app = spawn_app().await;
    let client = setup(&app);
    let other = app.merchant_client(&["--redirect-uri", CALLBACK]);
    let id = client.client_id.as_str();

    let used = pushed(&app, &client).await;
    let first = app
        .get(&authorize_path(&[
            ("client_id", id),
            ("request_uri", &used),
        ]))
        .await;
    assert_eq!(first.status(), 303, "the first use goes on to sign-in");
    let theirs = pushed(&app, &client).await;
    let expired = pushed(&app, &client).await;
    {
        use diesel::connection::SimpleConnection as _;
        let digest = latchkey::crypto::token_digest(&expired);
        app.db
            .connect()
            .batch_execute(&format!(
                "UPDATE pushed_requests SET expires_at = '2000-01-01 00:00:00' WHERE id = '{digest}'"
            ))
            .unwrap();
    }
    let made_up = format!("{PREFIX}{}", "A".repeat(43));
    let rows: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "used twice",
            vec![("client_id", id), ("request_uri", &used)],
        ),
        (
            "another client's request_uri",
            vec![("client_id", &other.client_id), ("request_uri", &theirs)],
        ),
        (
            "past its minute",
            vec![("client_id", id), ("request_uri", &expired)],
        ),
        (
            "made up",
            vec![("client_id", id), ("request_uri", &made_up)],
        ),
        (
            "a URL to fetch",
            vec![
                ("client_id", id),
                ("request_uri", "https://attacker.example/request.jwt"),
            ],
        ),
        ("no client_id", vec![("request_uri", &made_up)]),
    ];
    for (name, pairs) in rows {
        let res = app.get(&authorize_path(&pairs)).await;
        let answer = check(name, res, &page()).await;
        assert!(
            answer.body.contains("expired") || answer.body.contains("client_id is missing"),
            "case `{name}`: {}",
            answer.body
        );
    }
    // The other client's own request was spent by the attempt: a request_uri is never retried.
    assert_eq!(app.count("client_authorization_codes"), 0);
}

#[tokio::test]
async fn a_client_that_requires_par_cannot_be_started_with_a_crafted_url() {
    let app = spawn_app().await;
    setup(&app);
    let client = app.merchant_client(&[
        "--redirect-uri",
        CALLBACK,
        "--scope",
        "get_user_profile",
        "--require-par",
    ]);
    let mut pairs = request();
    pairs.push(("client_id", &client.client_id));
    let res = app.get(&authorize_path(&pairs)).await;
    let answer = check(
        "a direct request",
        res,
        &Expect::new(303)
            .error("invalid_request")
            .redirect(format!("{CALLBACK}?")),
    )
    .await;
    assert_eq!(answer.query()["state"], "pushed");
}

#[tokio::test]
async fn pushes_are_refused_as_the_authorization_endpoint_would() {
    let app = spawn_app().await;
    let client = setup(&app);
    let wrong = TestClient {
        client_id: client.client_id.clone(),
        secret: "lks_wrong".into(),
        owner_id: 0,
    };
    let with = |name: &'static str, value: &'static str| {
        let mut form: Vec<(&str, &str)> =
            request().into_iter().filter(|(n, _)| *n != name).collect();
        form.push((name, value));
        form
    };
    let rows: Vec<Push> = vec![
        (
            "a wrong secret",
            &wrong,
            request(),
            json_error(401, "invalid_client"),
        ),
        (
            "a redirect URI not registered",
            &client,
            with("redirect_uri", "https://evil.example/cb"),
            json_error(400, "invalid_request"),
        ),
        (
            "a scope the client may not have",
            &client,
            with("scope", "no_such_scope"),
            json_error(400, "invalid_scope"),
        ),
        (
            "the implicit grant",
            &client,
            with("response_type", "token"),
            json_error(400, "invalid_request"),
        ),
        (
            "PKCE plain",
            &client,
            with("code_challenge_method", "plain"),
            json_error(400, "invalid_request"),
        ),
        (
            "a request_uri inside a push",
            &client,
            with("request_uri", "urn:ietf:params:oauth:request_uri:x"),
            json_error(400, "invalid_request"),
        ),
        (
            "an unsigned request object",
            &client,
            with("request", "eyJhbGciOiJub25lIn0.e30."),
            json_error(400, "invalid_request"),
        ),
        (
            "another client_id in the body",
            &client,
            with("client_id", "1234567890"),
            json_error(400, "invalid_request"),
        ),
    ];
    for (name, who, form, expect) in rows {
        check(name, push(&app, who, &form).await, &expect).await;
    }
    assert_eq!(app.count("pushed_requests"), 0, "nothing was kept");
}
