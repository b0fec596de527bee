//! Taking over an account, or its live secrets, with a stolen signed-in session: every sensitive
//! action asks for the password again, those passwords count in the sign-in lockout, no
//! just-issued secret sits in clear in the session store, an address cannot move without the
//! password and the old address hears of it with a way back, no older email link outlives a
//! newer one or a change of address or password, and a new password ends the API access the
//! old one gave.

use diesel::prelude::*;
use latchkey::db::models::User;
use latchkey::db::schema::{client_secrets, sessions};

use super::{Expect, check};
use crate::helpers::{Html, MERCHANT_PASSWORD, TestApp, TestClient, link_in, spawn_app};

const APPS: &str = "/developer/applications";

/// `username` signed up (address confirmed) and signed in, in the app's own browser.
async fn merchant(app: &TestApp, username: &str) {
    let email = format!("{username}@example.com");
    let res = app.sign_up(username, &email, MERCHANT_PASSWORD).await;
    assert_eq!(res.status(), 303);
}

/// Posts the new-application form for a confidential application.
async fn create(app: &TestApp) -> reqwest::Response {
    app.post_form(
        APPS,
        &format!("{APPS}/new"),
        &[
            ("name", "Acme Shop"),
            ("redirect_uris", "https://shop.example.com/callback"),
            ("environment", "sandbox"),
            ("client_type", "confidential"),
            ("grant_types", "client_credentials"),
            ("scopes", "get_user_profile"),
        ],
    )
    .await
}

/// A confidential application made on the portal; its secret as shown once.
async fn portal_app(app: &TestApp) -> TestClient {
    let res = create(app).await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    let path = res.headers()["location"].to_str().unwrap().to_owned();
    let (_, page) = app.page(&path).await;
    TestClient {
        client_id: path.rsplit('/').next().unwrap().to_owned(),
        secret: page.attr("#client-secret", "value").unwrap_or_default(),
        owner_id: 0,
    }
}

fn user(app: &TestApp, username: &str) -> User {
    User::find_by_username(&mut app.db.connect(), username)
        .unwrap()
        .unwrap()
}

fn secrets_of(app: &TestApp) -> i64 {
    client_secrets::table
        .count()
        .get_result(&mut app.db.connect())
        .unwrap()
}

/// Finding 1: rotating a secret needs the password, like viewing it.
#[tokio::test]
async fn rotating_a_secret_needs_the_password_again() {
    let app = spawn_app().await;
    merchant(&app, "acme").await;
    let created = portal_app(&app).await;
    let show = format!("{APPS}/{}", created.client_id);
    let rotate = format!("{show}/secret/rotate");
    let before = secrets_of(&app);

    let asked = check(
        "rotate with the session alone",
        app.post_form(&rotate, &show, &[("grace", "now")]).await,
        &Expect::new(200),
    )
    .await;
    let page = Html::parse(&asked.body);
    let form = format!("form[action='{rotate}']");
    assert!(
        page.attr(&form, "action").is_some()
            && page
                .attr(&format!("{form} input[name=password]"), "name")
                .is_some(),
        "case `rotate with the session alone`: a password form posts back to rotate"
    );
    assert_eq!(
        page.attr(&format!("{form} input[name=grace]"), "value")
            .as_deref(),
        Some("now"),
        "case `rotate with the session alone`: the chosen grace period is carried along"
    );
    assert!(page.attr("#client-secret", "value").is_none());
    check(
        "rotate with a wrong password",
        app.post_form(
            &rotate,
            &show,
            &[("grace", "now"), ("password", "not the password")],
        )
        .await,
        &Expect::new(422),
    )
    .await;
    assert_eq!(
        secrets_of(&app),
        before,
        "no new secret without the password"
    );
    let token = app
        .token_form(Some(&created), &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(token.status(), 200, "the secret still works");

    check(
        "rotate with the password",
        app.post_form(
            &rotate,
            &show,
            &[("grace", "now"), ("password", MERCHANT_PASSWORD)],
        )
        .await,
        &Expect::new(303).redirect(show.clone()),
    )
    .await;
    assert_eq!(secrets_of(&app), before + 1);
}

/// Finding 2: password re-entry (view secret, change password) counts in the sign-in lockout.
#[tokio::test]
async fn password_reentry_is_throttled_with_sign_in() {
    let app = spawn_app().await;
    merchant(&app, "acme").await;
    let created = portal_app(&app).await;
    let show = format!("{APPS}/{}", created.client_id);
    let reveal = format!("{show}/secret");
    for i in 1..=5 {
        check(
            &format!("view secret: wrong password {i}"),
            app.post_form(&reveal, &show, &[("password", "a guess")])
                .await,
            &Expect::new(422),
        )
        .await;
    }
    let locked = check(
        "view secret: the right password after 5 wrong ones",
        app.post_form(&reveal, &show, &[("password", MERCHANT_PASSWORD)])
            .await,
        &Expect::new(422),
    )
    .await;
    assert!(locked.body.contains("Too many wrong passwords"));
    assert!(
        !locked.body.contains(&created.secret),
        "case `view secret locked`: the secret is not shown"
    );
    // The same lock holds at the sign-in page.
    let login = check(
        "sign-in page after 5 wrong re-entries",
        app.post_form_in(
            &app.new_browser(),
            "/login",
            "/login",
            &[("username", "acme"), ("password", MERCHANT_PASSWORD)],
        )
        .await,
        &Expect::new(422),
    )
    .await;
    assert!(login.body.contains("Too many failed sign-in attempts"));

    // Changing the password: the current one is throttled the same way.
    let app = spawn_app().await;
    merchant(&app, "erin").await;
    let hash_before = user(&app, "erin").password;
    let change = |current: &'static str| {
        let app = &app;
        async move {
            app.post_form(
                "/account/password",
                "/account",
                &[
                    ("current_password", current),
                    ("new_password", "a brand new password"),
                    ("confirm", "a brand new password"),
                ],
            )
            .await
        }
    };
    for i in 1..=5 {
        check(
            &format!("change password: wrong current password {i}"),
            change("a guess").await,
            &Expect::new(422),
        )
        .await;
    }
    let locked = check(
        "change password: the right current password after 5 wrong ones",
        change(MERCHANT_PASSWORD).await,
        &Expect::new(422),
    )
    .await;
    assert!(locked.body.contains("Too many wrong passwords"));
    assert_eq!(
        user(&app, "erin").password,
        hash_before,
        "case `change password locked`: the password did not change"
    );
}

