//! Developer › Applications: creating, viewing, re-viewing and rotating secrets, editing,
//! disabling, deleting, the activity page, and isolation between merchants.

use diesel::prelude::*;
use latchkey::db::models::Client;
use latchkey::db::schema::{audit_events, client_secrets};
use serde_json::Value;

use crate::helpers::{
    CONFIRM_LIVE, Html, MERCHANT_PASSWORD, TestApp, TestClient, location, once_seen, spawn_app,
};

pub(crate) const APPS: &str = "/developer/applications";

/// Signs `username` up (the link confirms the address), leaving them signed in.
pub(crate) async fn merchant(app: &TestApp, username: &str) {
    let email = format!("{username}@example.com");
    assert_eq!(
        app.sign_up(username, &email, MERCHANT_PASSWORD)
            .await
            .status(),
        303
    );
}

pub(crate) fn valid_form() -> Vec<(&'static str, &'static str)> {
    vec![
        ("name", "Acme Shop"),
        ("description", "Our online shop"),
        ("home_page_url", "https://shop.example.com"),
        ("logo_url", "https://shop.example.com/logo.png"),
        ("privacy_policy_url", "https://shop.example.com/privacy"),
        (
            "redirect_uris",
            "https://shop.example.com/callback\r\nhttp://localhost:3000/callback",
        ),
        ("environment", "sandbox"),
        ("client_type", "confidential"),
        ("grant_types", "client_credentials"),
        ("grant_types", "authorization_code"),
        ("grant_types", "refresh_token"),
        ("scopes", "get_user_profile"),
    ]
}

/// Creates an application through the form; returns its client_id and the secret shown once.
pub(crate) async fn create_app(app: &TestApp, form: &[(&str, &str)]) -> TestClient {
    let res = app.post_form(APPS, &format!("{APPS}/new"), form).await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    let path = location(&res);
    let client_id = path.rsplit('/').next().unwrap().to_owned();
    let (status, page) = app.page(&path).await;
    assert_eq!(status, 200);
    let secret = page.attr("#client-secret", "value").unwrap_or_default();
    TestClient {
        client_id,
        secret,
        owner_id: 0,
    }
}

async fn token_status(app: &TestApp, client_id: &str, secret: &str) -> u16 {
    let client = TestClient {
        client_id: client_id.into(),
        secret: secret.into(),
        owner_id: 0,
    };
    app.token_form(Some(&client), &[("grant_type", "client_credentials")])
        .await
        .status()
        .as_u16()
}

#[tokio::test]
async fn the_list_starts_empty_and_invites_the_first_application() {
    let app = spawn_app().await;
    merchant(&app, "acme").await;
    let (status, page) = app.page(APPS).await;
    assert_eq!(status, 200);
    assert_eq!(
        page.text(".empty h2").as_deref(),
        Some("Register your first application")
    );
    assert_eq!(
        page.attr(".empty a.button", "href").as_deref(),
        Some("/developer/applications/new")
    );
}

#[tokio::test]
async fn creating_shows_the_secret_once_and_it_works() {
    let app = spawn_app().await;
    merchant(&app, "acme").await;
    let created = create_app(&app, &valid_form()).await;
    assert!(
        created.secret.starts_with("lks_"),
        "secret shown after creation"
    );
    assert_eq!(
        token_status(&app, &created.client_id, &created.secret).await,
        200
    );

    // Shown once: a reload masks it.
    let (_, page) = app.page(&format!("{APPS}/{}", created.client_id)).await;
    assert!(page.attr("#client-secret", "value").is_none());
    assert!(
        page.text("table.table")
            .unwrap()
            .contains(&created.secret[created.secret.len() - 4..])
    );
    assert_eq!(
        page.attr("#client-id", "value").as_deref(),
        Some(created.client_id.as_str())
    );
    assert!(
        page.attr("#token-url", "value")
            .unwrap()
            .ends_with("/oauth/token")
    );

    // The list shows it with its badges.
    let (_, list) = app.page(APPS).await;
    assert_eq!(list.text(".app-name").as_deref(), Some("Acme Shop"));
    assert_eq!(list.text(".badge.sandbox").as_deref(), Some("Sandbox"));

    let stored = Client::find_by_client_id(&mut app.db.connect(), &created.client_id)
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.home_page_url.as_deref(),
        Some("https://shop.example.com")
    );
    assert_eq!(
        stored.redirect_uri,
        "https://shop.example.com/callback http://localhost:3000/callback"
    );
    assert_eq!(
        stored.grant_types,
        "authorization_code client_credentials refresh_token"
    );
}

