//! The resource-server side: JWKS, key rotation, introspection (RFC 7662) and revocation
//! (RFC 7009).

use std::time::Duration;

use diesel::prelude::*;
use latchkey::db::schema::{client_access_tokens, signing_keys};
use serde_json::{Value, json};

use crate::helpers::{MERCHANT_PASSWORD, TestApp, TestClient, restart, spawn_app};

async fn access_token(app: &TestApp, client: &TestClient) -> String {
    let body: Value = app
        .token_form(Some(client), &[("grant_type", "client_credentials")])
        .await
        .json()
        .await
        .unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

async fn password_tokens(app: &TestApp, client: &TestClient) -> Value {
    app.token_form(
        Some(client),
        &[
            ("grant_type", "password"),
            ("username", "merchant"),
            ("password", MERCHANT_PASSWORD),
        ],
    )
    .await
    .json()
    .await
    .unwrap()
}

async fn jwks(app: &TestApp) -> Value {
    let res = app.get("/.well-known/jwks.json").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "public, max-age=60");
    res.json().await.unwrap()
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

async fn introspect(
    app: &TestApp,
    caller: &TestClient,
    form: &[(&str, &str)],
) -> reqwest::Response {
    app.api
        .post(app.url("/oauth/introspect"))
        .basic_auth(&caller.client_id, Some(&caller.secret))
        .form(form)
        .send()
        .await
        .unwrap()
}

async fn active(app: &TestApp, caller: &TestClient, token: &str) -> Value {
    let res = introspect(app, caller, &[("token", token)]).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    res.json().await.unwrap()
}

async fn revoke(app: &TestApp, caller: &TestClient, form: &[(&str, &str)]) -> u16 {
    app.api
        .post(app.url("/oauth/revoke"))
        .basic_auth(&caller.client_id, Some(&caller.secret))
        .form(form)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn jwks_publishes_the_key_that_verifies_our_tokens() {
    let app = spawn_app().await;
    let client = app.merchant_client(&[]);
    let token = access_token(&app, &client).await;
    let set = jwks(&app).await;
    let keys = set["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let key = &keys[0];
    assert_eq!(key["kid"], kid_of(&token));
    assert_eq!(key["alg"], "RS256");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["kty"], "RSA");
    // A resource server that knows only the JWKS can verify the token.
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(set).unwrap();
    let jwk = set.find(&kid_of(&token)).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[&app.address]);
    validation.set_issuer(&[&app.address]);
    let data = jsonwebtoken::decode::<Value>(
        &token,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
        &validation,
    )
    .unwrap();
    assert_eq!(data.claims["client_id"], client.client_id);
}

#[tokio::test]
async fn rotation_signs_with_the_new_key_and_keeps_the_old_one_until_its_tokens_expire() {
    let app = spawn_app().await;
    let client = app.merchant_client(&[]);
    let old_token = access_token(&app, &client).await;
    let old_kid = kid_of(&old_token);

    let out = app.cli(&["keys", "rotate", "--alg", "ES256"], "");
    assert!(out.success(), "{}", out.stderr);
    let new_kid = out.stdout.trim().to_owned();
    // The running server switches within LATCHKEY_KEY_REFRESH (1 s in tests).
    let mut switched = false;
    for _ in 0..40 {
        if kid_of(&access_token(&app, &client).await) == new_kid {
            switched = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(switched, "the server never signed with {new_kid}");
    let new_token = access_token(&app, &client).await;
    assert_eq!(
        jsonwebtoken::decode_header(&new_token).unwrap().alg,
        jsonwebtoken::Algorithm::ES256
    );

    let kids: Vec<String> = jwks(&app).await["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        kids.contains(&old_kid) && kids.contains(&new_kid),
        "{kids:?}"
    );
    // Tokens from before the rotation still work.
    assert_eq!(app.profile(&old_token).await.status(), 200);
    assert_eq!(active(&app, &client, &old_token).await["active"], true);
    assert_eq!(app.profile(&new_token).await.status(), 200);

    let list = app.cli(&["keys", "list", "--json"], "");
    let list: Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert!(
        list[0]["retired"].is_null() && list[1]["retired"].is_string(),
        "{list}"
    );

    // Once every token the old key signed has expired, it drops out.
    let long_ago = chrono::Utc::now().naive_utc() - chrono::TimeDelta::hours(3);
    diesel::update(signing_keys::table.filter(signing_keys::kid.eq(&old_kid)))
        .set(signing_keys::retired_at.eq(long_ago))
        .execute(&mut app.db.connect())
        .unwrap();
    let app = restart(app).await;
    let kids: Vec<String> = jwks(&app).await["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kids, vec![new_kid]);
    assert_eq!(app.profile(&old_token).await.status(), 401);
}

#[tokio::test]
async fn introspection_reports_every_token_state() {
    let app = spawn_app().await;
    let client = app.merchant_client(&[
        "--grant-type",
        "password",
        "--grant-type",
        "refresh_token",
        "--grant-type",
        "client_credentials",
    ]);
    let other = app.merchant_client(&[]);
    let tokens = password_tokens(&app, &client).await;
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();

    // Another client of the same merchant may introspect: the merchant's own resource server.
    // (Other merchants' clients may not: see attacks::introspection.)
    let body = active(&app, &other, access).await;
    assert_eq!(body["active"], true);
    assert_eq!(body["client_id"], client.client_id);
    assert_eq!(body["username"], "merchant");
    assert_eq!(body["sub"], client.owner_id.to_string());
    assert_eq!(body["scope"], "get_user_profile");
    assert_eq!(body["iss"], app.address);
    assert_eq!(body["aud"], app.address);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["env"], "sandbox");
    assert!(body["exp"].as_i64().unwrap() > body["iat"].as_i64().unwrap());

    let body = active(&app, &other, refresh).await;
    assert_eq!(body["active"], true);
    assert_eq!(body["token_type"], "refresh_token");
    // A wrong hint is only a hint.
    let res = introspect(
        &app,
        &other,
        &[("token", refresh), ("token_type_hint", "access_token")],
    )
    .await;
    assert_eq!(res.json::<Value>().await.unwrap()["active"], true);
    let res = introspect(
        &app,
        &other,
        &[("token", access), ("token_type_hint", "refresh_token")],
    )
    .await;
    assert_eq!(res.json::<Value>().await.unwrap()["active"], true);

    // Inactive: unknown, malformed, rotated refresh, expired, revoked.
    for token in ["not-a-token", "a.b.c", ""] {
        let res = introspect(&app, &other, &[("token", token)]).await;
        if token.is_empty() {
            assert_eq!(res.status(), 400);
        } else {
            assert_eq!(res.json::<Value>().await.unwrap(), json!({"active": false}));
        }
    }
    let rotated: Value = app
        .token_form(
            Some(&client),
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        active(&app, &other, refresh).await,
        json!({"active": false})
    );
    let fresh = rotated["access_token"].as_str().unwrap();
    diesel::update(
        client_access_tokens::table
            .filter(client_access_tokens::access_token.eq(latchkey::crypto::token_digest(fresh))),
    )
    .set(
        client_access_tokens::expired_at
            .eq(chrono::Utc::now().naive_utc() - chrono::TimeDelta::seconds(1)),
    )
    .execute(&mut app.db.connect())
    .unwrap();
    assert_eq!(active(&app, &other, fresh).await, json!({"active": false}));

    // Unauthenticated or public callers: 401.
    let res = app
        .api
        .post(app.url("/oauth/introspect"))
        .form(&[("token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let public = app.create_client("merchant", &["--public"]);
    let res = app
        .api
        .post(app.url("/oauth/introspect"))
        .form(&[
            ("token", access),
            ("client_id", public["client_id"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn revocation_by_the_owning_client_only() {
    let app = spawn_app().await;
    let client = app.merchant_client(&[
        "--grant-type",
        "password",
        "--grant-type",
        "refresh_token",
        "--grant-type",
        "client_credentials",
    ]);
    let other = app.merchant_client(&[]);

    // An access token.
    let access = access_token(&app, &client).await;
    assert_eq!(
        revoke(&app, &other, &[("token", &access)]).await,
        200,
        "another client's token: 200, nothing changes"
    );
    assert_eq!(app.profile(&access).await.status(), 200);
    assert_eq!(
        revoke(
            &app,
            &client,
            &[("token", &access), ("token_type_hint", "access_token")]
        )
        .await,
        200
    );
    assert_eq!(app.profile(&access).await.status(), 401);
    assert_eq!(active(&app, &other, &access).await["active"], false);

    // A refresh token takes the access tokens issued from it along.
    let tokens = password_tokens(&app, &client).await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(
        revoke(
            &app,
            &client,
            &[("token", refresh), ("token_type_hint", "refresh_token")]
        )
        .await,
        200
    );
    assert_eq!(
        app.profile(tokens["access_token"].as_str().unwrap())
            .await
            .status(),
        401
    );
    let res = app
        .token_form(
            Some(&client),
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        )
        .await;
    assert_eq!(res.status(), 400);

    // Unknown tokens: 200. Unauthenticated: 401. No token: 400.
    assert_eq!(revoke(&app, &client, &[("token", "unknown")]).await, 200);
    let res = app
        .api
        .post(app.url("/oauth/revoke"))
        .form(&[("token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(revoke(&app, &client, &[]).await, 400);
}
