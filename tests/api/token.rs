//! `POST /oauth/token` and `/v1/token`: every grant in both dialects, and every error row.

use diesel::prelude::*;
use latchkey::db::schema::{client_access_tokens, client_secrets, clients, login_attempts};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{MERCHANT_PASSWORD, TestApp, TestClient, once_seen, spawn_app};

fn assert_no_store(res: &reqwest::Response) {
    assert_eq!(
        res.headers()["cache-control"],
        "no-store",
        "{:?}",
        res.headers()
    );
    assert_eq!(res.headers()["pragma"], "no-cache");
}

/// Status, RFC 6749 error code and no-store headers of a form-dialect error.
async fn assert_rfc_error(res: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(res.status().as_u16(), status);
    assert_no_store(&res);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], code, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{body}"
    );
    body
}

/// Status, Revenue Monster error code and no-store headers of a JSON-dialect error.
async fn assert_rm_error(res: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(res.status().as_u16(), status);
    assert_no_store(&res);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{body}"
    );
    body
}

fn all_grants() -> Vec<&'static str> {
    vec![
        "--grant-type",
        "client_credentials",
        "--grant-type",
        "password",
        "--grant-type",
        "refresh_token",
        "--grant-type",
        "authorization_code",
    ]
}

// ---- client_credentials ------------------------------------------------------------------

#[tokio::test]
async fn seed_003_camel_case_json_gets_revenue_monsters_response() {
    let app = spawn_app().await;
    let client = app.merchant_client(&[]);
    let res = app
        .token_json(Some(&client), json!({ "grantType": "client_credentials" }))
        .await;
    assert_eq!(res.status(), 200);
    assert_no_store(&res);
    let body: Value = res.json().await.unwrap();
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut keys = keys;
    keys.sort();
    assert_eq!(
        keys,
        [
            "accessToken",
            "expiresIn",
            "refreshToken",
            "refreshTokenExpiresIn",
            "scope",
            "tokenType"
        ]
    );
    assert_eq!(body["tokenType"], "Bearer");
    assert_eq!(body["expiresIn"], 3600);
    assert_eq!(body["refreshTokenExpiresIn"], 2_592_000);
    assert_eq!(body["scope"], "get_user_profile");
    assert_eq!(body["accessToken"].as_str().unwrap().split('.').count(), 3);
    assert!(body["refreshToken"].as_str().unwrap().len() >= 43);
}

#[tokio::test]
async fn seed_000_snake_case_json_with_scope() {
    let app = spawn_app().await;
    let client = app.merchant_client(&[]);
    let res = app
        .token_json(
            Some(&client),
            json!({ "grant_type": "client_credentials", "scope": "get_user_profile" }),
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["scope"], "get_user_profile");
    assert!(body["accessToken"].is_string());
}

#[tokio::test]
async fn form_requests_get_rfc_6749_responses_on_both_paths() {
    let app = spawn_app().await;
    let client = app.merchant_client(&[]);
    for path in ["/oauth/token", "/v1/token"] {
        let res = app
            .api
            .post(app.url(path))
            .basic_auth(&client.client_id, Some(&client.secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert_no_store(&res);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 3600);
        assert_eq!(body["scope"], "get_user_profile");
        assert!(body["access_token"].is_string());
        // RFC 6749 §4.4.3: no refresh token for client_credentials.
        assert!(body.get("refresh_token").is_none(), "{body}");
        assert!(body.get("accessToken").is_none());
    }
}

#[tokio::test]
async fn client_secret_post_works_and_tokens_act_for_the_owner() {
    let app = spawn_app().await;
    let client = app.merchant_client(&[]);
    let res = app
        .token_form(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &client.client_id),
                ("client_secret", &client.secret),
            ],
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let profile = app.profile(body["access_token"].as_str().unwrap()).await;
    assert_eq!(profile.status(), 200);
    let profile: Value = profile.json().await.unwrap();
    assert_eq!(profile["id"], client.owner_id);
    assert_eq!(profile["username"], "merchant");
    assert_eq!(profile["name"], "Test User");
}