#[tokio::test]
async fn every_field_error_sits_beside_its_field_with_the_input_kept() {
    let app = spawn_app().await;
    merchant(&app, "acme").await;
    let with = |field: &'static str, value: &'static str| {
        let mut form: Vec<(&str, &str)> = valid_form()
            .into_iter()
            .filter(|(k, _)| *k != field)
            .collect();
        if !value.is_empty() || field != "grant_types" {
            form.push((field, value));
        }
        form
    };
    type Case = (
        Vec<(&'static str, &'static str)>,
        &'static str,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (with("name", ""), "#name-error", "can't be blank"),
        (
            with("home_page_url", "shop.example.com"),
            "#home_page_url-error",
            "https://",
        ),
        (
            with("logo_url", "javascript:alert(1)"),
            "#logo_url-error",
            "https://",
        ),
        (
            with("privacy_policy_url", "ftp://x.example"),
            "#privacy_policy_url-error",
            "https://",
        ),
        (
            with("redirect_uris", "https://shop.example.com/cb#frag"),
            "#redirect_uris-error",
            "fragment",
        ),
        (
            with("redirect_uris", "/relative"),
            "#redirect_uris-error",
            "absolute URL",
        ),
        (
            with("redirect_uris", ""),
            "#redirect_uris-error",
            "at least one redirect URI",
        ),
        (
            with("grant_types", ""),
            "#grant_types-error",
            "at least one",
        ),
        (with("scopes", "admin"), "#scopes-error", "not a scope"),
        (
            with("description", Box::leak("x".repeat(501).into_boxed_str())),
            "#description-error",
            "at most 500",
        ),
    ];
    for (form, field, message) in cases {
        let res = app.post_form(APPS, &format!("{APPS}/new"), &form).await;
        assert_eq!(res.status(), 422, "{field}");
        let page = Html::parse(&res.text().await.unwrap());
        let error = page.text(field).unwrap_or_else(|| panic!("no {field}"));
        assert!(error.contains(message), "{field}: {error}");
        assert!(page.text(".alert.error").is_some());
        // The rest of the input is kept.
        if field != "#name-error" {
            assert_eq!(
                page.attr("#name", "value").as_deref(),
                Some("Acme Shop"),
                "{field}"
            );
        }
    }
    // Public applications cannot use client credentials.
    let mut public = valid_form();
    public.retain(|(k, _)| *k != "client_type");
    public.push(("client_type", "public"));
    let res = app.post_form(APPS, &format!("{APPS}/new"), &public).await;
    let page = Html::parse(&res.text().await.unwrap());
    assert!(
        page.text("#grant_types-error")
            .unwrap()
            .contains("public application")
    );
    // Live needs https redirect URIs (localhost excepted).
    let mut live = with("redirect_uris", "http://shop.example.com/cb");
    live.retain(|(k, _)| *k != "environment");
    live.push(("environment", "live"));
    let res = app.post_form(APPS, &format!("{APPS}/new"), &live).await;
    let page = Html::parse(&res.text().await.unwrap());
    assert!(
        page.text("#redirect_uris-error")
            .unwrap()
            .contains("https://")
    );
    assert_eq!(app.count("clients"), 0);
}

#[tokio::test]
async fn an_unverified_account_cannot_go_live() {
    let app = spawn_app().await;
    // Sign-ups confirm the address by their link; an operator's `user create --email` does not.
    let out = app.cli(
        &[
            "user",
            "create",
            "--username",
            "newbie",
            "--name",
            "Newbie",
            "--email",
            "newbie@example.com",
        ],
        &format!("{MERCHANT_PASSWORD}\n"),
    );
    assert!(out.success(), "{}", out.stderr);
    app.log_in("newbie", MERCHANT_PASSWORD).await;
    let mut form = valid_form();
    form.retain(|(k, _)| *k != "environment");
    form.push(("environment", "live"));
    let res = app.post_form(APPS, &format!("{APPS}/new"), &form).await;
    assert_eq!(res.status(), 422);
    let page = Html::parse(&res.text().await.unwrap());
    assert!(
        page.text("#environment-error")
            .unwrap()
            .contains("Confirm your email")
    );
    assert!(
        page.attr("#env-live", "checked").is_some(),
        "the choice is kept"
    );
}

