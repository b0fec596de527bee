//! The client cache behind client authentication (`db::client_cache`), on one instance: every
//! change made through the portal takes effect at once, a cached secret stops at its expiry,
//! and an unknown client costs what a wrong secret does. (Changes made by other processes:
//! `scale.rs`; a client in steady use costing one statement per token:
//! `token::client_credentials_costs_one_sql_statement`.)
//!
//! These instances check for other processes' changes only once an hour, so that nothing but
//! the instance's own bookkeeping can explain what the tests see.

use std::time::Duration;

use chrono::TimeDelta;
use diesel::prelude::*;
use latchkey::db::schema::{client_changes, client_secrets};
use serde_json::Value;

use crate::helpers::{MERCHANT_PASSWORD, TestApp, TestClient};

const APPS: &str = "/developer/applications";

/// An instance that looks for changes made elsewhere (and reloads signing keys) once an hour.
async fn spawn_app() -> TestApp {
    crate::helpers::spawn_counting_app().await
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

/// The application's settings form, with these grant types.
fn settings_form(grant_types: &[&'static str]) -> Vec<(&'static str, &'static str)> {
    let mut form = vec![
        ("name", "Acme Shop"),
        ("description", ""),
        ("home_page_url", ""),
        ("logo_url", ""),
        ("privacy_policy_url", ""),
        ("redirect_uris", "https://shop.example.com/callback"),
        ("environment", "sandbox"),
        ("client_type", "confidential"),
        ("scopes", "get_user_profile"),
    ];
    form.extend(grant_types.iter().map(|g| ("grant_types", *g)));
    form
}

/// The id of the client's secret that is in its grace period.
fn secret_in_grace(app: &TestApp) -> i64 {
    client_secrets::table
        .filter(client_secrets::expires_at.is_not_null())
        .select(client_secrets::id)
        .first(&mut app.db.connect())
        .unwrap()
}

#[tokio::test]
async fn every_change_through_the_portal_takes_effect_at_once() {
    let app = spawn_app().await;
    let client = app.merchant_client(&[]);
    app.log_in("merchant", MERCHANT_PASSWORD).await;
    let id = client.client_id.as_str();
    let show = format!("{APPS}/{id}");
    let edit = format!("{show}/edit");
    assert_eq!(token_status(&app, id, &client.secret).await, 200, "cached");

    // Grant types (every setting is written together).
    let res = app
        .post_form(&edit, &edit, &settings_form(&["authorization_code"]))
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(token_status(&app, id, &client.secret).await, 400);
    let res = app
        .post_form(&edit, &edit, &settings_form(&["client_credentials"]))
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(token_status(&app, id, &client.secret).await, 200);

    // Disabled, enabled.
    app.disable_app(&show).await;
    assert_eq!(token_status(&app, id, &client.secret).await, 401);
    app.enable_app(&show).await;
    assert_eq!(token_status(&app, id, &client.secret).await, 200);

    // A rotation: the new secret works at once, beside the old one.
    let rotated = app
        .post_form(
            &format!("{show}/secret/rotate"),
            &show,
            &[("grace", "1h"), ("password", MERCHANT_PASSWORD)],
        )
        .await;
    assert_eq!(rotated.status(), 303);
    let (_, page) = app.page(&show).await;
    let second = page.attr("#client-secret", "value").unwrap();
    assert_eq!(token_status(&app, id, &second).await, 200);
    assert_eq!(token_status(&app, id, &client.secret).await, 200);
    // The old one ended early.
    let old = secret_in_grace(&app);
    let res = app
        .post_form(&format!("{show}/secrets/{old}/revoke"), &show, &[])
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(token_status(&app, id, &client.secret).await, 401);
    assert_eq!(token_status(&app, id, &second).await, 200);
    // A rotation without grace ends the current one at once.
    app.post_form(
        &format!("{show}/secret/rotate"),
        &show,
        &[("grace", "now"), ("password", MERCHANT_PASSWORD)],
    )
    .await;
    let (_, page) = app.page(&show).await;
    let third = page.attr("#client-secret", "value").unwrap();
    assert_eq!(token_status(&app, id, &second).await, 401);
    assert_eq!(token_status(&app, id, &third).await, 200);

    // Deleted.
    let res = app.delete_app(&show).await;
    assert_eq!(res.status(), 303);
    assert_eq!(token_status(&app, id, &third).await, 401);
}

#[tokio::test]
async fn a_cached_secret_is_refused_from_the_moment_it_expires() {
    let app = spawn_app().await;
    let client = app.merchant_client(&[]);
    // The secret expires shortly; set before the client is first used, so the cache loads it
    // with this expiry and nothing tells it of a change afterwards.
    let expires = chrono::Utc::now().naive_utc() + TimeDelta::milliseconds(1500);
    diesel::update(client_secrets::table)
        .set(client_secrets::expires_at.eq(expires))
        .execute(&mut app.db.connect())
        .unwrap();
    assert_eq!(
        token_status(&app, &client.client_id, &client.secret).await,
        200
    );
    let left = (expires - chrono::Utc::now().naive_utc()).to_std().unwrap();
    tokio::time::sleep(left + Duration::from_millis(50)).await;
    let res = app
        .token_form(Some(&client), &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );
}

#[tokio::test]
async fn an_unknown_client_costs_what_a_wrong_secret_costs() {
    // No check of the change counter or reload of the keys in the middle of the statements
    // counted: each made the count 2 once in CI.
    let app = crate::helpers::spawn_counting_app().await;
    let client = app.merchant_client(&[]);

    let wrong = format!("{}x", &client.secret[..client.secret.len() - 1]);
    let unknown = "1234567890123456789";
    // Each is looked up once (one statement) and then answered from the cache (none).
    for expected in [1, 0, 0] {
        for (client_id, secret) in [
            (client.client_id.as_str(), wrong.as_str()),
            (unknown, &wrong),
        ] {
            let before = app.statements.get();
            assert_eq!(token_status(&app, client_id, secret).await, 401);
            assert_eq!(
                app.statements.get() - before,
                expected,
                "{client_id} with a wrong secret"
            );
        }
    }
}

/// The token endpoint writes a secret's `last_used_at` every few minutes per secret, on every
/// instance: were that counted as a change, each would drop every instance's cache.
#[tokio::test]
async fn recording_a_secrets_use_is_not_a_change() {
    let app = spawn_app().await;
    let client = app.merchant_client(&[]);
    let counter = || -> i64 {
        client_changes::table
            .select(client_changes::counter)
            .first(&mut app.db.connect())
            .unwrap()
    };
    let before = counter();
    assert_eq!(
        token_status(&app, &client.client_id, &client.secret).await,
        200
    );
    let used: Option<chrono::NaiveDateTime> = client_secrets::table
        .select(client_secrets::last_used_at)
        .first(&mut app.db.connect())
        .unwrap();
    assert!(used.is_some(), "the use was recorded");
    assert_eq!(counter(), before);
    // Any other change to the secret is one.
    diesel::update(client_secrets::table)
        .set(client_secrets::secret_hint.eq("abcd"))
        .execute(&mut app.db.connect())
        .unwrap();
    assert!(counter() > before);
}
