//! DPoP (RFC 9449): a proof at the token endpoint binds the access token (`cnf.jkt`,
//! `token_type: DPoP`, in both dialects) and a public client's refresh token; the resources take
//! a bound token only as `Authorization: DPoP` with a proof by its key; introspection reports
//! `cnf`; a client may be made to require DPoP; server nonces. The refusals (replays, other
//! URLs, methods and keys, stale proofs, missing `ath`, a bound token as Bearer) are in the
//! attack suite (`attacks::dpop`).

use serde_json::{Value, json};

use crate::helpers::{
    CALLBACK, CHALLENGE, SigningKey, TestApp, TestClient, VERIFIER, authorize_and_allow,
    jwt_claims, query_of, setup, spawn_app, spawn_app_with,
};

/// `POST /oauth/token` with `client`'s Basic credentials and, if given, a `DPoP` header.
async fn token(
    app: &TestApp,
    client: &TestClient,
    proof: Option<&str>,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = app
        .api
        .post(app.url("/oauth/token"))
        .basic_auth(&client.client_id, Some(&client.secret))
        .form(form);
    if let Some(proof) = proof {
        req = req.header("DPoP", proof);
    }
    req.send().await.unwrap()
}

/// `GET path` with `Authorization: DPoP <token>` and a proof by `key` for it.
async fn dpop_get(app: &TestApp, key: &SigningKey, path: &str, token: &str) -> reqwest::Response {
    let url = app.url(path);
    app.api
        .get(&url)
        .header("Authorization", format!("DPoP {token}"))
        .header("DPoP", key.dpop("GET", &url, Some(token), json!({})))
        .send()
        .await
        .unwrap()
}

const CC: &[(&str, &str)] = &[("grant_type", "client_credentials")];