#[tokio::test]
async fn viewing_the_secret_again_needs_the_password_and_is_recorded() {
    let app = spawn_app().await;
    merchant(&app, "acme").await;
    let created = create_app(&app, &valid_form()).await;
    let show = format!("{APPS}/{}", created.client_id);
    let secret_url = format!("{show}/secret");

    let res = app.post_form(&secret_url, &show, &[]).await;
    assert_eq!(res.status(), 200);
    let page = Html::parse(&res.text().await.unwrap());
    assert!(page.text("h1").unwrap().contains("Confirm it is you"));
    assert!(page.attr("#client-secret", "value").is_none());

    let res = app
        .post_form(&secret_url, &show, &[("password", "not my password")])
        .await;
    assert_eq!(res.status(), 422);
    let page = Html::parse(&res.text().await.unwrap());
    assert!(page.text("#password-error").is_some());

    let res = app
        .post_form(&secret_url, &show, &[("password", MERCHANT_PASSWORD)])
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let page = Html::parse(&res.text().await.unwrap());
    assert_eq!(
        page.attr("#client-secret", "value").as_deref(),
        Some(created.secret.as_str())
    );

    // Within 10 minutes, no second prompt.
    let res = app.post_form(&secret_url, &show, &[]).await;
    let page = Html::parse(&res.text().await.unwrap());
    assert_eq!(
        page.attr("#client-secret", "value").as_deref(),
        Some(created.secret.as_str())
    );

    let viewed: i64 = audit_events::table
        .filter(audit_events::action.eq("secret_viewed"))
        .count()
        .get_result(&mut app.db.connect())
        .unwrap();
    assert_eq!(viewed, 2);
    let email = app.outbox.last_to("acme@example.com").unwrap();
    assert_eq!(email.subject, "A client secret of Acme Shop was revealed");
}

#[tokio::test]
async fn rotation_keeps_the_old_secret_for_the_chosen_time() {
    let app = spawn_app().await;
    merchant(&app, "acme").await;
    let created = create_app(&app, &valid_form()).await;
    let show = format!("{APPS}/{}", created.client_id);
    let res = app
        .post_form(
            &format!("{show}/secret/rotate"),
            &show,
            &[("grace", "1h"), ("password", MERCHANT_PASSWORD)],
        )
        .await;
    assert_eq!(res.status(), 303);
    let (_, page) = app.page(&show).await;
    let new_secret = page
        .attr("#client-secret", "value")
        .expect("the new secret is shown once");
    assert_ne!(new_secret, created.secret);
    assert!(page.text(".flash").unwrap().contains("1 hour"));
    assert!(page.text("table.table").unwrap().contains("Works until"));

    // Both work during the overlap.
    assert_eq!(
        token_status(&app, &created.client_id, &created.secret).await,
        200
    );
    assert_eq!(
        token_status(&app, &created.client_id, &new_secret).await,
        200
    );
    // When the overlap ends, the old one is refused. (Ended by hand in SQL, which the server
    // sees within LATCHKEY_CLIENT_REFRESH; a cached secret reaching its expiry is
    // `client_cache::a_cached_secret_is_refused_from_the_moment_it_expires`.)
    let mut conn = app.db.connect();
    diesel::update(client_secrets::table.filter(client_secrets::expires_at.is_not_null()))
        .set(
            client_secrets::expires_at
                .eq(chrono::Utc::now().naive_utc() - chrono::TimeDelta::seconds(1)),
        )
        .execute(&mut conn)
        .unwrap();
    once_seen("the overlap ended by hand", async || {
        token_status(&app, &created.client_id, &created.secret).await == 401
    })
    .await;
    assert_eq!(
        token_status(&app, &created.client_id, &created.secret).await,
        401
    );
    assert_eq!(
        token_status(&app, &created.client_id, &new_secret).await,
        200
    );

    // Rotating with "now" ends the previous secret at once.
    app.post_form(&format!("{show}/secret/rotate"), &show, &[("grace", "now")])
        .await;
    let (_, page) = app.page(&show).await;
    let newest = page.attr("#client-secret", "value").unwrap();
    assert_eq!(
        token_status(&app, &created.client_id, &new_secret).await,
        401
    );
    assert_eq!(token_status(&app, &created.client_id, &newest).await, 200);
    assert!(
        app.outbox
            .messages()
            .iter()
            .any(|m| m.subject == "A client secret of Acme Shop was rotated")
    );
}

