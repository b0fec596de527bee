//! Attacks on authorization codes and PKCE at the token endpoint (RFC 6749 §4.1.3, §10.5,
//! RFC 7636 §4.6, RFC 9700 §4.8): replay, another client, another redirect URI, PKCE downgrade,
//! expiry and concurrent redemption. Codes are written to the database as the authorization
//! endpoint would, so each case controls exactly one thing.

use latchkey::db::models::{AuthorizationCode, Client, Consent, NewAuthorizationCode};
use serde_json::json;

use super::{Expect, H, check};
use crate::helpers::{TestApp, TestClient, spawn_app};

const REDIRECT: &str = "https://shop.example/callback";
const OTHER_REDIRECT: &str = "https://shop.example/other";
/// RFC 7636 Appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
/// Well-formed, but not the one the challenge was made from.
const WRONG_VERIFIER: &str = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
/// 129 characters: one over RFC 7636 §4.1's maximum.
const LONG_VERIFIER: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/// Stores a code as `/oauth/authorize` would, with the consent it was issued under; returns
/// it in clear.
fn code(app: &TestApp, client: &TestClient, challenge: Option<&str>, expires_in: i64) -> String {
    let mut conn = app.db.connect();
    let stored = Client::find_by_client_id(&mut conn, &client.client_id)
        .unwrap()
        .unwrap();
    let code = latchkey::crypto::random_token(32);
    let now = chrono::Utc::now().naive_utc();
    AuthorizationCode::insert(
        &mut conn,
        &NewAuthorizationCode {
            client_id: stored.id,
            user_id: stored.user_id,
            code: &latchkey::crypto::token_digest(&code),
            scope: "get_user_profile",
            redirect_uri: REDIRECT,
            code_challenge: challenge,
            code_challenge_method: challenge.map(|_| "S256"),
            nonce: None,
            expired_at: now + chrono::TimeDelta::seconds(expires_in),
            created_at: now,
            auth_time: Some(now),
            redirect_uri_given: true,
        },
    )
    .unwrap();
    // The consent the code was issued under: the code grant checks it still holds.
    Consent::grant(
        &mut conn,
        stored.user_id,
        stored.id,
        "get_user_profile",
        now,
    )
    .unwrap();
    code
}

fn grant() -> Expect {
    Expect::new(400).error("invalid_grant").no_store()
}

fn ok() -> Expect {
    Expect::new(200)
        .no_store()
        .header(H::Is("pragma", "no-cache"))
}

/// A form-dialect redemption with Basic credentials and the given extra fields.
async fn redeem(
    app: &TestApp,
    client: &TestClient,
    code: &str,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut form = vec![("grant_type", "authorization_code"), ("code", code)];
    form.extend_from_slice(extra);
    app.token_form(Some(client), &form).await
}