#[tokio::test]
async fn access_tokens_are_rs256_jwts_with_the_rfc_9068_claims_and_a_stored_digest() {
    let app = spawn_app().await;
    let client = app.merchant_client(&[]);
    let body: Value = app
        .token_form(Some(&client), &[("grant_type", "client_credentials")])
        .await
        .json()
        .await
        .unwrap();
    let token = body["access_token"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert!(header.kid.is_some());
    let claims: Value = jsonwebtoken::dangerous::insecure_decode::<Value>(token)
        .unwrap()
        .claims;
    for claim in [
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "nbf",
        "jti",
        "client_id",
        "scope",
        "env",
    ] {
        assert!(claims.get(claim).is_some(), "missing {claim}: {claims}");
    }
    assert_eq!(claims["iss"], app.address);
    assert_eq!(claims["sub"], client.owner_id.to_string());
    assert_eq!(claims["client_id"], client.client_id);
    assert_eq!(claims["env"], "sandbox");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );

    // Stored by digest, never in clear, with grant type, scope, audience and expiry.
    let mut conn = app.db.connect();
    let rows: Vec<(String, String, String, String)> = client_access_tokens::table
        .select((
            client_access_tokens::access_token,
            client_access_tokens::grant_type,
            client_access_tokens::scope,
            client_access_tokens::audience,
        ))
        .load(&mut conn)
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, latchkey::crypto::token_digest(token));
    assert_eq!(rows[0].1, "client_credentials");
    assert_eq!(rows[0].2, "get_user_profile");
    assert_eq!(rows[0].3, app.address);
}

#[tokio::test]
async fn live_clients_get_live_tokens() {
    let app = spawn_app().await;
    let client = app.merchant_client(&["--live"]);
    let body: Value = app
        .token_form(Some(&client), &[("grant_type", "client_credentials")])
        .await
        .json()
        .await
        .unwrap();
    let claims: Value =
        jsonwebtoken::dangerous::insecure_decode::<Value>(body["access_token"].as_str().unwrap())
            .unwrap()
            .claims;
    assert_eq!(claims["env"], "live");
}

/// A client asking again and again: after its first request, each costs the token's INSERT
/// alone. The client comes from the client cache, and so does its secret's `last_used_at`,
/// which the first request wrote: were the cache not told, every request would write it again.
#[tokio::test]
async fn client_credentials_costs_one_sql_statement() {
    // The check for other processes' changes (once per LATCHKEY_CLIENT_REFRESH while requests
    // come) and the key reload out of the way.
    let app = crate::helpers::spawn_counting_app().await;
    let client = app.merchant_client(&[]);
    // The first request loads the client and records when its secret was last used.
    assert_eq!(
        app.token_form(Some(&client), &[("grant_type", "client_credentials")])
            .await
            .status(),
        200
    );
    let last_used: Option<chrono::NaiveDateTime> = client_secrets::table
        .select(client_secrets::last_used_at)
        .first(&mut app.db.connect())
        .unwrap();
    assert!(last_used.is_some());
    for _ in 0..5 {
        let before = app.statements.get();
        assert_eq!(
            app.token_form(Some(&client), &[("grant_type", "client_credentials")])
                .await
                .status(),
            200
        );
        assert_eq!(app.statements.get() - before, 1);
    }
}

// ---- scopes --------------------------------------------------------------------------------

