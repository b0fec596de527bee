//! `GET /v1/user/profile` and bearer-token checking: valid, expired, revoked, wrong-scope and
//! forged tokens.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use diesel::prelude::*;
use latchkey::db::schema::client_access_tokens;
use latchkey::oauth::jwt::AccessClaims;
use latchkey::oauth::keys::KeyRing;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestClient, spawn_app};

async fn token(app: &TestApp, client: &TestClient, scope: Option<&str>) -> String {
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    let body: Value = app
        .token_form(Some(client), &form)
        .await
        .json()
        .await
        .unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

fn challenge(res: &reqwest::Response) -> String {
    res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned()
}

async fn assert_invalid_token(app: &TestApp, token: &str) {
    let res = app.profile(token).await;
    assert_eq!(res.status(), 401, "{token}");
    assert!(
        challenge(&res).contains(r#"error="invalid_token""#),
        "{}",
        challenge(&res)
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token");
}

#[tokio::test]
async fn a_valid_token_returns_its_user() {
    let app = spawn_app().await;
    let client = app.merchant_client(&[]);
    let res = app.profile(&token(&app, &client, None).await).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body,
        json!({ "id": client.owner_id, "username": "merchant", "name": "Test User" })
    );
}

#[tokio::test]
async fn missing_and_malformed_credentials() {
    let app = spawn_app().await;
    let res = app.get("/v1/user/profile").await;
    assert_eq!(res.status(), 401);
    // RFC 6750 §3.1: no error code when no credentials were sent.
    assert_eq!(challenge(&res), r#"Bearer realm="latchkey""#);
    let res = app
        .api
        .get(app.url("/v1/user/profile"))
        .header("Authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // Long garbage just under the 8 KiB header limit (over it is 431: see limits.rs).
    for garbage in ["x", "a.b.c", &"A".repeat(8_000)] {
        assert_invalid_token(&app, garbage).await;
    }
}

#[tokio::test]
async fn a_token_without_the_scope_gets_403() {
    let app = spawn_app().await;
    // `manage_store` is one of Revenue Monster's scopes, seeded by the migrations.
    let client = app.merchant_client(&["--scope", "manage_store", "--scope", "get_user_profile"]);
    let res = app
        .profile(&token(&app, &client, Some("manage_store")).await)
        .await;
    assert_eq!(res.status(), 403);
    assert_eq!(
        challenge(&res),
        r#"Bearer realm="latchkey", error="insufficient_scope", scope="get_user_profile""#
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "insufficient_scope");
}

#[tokio::test]
async fn revoked_tokens_and_disabled_clients_are_refused_at_once() {
    let app = spawn_app().await;
    let client = app.merchant_client(&[]);
    let revoked = token(&app, &client, None).await;
    let other = token(&app, &client, None).await;
    let mut conn = app.db.connect();
    diesel::update(
        client_access_tokens::table.filter(
            client_access_tokens::access_token.eq(latchkey::crypto::token_digest(&revoked)),
        ),
    )
    .set(client_access_tokens::revoked_at.eq(chrono::Utc::now().naive_utc()))
    .execute(&mut conn)
    .unwrap();
    assert_invalid_token(&app, &revoked).await;
    assert_eq!(app.profile(&other).await.status(), 200);

    diesel::update(latchkey::db::schema::clients::table)
        .set(latchkey::db::schema::clients::is_enabled.eq(false))
        .execute(&mut conn)
        .unwrap();
    assert_invalid_token(&app, &other).await;
}

/// Claims like a real token's, signed with the server's real key.
fn forge(app: &TestApp, client: &TestClient, edit: impl FnOnce(&mut AccessClaims)) -> String {
    let mut conn = app.db.connect();
    let ring =
        KeyRing::load_or_create(&mut conn, &app.key, std::time::Duration::from_secs(3600)).unwrap();
    let now = chrono::Utc::now().timestamp();
    let mut claims = AccessClaims {
        iss: app.address.clone(),
        sub: client.owner_id.to_string(),
        aud: app.address.clone(),
        exp: now + 600,
        iat: now,
        nbf: now,
        jti: "forged".into(),
        client_id: client.client_id.clone(),
        scope: "get_user_profile".into(),
        env: "sandbox".into(),
        cnf: None,
    };
    edit(&mut claims);
    ring.signer.sign("at+jwt", &claims).unwrap()
}

#[tokio::test]
async fn expired_not_yet_valid_and_foreign_claims_are_refused() {
    let app = spawn_app().await;
    let client = app.merchant_client(&[]);
    let now = chrono::Utc::now().timestamp();
    let cases: Vec<(&str, String)> = vec![
        ("expired", forge(&app, &client, |c| c.exp = now - 60)),
        ("not yet valid", forge(&app, &client, |c| c.nbf = now + 600)),
        (
            "wrong issuer",
            forge(&app, &client, |c| c.iss = "https://evil.example".into()),
        ),
        (
            "wrong audience",
            forge(&app, &client, |c| {
                c.aud = "https://other-api.example".into()
            }),
        ),
        // Signed correctly but never issued: no row, so it is refused too.
        ("never issued", forge(&app, &client, |_| {})),
    ];
    for (what, token) in cases {
        let res = app.profile(&token).await;
        assert_eq!(res.status(), 401, "{what}");
        assert!(challenge(&res).contains("invalid_token"), "{what}");
    }
    let expired = app
        .profile(&forge(&app, &client, |c| c.exp = now - 60))
        .await;
    assert!(
        challenge(&expired).contains("expired"),
        "{}",
        challenge(&expired)
    );
}

#[tokio::test]
async fn tampered_and_forged_signatures_are_refused() {
    let app = spawn_app().await;
    let client = app.merchant_client(&[]);
    let good = token(&app, &client, None).await;
    let parts: Vec<&str> = good.split('.').collect();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();

    // Changed payload, original signature.
    payload["sub"] = json!("999");
    let tampered_payload = URL_SAFE_NO_PAD.encode(payload.to_string());
    assert_invalid_token(
        &app,
        &format!("{}.{}.{}", parts[0], tampered_payload, parts[2]),
    )
    .await;

    // alg: none, no signature.
    let none_header = URL_SAFE_NO_PAD
        .encode(json!({"alg": "none", "typ": "at+jwt", "kid": header["kid"]}).to_string());
    assert_invalid_token(&app, &format!("{none_header}.{}.", parts[1])).await;
    assert_invalid_token(&app, &format!("{none_header}.{}", parts[1])).await;

    // HS256 "signed" with the public key (the algorithm-confusion attack).
    let mut conn = app.db.connect();
    let ring =
        KeyRing::load_or_create(&mut conn, &app.key, std::time::Duration::from_secs(3600)).unwrap();
    let jwk = &ring.jwks[0];
    let mut hs_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs_header.kid = header["kid"].as_str().map(str::to_owned);
    hs_header.typ = Some("at+jwt".into());
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    for secret in [
        jwk.to_string().into_bytes(),
        URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap(),
    ] {
        let forged = jsonwebtoken::encode(
            &hs_header,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(&secret),
        )
        .unwrap();
        assert_invalid_token(&app, &forged).await;
    }

    // Unknown kid; a JWT that is not an access token (typ JWT).
    let unknown_kid = forge(&app, &client, |_| {});
    let mut h: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(unknown_kid.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    h["kid"] = json!("no-such-key");
    let rest: Vec<&str> = unknown_kid.splitn(2, '.').collect();
    assert_invalid_token(
        &app,
        &format!("{}.{}", URL_SAFE_NO_PAD.encode(h.to_string()), rest[1]),
    )
    .await;
    let id_token_like = ring.signer.sign("JWT", &claims).unwrap();
    assert_invalid_token(&app, &id_token_like).await;

    // Claims of the wrong JSON type.
    let mut wrong_types = claims.clone();
    wrong_types["exp"] = json!("tomorrow");
    let forged = ring.signer.sign("at+jwt", &wrong_types).unwrap();
    assert_invalid_token(&app, &forged).await;

    // The untouched token still works.
    assert_eq!(app.profile(&good).await.status(), 200);
}

/// Many more requests at once than the pool (of one connection) has connections: each waits
/// its turn and is answered. On PostgreSQL a resource request once kept the connection it peeked at while it
/// waited for another, so with every connection kept that way nobody got one until the
/// checkout timeout (a 503 for all of them, 175 req/s in the benchmark).
#[tokio::test]
async fn requests_beyond_the_pool_size_wait_their_turn_instead_of_starving() {
    let app = crate::helpers::spawn_app_with(|settings| {
        settings.db_pool_size = 1;
        None
    })
    .await;
    let client = app.merchant_client(&[]);
    let access = token(&app, &client, Some("get_user_profile")).await;
    let started = std::time::Instant::now();
    let requests = (0..32).map(|_| async { app.profile(&access).await.status().as_u16() });
    let statuses = futures_util::future::join_all(requests).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    // Far below the 3 s checkout timeout that a starved request meets.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}
