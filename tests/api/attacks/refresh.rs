//! Attacks on refresh tokens (RFC 6749 §6, §10.4; RFC 9700 §4.14): reuse after rotation,
//! another client, a wider scope, concurrent refresh, and things that are not refresh tokens.

use diesel::prelude::*;
use latchkey::db::schema::clients;
use serde_json::{Value, json};

use super::{Expect, check};
use crate::helpers::{MERCHANT_PASSWORD, TestApp, TestClient, once_seen, spawn_app};

const GRANTS: &[&str] = &[
    "--grant-type",
    "password",
    "--grant-type",
    "refresh_token",
    "--grant-type",
    "client_credentials",
    "--scope",
    "get_user_profile",
    "--scope",
    "openid",
];

async fn password_tokens(app: &TestApp, client: &TestClient, scope: &str) -> Value {
    let res = app
        .token_form(
            Some(client),
            &[
                ("grant_type", "password"),
                ("username", "merchant"),
                ("password", MERCHANT_PASSWORD),
                ("scope", scope),
            ],
        )
        .await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn refresh(
    app: &TestApp,
    client: &TestClient,
    token: &str,
    scope: Option<&str>,
) -> reqwest::Response {
    let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", token)];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    app.token_form(Some(client), &form).await
}

fn grant() -> Expect {
    Expect::new(400).error("invalid_grant").no_store()
}

fn ok() -> Expect {
    Expect::new(200).no_store()
}

#[tokio::test]
async fn rotation_reuse_revokes_the_family() {
    let app = spawn_app().await;
    let client = app.merchant_client(GRANTS);
    let first = password_tokens(&app, &client, "get_user_profile").await;
    let r1 = first["refresh_token"].as_str().unwrap();
    let rotated = check("rotate", refresh(&app, &client, r1, None).await, &ok()).await;
    let second = rotated.json();
    let r2 = second["refresh_token"].as_str().unwrap();
    let a2 = second["access_token"].as_str().unwrap();
    assert_ne!(r1, r2, "case `rotate`: the refresh token did not change");

    check(
        "reuse the rotated token",
        refresh(&app, &client, r1, None).await,
        &grant(),
    )
    .await;
    check(
        "the newest token after the reuse",
        refresh(&app, &client, r2, None).await,
        &grant(),
    )
    .await;
    let invalid = Expect::new(401).error("invalid_token");
    check(
        "the newest access token after the reuse",
        app.profile(a2).await,
        &invalid,
    )
    .await;
    check(
        "the first access token after the reuse",
        app.profile(first["access_token"].as_str().unwrap()).await,
        &invalid,
    )
    .await;
    let res = app
        .token_json(
            Some(&client),
            json!({"grantType": "refresh_token", "refreshToken": r1}),
        )
        .await;
    check(
        "reuse again, JSON dialect",
        res,
        &Expect::new(400).error("InvalidGrant").no_store(),
    )
    .await;
}

#[tokio::test]
async fn refresh_tokens_are_bound_to_client_scope_and_kind() {
    let app = spawn_app().await;
    let client = app.merchant_client(GRANTS);
    let other = app.merchant_client(GRANTS);
    let tokens = password_tokens(&app, &client, "get_user_profile").await;
    let r1 = tokens["refresh_token"].as_str().unwrap();
    let access = tokens["access_token"].as_str().unwrap();

    let oversized = "r".repeat(5000);
    // Each of these is refused and leaves r1 usable.
    let refused: Vec<(&str, &TestClient, &str, Option<&str>, Expect)> = vec![
        ("another client (cross-client)", &other, r1, None, grant()),
        (
            "a wider scope",
            &client,
            r1,
            Some("get_user_profile openid"),
            Expect::new(400).error("invalid_scope").no_store(),
        ),
        (
            "only a scope never granted",
            &client,
            r1,
            Some("openid"),
            Expect::new(400).error("invalid_scope").no_store(),
        ),
        (
            "an unknown scope",
            &client,
            r1,
            Some("admin"),
            Expect::new(400).error("invalid_scope").no_store(),
        ),
        (
            "an access token as refresh token",
            &client,
            access,
            None,
            grant(),
        ),
        (
            "a truncated refresh token",
            &client,
            &r1[..r1.len() - 1],
            None,
            grant(),
        ),
        (
            "an oversized refresh token",
            &client,
            &oversized,
            None,
            grant(),
        ),
        (
            "an empty refresh token",
            &client,
            "",
            None,
            Expect::new(400).error("invalid_request").no_store(),
        ),
    ];
    for (name, by, token, scope, expect) in refused {
        check(name, refresh(&app, by, token, scope).await, &expect).await;
    }
    // Narrowing to the same scope is fine, and r1 was not spent by the refusals above.
    let res = refresh(&app, &client, r1, Some("get_user_profile")).await;
    let narrowed = check("the same scope, after the refusals", res, &ok()).await;
    assert_eq!(narrowed.json()["scope"], "get_user_profile");
    let r2 = narrowed.json()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // A disabled client's refresh token stops at client authentication. Disabled by hand in
    // SQL, which the server sees within LATCHKEY_CLIENT_REFRESH: polled with a request that
    // does not spend r2.
    diesel::update(clients::table.filter(clients::client_id.eq(&client.client_id)))
        .set(clients::is_enabled.eq(false))
        .execute(&mut app.db.connect())
        .unwrap();
    once_seen("disabled by hand", async || {
        let res = app
            .api
            .post(app.url("/oauth/introspect"))
            .basic_auth(&client.client_id, Some(&client.secret))
            .form(&[("token", "anything")])
            .send()
            .await
            .unwrap();
        res.status() == 401
    })
    .await;
    check(
        "refresh by a disabled client",
        refresh(&app, &client, &r2, None).await,
        &Expect::new(401).error("invalid_client").no_store(),
    )
    .await;
}

#[tokio::test]
async fn concurrent_refreshes_give_exactly_one_token() {
    let app = spawn_app().await;
    let client = app.merchant_client(GRANTS);
    let tokens = password_tokens(&app, &client, "get_user_profile").await;
    let r1 = tokens["refresh_token"].as_str().unwrap();
    let answers =
        futures_util::future::join_all((0..10).map(|_| refresh(&app, &client, r1, None))).await;
    let mut statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [200, 400, 400, 400, 400, 400, 400, 400, 400, 400],
        "case `ten concurrent refreshes of one token`"
    );
}