#[tokio::test]
async fn scopes_default_to_everything_allowed_and_refuse_the_rest() {
    let app = spawn_app().await;
    // `manage_store` is one of Revenue Monster's scopes, seeded by the migrations.
    let client = app.merchant_client(&["--scope", "get_user_profile", "--scope", "manage_store"]);
    let narrow = app.merchant_client(&["--scope", "get_user_profile"]);

    let body: Value = app
        .token_form(Some(&client), &[("grant_type", "client_credentials")])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["scope"], "get_user_profile manage_store");
    let body: Value = app
        .token_json(
            Some(&client),
            json!({"grantType": "client_credentials", "scope": "manage_store,get_user_profile"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["scope"], "get_user_profile manage_store");

    let res = app
        .token_form(
            Some(&narrow),
            &[
                ("grant_type", "client_credentials"),
                ("scope", "manage_store"),
            ],
        )
        .await;
    assert_rfc_error(res, 400, "invalid_scope").await;
    let res = app
        .token_json(
            Some(&narrow),
            json!({"grantType": "client_credentials", "scope": "no_such_scope"}),
        )
        .await;
    assert_rm_error(res, 400, "InvalidScope").await;
    let res = app
        .token_form(
            Some(&client),
            &[
                ("grant_type", "client_credentials"),
                ("scope", "Bad\"Scope"),
            ],
        )
        .await;
    assert_rfc_error(res, 400, "invalid_scope").await;
}

// ---- errors --------------------------------------------------------------------------------

#[tokio::test]
async fn request_errors_in_both_dialects() {
    let app = spawn_app().await;
    let client = app.merchant_client(&[]);

    let res = app
        .token_form(Some(&client), &[("grant_type", "implicit")])
        .await;
    assert_rfc_error(res, 400, "unsupported_grant_type").await;
    let res = app
        .token_json(Some(&client), json!({"grantType": "device_code"}))
        .await;
    assert_rm_error(res, 400, "UnSupportedGrantType").await;

    let res = app
        .token_form(Some(&client), &[("scope", "get_user_profile")])
        .await;
    assert_rfc_error(res, 400, "invalid_request").await;
    let res = app.token_json(Some(&client), json!({"scope": "x"})).await;
    assert_rm_error(res, 400, "InvalidRequest").await;

    let res = app
        .token_form(Some(&client), &[("grant_type", "refresh_token")])
        .await;
    let body = assert_rfc_error(res, 400, "invalid_request").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("refresh_token")
    );

    let res = app
        .token_form(
            Some(&client),
            &[
                ("grant_type", "client_credentials"),
                ("grant_type", "client_credentials"),
            ],
        )
        .await;
    assert_rfc_error(res, 400, "invalid_request").await;
    let res = app
        .api
        .post(app.url("/v1/token"))
        .basic_auth(&client.client_id, Some(&client.secret))
        .header("Content-Type", "application/json")
        .body(r#"{"grantType":"client_credentials","grant_type":"client_credentials"}"#)
        .send()
        .await
        .unwrap();
    assert_rm_error(res, 400, "InvalidRequest").await;

    let res = app
        .api
        .post(app.url("/v1/token"))
        .basic_auth(&client.client_id, Some(&client.secret))
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_rm_error(res, 400, "InvalidRequest").await;
}

#[tokio::test]
async fn other_content_types_and_bodies_are_refused_cleanly() {
    let app = spawn_app().await;
    let client = app.merchant_client(&[]);
    let send = |content_type: &'static str, body: Vec<u8>| {
        app.api
            .post(app.url("/oauth/token"))
            .basic_auth(&client.client_id, Some(&client.secret))
            .header("Content-Type", content_type)
            .body(body)
            .send()
    };
    let res = send("text/plain", b"grant_type=client_credentials".to_vec())
        .await
        .unwrap();
    let body = assert_rfc_error(res, 400, "invalid_request").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("Content-Type")
    );

    let res = send(
        "application/x-www-form-urlencoded",
        vec![b'g', 0xff, 0xfe, b'=', b'x'],
    )
    .await
    .unwrap();
    assert_rfc_error(res, 400, "invalid_request").await;
    let res = send(
        "application/x-www-form-urlencoded",
        b"grant_type=%FF%FE".to_vec(),
    )
    .await
    .unwrap();
    assert_rfc_error(res, 400, "invalid_request").await;

    let huge = format!(
        "grant_type=client_credentials&pad={}",
        "a".repeat(1024 * 1024)
    );
    let res = send("application/x-www-form-urlencoded", huge.into_bytes())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_no_store(&res);

    let get = app.api.get(app.url("/oauth/token")).send().await.unwrap();
    assert_eq!(get.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn client_authentication_failures_are_indistinguishable() {
    let app = spawn_app().await;
    let client = app.merchant_client(&[]);
    let wrong_secret = TestClient {
        client_id: client.client_id.clone(),
        secret: format!("{}x", client.secret),
        owner_id: 0,
    };
    let unknown = TestClient {
        client_id: "1234567890123456789".into(),
        secret: client.secret.clone(),
        owner_id: 0,
    };
    let mut bodies = Vec::new();
    for who in [&wrong_secret, &unknown] {
        let res = app
            .token_form(Some(who), &[("grant_type", "client_credentials")])
            .await;
        assert_eq!(
            res.headers()["www-authenticate"],
            r#"Basic realm="latchkey", charset="UTF-8""#
        );
        bodies.push(assert_rfc_error(res, 401, "invalid_client").await);
        let res = app
            .token_json(Some(who), json!({"grantType": "client_credentials"}))
            .await;
        assert!(res.headers().contains_key("www-authenticate"));
        bodies.push(assert_rm_error(res, 401, "InvalidClient").await);
    }
    assert_eq!(
        bodies[0], bodies[2],
        "wrong secret and unknown client differ"
    );
    assert_eq!(bodies[1], bodies[3]);

    // No credentials at all; a malformed header.
    let res = app
        .token_form(None, &[("grant_type", "client_credentials")])
        .await;
    assert_rfc_error(res, 401, "invalid_client").await;
    let res = app
        .api
        .post(app.url("/oauth/token"))
        .header("Authorization", "Basic !!!not-base64")
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_rfc_error(res, 401, "invalid_client").await;

    // Both methods at once.
    let res = app
        .token_form(
            Some(&client),
            &[
                ("grant_type", "client_credentials"),
                ("client_secret", &client.secret),
            ],
        )
        .await;
    assert_rfc_error(res, 400, "invalid_request").await;
}

#[tokio::test]
async fn disabled_clients_and_disallowed_grants() {
    let app = spawn_app().await;
    let client = app.merchant_client(&[]);

    // The password grant is off until the owner turns it on.
    let res = app
        .token_form(
            Some(&client),
            &[
                ("grant_type", "password"),
                ("username", "merchant"),
                ("password", MERCHANT_PASSWORD),
            ],
        )
        .await;
    assert_rfc_error(res, 400, "unauthorized_client").await;
    let res = app
        .token_json(
            Some(&client),
            json!({"grantType": "password", "username": "merchant", "password": MERCHANT_PASSWORD}),
        )
        .await;
    assert_rm_error(res, 400, "UnAuthorizedClient").await;

    // A public client (no secret) may not use client_credentials.
    let public = app.create_client("merchant", &["--public"]);
    let public_id = public["client_id"].as_str().unwrap();
    let res = app
        .token_form(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", public_id),
            ],
        )
        .await;
    assert_rfc_error(res, 400, "unauthorized_client").await;

    // Disabled by hand in SQL: another process's change, seen within LATCHKEY_CLIENT_REFRESH.
    let mut conn = app.db.connect();
    diesel::update(clients::table.filter(clients::client_id.eq(&client.client_id)))
        .set(clients::is_enabled.eq(false))
        .execute(&mut conn)
        .unwrap();
    once_seen("disabled by hand", async || {
        let res = app
            .token_form(Some(&client), &[("grant_type", "client_credentials")])
            .await;
        res.status() == 401
    })
    .await;
    let res = app
        .token_form(Some(&client), &[("grant_type", "client_credentials")])
        .await;
    assert_rfc_error(res, 401, "invalid_client").await;
    let res = app
        .token_json(Some(&client), json!({"grantType": "client_credentials"}))
        .await;
    assert_rm_error(res, 401, "InActiveClient").await;
}