#[tokio::test]
async fn editing_disabling_and_the_activity_log() {
    let app = spawn_app().await;
    merchant(&app, "acme").await;
    // Going live needs two-step sign-in (LATCHKEY_REQUIRE_MFA_FOR_LIVE).
    app.enable_totp().await;
    let created = create_app(&app, &valid_form()).await;
    let show = format!("{APPS}/{}", created.client_id);

    let (_, edit) = app.page(&format!("{show}/edit")).await;
    assert_eq!(edit.attr("#name", "value").as_deref(), Some("Acme Shop"));
    let mut form: Vec<(&str, &str)> = valid_form()
        .into_iter()
        .filter(|(k, _)| !matches!(*k, "name" | "environment" | "redirect_uris"))
        .collect();
    form.extend([
        ("name", "Acme Store"),
        ("environment", "live"),
        ("redirect_uris", "https://store.example.com/cb"),
        CONFIRM_LIVE,
    ]);
    let res = app
        .post_form(&format!("{show}/edit"), &format!("{show}/edit"), &form)
        .await;
    assert_eq!(res.status(), 303);
    let stored = Client::find_by_client_id(&mut app.db.connect(), &created.client_id)
        .unwrap()
        .unwrap();
    assert_eq!(stored.name, "Acme Store");
    assert!(stored.is_live);
    assert_eq!(stored.redirect_uri, "https://store.example.com/cb");

    let res = app.disable_app(&show).await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        token_status(&app, &created.client_id, &created.secret).await,
        401
    );
    let (_, page) = app.page(&show).await;
    assert_eq!(page.text(".badge.disabled").as_deref(), Some("Disabled"));
    app.enable_app(&show).await;
    assert_eq!(
        token_status(&app, &created.client_id, &created.secret).await,
        200
    );

    let (status, activity) = app.page(&format!("{show}/activity")).await;
    assert_eq!(status, 200);
    let log = activity.text("#log table").unwrap();
    for action in ["created", "edited", "went live", "disabled", "enabled"] {
        assert!(log.contains(action), "{action} missing from {log}");
    }
    assert!(log.contains("acme") && log.contains("127.0.0.1"), "{log}");
    assert!(log.contains("name, redirect URIs, environment"), "{log}");
    assert_eq!(
        activity
            .0
            .select(&scraper::Selector::parse("svg.chart rect.issued").unwrap())
            .count(),
        14
    );
    // One token was issued today, and the request while disabled failed.
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let table = activity.text("table.visually-hidden").unwrap();
    assert!(table.contains(&format!("{today} 1 1")), "{table}");
    let failures = activity.text("#failures table").unwrap();
    assert!(
        failures.contains("invalid_client This client is disabled."),
        "{failures}"
    );
}

#[tokio::test]
async fn deleting_says_what_breaks_then_revokes_everything() {
    let app = spawn_app().await;
    merchant(&app, "acme").await;
    let created = create_app(&app, &valid_form()).await;
    let body: Value = app
        .token_form(Some(&created), &[("grant_type", "client_credentials")])
        .await
        .json()
        .await
        .unwrap();
    let token = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.profile(&token).await.status(), 200);

    let show = format!("{APPS}/{}", created.client_id);
    let (status, confirm) = app.page(&format!("{show}/delete")).await;
    assert_eq!(status, 200);
    let text = confirm.text("section").unwrap();
    assert!(
        text.contains("cannot be undone") && text.contains("token") && text.contains("disable"),
        "{text}"
    );

    let res = app.delete_app(&show).await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), APPS);
    assert_eq!(app.profile(&token).await.status(), 401);
    assert_eq!(
        token_status(&app, &created.client_id, &created.secret).await,
        401
    );
    assert_eq!(app.count("clients"), 0);
    assert_eq!(app.count("client_access_tokens"), 0);
    let (_, list) = app.page(APPS).await;
    assert!(list.text(".flash").unwrap().contains("deleted"));
    assert_eq!(app.page(&show).await.0, 404);
}

#[tokio::test]
async fn another_merchants_application_is_404_for_every_page_and_post() {
    let app = spawn_app().await;
    merchant(&app, "acme").await;
    let created = create_app(&app, &valid_form()).await;
    let show = format!("{APPS}/{}", created.client_id);
    // The intruder, in a browser of their own.
    let intruder = crate::helpers::spawn_browser(&app, "mallory").await;
    for path in [
        show.clone(),
        format!("{show}/edit"),
        format!("{show}/delete"),
        format!("{show}/disable"),
        format!("{show}/activity"),
    ] {
        let res = intruder.get(app.url(&path)).send().await.unwrap();
        assert_eq!(res.status(), 404, "GET {path}");
    }
    let page = Html::parse(
        &intruder
            .get(app.url(APPS))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    let csrf = page.csrf();
    let posts: Vec<(String, Vec<(&str, &str)>)> = vec![
        (format!("{show}/edit"), valid_form()),
        (format!("{show}/toggle"), vec![]),
        (format!("{show}/delete"), vec![]),
        (
            format!("{show}/secret"),
            vec![("password", MERCHANT_PASSWORD)],
        ),
        (format!("{show}/secret/rotate"), vec![("grace", "now")]),
        (format!("{show}/secrets/1/revoke"), vec![]),
        (
            format!("{show}/keys"),
            vec![
                (
                    "jwks",
                    r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#,
                ),
                ("confirm_switch", "on"),
                ("password", MERCHANT_PASSWORD),
            ],
        ),
        (format!("{show}/keys/remove"), vec![("kid", "k1")]),
    ];
    for (path, mut form) in posts {
        form.push(("csrf_token", &csrf));
        let res = intruder
            .post(app.url(&path))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "POST {path}");
    }
    let stored = Client::find_by_client_id(&mut app.db.connect(), &created.client_id)
        .unwrap()
        .unwrap();
    assert_eq!(stored.name, "Acme Shop");
    assert!(stored.is_enabled);
    assert_eq!(
        token_status(&app, &created.client_id, &created.secret).await,
        200
    );
    let secrets: i64 = client_secrets::table
        .count()
        .get_result(&mut app.db.connect())
        .unwrap();
    assert_eq!(secrets, 1);
}

