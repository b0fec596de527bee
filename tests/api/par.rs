//! Pushed authorization requests (RFC 9126): the push checked as the authorization endpoint
//! checks a request (same rules, as JSON errors), the `request_uri` used once, by its own
//! client, within its minute, the parameters beside it ignored; a client that requires PAR
//! refused any other way; a key-based client pushing with an assertion.

use serde_json::{Value, json};

use crate::helpers::{
    CALLBACK, CHALLENGE, SigningKey, TestApp, TestClient, VERIFIER, authorize_and_allow,
    authorize_path, location, query_of, setup, spawn_app,
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

/// Our error page, not a redirect.
async fn error_page(app: &TestApp, pairs: &[(&str, &str)], says: &str) {
    let res = app.get(&authorize_path(pairs)).await;
    assert!(res.headers().get("location").is_none(), "redirected");
    assert!(res.status().is_client_error(), "{}", res.status());
    let body = res.text().await.unwrap();
    assert!(body.contains(says), "{body}");
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

    // Used: gone.
    assert_eq!(app.count("pushed_requests"), 0);
    error_page(
        &app,
        &[("client_id", &client.client_id), ("request_uri", &uri)],
        "expired or was already used",
    )
    .await;

    // Another client's request_uri, an expired one, a made-up one, and none of ours.
    let other = app.merchant_client(&["--redirect-uri", CALLBACK]);
    let theirs = pushed_uri(&app, &client).await;
    error_page(
        &app,
        &[("client_id", &other.client_id), ("request_uri", &theirs)],
        "expired or was already used",
    )
    .await;
    let expired = pushed_uri(&app, &client).await;
    {
        use diesel::connection::SimpleConnection as _;
        app.db
            .connect()
            .batch_execute("UPDATE pushed_requests SET expires_at = '2000-01-01 00:00:00'")
            .unwrap();
    }
    error_page(
        &app,
        &[("client_id", &client.client_id), ("request_uri", &expired)],
        "expired or was already used",
    )
    .await;
    let made_up = format!("{PREFIX}{}", "A".repeat(43));
    error_page(
        &app,
        &[("client_id", &client.client_id), ("request_uri", &made_up)],
        "expired or was already used",
    )
    .await;
    error_page(
        &app,
        &[
            ("client_id", &client.client_id),
            ("request_uri", "https://attacker.example/request.jwt"),
        ],
        "expired or was already used",
    )
    .await;
}

#[tokio::test]
async fn a_push_is_checked_like_an_authorization_request() {
    let app = spawn_app().await;
    let client = setup(&app);
    let good = request("s");
    let with = |name: &'static str, value: &'static str| {
        let mut form: Vec<(&str, &str)> = good
            .iter()
            .filter(|(n, _)| *n != name)
            .map(|(n, v)| (*n, v.as_str()))
            .collect();
        if !value.is_empty() {
            form.push((name, value));
        }
        form
    };
    let cases = [
        (
            with("redirect_uri", "https://evil.example/cb"),
            400,
            "invalid_request",
        ),
        (with("scope", "no_such_scope"), 400, "invalid_scope"),
        (with("response_type", "token"), 400, "invalid_request"),
        (
            with("code_challenge_method", "plain"),
            400,
            "invalid_request",
        ),
        (
            with("request_uri", "urn:ietf:params:oauth:request_uri:x"),
            400,
            "invalid_request",
        ),
        (
            with("request", "eyJhbGciOiJub25lIn0.e30."),
            400,
            "invalid_request",
        ),
    ];
    for (form, status, error) in cases {
        let res = push(&app, &client, &form).await;
        assert_eq!(res.status(), status, "{form:?}");
        assert_eq!(res.headers()["cache-control"], "no-store");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], error, "{form:?}: {body}");
        assert!(body["error_description"].is_string());
    }
    // A wrong secret, and a client_id in the body that is not the authenticated one.
    let wrong = TestClient {
        client_id: client.client_id.clone(),
        secret: "lks_wrong".into(),
        owner_id: 0,
    };
    let form = with("state", "s");
    let res = push(&app, &wrong, &form).await;
    assert_eq!(res.status(), 401);
    let mut form = with("state", "s");
    form.push(("client_id", "1234567890"));
    let res = push(&app, &client, &form).await;
    assert_eq!(res.status(), 400);
    assert_eq!(app.count("pushed_requests"), 0, "nothing kept");
}

#[tokio::test]
async fn a_client_that_requires_par_is_refused_a_direct_request() {
    let app = spawn_app().await;
    setup(&app);
    let client = app.merchant_client(&[
        "--redirect-uri",
        CALLBACK,
        "--scope",
        "get_user_profile",
        "--require-par",
    ]);
    let res = app
        .get(&authorize_path(&[
            ("client_id", &client.client_id),
            ("response_type", "code"),
            ("redirect_uri", CALLBACK),
            ("scope", "get_user_profile"),
            ("state", "direct"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ]))
        .await;
    assert_eq!(res.status(), 303);
    let query = query_of(&location(&res));
    assert_eq!(query["error"], "invalid_request");
    assert!(query["error_description"].contains("PAR"));
    assert_eq!(query["state"], "direct");

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