#[tokio::test]
async fn codes_are_bound_single_use_and_pkce_cannot_be_downgraded() {
    let app = spawn_app().await;
    let two_uris = ["--redirect-uri", REDIRECT, "--redirect-uri", OTHER_REDIRECT];
    let client = app.merchant_client(&two_uris);
    let other = app.merchant_client(&two_uris);
    let pkce = [("redirect_uri", REDIRECT), ("code_verifier", VERIFIER)];

    // Each row: a fresh code (with or without a challenge, expired or not) and the redemption.
    struct Row {
        name: &'static str,
        challenge: Option<&'static str>,
        expires_in: i64,
        by_other_client: bool,
        form: Vec<(&'static str, &'static str)>,
        expect: Expect,
    }
    let row = |name, form: Vec<(&'static str, &'static str)>, expect| Row {
        name,
        challenge: Some(CHALLENGE),
        expires_in: 600,
        by_other_client: false,
        form,
        expect,
    };
    let rows = vec![
        row(
            "baseline: right client, URI and verifier",
            pkce.to_vec(),
            ok(),
        ),
        Row {
            by_other_client: true,
            ..row("another client (cross-client)", pkce.to_vec(), grant())
        },
        row(
            "another registered redirect URI",
            vec![
                ("redirect_uri", OTHER_REDIRECT),
                ("code_verifier", VERIFIER),
            ],
            grant(),
        ),
        row(
            "redirect URI with a trailing slash",
            vec![
                ("redirect_uri", "https://shop.example/callback/"),
                ("code_verifier", VERIFIER),
            ],
            grant(),
        ),
        row(
            "redirect URI with an added query",
            vec![
                ("redirect_uri", "https://shop.example/callback?x=1"),
                ("code_verifier", VERIFIER),
            ],
            grant(),
        ),
        row(
            "redirect URI left out (two registered)",
            vec![("code_verifier", VERIFIER)],
            Expect::new(400).error("invalid_request").no_store(),
        ),
        row(
            "wrong verifier",
            vec![
                ("redirect_uri", REDIRECT),
                ("code_verifier", WRONG_VERIFIER),
            ],
            grant(),
        ),
        row(
            "the challenge as verifier (plain downgrade)",
            vec![("redirect_uri", REDIRECT), ("code_verifier", CHALLENGE)],
            grant(),
        ),
        row(
            "verifier too short",
            vec![
                ("redirect_uri", REDIRECT),
                ("code_verifier", &VERIFIER[..42]),
            ],
            grant(),
        ),
        row(
            "verifier too long",
            vec![("redirect_uri", REDIRECT), ("code_verifier", LONG_VERIFIER)],
            grant(),
        ),
        row(
            "verifier left out (PKCE stripped)",
            vec![("redirect_uri", REDIRECT)],
            Expect::new(400).error("invalid_request").no_store(),
        ),
        row(
            "verifier twice",
            vec![
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
                ("code_verifier", VERIFIER),
            ],
            Expect::new(400).error("invalid_request").no_store(),
        ),
        Row {
            challenge: None,
            ..row(
                "a verifier for a code without a challenge (downgrade, RFC 9700 §4.8.2)",
                pkce.to_vec(),
                grant(),
            )
        },
        Row {
            challenge: None,
            ..row(
                "no PKCE on either side (confidential client)",
                vec![("redirect_uri", REDIRECT)],
                ok(),
            )
        },
        Row {
            expires_in: -1,
            ..row("expired a second ago", pkce.to_vec(), grant())
        },
    ];
    for r in rows {
        let issued = code(&app, &client, r.challenge, r.expires_in);
        let by = if r.by_other_client { &other } else { &client };
        let res = redeem(&app, by, &issued, &r.form).await;
        check(r.name, res, &r.expect).await;
        if r.by_other_client {
            // A code presented by the wrong client is not spent: its own client still gets it.
            let res = redeem(&app, &client, &issued, &pkce).await;
            check(
                "the rightful client after a cross-client attempt",
                res,
                &ok(),
            )
            .await;
        }
    }

    for (name, value) in [
        ("unknown code", "no-such-code"),
        ("empty code", ""),
        ("oversized code", &"c".repeat(5000)),
    ] {
        let expect = if value.is_empty() {
            Expect::new(400).error("invalid_request").no_store()
        } else {
            grant()
        };
        check(name, redeem(&app, &client, value, &pkce).await, &expect).await;
    }
}

#[tokio::test]
async fn a_replayed_code_is_refused_and_revokes_what_it_issued() {
    let app = spawn_app().await;
    let client = app.merchant_client(&["--redirect-uri", REDIRECT]);
    let issued = code(&app, &client, Some(CHALLENGE), 600);
    let pkce = [("redirect_uri", REDIRECT), ("code_verifier", VERIFIER)];
    let first = check(
        "first redemption",
        redeem(&app, &client, &issued, &pkce).await,
        &ok(),
    )
    .await;
    let tokens = first.json();
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    check(
        "profile before the replay",
        app.profile(access).await,
        &Expect::new(200),
    )
    .await;

    check(
        "replay, form dialect",
        redeem(&app, &client, &issued, &pkce).await,
        &grant(),
    )
    .await;
    let res = app
        .token_json(
            Some(&client),
            json!({"grantType": "authorization_code", "code": issued, "redirectUri": REDIRECT, "codeVerifier": VERIFIER}),
        )
        .await;
    check(
        "replay, JSON dialect",
        res,
        &Expect::new(400).error("InvalidGrant").no_store(),
    )
    .await;
    // RFC 6749 §4.1.2: the tokens the code issued are revoked.
    check(
        "access token after the replay",
        app.profile(access).await,
        &Expect::new(401).error("invalid_token"),
    )
    .await;
    let res = app
        .token_form(
            Some(&client),
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        )
        .await;
    check("refresh token after the replay", res, &grant()).await;
}

