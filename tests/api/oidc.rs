//! Discovery metadata, OpenID Connect (id_token, userinfo) and the expired-data cleanup.

use base64::Engine as _;
use diesel::prelude::*;
use serde_json::Value;
use sha2::Digest as _;

use crate::helpers::{
    CALLBACK, CHALLENGE, END_USER, END_USER_PASSWORD, VERIFIER, authorize_path, decide, location,
    log_in_and_resume, query_of, setup,
};
use crate::helpers::{Html, TestApp, TestClient, spawn_app, spawn_app_with};

/// A client allowed the OpenID Connect scopes.
fn oidc_client(app: &TestApp) -> TestClient {
    setup(app);
    app.merchant_client(&[
        "--redirect-uri",
        CALLBACK,
        "--scope",
        "openid",
        "--scope",
        "profile",
        "--scope",
        "email",
        "--scope",
        "get_user_profile",
    ])
}

/// Runs the browser part and redeems the code; returns the token response.
async fn code_flow(app: &TestApp, client: &TestClient, scope: &str, nonce: Option<&str>) -> Value {
    let mut pairs = vec![
        ("client_id", client.client_id.as_str()),
        ("response_type", "code"),
        ("redirect_uri", CALLBACK),
        ("scope", scope),
        ("state", "s"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ];
    if let Some(nonce) = nonce {
        pairs.push(("nonce", nonce));
    }
    let res = app.get(&authorize_path(&pairs)).await;
    let res = if location(&res).starts_with("/login") {
        log_in_and_resume(app, &location(&res), END_USER, END_USER_PASSWORD).await
    } else {
        res
    };
    let callback = if res.status() == 200 {
        location(&decide(app, Html::parse(&res.text().await.unwrap()), "allow").await)
    } else {
        location(&res)
    };
    let code = query_of(&callback)["code"].clone();
    let res = app
        .token_form(
            Some(client),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", CALLBACK),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

#[tokio::test]
async fn the_metadata_lists_what_the_server_does_and_each_endpoint_answers() {
    let app = spawn_app().await;
    let oauth: Value = app
        .get("/.well-known/oauth-authorization-server")
        .await
        .json()
        .await
        .unwrap();
    let oidc: Value = app
        .get("/.well-known/openid-configuration")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(oauth, oidc);
    assert_eq!(oauth["issuer"], app.address);
    assert_eq!(
        oauth["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(
        oauth["response_types_supported"],
        serde_json::json!(["code"])
    );
    let scopes: Vec<&str> = oauth["scopes_supported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    for scope in ["openid", "profile", "email", "get_user_profile"] {
        assert!(scopes.contains(&scope), "{scopes:?}");
    }
    let url = |name: &str| oauth[name].as_str().unwrap().to_owned();
    let http = reqwest::Client::new();
    // Each endpoint exists and answers as an unauthenticated call should.
    assert_eq!(
        http.get(url("jwks_uri")).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        http.get(url("authorization_endpoint"))
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    for name in [
        "token_endpoint",
        "introspection_endpoint",
        "revocation_endpoint",
        "pushed_authorization_request_endpoint",
    ] {
        let res = http
            .post(url(name))
            .form(&[("grant_type", "client_credentials"), ("token", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{name}");
    }
    assert_eq!(
        http.get(url("userinfo_endpoint"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    // The grant types listed all work for a client allowed them.
    let client = app.merchant_client(&["--grant-type", "client_credentials"]);
    assert_eq!(
        app.token_form(Some(&client), &[("grant_type", "client_credentials")])
            .await
            .status(),
        200
    );
    assert_eq!(
        oauth["grant_types_supported"],
        serde_json::json!([
            "authorization_code",
            "client_credentials",
            "password",
            "refresh_token"
        ])
    );
}

#[tokio::test]
async fn an_openid_request_returns_an_id_token_with_nonce_and_at_hash() {
    let app = spawn_app().await;
    let client = oidc_client(&app);
    let tokens = code_flow(&app, &client, "openid profile email", Some("n-0S6_WzA2Mj")).await;
    let access = tokens["access_token"].as_str().unwrap();
    let id_token = tokens["id_token"].as_str().expect("an id_token");

    let jwks: jsonwebtoken::jwk::JwkSet = app
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(id_token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    let key =
        jsonwebtoken::DecodingKey::from_jwk(jwks.find(header.kid.as_deref().unwrap()).unwrap())
            .unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[&client.client_id]);
    validation.set_issuer(&[&app.address]);
    let claims = jsonwebtoken::decode::<Value>(id_token, &key, &validation)
        .unwrap()
        .claims;

    let user = latchkey::db::models::User::find_by_username(&mut app.db.connect(), END_USER)
        .unwrap()
        .unwrap();
    assert_eq!(claims["sub"], user.id.to_string());
    assert_eq!(claims["aud"], client.client_id);
    assert_eq!(claims["nonce"], "n-0S6_WzA2Mj");
    let digest = sha2::Sha256::digest(access.as_bytes());
    assert_eq!(
        claims["at_hash"],
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16])
    );
    let (iat, auth_time) = (
        claims["iat"].as_i64().unwrap(),
        claims["auth_time"].as_i64().unwrap(),
    );
    assert!(
        auth_time <= iat && iat - auth_time < 60,
        "auth_time {auth_time} iat {iat}"
    );
    assert_eq!(claims["preferred_username"], END_USER);
    assert_eq!(
        claims["email"],
        serde_json::Value::Null,
        "the end user has no email address"
    );

    // Without openid: no id_token.
    let tokens = code_flow(&app, &client, "get_user_profile", None).await;
    assert!(tokens.get("id_token").is_none());
}

#[tokio::test]
async fn userinfo_needs_openid_and_shows_email_only_with_the_email_scope() {
    let app = spawn_app().await;
    let client = oidc_client(&app);
    let with_email = code_flow(&app, &client, "openid profile email", None).await;
    let res = app
        .api
        .get(app.url("/oauth/userinfo"))
        .bearer_auth(with_email["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["preferred_username"], END_USER);
    assert_eq!(body["name"], "Test User");
    assert!(body.as_object().unwrap().contains_key("email") && body["email_verified"] == false);

    let without_email = code_flow(&app, &client, "openid", None).await;
    let body: Value = app
        .api
        .post(app.url("/oauth/userinfo"))
        .bearer_auth(without_email["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(body.get("email").is_none(), "{body}");
    assert!(body["sub"].is_string());

    let no_openid = code_flow(&app, &client, "get_user_profile", None).await;
    let res = app
        .api
        .get(app.url("/oauth/userinfo"))
        .bearer_auth(no_openid["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}

#[tokio::test]
async fn the_openidconnect_crate_discovers_us_and_verifies_our_id_token() {
    use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
    use openidconnect::{
        AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
        OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
    };

    let app = spawn_app().await;
    let client = oidc_client(&app);
    let http = openidconnect::reqwest::Client::builder()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(app.address.clone()).unwrap(), &http)
            .await
            .unwrap();
    let oidc = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(client.client_id.clone()),
        Some(ClientSecret::new(client.secret.clone())),
    )
    .set_redirect_uri(RedirectUrl::new(CALLBACK.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, state, nonce) = oidc
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .url();

    let res = app
        .get(&format!(
            "{}?{}",
            auth_url.path(),
            auth_url.query().unwrap()
        ))
        .await;
    let res = log_in_and_resume(&app, &location(&res), END_USER, END_USER_PASSWORD).await;
    let callback = location(&decide(&app, Html::parse(&res.text().await.unwrap()), "allow").await);
    let params = query_of(&callback);
    assert_eq!(&params["state"], state.secret());

    let tokens = oidc
        .exchange_code(AuthorizationCode::new(params["code"].clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    let id_token = tokens.id_token().expect("an id_token");
    let verifier = oidc.id_token_verifier();
    let claims = id_token.claims(&verifier, &nonce).unwrap();
    assert_eq!(
        claims.preferred_username().map(|u| u.as_str()),
        Some(END_USER)
    );
    let expected = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(claims.access_token_hash(), Some(&expected));
}

#[tokio::test]
async fn expired_rows_are_swept_in_batches_and_live_ones_stay() {
    use latchkey::db::schema::{client_access_tokens, sessions};
    let app = spawn_app().await;
    let client = app.merchant_client(&[]);
    for _ in 0..3 {
        app.token_form(Some(&client), &[("grant_type", "client_credentials")])
            .await;
    }
    let mut conn = app.db.connect();
    let past = chrono::Utc::now().naive_utc() - chrono::TimeDelta::hours(2);
    let ids: Vec<i64> = client_access_tokens::table
        .select(client_access_tokens::id)
        .order(client_access_tokens::id)
        .load(&mut conn)
        .unwrap();
    diesel::update(client_access_tokens::table.filter(client_access_tokens::id.ne(ids[2])))
        .set(client_access_tokens::expired_at.eq(past))
        .execute(&mut conn)
        .unwrap();
    diesel::insert_into(sessions::table)
        .values((
            sessions::session_key.eq("old"),
            sessions::state.eq("{}"),
            sessions::created_at.eq(past),
            sessions::expires_at.eq(past),
        ))
        .execute(&mut conn)
        .unwrap();
    let removed = latchkey::cleanup::sweep(&mut conn, chrono::Utc::now().naive_utc()).unwrap();
    assert_eq!(removed.access_tokens, 2);
    assert_eq!(removed.sessions, 1);
    assert_eq!(app.count("client_access_tokens"), 1);
    assert_eq!(
        latchkey::cleanup::sweep(&mut conn, chrono::Utc::now().naive_utc())
            .unwrap()
            .total(),
        0
    );
}

#[tokio::test]
async fn the_background_cleanup_runs_on_its_interval() {
    use latchkey::db::schema::sessions;
    let app = spawn_app_with(|settings| {
        settings.cleanup_interval = 1;
        None
    })
    .await;
    let past = chrono::Utc::now().naive_utc() - chrono::TimeDelta::hours(2);
    diesel::insert_into(sessions::table)
        .values((
            sessions::session_key.eq("old"),
            sessions::state.eq("{}"),
            sessions::created_at.eq(past),
            sessions::expires_at.eq(past),
        ))
        .execute(&mut app.db.connect())
        .unwrap();
    for _ in 0..50 {
        if app.count("sessions") == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the expired session was not removed");
}

/// The scope catalogue is cached with the clients: a scope the CLI adds (another process) is in
/// the discovery document within the client refresh interval, on either backend (the triggers
/// of both bump the change counter).
#[tokio::test]
async fn a_scope_added_by_the_cli_reaches_the_discovery_document_within_the_refresh() {
    let app = spawn_app().await;
    let scopes = async || -> Vec<String> {
        let doc: Value = app
            .get("/.well-known/openid-configuration")
            .await
            .json()
            .await
            .unwrap();
        serde_json::from_value(doc["scopes_supported"].clone()).unwrap()
    };
    assert!(!scopes().await.contains(&"read_settlements".to_owned()));
    let out = app.cli(
        &[
            "scope",
            "create",
            "read_settlements",
            "--description",
            "Read your settlements",
        ],
        "",
    );
    assert!(out.success());
    crate::helpers::once_seen("a new scope", async || {
        scopes().await.contains(&"read_settlements".to_owned())
    })
    .await;
}