/// Finding 3: the secret shown once waits in the session sealed, never in clear.
#[tokio::test]
async fn a_just_issued_secret_is_not_stored_in_clear() {
    let app = spawn_app().await;
    merchant(&app, "acme").await;
    let res = create(&app).await;
    assert_eq!(res.status(), 303);
    // What the session store holds while the secret waits to be shown.
    let stored: Vec<String> = sessions::table
        .select(sessions::state)
        .load(&mut app.db.connect())
        .unwrap();
    let path = res.headers()["location"].to_str().unwrap().to_owned();
    let (_, page) = app.page(&path).await;
    let secret = page.attr("#client-secret", "value").expect("shown once");
    assert!(secret.starts_with("lks_"));
    assert!(
        stored.iter().any(|s| s.contains("fresh_secret")),
        "the secret waited in the session"
    );
    for state in &stored {
        assert!(
            !state.contains(&secret) && !state.contains(&secret["lks_".len()..]),
            "a session row holds the secret in clear: {state}"
        );
    }
}

async fn change_address(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.post_form(
        "/account/profile",
        "/account",
        &[("name", "Acme"), ("email", email), ("password", password)],
    )
    .await
}

/// Finding 5: a session alone cannot move the address; the old address is told and can undo.
#[tokio::test]
async fn moving_the_address_needs_the_password_and_the_old_address_can_undo_it() {
    let app = spawn_app().await;
    merchant(&app, "acme").await;
    let sent = app.outbox.messages().len();
    let refused = check(
        "address change with the session alone",
        change_address(&app, "intruder@example.com", "").await,
        &Expect::new(422),
    )
    .await;
    let page = Html::parse(&refused.body);
    assert!(
        page.text("#profile-password-error")
            .is_some_and(|e| e.contains("Enter your password")),
        "case `address change with the session alone`: the error is beside the field"
    );
    assert_eq!(
        page.attr("#email", "value").as_deref(),
        Some("intruder@example.com"),
        "the input is kept"
    );
    check(
        "address change with a wrong password",
        change_address(&app, "intruder@example.com", "a guess").await,
        &Expect::new(422),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        app.outbox.messages()[sent..]
            .iter()
            .all(|m| m.to != "intruder@example.com"),
        "no link went to the new address"
    );

    // With the password it goes through, and the old address hears of it.
    check(
        "address change with the password",
        change_address(&app, "intruder@example.com", MERCHANT_PASSWORD).await,
        &Expect::new(303).redirect("/account"),
    )
    .await;
    let confirm = app.mail_to("intruder@example.com", sent).await;
    let link = app.path_of(&link_in(&confirm.text, "/verify-email/"));
    assert_eq!(app.get(&link).await.status(), 303);
    assert_eq!(
        user(&app, "acme").email.as_deref(),
        Some("intruder@example.com")
    );
    let notice = app.mail_to("acme@example.com", sent).await;
    assert_eq!(
        notice.subject,
        "The email address of your Latchkey account was changed"
    );
    assert!(notice.text.contains("intruder@example.com"));
    let undo = app.path_of(&link_in(&notice.text, "/account/email/undo/"));

    // Opening the link changes nothing; the button does.
    let owner = app.new_browser();
    let opened = check(
        "undo link opened",
        owner.get(app.url(&undo)).send().await.unwrap(),
        &Expect::new(200),
    )
    .await;
    assert!(opened.body.contains("acme@example.com"));
    assert_eq!(
        user(&app, "acme").email.as_deref(),
        Some("intruder@example.com")
    );
    check(
        "undo confirmed",
        app.post_form_in(&owner, &undo, &undo, &[]).await,
        &Expect::new(303).redirect("/password/reset/"),
    )
    .await;
    let acme = user(&app, "acme");
    assert_eq!(acme.email.as_deref(), Some("acme@example.com"));
    assert!(acme.email_verified_at.is_some());
    // The intruder's session is over.
    let res = app.get("/account").await;
    assert_eq!(
        res.status(),
        303,
        "the session that moved the address ended"
    );
    check(
        "undo link used twice",
        app.post_form_in(&owner, &undo, "/login", &[]).await,
        &Expect::new(400),
    )
    .await;
}