#[tokio::test]
async fn a_proof_binds_the_access_token_and_the_resource_demands_the_key() {
    let app = spawn_app().await;
    let client = app.merchant_client(&[]);
    let key = SigningKey::p256("dpop");
    let url = app.url("/oauth/token");

    let res = token(
        &app,
        &client,
        Some(&key.dpop("POST", &url, None, json!({}))),
        CC,
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP", "{body}");
    let access = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(jwt_claims(&access)["cnf"]["jkt"], key.jkt());

    // The resource: with a proof by the key, yes; no more as a bearer token.
    let res = dpop_get(&app, &key, "/v1/user/profile", &access).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["username"], "merchant");
    let res = app.profile(&access).await;
    assert_eq!(res.status(), 401);
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.starts_with("DPoP ") && challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
    assert!(
        challenge.contains(r#"algs="ES256 EdDSA RS256 PS256""#),
        "{challenge}"
    );

    // Without a proof the token is a bearer token, as before; it is refused under DPoP.
    let res = token(&app, &client, None, CC).await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    let bearer = body["access_token"].as_str().unwrap().to_owned();
    assert!(jwt_claims(&bearer).get("cnf").is_none());
    assert_eq!(app.profile(&bearer).await.status(), 200);
    let res = dpop_get(&app, &key, "/v1/user/profile", &bearer).await;
    assert_eq!(res.status(), 401);

    // Introspection reports the binding (RFC 9449 §6.2).
    let res = app
        .api
        .post(app.url("/oauth/introspect"))
        .basic_auth(&client.client_id, Some(&client.secret))
        .form(&[("token", access.as_str())])
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["active"], true);
    assert_eq!(body["token_type"], "DPoP");
    assert_eq!(body["cnf"]["jkt"], key.jkt());
    let res = app
        .api
        .post(app.url("/oauth/introspect"))
        .basic_auth(&client.client_id, Some(&client.secret))
        .form(&[("token", bearer.as_str())])
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert!(body.get("cnf").is_none(), "{body}");

    // Revenue Monster's dialect says so in its own spelling, at its own URL.
    let v1 = app.url("/v1/token");
    let res = app
        .api
        .post(&v1)
        .basic_auth(&client.client_id, Some(&client.secret))
        .header("DPoP", key.dpop("POST", &v1, None, json!({})))
        .json(&json!({"grantType": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["tokenType"], "DPoP", "{body}");
    let rm_access = body["accessToken"].as_str().unwrap();
    assert_eq!(jwt_claims(rm_access)["cnf"]["jkt"], key.jkt());
    // A proof for /oauth/token does not pass at /v1/token.
    let res = app
        .api
        .post(&v1)
        .basic_auth(&client.client_id, Some(&client.secret))
        .header("DPoP", key.dpop("POST", &url, None, json!({})))
        .json(&json!({"grantType": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "InvalidDPoPProof", "{body}");

    // The metadata names the algorithms.
    let meta: Value = app
        .get("/.well-known/openid-configuration")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        meta["dpop_signing_alg_values_supported"],
        json!(["ES256", "EdDSA", "RS256", "PS256"])
    );
}

/// A public client's code flow with DPoP: the refresh token is bound to the key (RFC 9449 §5),
/// and userinfo takes the bound token with a proof.
#[tokio::test]
async fn a_public_clients_refresh_token_is_bound_to_its_key() {
    let app = spawn_app().await;
    let merchant = setup(&app);
    let public = app.create_client(
        "merchant",
        &[
            "--public",
            "--redirect-uri",
            CALLBACK,
            "--scope",
            "openid",
            "--scope",
            "get_user_profile",
        ],
    );
    let id = public["client_id"].as_str().unwrap();
    let key = SigningKey::p256("device");
    let other = SigningKey::p256("thief");
    let url = app.url("/oauth/token");

    let callback = authorize_and_allow(
        &app,
        &[
            ("client_id", id),
            ("response_type", "code"),
            ("redirect_uri", CALLBACK),
            ("scope", "openid get_user_profile"),
            ("state", "s1"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ],
    )
    .await;
    let code = query_of(&callback)["code"].clone();
    let post = |proof: Option<String>, form: Vec<(&'static str, String)>| {
        let mut req = app.api.post(app.url("/oauth/token")).form(&form);
        if let Some(proof) = proof {
            req = req.header("DPoP", proof);
        }
        async move { req.send().await.unwrap() }
    };
    let res = post(
        Some(key.dpop("POST", &url, None, json!({}))),
        vec![
            ("grant_type", "authorization_code".into()),
            ("client_id", id.into()),
            ("code", code),
            ("redirect_uri", CALLBACK.into()),
            ("code_verifier", VERIFIER.into()),
        ],
    )
    .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP");
    let access = body["access_token"].as_str().unwrap().to_owned();
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();

    let res = dpop_get(&app, &key, "/oauth/userinfo", &access).await;
    assert_eq!(res.status(), 200);
    let info: Value = res.json().await.unwrap();
    assert_eq!(info["preferred_username"], "enduser");
    let res = app
        .api
        .get(app.url("/oauth/userinfo"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    let refresh_with = |proof: Option<String>, token: String| {
        post(
            proof,
            vec![
                ("grant_type", "refresh_token".into()),
                ("client_id", id.into()),
                ("refresh_token", token),
            ],
        )
    };
    // Another key, or none: refused, and the token is not spent by the attempt.
    for proof in [Some(other.dpop("POST", &url, None, json!({}))), None] {
        let res = refresh_with(proof, refresh.clone()).await;
        assert_eq!(res.status(), 400);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "invalid_grant", "{body}");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("bound to a DPoP key"),
            "{body}"
        );
    }
    // The key's own proof: new tokens, the new refresh token bound to the same key.
    let res = refresh_with(Some(key.dpop("POST", &url, None, json!({}))), refresh).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP");
    let next = body["refresh_token"].as_str().unwrap().to_owned();
    let res = refresh_with(
        Some(other.dpop("POST", &url, None, json!({}))),
        next.clone(),
    )
    .await;
    assert_eq!(res.status(), 400);
    // The merchant's confidential client sees the binding of its public sibling's token.
    let res = app
        .api
        .post(app.url("/oauth/introspect"))
        .basic_auth(&merchant.client_id, Some(&merchant.secret))
        .form(&[
            ("token", next.as_str()),
            ("token_type_hint", "refresh_token"),
        ])
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["active"], true, "{body}");
    assert_eq!(body["cnf"]["jkt"], key.jkt());
    let res = refresh_with(Some(key.dpop("POST", &url, None, json!({}))), next).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_confidential_clients_refresh_token_is_not_bound_but_its_access_tokens_are() {
    let app = spawn_app().await;
    let client = app.merchant_client(&[
        "--grant-type",
        "client_credentials",
        "--grant-type",
        "refresh_token",
    ]);
    let key = SigningKey::p256("k");
    let url = app.url("/v1/token");
    // Revenue Monster's dialect gives client_credentials a refresh token.
    let res = app
        .api
        .post(&url)
        .basic_auth(&client.client_id, Some(&client.secret))
        .header("DPoP", key.dpop("POST", &url, None, json!({})))
        .json(&json!({"grantType": "client_credentials"}))
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    let refresh = body["refreshToken"].as_str().unwrap().to_owned();
    // Bound by the client's own authentication, so a refresh without a proof works and gives
    // a bearer token; with one, a bound token again.
    let res = app
        .token_json(
            Some(&client),
            json!({"grantType": "refresh_token", "refreshToken": refresh}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["tokenType"], "Bearer");
    let refresh = body["refreshToken"].as_str().unwrap().to_owned();
    let res = app
        .api
        .post(&url)
        .basic_auth(&client.client_id, Some(&client.secret))
        .header("DPoP", key.dpop("POST", &url, None, json!({})))
        .json(&json!({"grantType": "refresh_token", "refreshToken": refresh}))
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["tokenType"], "DPoP", "{body}");
}

#[tokio::test]
async fn a_client_that_requires_dpop_gets_no_token_without_a_proof() {
    let app = spawn_app().await;
    let client = app.merchant_client(&["--dpop"]);
    let listed = app.cli(&["client", "list", "--json"], "");
    let listed: Value = serde_json::from_str(&listed.stdout).unwrap();
    let row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["client_id"] == client.client_id.as_str())
        .unwrap();
    assert_eq!(row["dpop_bound_access_tokens"], true);
    assert_eq!(row["fapi2"], false);

    let res = token(&app, &client, None, CC).await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_dpop_proof", "{body}");
    let key = SigningKey::p256("k");
    let proof = key.dpop("POST", &app.url("/oauth/token"), None, json!({}));
    let res = token(&app, &client, Some(&proof), CC).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP");
}

#[tokio::test]
async fn server_nonces_are_demanded_given_and_accepted() {
    let app = spawn_app_with(|settings| {
        settings.dpop_nonce = true;
        None
    })
    .await;
    let client = app.merchant_client(&[]);
    let key = SigningKey::p256("k");
    let url = app.url("/oauth/token");

    // No nonce: use_dpop_nonce, with one to use.
    let res = token(
        &app,
        &client,
        Some(&key.dpop("POST", &url, None, json!({}))),
        CC,
    )
    .await;
    assert_eq!(res.status(), 400);
    let nonce = res.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "use_dpop_nonce", "{body}");
    // A made-up nonce, or one of the right shape from long ago: the same.
    for stale in ["made-up", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"] {
        let proof = key.dpop("POST", &url, None, json!({"nonce": stale}));
        let res = token(&app, &client, Some(&proof), CC).await;
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "use_dpop_nonce", "{stale}: {body}");
    }
    // The server's nonce: tokens, and the nonce again for next time.
    let proof = key.dpop("POST", &url, None, json!({"nonce": nonce}));
    let res = token(&app, &client, Some(&proof), CC).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("dpop-nonce"));
    let body: Value = res.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap().to_owned();

    // The resource asks the same way (RFC 9449 §9).
    let res = dpop_get(&app, &key, "/v1/user/profile", &access).await;
    assert_eq!(res.status(), 401);
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains(r#"error="use_dpop_nonce""#),
        "{challenge}"
    );
    let nonce = res.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    let profile = app.url("/v1/user/profile");
    let res = app
        .api
        .get(&profile)
        .header("Authorization", format!("DPoP {access}"))
        .header(
            "DPoP",
            key.dpop("GET", &profile, Some(&access), json!({"nonce": nonce})),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn the_token_endpoint_refuses_a_request_with_two_proofs() {
    let app = spawn_app().await;
    let client = app.merchant_client(&[]);
    let key = SigningKey::p256("k");
    let url = app.url("/oauth/token");
    let res = app
        .api
        .post(&url)
        .basic_auth(&client.client_id, Some(&client.secret))
        .header("DPoP", key.dpop("POST", &url, None, json!({})))
        .header("DPoP", key.dpop("POST", &url, None, json!({})))
        .form(CC)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_dpop_proof");
}
