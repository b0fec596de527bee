//! The FAPI 2.0 switch (`oauth::fapi`): only for key-based clients without the password grant;
//! when on, pushed requests only, PKCE required of a confidential client, DPoP required at the
//! token endpoint, codes of at most 60 seconds, and refresh tokens that are not rotated.

use latchkey::db::models::AuthorizationCode;
use serde_json::{Value, json};

use crate::helpers::{
    CALLBACK, CHALLENGE, SigningKey, TestApp, TestClient, VERIFIER, authorize_and_allow,
    authorize_path, location, query_of, setup, spawn_app,
};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// POSTs `form` to `path` with a fresh assertion by `key` for that endpoint and, if given, a
/// DPoP proof by `dpop`.
async fn post(
    app: &TestApp,
    client: &TestClient,
    key: &SigningKey,
    dpop: Option<&SigningKey>,
    path: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let url = app.url(path);
    let assertion = key.assertion(&client.client_id, &url, json!({}));
    let mut form: Vec<(&str, &str)> = form.to_vec();
    form.push(("client_assertion_type", ASSERTION_TYPE));
    form.push(("client_assertion", &assertion));
    let mut req = app.api.post(&url).form(&form);
    if let Some(dpop) = dpop {
        req = req.header("DPoP", dpop.dpop("POST", &url, None, json!({})));
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn the_switch_needs_keys_and_no_password_grant() {
    let app = spawn_app().await;
    setup(&app);
    let out = app.cli(
        &[
            "client",
            "create",
            "--owner",
            "merchant",
            "--name",
            "Secret app",
            "--fapi2",
            "--redirect-uri",
            CALLBACK,
        ],
        "",
    );
    assert!(!out.success());
    assert!(out.stderr.contains("private_key_jwt"), "{}", out.stderr);

    let key = SigningKey::p256("k");
    let jwks = app.data_dir.path().join("jwks.json");
    std::fs::write(&jwks, json!({"keys": [key.jwk]}).to_string()).unwrap();
    let jwks = jwks.display().to_string();
    let out = app.cli(
        &[
            "client",
            "create",
            "--owner",
            "merchant",
            "--name",
            "Password app",
            "--fapi2",
            "--auth-method",
            "private_key_jwt",
            "--jwks-file",
            &jwks,
            "--grant-type",
            "password",
            "--redirect-uri",
            CALLBACK,
        ],
        "",
    );
    assert!(!out.success());
    assert!(out.stderr.contains("password grant"), "{}", out.stderr);
}

#[tokio::test]
async fn a_fapi2_client_runs_the_whole_profile() {
    let app = spawn_app().await;
    setup(&app);
    let key = SigningKey::p256("client-key");
    let dpop = SigningKey::p256("dpop-key");
    let client = app.key_client(
        &[&key],
        &[
            "--fapi2",
            "--redirect-uri",
            CALLBACK,
            "--scope",
            "get_user_profile",
        ],
    );
    let listed: Value =
        serde_json::from_str(&app.cli(&["client", "list", "--json"], "").stdout).unwrap();
    let row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["client_id"] == client.client_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(row["fapi2"], true);
    assert_eq!(row["require_pushed_authorization_requests"], true);
    assert_eq!(row["dpop_bound_access_tokens"], true);
    assert_eq!(row["token_endpoint_auth_method"], "private_key_jwt");

    let request = |pkce: bool| {
        let mut form = vec![
            ("response_type", "code"),
            ("redirect_uri", CALLBACK),
            ("scope", "get_user_profile"),
            ("state", "fapi"),
        ];
        if pkce {
            form.push(("code_challenge", CHALLENGE));
            form.push(("code_challenge_method", "S256"));
        }
        form
    };

    // Direct: refused, back to the app with invalid_request.
    let mut direct = request(true);
    direct.push(("client_id", &client.client_id));
    let res = app.get(&authorize_path(&direct)).await;
    assert_eq!(res.status(), 303);
    assert_eq!(query_of(&location(&res))["error"], "invalid_request");

    // Pushed without PKCE: refused, although the client is confidential.
    let res = post(&app, &client, &key, None, "/oauth/par", &request(false)).await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    assert!(
        body["error_description"].as_str().unwrap().contains("PKCE"),
        "{body}"
    );

    // Pushed with PKCE: the flow completes, with a code of a minute at most.
    let res = post(&app, &client, &key, None, "/oauth/par", &request(true)).await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    let uri = body["request_uri"].as_str().unwrap();
    let callback = authorize_and_allow(
        &app,
        &[("client_id", &client.client_id), ("request_uri", uri)],
    )
    .await;
    let query = query_of(&callback);
    assert_eq!(query["iss"], app.address);
    let code = query["code"].clone();
    let stored = AuthorizationCode::find_by_digest(
        &mut app.db.connect(),
        &latchkey::crypto::token_digest(&code),
    )
    .unwrap()
    .unwrap();
    assert!(
        stored.expired_at - stored.created_at <= chrono::TimeDelta::seconds(60),
        "a FAPI 2.0 code lives {} s",
        (stored.expired_at - stored.created_at).num_seconds()
    );

    // Without a DPoP proof: no token (and the code is not spent).
    let redeem = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", CALLBACK),
        ("code_verifier", VERIFIER),
    ];
    let res = post(&app, &client, &key, None, "/oauth/token", &redeem).await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_dpop_proof");
    let res = post(&app, &client, &key, Some(&dpop), "/oauth/token", &redeem).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP");
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();

    // The refresh token is not rotated: no new one, and the same works again.
    let again = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
    ];
    let mut accesses = Vec::new();
    for _ in 0..2 {
        let res = post(&app, &client, &key, Some(&dpop), "/oauth/token", &again).await;
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        assert!(body.get("refresh_token").is_none(), "{body}");
        assert_eq!(body["token_type"], "DPoP");
        accesses.push(body["access_token"].as_str().unwrap().to_owned());
    }
    // Revoking it takes the access tokens issued from it along.
    let res = post(
        &app,
        &client,
        &key,
        None,
        "/oauth/revoke",
        &[("token", refresh.as_str())],
    )
    .await;
    assert_eq!(res.status(), 200);
    let res = post(&app, &client, &key, Some(&dpop), "/oauth/token", &again).await;
    assert_eq!(res.status(), 400);
    for access in &accesses {
        let res = post(
            &app,
            &client,
            &key,
            None,
            "/oauth/introspect",
            &[("token", access)],
        )
        .await;
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["active"], false, "{body}");
    }
}
