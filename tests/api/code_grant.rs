//! The `authorization_code` grant at the token endpoint (RFC 6749 §4.1.3, RFC 7636 §4.6), with
//! codes written straight to the database as the authorization endpoint would.

use latchkey::db::models::{AuthorizationCode, Client, Consent, NewAuthorizationCode};
use latchkey::domain::UserId;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestClient, spawn_app};

const REDIRECT: &str = "https://shop.example/callback";
/// RFC 7636 Appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

struct CodeSpec<'a> {
    challenge: Option<&'a str>,
    expires_in: i64,
    /// Whether the authorization request named the redirect URI (then the token request must).
    redirect_uri_given: bool,
}

impl Default for CodeSpec<'_> {
    fn default() -> Self {
        Self {
            challenge: Some(CHALLENGE),
            expires_in: 600,
            redirect_uri_given: true,
        }
    }
}

/// Stores a code for `client_id` and the merchant user, with the consent it was issued under;
/// returns the code in clear.
fn issue_code(app: &TestApp, client_id: &str, user_id: i64, spec: CodeSpec<'_>) -> String {
    let user_id = UserId::new(user_id);
    let mut conn = app.db.connect();
    let client = Client::find_by_client_id(&mut conn, client_id)
        .unwrap()
        .unwrap();
    let code = latchkey::crypto::random_token(32);
    let now = chrono::Utc::now().naive_utc();
    AuthorizationCode::insert(
        &mut conn,
        &NewAuthorizationCode {
            client_id: client.id,
            user_id,
            code: &latchkey::crypto::token_digest(&code),
            scope: "get_user_profile",
            redirect_uri: REDIRECT,
            code_challenge: spec.challenge,
            code_challenge_method: spec.challenge.map(|_| "S256"),
            nonce: None,
            expired_at: now + chrono::TimeDelta::seconds(spec.expires_in),
            created_at: now,
            auth_time: Some(now),
            redirect_uri_given: spec.redirect_uri_given,
        },
    )
    .unwrap();
    // The consent the code was issued under: the code grant checks it still holds.
    Consent::grant(&mut conn, user_id, client.id, "get_user_profile", now).unwrap();
    code
}

fn setup(app: &TestApp) -> TestClient {
    app.merchant_client(&[
        "--redirect-uri",
        REDIRECT,
        "--redirect-uri",
        "https://shop.example/other",
    ])
}

async fn redeem(
    app: &TestApp,
    client: &TestClient,
    code: &str,
    verifier: Option<&str>,
) -> reqwest::Response {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
    ];
    if let Some(v) = verifier {
        form.push(("code_verifier", v));
    }
    app.token_form(Some(client), &form).await
}

