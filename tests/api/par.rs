//! Pushed authorization requests (RFC 9126): a pushed request goes through the whole flow, the
//! parameters beside its `request_uri` ignored; a client that requires PAR completes a pushed
//! flow; a key-based client pushes with an assertion. The refusals (a `request_uri` reused,
//! foreign, expired or made up; pushes the authorization checks refuse) are in the attack
//! suite (`attacks::par`).

use serde_json::{Value, json};

use crate::helpers::{
    CALLBACK, CHALLENGE, SigningKey, TestApp, TestClient, VERIFIER, authorize_and_allow, query_of,
    setup, spawn_app,
};

const PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// Pushes `form` with `client`'s Basic credentials.
async fn push(app: &TestApp, client: &TestClient, form: &[(&str, &str)]) -> reqwest::Response {
    app.api
        .post(app.url("/oauth/par"))
        .basic_auth(&client.client_id, Some(&client.secret))
        .form(form)
        .send()
        .await
        .unwrap()
}

fn request(state: &str) -> Vec<(&'static str, String)> {
    vec![
        ("response_type", "code".into()),
        ("redirect_uri", CALLBACK.into()),
        ("scope", "get_user_profile".into()),
        ("state", state.into()),
        ("code_challenge", CHALLENGE.into()),
        ("code_challenge_method", "S256".into()),
    ]
}

async fn pushed_uri(app: &TestApp, client: &TestClient) -> String {
    let form = request("st8");
    let form: Vec<(&str, &str)> = form.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let res = push(app, client, &form).await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["expires_in"], 60);
    let uri = body["request_uri"].as_str().unwrap().to_owned();
    assert!(
        uri.starts_with(PREFIX) && uri.len() > PREFIX.len() + 40,
        "{uri}"
    );
    uri
}

#[tokio::test]
async fn a_pushed_request_is_used_once_by_its_client_and_the_flow_completes() {
    let app = spawn_app().await;
    let client = setup(&app);
    let uri = pushed_uri(&app, &client).await;
    assert_eq!(app.count("pushed_requests"), 1);

    // Parameters beside request_uri are ignored: the pushed ones count (RFC 9126 §4).
    let callback = authorize_and_allow(
        &app,
        &[
            ("client_id", &client.client_id),
            ("request_uri", &uri),
            ("redirect_uri", "https://evil.example/cb"),
            ("state", "forged"),
        ],
    )
    .await;
    assert!(callback.starts_with(CALLBACK), "{callback}");
    let query = query_of(&callback);
    assert_eq!(query["state"], "st8");
    let res = app
        .token_form(
            Some(&client),
            &[
                ("grant_type", "authorization_code"),
                ("code", &query["code"]),
                ("redirect_uri", CALLBACK),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
    assert_eq!(res.status(), 200);
    let tokens: Value = res.json().await.unwrap();
    assert_eq!(tokens["scope"], "get_user_profile");

    // Used: gone (the refusals of a reused, foreign or expired request_uri are in the attack
    // suite, `attacks::par`).
    assert_eq!(app.count("pushed_requests"), 0);
}

#[tokio::test]
async fn a_client_that_requires_par_completes_a_pushed_flow() {
    let app = spawn_app().await;
    setup(&app);
    let client = app.merchant_client(&[
        "--redirect-uri",
        CALLBACK,
        "--scope",
        "get_user_profile",
        "--require-par",
    ]);
    // Refused directly (`attacks::par`), it completes when pushed.
    let uri = pushed_uri(&app, &client).await;
    let callback = authorize_and_allow(
        &app,
        &[("client_id", &client.client_id), ("request_uri", &uri)],
    )
    .await;
    assert!(query_of(&callback).contains_key("code"), "{callback}");
}

#[tokio::test]
async fn a_key_based_client_pushes_with_an_assertion() {
    let app = spawn_app().await;
    setup(&app);
    let key = SigningKey::p256("k");
    let client = app.key_client(
        &[&key],
        &["--redirect-uri", CALLBACK, "--scope", "get_user_profile"],
    );
    let mut form = request("kb");
    form.push((
        "client_assertion_type",
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
    ));
    form.push((
        "client_assertion",
        key.assertion(&client.client_id, &app.url("/oauth/par"), json!({})),
    ));
    let res = app
        .api
        .post(app.url("/oauth/par"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert!(body["request_uri"].as_str().unwrap().starts_with(PREFIX));
}