/// The keys page: a secret-based application switches to private_key_jwt (the box ticked, the
/// password given, the keys checked, the form kept on every error), its secret stops and
/// assertions work; a second key is added, one removed after the page that says what breaks,
/// and assertions with it are refused from then on. Each change is audited and emailed.
#[tokio::test]
async fn an_application_switches_to_private_key_jwt_and_its_keys_are_managed() {
    use crate::helpers::SigningKey;
    let app = spawn_app().await;
    merchant(&app, "acme").await;
    let created = create_app(&app, &valid_form()).await;
    let show = format!("{APPS}/{}", created.client_id);
    let keys = format!("{show}/keys");
    let first = SigningKey::p256("first");
    let document = serde_json::json!({ "keys": [first.jwk] }).to_string();

    let (status, page) = app.page(&keys).await;
    assert_eq!(status, 200);
    assert!(
        page.text("main")
            .unwrap()
            .contains("authenticates with a client secret")
    );

    // Not confirmed: the error beside the box, the document kept.
    let res = app.post_form(&keys, &keys, &[("jwks", &document)]).await;
    assert_eq!(res.status(), 422);
    let page = Html::parse(&res.text().await.unwrap());
    assert!(page.text("#confirm_switch-error").is_some());
    assert!(page.text("#jwks").unwrap().contains("\"first\""), "kept");

    // Confirmed, no password yet: the password page, carrying the form.
    let switch = [("jwks", document.as_str()), ("confirm_switch", "on")];
    let res = app.post_form(&keys, &keys, &switch).await;
    assert_eq!(res.status(), 200);
    let page = Html::parse(&res.text().await.unwrap());
    assert!(page.text("h1").unwrap().contains("Confirm it is you"));
    assert_eq!(
        token_status(&app, &created.client_id, &created.secret).await,
        200
    );

    // A private key, with the password: refused beside the field, the document kept.
    let mut private = first.jwk.clone();
    private["d"] = serde_json::json!("c2VjcmV0");
    let bad = serde_json::json!({ "keys": [private] }).to_string();
    let res = app
        .post_form(
            &keys,
            &keys,
            &[
                ("jwks", &bad),
                ("confirm_switch", "on"),
                ("password", MERCHANT_PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status(), 422);
    let page = Html::parse(&res.text().await.unwrap());
    assert!(
        page.text("#jwks-error").unwrap().contains("private"),
        "{:?}",
        page.text("#jwks-error")
    );
    assert!(page.text("#jwks").unwrap().contains("\"d\""), "kept");

    // Within the re-authentication window, the switch goes through.
    let res = app.post_form(&keys, &keys, &switch).await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), keys);
    let (_, page) = app.page(&keys).await;
    assert!(page.text(".flash").unwrap().contains("private_key_jwt"));
    assert!(page.text("tbody").unwrap().contains("first"));
    once_seen("the secret refused", async || {
        token_status(&app, &created.client_id, &created.secret).await == 401
    })
    .await;
    assert_eq!(
        assertion_status(&app, &created.client_id, &first).await,
        200
    );
    let secrets: i64 = client_secrets::table
        .count()
        .get_result(&mut app.db.connect())
        .unwrap();
    assert_eq!(secrets, 0, "the secrets are gone");
    let (_, page) = app.page(&show).await;
    assert!(page.text("main").unwrap().contains("Manage keys"));
    let email = app.outbox.last_to("acme@example.com").unwrap();
    assert_eq!(email.subject, "The public keys of Acme Shop changed");

    // A rotation is refused: there is no secret to rotate.
    let res = app
        .post_form(&format!("{show}/secret/rotate"), &show, &[("grace", "now")])
        .await;
    assert_eq!(res.status(), 303);
    let (_, page) = app.page(&show).await;
    assert!(page.text(".flash").unwrap().contains("no secret to rotate"));
    assert_eq!(
        client_secrets::table
            .count()
            .get_result::<i64>(&mut app.db.connect())
            .unwrap(),
        0
    );

    // A second key; a kid that repeats is refused.
    let second = SigningKey::p256("second");
    let more = serde_json::json!({ "keys": [second.jwk] }).to_string();
    assert_eq!(
        app.post_form(&keys, &keys, &[("jwks", &more)])
            .await
            .status(),
        303
    );
    let res = app.post_form(&keys, &keys, &[("jwks", &more)]).await;
    assert_eq!(res.status(), 422);
    let page = Html::parse(&res.text().await.unwrap());
    assert!(page.text("#jwks-error").unwrap().contains("already has"));

    // Removing: the page says what breaks; an unknown kid is 404.
    let (status, page) = app.page(&format!("{keys}/remove?kid=first")).await;
    assert_eq!(status, 200);
    assert!(page.text("main").unwrap().contains("refused"));
    assert_eq!(app.page(&format!("{keys}/remove?kid=nope")).await.0, 404);
    let res = app
        .post_form(
            &format!("{keys}/remove"),
            &format!("{keys}/remove?kid=first"),
            &[("kid", "first")],
        )
        .await;
    assert_eq!(res.status(), 303);
    once_seen("the removed key refused", async || {
        assertion_status(&app, &created.client_id, &first).await == 401
    })
    .await;
    assert_eq!(
        assertion_status(&app, &created.client_id, &second).await,
        200
    );

    let actions: Vec<String> = audit_events::table
        .select(audit_events::action)
        .filter(audit_events::action.like("key%"))
        .load(&mut app.db.connect())
        .unwrap();
    assert_eq!(actions, ["keys_added", "keys_added", "key_removed"]);
}