/// Finding 6: asking for A, then B, leaves only B's link working.
#[tokio::test]
async fn a_superseded_address_change_link_does_not_work() {
    let app = spawn_app().await;
    merchant(&app, "acme").await;
    let sent = app.outbox.messages().len();
    change_address(&app, "first@example.com", MERCHANT_PASSWORD).await;
    let first = app.mail_to("first@example.com", sent).await;
    let sent = app.outbox.messages().len();
    change_address(&app, "second@example.com", MERCHANT_PASSWORD).await;
    let second = app.mail_to("second@example.com", sent).await;
    let first = app.path_of(&link_in(&first.text, "/verify-email/"));
    let second = app.path_of(&link_in(&second.text, "/verify-email/"));
    check(
        "the second link",
        app.get(&second).await,
        &Expect::new(303).redirect("/"),
    )
    .await;
    check(
        "the first link after the second",
        app.get(&first).await,
        &Expect::new(400),
    )
    .await;
    assert_eq!(
        user(&app, "acme").email.as_deref(),
        Some("second@example.com")
    );
}

async fn ask_reset(app: &TestApp, email: &str) -> String {
    let sent = app.outbox.messages().len();
    let res = app
        .post_form_in(
            &app.new_browser(),
            "/password/forgot",
            "/password/forgot",
            &[("email", email)],
        )
        .await;
    assert_eq!(res.status(), 303);
    let mail = app.mail_to(email, sent).await;
    app.path_of(&link_in(&mail.text, "/password/reset/"))
}

async fn reset(app: &TestApp, link: &str, password: &str) -> reqwest::Response {
    // The CSRF token from another page of the same browser: a dead link's page has no form.
    app.post_form_in(
        &app.new_browser(),
        link,
        "/password/forgot",
        &[("password", password), ("confirm", password)],
    )
    .await
}

/// Finding 7: an older reset link dies with a newer reset, and with a change of address.
#[tokio::test]
async fn old_reset_links_do_not_outlive_a_reset_or_an_address_change() {
    let app = spawn_app().await;
    merchant(&app, "acme").await;
    let older = ask_reset(&app, "acme@example.com").await;
    let newer = ask_reset(&app, "acme@example.com").await;
    check(
        "the newer reset link",
        reset(&app, &newer, "the second password").await,
        &Expect::new(303).redirect("/login"),
    )
    .await;
    // The older link's form page would still open if the link were alive.
    check(
        "the older reset link after the newer one was used",
        reset(&app, &older, "the intruder's password").await,
        &Expect::new(400),
    )
    .await;

    // A link sent to the previous address dies when the address changes.
    let app = spawn_app().await;
    merchant(&app, "erin").await;
    let to_old = ask_reset(&app, "erin@example.com").await;
    let sent = app.outbox.messages().len();
    change_address(&app, "erin.new@example.com", MERCHANT_PASSWORD).await;
    let mail = app.mail_to("erin.new@example.com", sent).await;
    let confirm = app.path_of(&link_in(&mail.text, "/verify-email/"));
    assert_eq!(app.get(&confirm).await.status(), 303);
    check(
        "a reset link to the previous address after the change",
        reset(&app, &to_old, "the intruder's password").await,
        &Expect::new(400),
    )
    .await;
}