async fn error_code(res: reqwest::Response) -> (u16, String) {
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap();
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn a_code_with_pkce_is_exchanged_once_in_either_dialect() {
    let app = spawn_app().await;
    let client = setup(&app);
    let code = issue_code(
        &app,
        &client.client_id,
        client.owner_id,
        CodeSpec::default(),
    );
    let res = redeem(&app, &client, &code, Some(VERIFIER)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    assert!(body["refresh_token"].is_string());
    assert_eq!(body["scope"], "get_user_profile");
    assert_eq!(
        app.profile(body["access_token"].as_str().unwrap())
            .await
            .status(),
        200
    );

    // Revenue Monster's JSON shape (their docs: grantType, code, redirectUri), no PKCE.
    let code = issue_code(
        &app,
        &client.client_id,
        client.owner_id,
        CodeSpec {
            challenge: None,
            ..Default::default()
        },
    );
    let res = app
        .token_json(
            Some(&client),
            json!({"grantType": "authorization_code", "code": code, "redirectUri": REDIRECT}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert!(body["accessToken"].is_string() && body["refreshToken"].is_string());
}

#[tokio::test]
async fn a_replayed_code_is_refused_and_revokes_what_it_issued() {
    let app = spawn_app().await;
    let client = setup(&app);
    let code = issue_code(
        &app,
        &client.client_id,
        client.owner_id,
        CodeSpec::default(),
    );
    let first: Value = redeem(&app, &client, &code, Some(VERIFIER))
        .await
        .json()
        .await
        .unwrap();
    let access = first["access_token"].as_str().unwrap();
    let refresh = first["refresh_token"].as_str().unwrap();
    // A refresh made before the replay is part of what gets revoked.
    let refreshed: Value = app
        .token_form(
            Some(&client),
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        )
        .await
        .json()
        .await
        .unwrap();

    assert_eq!(
        error_code(redeem(&app, &client, &code, Some(VERIFIER)).await).await,
        (400, "invalid_grant".into())
    );
    assert_eq!(app.profile(access).await.status(), 401);
    assert_eq!(
        app.profile(refreshed["access_token"].as_str().unwrap())
            .await
            .status(),
        401
    );
    let res = app
        .token_form(
            Some(&client),
            &[
                ("grant_type", "refresh_token"),
                (
                    "refresh_token",
                    refreshed["refresh_token"].as_str().unwrap(),
                ),
            ],
        )
        .await;
    assert_eq!(error_code(res).await, (400, "invalid_grant".into()));
}

#[tokio::test]
async fn codes_are_bound_to_client_redirect_uri_expiry_and_pkce() {
    let app = spawn_app().await;
    let client = setup(&app);
    let other = setup(&app);
    let id = client.owner_id;

    let code = issue_code(&app, &client.client_id, id, CodeSpec::default());
    assert_eq!(
        error_code(redeem(&app, &other, &code, Some(VERIFIER)).await).await,
        (400, "invalid_grant".into())
    );

    let res = app
        .token_form(
            Some(&client),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", "https://shop.example/other"),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
    assert_eq!(error_code(res).await, (400, "invalid_grant".into()));
    // Without redirect_uri while the client has two registered: a missing parameter.
    let res = app
        .token_form(
            Some(&client),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
    assert_eq!(error_code(res).await, (400, "invalid_request".into()));

    // PKCE: missing verifier, wrong verifier.
    assert_eq!(
        error_code(redeem(&app, &client, &code, None).await).await,
        (400, "invalid_request".into())
    );
    let wrong = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXx";
    assert_eq!(
        error_code(redeem(&app, &client, &code, Some(wrong)).await).await,
        (400, "invalid_grant".into())
    );
    // None of the failures above spent the code.
    assert_eq!(
        redeem(&app, &client, &code, Some(VERIFIER)).await.status(),
        200
    );

    // Downgrade: a verifier for a code issued without a challenge.
    let plain = issue_code(
        &app,
        &client.client_id,
        id,
        CodeSpec {
            challenge: None,
            ..Default::default()
        },
    );
    assert_eq!(
        error_code(redeem(&app, &client, &plain, Some(VERIFIER)).await).await,
        (400, "invalid_grant".into())
    );

    let expired = issue_code(
        &app,
        &client.client_id,
        id,
        CodeSpec {
            expires_in: -1,
            ..Default::default()
        },
    );
    assert_eq!(
        error_code(redeem(&app, &client, &expired, Some(VERIFIER)).await).await,
        (400, "invalid_grant".into())
    );
    assert_eq!(
        error_code(redeem(&app, &client, "made-up-code", Some(VERIFIER)).await).await,
        (400, "invalid_grant".into())
    );
}

#[tokio::test]
async fn public_clients_must_use_pkce() {
    let app = spawn_app().await;
    let client = setup(&app);
    let public = app.create_client("merchant", &["--public", "--redirect-uri", REDIRECT]);
    let public_id = public["client_id"].as_str().unwrap();
    // Its one registered redirect URI was left out of the requests, so it may be left out here.
    let unnamed = || CodeSpec {
        redirect_uri_given: false,
        ..Default::default()
    };
    let with = issue_code(&app, public_id, client.owner_id, unnamed());
    let without = issue_code(
        &app,
        public_id,
        client.owner_id,
        CodeSpec {
            challenge: None,
            ..unnamed()
        },
    );
    let form = |code: &str| {
        vec![
            ("grant_type".to_owned(), "authorization_code".to_owned()),
            ("code".to_owned(), code.to_owned()),
            ("client_id".to_owned(), public_id.to_owned()),
            ("code_verifier".to_owned(), VERIFIER.to_owned()),
        ]
    };
    let res = app
        .api
        .post(app.url("/oauth/token"))
        .form(&form(&with))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut no_pkce = form(&without);
    no_pkce.pop();
    let res = app
        .api
        .post(app.url("/oauth/token"))
        .form(&no_pkce)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(res).await, (400, "invalid_grant".into()));
}

#[tokio::test]
async fn twenty_concurrent_redemptions_give_exactly_one_token() {
    let app = spawn_app().await;
    let client = setup(&app);
    let code = issue_code(
        &app,
        &client.client_id,
        client.owner_id,
        CodeSpec::default(),
    );
    let requests = (0..20).map(|_| {
        let req = app
            .api
            .post(app.url("/oauth/token"))
            .basic_auth(&client.client_id, Some(&client.secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
            ]);
        async move { req.send().await.unwrap().status() }
    });
    let statuses = futures_util::future::join_all(requests).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 400),
        "{statuses:?}"
    );
}