#[tokio::test]
async fn concurrent_redemptions_give_exactly_one_token() {
    let app = spawn_app().await;
    let client = app.merchant_client(&["--redirect-uri", REDIRECT]);
    let issued = code(&app, &client, Some(CHALLENGE), 600);
    let pkce = [("redirect_uri", REDIRECT), ("code_verifier", VERIFIER)];
    let attempts = (0..10).map(|_| redeem(&app, &client, &issued, &pkce));
    let answers = futures_util::future::join_all(attempts).await;
    let mut statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [200, 400, 400, 400, 400, 400, 400, 400, 400, 400],
        "case `ten concurrent redemptions of one code`"
    );
}

/// RFC 6749 §4.1.3: a redirect_uri named in the authorization request must be named again,
/// identically, at the token endpoint, even when the client registered only that one. One left
/// out of the request may be left out here, and must still match when sent.
#[tokio::test]
async fn a_redirect_uri_named_at_authorize_must_be_named_again_at_the_token_endpoint() {
    use crate::helpers::{CALLBACK, authorize_and_allow, authorize_path, location, query_of};

    let app = spawn_app().await;
    // One registered redirect URI: the request may leave it out.
    let client = crate::helpers::setup(&app);
    let named = vec![
        ("client_id", client.client_id.as_str()),
        ("response_type", "code"),
        ("redirect_uri", CALLBACK),
        ("scope", "get_user_profile"),
    ];
    let unnamed: Vec<_> = named
        .iter()
        .copied()
        .filter(|(n, _)| *n != "redirect_uri")
        .collect();
    // Signed in and agreed once: each request below answers with a code at once.
    authorize_and_allow(&app, &named).await;

    let other = "https://app.example.com/other";
    let near_miss = "https://app.example.com/callback/";
    let missing = || Expect::new(400).error("invalid_request").no_store();
    // Each row: the authorization request, then the token request's extra fields.
    type Pairs<'a> = Vec<(&'a str, &'a str)>;
    let rows: Vec<(&str, &Pairs, Pairs, Expect)> = vec![
        (
            "named at authorize, left out at the token endpoint",
            &named,
            vec![],
            missing(),
        ),
        (
            "named at authorize, another URI at the token endpoint",
            &named,
            vec![("redirect_uri", other)],
            grant(),
        ),
        (
            "named at authorize, a trailing slash at the token endpoint",
            &named,
            vec![("redirect_uri", near_miss)],
            grant(),
        ),
        (
            "control: named at authorize, named again",
            &named,
            vec![("redirect_uri", CALLBACK)],
            ok(),
        ),
        (
            "control: left out at authorize, left out at the token endpoint",
            &unnamed,
            vec![],
            ok(),
        ),
        (
            "control: left out at authorize, named at the token endpoint",
            &unnamed,
            vec![("redirect_uri", CALLBACK)],
            ok(),
        ),
        (
            "left out at authorize, another URI at the token endpoint",
            &unnamed,
            vec![("redirect_uri", other)],
            grant(),
        ),
    ];
    for (name, request, form, expect) in rows {
        let res = app.get(&authorize_path(request)).await;
        let callback = location(&res);
        assert!(
            callback.starts_with(CALLBACK),
            "case `{name}`: no code ({callback})"
        );
        let issued = query_of(&callback)["code"].clone();
        check(name, redeem(&app, &client, &issued, &form).await, &expect).await;
    }
    // The JSON dialect is held to the same rule.
    let res = app.get(&authorize_path(&named)).await;
    let issued = query_of(&location(&res))["code"].clone();
    let res = app
        .token_json(
            Some(&client),
            json!({"grantType": "authorization_code", "code": issued}),
        )
        .await;
    check(
        "named at authorize, left out of a JSON token request",
        res,
        &Expect::new(400).error("InvalidRequest").no_store(),
    )
    .await;
}