/// The status of a client_credentials request authenticated by an assertion signed with `key`.
async fn assertion_status(app: &TestApp, client_id: &str, key: &crate::helpers::SigningKey) -> u16 {
    let assertion = key.assertion(client_id, &app.url("/oauth/token"), serde_json::json!({}));
    app.token_form(
        None,
        &[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &assertion),
        ],
    )
    .await
    .status()
    .as_u16()
}

#[tokio::test]
async fn the_edit_form_sets_pushed_requests_dpop_and_fapi2_with_a_confirmation_when_live() {
    use crate::helpers::SigningKey;
    let app = spawn_app().await;
    merchant(&app, "acme").await;
    app.enable_totp().await;
    let created = create_app(&app, &valid_form()).await;
    let show = format!("{APPS}/{}", created.client_id);
    let edit = format!("{show}/edit");
    let stored = || {
        Client::find_by_client_id(&mut app.db.connect(), &created.client_id)
            .unwrap()
            .unwrap()
    };
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut form = valid_form();
        form.extend_from_slice(extra);
        form
    };

    let (_, page) = app.page(&edit).await;
    assert!(page.attr("#require_par", "checked").is_none());
    assert!(page.attr("#dpop_bound", "checked").is_none());
    assert!(
        page.text("#fapi2-hint")
            .unwrap()
            .contains("switch to private_key_jwt"),
        "a secret-based app is told what FAPI 2.0 needs"
    );

    // Sandbox: pushed requests and DPoP are saved as they are ticked.
    let res = app
        .post_form(
            &edit,
            &edit,
            &with(&[("require_par", "on"), ("dpop_bound", "on")]),
        )
        .await;
    assert_eq!(res.status(), 303);
    assert!(stored().require_par && stored().dpop_bound);
    assert_eq!(
        token_status(&app, &created.client_id, &created.secret).await,
        400,
        "a token request without a DPoP proof"
    );
    let (_, page) = app.page(&show).await;
    assert!(
        page.text("main")
            .unwrap()
            .contains("DPoP-bound tokens required")
    );

    // FAPI 2.0 on a secret-based app: refused beside the box, the other input kept.
    let res = app
        .post_form(
            &edit,
            &edit,
            &with(&[("require_par", "on"), ("dpop_bound", "on"), ("fapi2", "on")]),
        )
        .await;
    assert_eq!(res.status(), 422);
    let page = Html::parse(&res.text().await.unwrap());
    assert!(page.text("#fapi2-error").unwrap().contains("public keys"));
    assert!(page.attr("#require_par", "checked").is_some(), "kept");
    assert!(!stored().fapi2);

    // Live, and then stricter: only with the box ticked that says what breaks.
    let live = |extra: &[(&'static str, &'static str)]| {
        let mut form: Vec<(&str, &str)> = valid_form()
            .into_iter()
            .filter(|(k, _)| *k != "environment")
            .collect();
        form.extend([("environment", "live"), CONFIRM_LIVE]);
        form.extend_from_slice(extra);
        form
    };
    let res = app
        .post_form(&edit, &edit, &live(&[("require_par", "on")]))
        .await;
    assert_eq!(
        res.status(),
        303,
        "going live and dropping DPoP is not stricter"
    );
    assert!(stored().is_live && !stored().dpop_bound);
    let res = app
        .post_form(
            &edit,
            &edit,
            &live(&[("require_par", "on"), ("dpop_bound", "on")]),
        )
        .await;
    assert_eq!(res.status(), 422);
    let page = Html::parse(&res.text().await.unwrap());
    assert!(
        page.text("#confirm_security-error")
            .unwrap()
            .contains("live")
    );
    assert!(!stored().dpop_bound);
    let res = app
        .post_form(
            &edit,
            &edit,
            &live(&[
                ("require_par", "on"),
                ("dpop_bound", "on"),
                ("confirm_security", "on"),
            ]),
        )
        .await;
    assert_eq!(res.status(), 303);
    assert!(stored().dpop_bound);

    // A key-based app may turn FAPI 2.0 on.
    let key = SigningKey::p256("k");
    let mut keys = latchkey::domain::ClientKeys::default();
    keys.add(
        &serde_json::json!({ "keys": [key.jwk] }).to_string(),
        latchkey::db::now(),
    )
    .unwrap();
    Client::set_jwks(
        &mut app.db.connect(),
        stored().id,
        &keys.to_stored(),
        latchkey::db::now(),
    )
    .unwrap();
    let res = app
        .post_form(
            &edit,
            &edit,
            &live(&[("fapi2", "on"), ("confirm_security", "on")]),
        )
        .await;
    assert_eq!(res.status(), 303);
    assert!(stored().fapi2);
    let (_, page) = app.page(&show).await;
    assert!(page.text("main").unwrap().contains("FAPI 2.0"));
    let (_, activity) = app.page(&format!("{show}/activity")).await;
    let log = activity.text("main").unwrap();
    assert!(log.contains("FAPI 2.0") && log.contains("DPoP"), "{log}");
}

