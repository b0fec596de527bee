//! Who may introspect (RFC 7662 §4): a token's answer names its user, subject and scopes, so it
//! goes only to the client the token was issued to, to the other clients of the same owner (the
//! merchant's own resource server), and to clients the operator marked as resource servers.
//! Anyone else (any merchant who signs up and registers an app) learns `{"active": false}`.

use serde_json::{Value, json};

use super::{Expect, check};
use crate::helpers::{CALLBACK, authorize_and_allow, query_of, setup};
use crate::helpers::{MERCHANT_PASSWORD, TestApp, TestClient, once_seen, spawn_app};

async fn introspect(app: &TestApp, caller: &TestClient, token: &str) -> reqwest::Response {
    app.api
        .post(app.url("/oauth/introspect"))
        .basic_auth(&caller.client_id, Some(&caller.secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
}

fn client_of(app: &TestApp, owner: &str, extra: &[&str]) -> TestClient {
    let created = app.create_client(owner, extra);
    let owner_id = latchkey::db::models::User::find_by_username(&mut app.db.connect(), owner)
        .unwrap()
        .unwrap()
        .id
        .get();
    TestClient {
        client_id: created["client_id"].as_str().unwrap().to_owned(),
        secret: created["client_secret"].as_str().unwrap().to_owned(),
        owner_id,
    }
}

/// Each caller introspects each token: the whole answer, or exactly `{"active": false}`.
async fn answers(
    app: &TestApp,
    tokens: &[(&str, &str)],
    issuer: &TestClient,
    rows: &[(&str, &TestClient, bool)],
) {
    for &(who, caller, active) in rows {
        for &(kind, token) in tokens {
            let name = format!("{who} introspects {kind}");
            let res = introspect(app, caller, token).await;
            let answer = check(&name, res, &Expect::new(200).no_store()).await;
            let body = answer.json();
            if active {
                assert_eq!(body["active"], true, "case `{name}`: {body}");
                assert_eq!(body["client_id"], issuer.client_id, "case `{name}`");
            } else {
                assert_eq!(
                    body,
                    json!({"active": false}),
                    "case `{name}`: leaked {body}"
                );
            }
        }
    }
}

#[tokio::test]
async fn only_the_issuer_its_owner_and_marked_resource_servers_learn_what_a_token_says() {
    let app = spawn_app().await;
    // Merchant A's app, and an end user who authorized it.
    let issuer = setup(&app);
    let callback = authorize_and_allow(
        &app,
        &[
            ("client_id", issuer.client_id.as_str()),
            ("response_type", "code"),
            ("redirect_uri", CALLBACK),
            ("scope", "get_user_profile"),
        ],
    )
    .await;
    let res = app
        .token_form(
            Some(&issuer),
            &[
                ("grant_type", "authorization_code"),
                ("code", &query_of(&callback)["code"]),
                ("redirect_uri", CALLBACK),
            ],
        )
        .await;
    let tokens: Value = res.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let own: Value = app
        .token_form(Some(&issuer), &[("grant_type", "client_credentials")])
        .await
        .json()
        .await
        .unwrap();
    let own = own["access_token"].as_str().unwrap().to_owned();

    let tokens = [
        ("an end user's access token", access.as_str()),
        ("an end user's refresh token", refresh.as_str()),
        ("the merchant's own client_credentials token", own.as_str()),
    ];

    // Merchant A's resource server: another client of the same owner.
    let sibling = app.merchant_client(&[]);
    // Merchant B, who only signed up and registered an app.
    app.create_user("merchant-b", MERCHANT_PASSWORD);
    let stranger = client_of(&app, "merchant-b", &[]);
    answers(
        &app,
        &tokens,
        &issuer,
        &[
            ("the client the token was issued to", &issuer, true),
            ("another client of the same merchant", &sibling, true),
            ("another merchant's client", &stranger, false),
        ],
    )
    .await;

    // An API the operator runs, marked a resource server at creation or afterwards.
    let created_as_rs = client_of(&app, "merchant-b", &["--resource-server"]);
    let marked_later = client_of(&app, "merchant-b", &[]);
    let out = app.cli(
        &[
            "client",
            "set",
            "--client-id",
            &marked_later.client_id,
            "--resource-server",
            "true",
        ],
        "",
    );
    assert!(out.success(), "client set: {}", out.stderr);
    answers(
        &app,
        &tokens,
        &issuer,
        &[
            (
                "a client created as a resource server",
                &created_as_rs,
                true,
            ),
            (
                "a client marked a resource server later",
                &marked_later,
                true,
            ),
        ],
    )
    .await;

    // Unmarked again: back to what any other merchant's client learns.
    let out = app.cli(
        &[
            "client",
            "set",
            "--client-id",
            &marked_later.client_id,
            "--resource-server",
            "false",
        ],
        "",
    );
    assert!(out.success(), "client set: {}", out.stderr);
    // The CLI is another process: the server sees its change within LATCHKEY_CLIENT_REFRESH.
    once_seen("unmarked by the CLI", async || {
        let body: Value = introspect(&app, &marked_later, &access)
            .await
            .json()
            .await
            .unwrap();
        body["active"] == false
    })
    .await;
    let answer = check(
        "a resource server unmarked",
        introspect(&app, &marked_later, &access).await,
        &Expect::new(200).no_store(),
    )
    .await;
    assert_eq!(
        answer.json(),
        json!({"active": false}),
        "case `a resource server unmarked`"
    );

    // The flag shows in the client list, and is documented.
    let list = app.cli(&["client", "list", "--json"], "");
    let list: Value = serde_json::from_str(&list.stdout).unwrap();
    let flag = |id: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|c| c["client_id"] == id)
            .map(|c| c["resource_server"].clone())
    };
    assert_eq!(flag(&created_as_rs.client_id), Some(json!(true)));
    assert_eq!(flag(&stranger.client_id), Some(json!(false)));
    let help = app.cli(&["client", "create", "--help"], "");
    assert!(help.stdout.contains("--resource-server"), "{}", help.stdout);
    let help = app.cli(&["client", "set", "--help"], "");
    assert!(help.stdout.contains("--resource-server"), "{}", help.stdout);
}