/// Tokens from the password grant, with a refresh token.
async fn password_grant(app: &TestApp, client: &TestClient, username: &str) -> (String, String) {
    let res = app
        .token_form(
            Some(client),
            &[
                ("grant_type", "password"),
                ("username", username),
                ("password", MERCHANT_PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

async fn refresh(app: &TestApp, client: &TestClient, token: &str) -> reqwest::Response {
    app.token_form(
        Some(client),
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
    )
    .await
}

/// Finding 8: a new password ends what the password grant gave with the old one, rotated
/// refresh tokens included.
#[tokio::test]
async fn a_new_password_revokes_what_the_password_grant_issued() {
    for how in ["reset link", "account page"] {
        let app = spawn_app().await;
        merchant(&app, "acme").await;
        let client =
            app.merchant_client(&["--grant-type", "password", "--grant-type", "refresh_token"]);
        let (first_access, first_refresh) = password_grant(&app, &client, "acme").await;
        // One rotation, so the family has a member the grant did not mint itself.
        let rotated: serde_json::Value = refresh(&app, &client, &first_refresh)
            .await
            .json()
            .await
            .unwrap();
        let access = rotated["access_token"].as_str().unwrap().to_owned();
        let refresh_token = rotated["refresh_token"].as_str().unwrap().to_owned();
        assert_eq!(app.profile(&access).await.status(), 200);
        match how {
            "reset link" => {
                let link = ask_reset(&app, "acme@example.com").await;
                assert_eq!(
                    reset(&app, &link, "a brand new password").await.status(),
                    303
                );
            }
            _ => {
                let res = app
                    .post_form(
                        "/account/password",
                        "/account",
                        &[
                            ("current_password", MERCHANT_PASSWORD),
                            ("new_password", "a brand new password"),
                            ("confirm", "a brand new password"),
                        ],
                    )
                    .await;
                assert_eq!(res.status(), 303);
            }
        }
        check(
            &format!("{how}: refresh token after the new password"),
            refresh(&app, &client, &refresh_token).await,
            &Expect::new(400).error("invalid_grant").no_store(),
        )
        .await;
        for (which, token) in [("first", &first_access), ("rotated", &access)] {
            check(
                &format!("{how}: {which} access token after the new password"),
                app.profile(token).await,
                &Expect::new(401).error("invalid_token"),
            )
            .await;
        }
    }
}

/// Registering public keys is as good as a new secret (whoever holds the private half gets
/// tokens), so a session alone cannot: it needs the password, like rotating; a wrong one
/// changes nothing.
#[tokio::test]
async fn registering_keys_needs_the_password_again() {
    let app = spawn_app().await;
    merchant(&app, "acme").await;
    let created = portal_app(&app).await;
    let keys = format!("{APPS}/{}/keys", created.client_id);
    let attacker = crate::helpers::SigningKey::p256("attacker");
    let document = serde_json::json!({ "keys": [attacker.jwk] }).to_string();
    let fields = [("jwks", document.as_str()), ("confirm_switch", "on")];
    let asked = check(
        "keys with the session alone",
        app.post_form(&keys, &keys, &fields).await,
        &Expect::new(200),
    )
    .await;
    let page = Html::parse(&asked.body);
    assert!(
        page.attr(
            &format!("form[action='{keys}'] input[name=password]"),
            "name"
        )
        .is_some(),
        "case `keys with the session alone`: a password form posts back to the keys"
    );
    let mut wrong = fields.to_vec();
    wrong.push(("password", "not the password"));
    check(
        "keys with a wrong password",
        app.post_form(&keys, &keys, &wrong).await,
        &Expect::new(422),
    )
    .await;
    let stored =
        latchkey::db::models::Client::find_by_client_id(&mut app.db.connect(), &created.client_id)
            .unwrap()
            .unwrap();
    assert!(stored.jwks.is_none(), "no key registered");
    let token = app
        .token_form(Some(&created), &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(token.status(), 200, "the secret still works");
}