/// Runs a copied example in `sh`, as a merchant pasting it into a terminal would.
fn run_copied(command: &str) -> Value {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{command}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[tokio::test]
async fn the_connect_card_gives_the_urls_and_examples_that_work_as_copied() {
    let app = spawn_app().await;
    merchant(&app, "acme").await;
    let res = app
        .post_form(APPS, &format!("{APPS}/new"), &valid_form())
        .await;
    assert_eq!(res.status(), 303);
    let path = location(&res);
    let client_id = path.rsplit('/').next().unwrap().to_owned();

    // Right after creation the secret is on the page, and in the examples.
    let (_, page) = app.page(&path).await;
    let secret = page.attr("#client-secret", "value").unwrap();
    assert_eq!(page.attr("#issuer", "value").unwrap(), app.address);
    assert_eq!(
        page.attr("#discovery-url", "value").unwrap(),
        format!("{}/.well-known/openid-configuration", app.address)
    );
    let discovery: Value = app
        .get("/.well-known/openid-configuration")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        page.attr("#token-url", "value").unwrap(),
        discovery["token_endpoint"].as_str().unwrap()
    );
    // The authorization URL: this app, its first redirect URI, its scopes, a state to replace;
    // opened, it is a working authorization request (the sign-in page, not an error).
    let authorize = page.attr("#authorize-url", "value").unwrap();
    let query = crate::helpers::query_of(&authorize);
    assert_eq!(query["client_id"], client_id);
    assert_eq!(query["redirect_uri"], "https://shop.example.com/callback");
    assert_eq!(query["scope"], "get_user_profile");
    assert_eq!(query["state"], "YOUR_STATE");
    assert!(
        !query.contains_key("code_challenge"),
        "optional for a confidential app"
    );
    let opened = app.new_browser().get(&authorize).send().await.unwrap();
    assert_eq!(opened.status(), 303, "to the sign-in page");
    assert!(
        location(&opened).starts_with("/login"),
        "{}",
        location(&opened)
    );

    let examples: Vec<String> = (1..=3)
        .map(|i| page.text(&format!("#example-{i}")).unwrap_or_default())
        .collect();
    assert!(examples.iter().all(|e| e.contains(&secret)), "{examples:?}");
    let rfc = run_copied(&page_value(&page, "#example-1"));
    assert_eq!(rfc["token_type"], "Bearer", "{rfc}");
    assert_eq!(rfc["scope"], "get_user_profile");
    let rm = run_copied(&page_value(&page, "#example-2"));
    assert_eq!(rm["tokenType"], "Bearer", "{rm}");
    assert!(rm["accessToken"].is_string());

    // Later the secret is not on the page: the examples read $CLIENT_SECRET, and work once it
    // is pasted in (no base64 to edit).
    let (_, page) = app.page(&path).await;
    assert!(page.attr("#client-secret", "value").is_none());
    let later = page_value(&page, "#example-1");
    assert!(!later.contains(&secret));
    assert!(later.contains("$CLIENT_SECRET"));
    let pasted = later.replace("'paste your client secret here'", &format!("'{secret}'"));
    assert_eq!(run_copied(&pasted)["token_type"], "Bearer");

    // Viewing the secret (after step-up) fills it in again.
    let res = app
        .post_form(
            &format!("{path}/secret"),
            &path,
            &[("password", MERCHANT_PASSWORD)],
        )
        .await;
    assert_eq!(res.status(), 200);
    let page = Html::parse(&res.text().await.unwrap());
    assert_eq!(
        run_copied(&page_value(&page, "#example-1"))["token_type"],
        "Bearer"
    );
}