// ---- password ------------------------------------------------------------------------------

#[tokio::test]
async fn password_grant_in_both_dialects() {
    let app = spawn_app().await;
    let client = app.merchant_client(&all_grants());
    app.create_user("yussuf", "123456789012");
    let res = app
        .token_form(
            Some(&client),
            &[
                ("grant_type", "password"),
                ("username", "yussuf"),
                ("password", "123456789012"),
            ],
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_no_store(&res);
    let body: Value = res.json().await.unwrap();
    assert!(body["refresh_token"].is_string());
    let profile: Value = app
        .profile(body["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(profile["username"], "yussuf");

    let res = app
        .token_json(
            Some(&client),
            json!({"grant_type": "password", "username": "Yussuf", "password": "123456789012", "scope": "get_user_profile"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert!(body["refreshToken"].is_string());
    assert_eq!(body["scope"], "get_user_profile");
}

#[tokio::test]
async fn wrong_passwords_and_unknown_users_look_the_same() {
    let app = spawn_app().await;
    let client = app.merchant_client(&all_grants());
    app.create_user("yussuf", "123456789012");
    let wrong = app
        .token_form(
            Some(&client),
            &[
                ("grant_type", "password"),
                ("username", "yussuf"),
                ("password", "nope-nope-nope"),
            ],
        )
        .await;
    let wrong = assert_rfc_error(wrong, 400, "invalid_grant").await;
    let unknown = app
        .token_form(
            Some(&client),
            &[
                ("grant_type", "password"),
                ("username", "nobody"),
                ("password", "nope-nope-nope"),
            ],
        )
        .await;
    let unknown = assert_rfc_error(unknown, 400, "invalid_grant").await;
    assert_eq!(wrong, unknown);

    // Both paths run argon2: an unknown user costs about as much as a wrong password, not the
    // near-zero time a skipped hash would. (A loose bound; the benchmark measures properly.)
    let time = |username: &'static str| {
        let app = &app;
        let client = &client;
        async move {
            let started = std::time::Instant::now();
            for _ in 0..3 {
                app.token_form(
                    Some(client),
                    &[
                        ("grant_type", "password"),
                        ("username", username),
                        ("password", "x-x-x-x-x-x"),
                    ],
                )
                .await;
            }
            started.elapsed()
        }
    };
    // Separate accounts, so neither gets locked during the measurement.
    app.create_user("timing", "123456789012");
    let known = time("timing").await;
    let missing = time("missing").await;
    let ratio = missing.as_secs_f64() / known.as_secs_f64();
    assert!(
        (0.33..3.0).contains(&ratio),
        "unknown {missing:?} vs known {known:?}"
    );
}

#[tokio::test]
async fn repeated_password_failures_lock_the_account_for_every_client() {
    let app = spawn_app().await;
    let client = app.merchant_client(&all_grants());
    let other = app.merchant_client(&all_grants());
    app.create_user("yussuf", "123456789012");
    for _ in 0..5 {
        let res = app
            .token_form(
                Some(&client),
                &[
                    ("grant_type", "password"),
                    ("username", "yussuf"),
                    ("password", "wrong-password"),
                ],
            )
            .await;
        assert_rfc_error(res, 400, "invalid_grant").await;
    }
    // Locked now, even with the right password and through another client.
    let res = app
        .token_form(
            Some(&other),
            &[
                ("grant_type", "password"),
                ("username", "yussuf"),
                ("password", "123456789012"),
            ],
        )
        .await;
    let body = assert_rfc_error(res, 400, "invalid_grant").await;
    let text = body["error_description"].as_str().unwrap();
    assert!(text.contains("Try again in 15 minutes"), "{text}");

    let mut conn = app.db.connect();
    let (failures, locked): (i64, Option<chrono::NaiveDateTime>) = login_attempts::table
        .filter(login_attempts::throttle_key.eq("account:yussuf"))
        .select((login_attempts::failures, login_attempts::locked_until))
        .first(&mut conn)
        .unwrap();
    assert_eq!(failures, 5);
    assert!(locked.is_some());

    // When the lock has passed, the right password works and clears the counter.
    diesel::update(login_attempts::table)
        .set(
            login_attempts::locked_until
                .eq(chrono::Utc::now().naive_utc() - chrono::TimeDelta::seconds(1)),
        )
        .execute(&mut conn)
        .unwrap();
    let res = app
        .token_form(
            Some(&other),
            &[
                ("grant_type", "password"),
                ("username", "yussuf"),
                ("password", "123456789012"),
            ],
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.count("login_attempts"), 0);
}

// ---- refresh_token -------------------------------------------------------------------------

async fn password_tokens(app: &TestApp, client: &TestClient) -> Value {
    let res = app
        .token_form(
            Some(client),
            &[
                ("grant_type", "password"),
                ("username", "merchant"),
                ("password", MERCHANT_PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

#[tokio::test]
async fn refresh_tokens_rotate_in_both_dialects() {
    let app = spawn_app().await;
    let client = app.merchant_client(&all_grants());
    let first = password_tokens(&app, &client).await;
    let r1 = first["refresh_token"].as_str().unwrap();

    let res = app
        .token_form(
            Some(&client),
            &[("grant_type", "refresh_token"), ("refresh_token", r1)],
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_no_store(&res);
    let second: Value = res.json().await.unwrap();
    let r2 = second["refresh_token"].as_str().unwrap();
    assert_ne!(r1, r2);
    assert_ne!(first["access_token"], second["access_token"]);
    assert_eq!(second["scope"], "get_user_profile");

    let res = app
        .token_json(
            Some(&client),
            json!({"grantType": "refresh_token", "refreshToken": r2}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let third: Value = res.json().await.unwrap();
    assert!(third["refreshToken"].is_string());
    assert!(third["refreshTokenExpiresIn"].is_number());
    assert_eq!(
        app.profile(third["accessToken"].as_str().unwrap())
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn reusing_a_rotated_refresh_token_revokes_the_whole_family() {
    let app = spawn_app().await;
    let client = app.merchant_client(&all_grants());
    let first = password_tokens(&app, &client).await;
    let r1 = first["refresh_token"].as_str().unwrap();
    let second: Value = app
        .token_form(
            Some(&client),
            &[("grant_type", "refresh_token"), ("refresh_token", r1)],
        )
        .await
        .json()
        .await
        .unwrap();
    let r2 = second["refresh_token"].as_str().unwrap();
    let a2 = second["access_token"].as_str().unwrap();
    assert_eq!(app.profile(a2).await.status(), 200);

    // r1 again: refused, and everything issued in its family stops working.
    let res = app
        .token_form(
            Some(&client),
            &[("grant_type", "refresh_token"), ("refresh_token", r1)],
        )
        .await;
    assert_rfc_error(res, 400, "invalid_grant").await;
    let res = app
        .token_form(
            Some(&client),
            &[("grant_type", "refresh_token"), ("refresh_token", r2)],
        )
        .await;
    assert_rfc_error(res, 400, "invalid_grant").await;
    for token in [a2, first["access_token"].as_str().unwrap()] {
        let res = app.profile(token).await;
        assert_eq!(res.status(), 401);
        assert!(
            res.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .contains(r#"error="invalid_token""#)
        );
    }
}

#[tokio::test]
async fn refresh_may_narrow_the_scope_but_never_widen_it() {
    let app = spawn_app().await;
    // `manage_store` is one of Revenue Monster's scopes, seeded by the migrations.
    let mut args = all_grants();
    args.extend(["--scope", "get_user_profile", "--scope", "manage_store"]);
    let client = app.merchant_client(&args);
    let res = app
        .token_form(
            Some(&client),
            &[
                ("grant_type", "password"),
                ("username", "merchant"),
                ("password", MERCHANT_PASSWORD),
                ("scope", "get_user_profile"),
            ],
        )
        .await;
    let narrow: Value = res.json().await.unwrap();
    let r1 = narrow["refresh_token"].as_str().unwrap();

    // Widening: refused, and the token is still good afterwards.
    let res = app
        .token_form(
            Some(&client),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", r1),
                ("scope", "get_user_profile manage_store"),
            ],
        )
        .await;
    assert_rfc_error(res, 400, "invalid_scope").await;

    let full = password_tokens(&app, &client).await;
    assert_eq!(full["scope"], "get_user_profile manage_store");
    let res = app
        .token_json(
            Some(&client),
            json!({"grantType": "refresh_token", "refreshToken": full["refresh_token"], "scope": "manage_store"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let narrowed: Value = res.json().await.unwrap();
    assert_eq!(narrowed["scope"], "manage_store");
    // The narrowed token lacks get_user_profile.
    let res = app.profile(narrowed["accessToken"].as_str().unwrap()).await;
    assert_eq!(res.status(), 403);

    let res = app
        .token_form(
            Some(&client),
            &[("grant_type", "refresh_token"), ("refresh_token", r1)],
        )
        .await;
    assert_eq!(
        res.status(),
        200,
        "a refused widening must not spend the token"
    );
}

#[tokio::test]
async fn refresh_tokens_are_bound_to_their_client() {
    let app = spawn_app().await;
    let client = app.merchant_client(&all_grants());
    let other = app.merchant_client(&all_grants());
    let tokens = password_tokens(&app, &client).await;
    let r1 = tokens["refresh_token"].as_str().unwrap();
    let res = app
        .token_form(
            Some(&other),
            &[("grant_type", "refresh_token"), ("refresh_token", r1)],
        )
        .await;
    assert_rfc_error(res, 400, "invalid_grant").await;
    let res = app
        .token_json(
            Some(&other),
            json!({"grantType": "refresh_token", "refreshToken": "not-a-token"}),
        )
        .await;
    assert_rm_error(res, 400, "InvalidGrant").await;
    // Still usable by its own client.
    let res = app
        .token_form(
            Some(&client),
            &[("grant_type", "refresh_token"), ("refresh_token", r1)],
        )
        .await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn twenty_concurrent_refreshes_give_exactly_one_token() {
    let app = spawn_app().await;
    let client = app.merchant_client(&all_grants());
    let tokens = password_tokens(&app, &client).await;
    let r1 = tokens["refresh_token"].as_str().unwrap().to_owned();
    let requests = (0..20).map(|_| {
        let req = app
            .api
            .post(app.url("/oauth/token"))
            .basic_auth(&client.client_id, Some(&client.secret))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", r1.as_str()),
            ]);
        async move { req.send().await.unwrap().status() }
    });
    let statuses = futures_util::future::join_all(requests).await;
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(ok, 1, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 400),
        "{statuses:?}"
    );
}

// ---- a standard client library ------------------------------------------------------------

#[tokio::test]
async fn the_oauth2_crate_works_for_client_credentials_password_and_refresh() {
    use oauth2::basic::BasicClient;
    use oauth2::{
        ClientId, ClientSecret, ResourceOwnerPassword, ResourceOwnerUsername, Scope, TokenResponse,
        TokenUrl,
    };

    let app = spawn_app().await;
    let client = app.merchant_client(&all_grants());
    let oauth = BasicClient::new(ClientId::new(client.client_id.clone()))
        .set_client_secret(ClientSecret::new(client.secret.clone()))
        .set_token_uri(TokenUrl::new(app.url("/oauth/token")).unwrap());
    let http = oauth2::reqwest::Client::builder()
        .redirect(oauth2::reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let cc = oauth
        .exchange_client_credentials()
        .add_scope(Scope::new("get_user_profile".into()))
        .request_async(&http)
        .await
        .unwrap();
    assert_eq!(app.profile(cc.access_token().secret()).await.status(), 200);
    assert!(cc.refresh_token().is_none());

    let pw = oauth
        .exchange_password(
            &ResourceOwnerUsername::new("merchant".into()),
            &ResourceOwnerPassword::new(MERCHANT_PASSWORD.into()),
        )
        .request_async(&http)
        .await
        .unwrap();
    assert_eq!(pw.expires_in(), Some(std::time::Duration::from_secs(3600)));
    let refresh = pw.refresh_token().unwrap();
    let refreshed = oauth
        .exchange_refresh_token(refresh)
        .request_async(&http)
        .await
        .unwrap();
    assert_ne!(
        refreshed.access_token().secret(),
        pw.access_token().secret()
    );
    assert_eq!(
        app.profile(refreshed.access_token().secret())
            .await
            .status(),
        200
    );

    // The library reads our error responses too.
    let err = oauth
        .exchange_refresh_token(refresh)
        .request_async(&http)
        .await
        .unwrap_err();
    match err {
        oauth2::RequestTokenError::ServerResponse(e) => {
            assert_eq!(
                *e.error(),
                oauth2::basic::BasicErrorResponseType::InvalidGrant
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// What each token request and each resource request may cost in SQL statements, on either
/// database, pinned at what they cost so that it only goes down: a query added to the hot path
/// fails here, not only in the benchmark. client_credentials is the token's insert alone: the
/// client and its secrets come from the client cache (it was the lookup and the insert before
/// the cache); the password grant's seven are the user lookup, the two lockout statements
/// (both keys reserved in one upsert, given back in one delete), and the token rows. Besides
/// these, each instance reads the client change counter once per `LATCHKEY_CLIENT_REFRESH`
/// while requests come; this test sets that (and the key reload) out of its way.
const GRANT_STATEMENTS: &[(&str, u64)] = &[
    ("client_credentials", 1),
    ("password", 7),
    ("refresh_token", 6),
    ("/v1/user/profile", 1),
    ("introspection", 1),
];

#[tokio::test]
async fn each_grant_and_resource_stays_within_its_sql_statement_budget() {
    let app = crate::helpers::spawn_counting_app().await;
    let client = app.merchant_client(&[
        "--grant-type",
        "client_credentials",
        "--grant-type",
        "refresh_token",
        "--grant-type",
        "password",
    ]);
    // Warm: the first request of a process loads keys and scopes once, loads the client and
    // records its secret's use.
    let first = app
        .token_form(Some(&client), &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    let access = first["access_token"].as_str().unwrap().to_owned();

    let mut spent = Vec::new();
    let before = app.statements.get();
    let res = app
        .token_form(Some(&client), &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(res.status(), 200);
    spent.push(("client_credentials", app.statements.get() - before));

    let before = app.statements.get();
    let res = app
        .token_form(
            Some(&client),
            &[
                ("grant_type", "password"),
                ("username", "merchant"),
                ("password", MERCHANT_PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status(), 200);
    spent.push(("password", app.statements.get() - before));
    let issued: Value = res.json().await.unwrap();
    let refresh = issued["refresh_token"].as_str().unwrap().to_owned();

    let before = app.statements.get();
    let res = app
        .token_form(
            Some(&client),
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        )
        .await;
    assert_eq!(res.status(), 200);
    spent.push(("refresh_token", app.statements.get() - before));

    let before = app.statements.get();
    let res = app
        .api
        .get(app.url("/v1/user/profile"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    spent.push(("/v1/user/profile", app.statements.get() - before));

    let before = app.statements.get();
    let res = app
        .api
        .post(app.url("/oauth/introspect"))
        .basic_auth(&client.client_id, Some(&client.secret))
        .form(&[("token", access.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    spent.push(("introspection", app.statements.get() - before));

    println!("SQL statements per request: {spent:?}");
    for ((name, spent), (pinned_name, budget)) in spent.iter().zip(GRANT_STATEMENTS) {
        assert_eq!(name, pinned_name);
        assert!(
            spent <= budget,
            "{name} ran {spent} SQL statements, budget {budget}"
        );
    }
}