/// A text area's content as the browser would copy it (not whitespace-folded).
fn page_value(page: &Html, css: &str) -> String {
    let selector = scraper::Selector::parse(css).unwrap();
    page.0
        .select(&selector)
        .next()
        .unwrap_or_else(|| panic!("no {css}"))
        .text()
        .collect()
}

#[tokio::test]
async fn times_are_marked_up_for_the_viewers_time_zone() {
    let app = spawn_app().await;
    merchant(&app, "acme").await;
    let created = create_app(&app, &valid_form()).await;
    let (_, page) = app.page(&format!("{APPS}/{}", created.client_id)).await;
    // The secret's creation time: UTC text, and the instant for the script.
    let datetime = page.attr("table.table time", "datetime").unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(&datetime).is_ok(),
        "{datetime}"
    );
    assert!(page.text("table.table time").unwrap().ends_with("UTC"));
    assert_eq!(
        page.attr("script[src='/static/js/time.js']", "defer")
            .as_deref(),
        Some("")
    );
    let script = app.get("/static/js/time.js").await;
    assert_eq!(script.status(), 200);
    assert!(script.text().await.unwrap().contains("RelativeTimeFormat"));
    // The sessions on the security page too.
    let (_, page) = app.page("/account/security").await;
    assert!(page.attr("table time", "datetime").unwrap().ends_with('Z'));
}

#[tokio::test]
async fn small_things_a_merchant_meets() {
    let app = spawn_app().await;
    // A favicon where browsers ask for it: an ICO.
    let icon = app.get("/favicon.ico").await;
    assert_eq!(icon.status(), 200);
    assert_eq!(icon.headers()["content-type"], "image/x-icon");
    assert_eq!(&icon.bytes().await.unwrap()[..4], &[0, 0, 1, 0]);

    merchant(&app, "acme").await;
    // An invalid field says so to assistive technology, not only in red.
    let mut form = valid_form();
    form.retain(|(k, _)| *k != "name");
    form.push(("name", ""));
    let res = app.post_form(APPS, &format!("{APPS}/new"), &form).await;
    assert_eq!(res.status(), 422);
    let page = Html::parse(&res.text().await.unwrap());
    assert_eq!(page.attr("#name", "aria-invalid").as_deref(), Some("true"));
    assert!(page.attr("#description", "aria-invalid").is_none());

    let created = create_app(&app, &valid_form()).await;
    let show = format!("{APPS}/{}", created.client_id);
    let (_, page) = app.page(&show).await;
    // Which secret a View button opens; the logo URL in the settings; breadcrumbs are links.
    let hint = &created.secret[created.secret.len() - 4..];
    assert_eq!(
        page.attr("table.table button.link-button", "aria-label")
            .unwrap(),
        format!("View secret lks_••••{hint}")
    );
    assert!(
        page.text("dl.facts")
            .unwrap()
            .contains("https://shop.example.com/logo.png")
    );
    assert_eq!(
        page.attr(".breadcrumb a", "href").as_deref(),
        Some("/developer/applications")
    );
    let (_, edit) = app.page(&format!("{show}/edit")).await;
    assert!(
        edit.text(".breadcrumb")
            .unwrap()
            .contains("Acme Shop › Edit"),
        "{:?}",
        edit.text(".breadcrumb")
    );

    // An address without a dot in its domain is a typo, said beside the field.
    let res = app
        .post_form(
            "/account/profile",
            "/account",
            &[
                ("name", "Acme"),
                ("email", "acme@gmailcom"),
                ("password", MERCHANT_PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status(), 422);
    let page = Html::parse(&res.text().await.unwrap());
    assert!(
        page.text("#email-error").unwrap().contains("full domain"),
        "{:?}",
        page.text("#email-error")
    );
    assert_eq!(
        page.attr("#email", "value").as_deref(),
        Some("acme@gmailcom")
    );
}
