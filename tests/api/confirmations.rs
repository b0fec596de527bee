//! The pages that confirm what reaches an application's customers — going live, disabling,
//! deleting — and the step-up they ask for; the account's address and password behind the
//! second factor. An account with a factor gives the factor (its password is not enough), one
//! without gives its password, and within 10 minutes of the last confirmation nothing more is
//! asked. Enabling a disabled application asks for nothing.

use diesel::prelude::*;
use latchkey::db::models::Client;
use latchkey::db::schema::audit_events;

use crate::helpers::{
    CONFIRM_LIVE, Html, MERCHANT_PASSWORD, TestApp, TestClient, location, spawn_app, totp_code,
};

const APPS: &str = "/developer/applications";

/// Signs `acme` up, leaving it signed in without a second factor.
async fn merchant(app: &TestApp) {
    assert_eq!(
        app.sign_up("acme", "acme@example.com", MERCHANT_PASSWORD)
            .await
            .status(),
        303
    );
}

fn form(name: &'static str, environment: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("name", name),
        (
            "redirect_uris",
            "https://pay.example.com/cb\nhttps://pay.example.com/cb2",
        ),
        ("environment", environment),
        ("client_type", "confidential"),
        ("grant_types", "client_credentials"),
        ("grant_types", "authorization_code"),
        ("scopes", "get_user_profile"),
    ]
}

/// Creates a sandbox application through the form; returns its page and its credentials.
async fn sandbox_app(app: &TestApp, name: &'static str) -> (String, TestClient) {
    let res = app
        .post_form(APPS, &format!("{APPS}/new"), &form(name, "sandbox"))
        .await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    let show = location(&res);
    let (_, page) = app.page(&show).await;
    let client = TestClient {
        client_id: show.rsplit('/').next().unwrap().to_owned(),
        secret: page.attr("#client-secret", "value").unwrap(),
        owner_id: 0,
    };
    (show, client)
}

fn stored(app: &TestApp, client_id: &str) -> Client {
    Client::find_by_client_id(&mut app.db.connect(), client_id)
        .unwrap()
        .unwrap()
}

/// How many times the activity log has `action`.
fn logged(app: &TestApp, action: &str) -> i64 {
    audit_events::table
        .filter(audit_events::action.eq(action))
        .count()
        .get_result(&mut app.db.connect())
        .unwrap()
}

async fn token_status(app: &TestApp, client: &TestClient) -> u16 {
    app.token_form(Some(client), &[("grant_type", "client_credentials")])
        .await
        .status()
        .as_u16()
}

/// The code of the account's authenticator app one step ahead of now: never the one spent
/// when it was set up, and accepted.
fn next_code(key: &str) -> String {
    totp_code(key, chrono::Utc::now().timestamp(), 1)
}

async fn parsed(res: reqwest::Response) -> Html {
    Html::parse(&res.text().await.unwrap())
}

#[tokio::test]
async fn going_live_says_it_means_real_money_and_needs_the_factor() {
    let app = spawn_app().await;
    merchant(&app).await;
    let key = app.enable_totp().await;
    let (show, client) = sandbox_app(&app, "Acme Pay").await;
    let edit = format!("{show}/edit");

    // Switched to live: the page that says what it means, the whole form carried along; the
    // factor was given minutes ago (setting it up), so only the button is asked for.
    let res = app.post_form(&edit, &edit, &form("Acme Pay", "live")).await;
    assert_eq!(res.status(), 200);
    let page = parsed(res).await;
    assert!(page.text("h1").unwrap().contains("Take “Acme Pay” live?"));
    let text = page.text("section").unwrap();
    assert!(
        text.contains("real customers and real money") && text.contains("client secret"),
        "{text}"
    );
    assert!(page.attr("#password", "name").is_none(), "no step-up asked");
    assert_eq!(
        page.attr("section form", "action").as_deref(),
        Some(edit.as_str())
    );
    assert_eq!(
        page.attr("input[name=confirm_live]", "value").as_deref(),
        Some("on")
    );
    assert_eq!(
        page.attr("input[name=redirect_uris]", "value").as_deref(),
        Some("https://pay.example.com/cb\nhttps://pay.example.com/cb2"),
        "the form is carried along as it was"
    );
    assert_eq!(page.text("button.danger").as_deref(), Some("Go live"));
    assert!(!stored(&app, &client.client_id).is_live);

    let mut confirmed = form("Acme Pay", "live");
    confirmed.push(CONFIRM_LIVE);
    let res = app.post_form(&edit, &edit, &confirmed).await;
    assert_eq!(res.status(), 303);
    assert!(stored(&app, &client.client_id).is_live);
    assert_eq!(logged(&app, "went_live"), 1);

    // Created live: the same page first, nothing stored until it is confirmed.
    let new = format!("{APPS}/new");
    let res = app.post_form(APPS, &new, &form("Acme Live", "live")).await;
    assert_eq!(res.status(), 200);
    assert!(
        parsed(res)
            .await
            .text("h1")
            .unwrap()
            .contains("Take “Acme Live” live?")
    );
    assert_eq!(app.count("clients"), 1);
    let mut created = form("Acme Live", "live");
    created.push(CONFIRM_LIVE);
    assert_eq!(app.post_form(APPS, &new, &created).await.status(), 303);
    assert_eq!(app.count("clients"), 2);
    assert_eq!(logged(&app, "went_live"), 2);

    // Eleven minutes later: the page asks for the factor, and the password is not one.
    let (show, client) = sandbox_app(&app, "Acme Later").await;
    let edit = format!("{show}/edit");
    app.close_step_up_windows();
    let res = app
        .post_form(&edit, &edit, &form("Acme Later", "live"))
        .await;
    assert_eq!(res.status(), 200);
    let page = parsed(res).await;
    assert_eq!(
        page.text("label[for=password]").as_deref(),
        Some("Authentication code")
    );
    let mut with_password = form("Acme Later", "live");
    with_password.extend([CONFIRM_LIVE, ("password", MERCHANT_PASSWORD)]);
    let res = app.post_form(&edit, &edit, &with_password).await;
    assert_eq!(res.status(), 422);
    let page = parsed(res).await;
    assert!(page.text("#password-error").is_some());
    assert!(
        page.text("h1").unwrap().contains("live"),
        "still the same page"
    );
    assert!(!stored(&app, &client.client_id).is_live);
    let code = next_code(&key);
    let mut with_code = form("Acme Later", "live");
    with_code.extend([CONFIRM_LIVE, ("password", &code)]);
    assert_eq!(app.post_form(&edit, &edit, &with_code).await.status(), 303);
    let live = stored(&app, &client.client_id);
    assert!(live.is_live);
    assert_eq!(
        live.redirect_uris().len(),
        2,
        "both redirect URIs came through the page"
    );
}

#[tokio::test]
async fn disabling_says_what_fails_and_needs_the_password_and_enabling_needs_nothing() {
    let app = spawn_app().await;
    merchant(&app).await;
    let (show, client) = sandbox_app(&app, "Acme Pay").await;
    let disable = format!("{show}/disable");
    let toggle = format!("{show}/toggle");

    // The application's page links to the confirmation; it does not disable in one click.
    let (_, page) = app.page(&show).await;
    assert_eq!(
        page.attr("a[href$='/disable']", "href").as_deref(),
        Some(disable.as_str())
    );
    assert!(page.attr("form[action$='/toggle']", "action").is_none());
    let res = app.post_form(&toggle, &show, &[]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        location(&res),
        disable,
        "the old one-click form lands on the page"
    );
    assert!(stored(&app, &client.client_id).is_enabled);

    let (status, page) = app.page(&disable).await;
    assert_eq!(status, 200);
    assert!(page.text("h1").unwrap().contains("Disable “Acme Pay”?"));
    let text = page.text("section").unwrap();
    for said in [
        "invalid_client",
        "invalid_token",
        "enable it again",
        "disabled",
    ] {
        assert!(text.contains(said), "{said} missing from {text}");
    }
    assert_eq!(
        page.text("label[for=password]").as_deref(),
        Some("Password")
    );

    // A wrong password: said beside the field, the same page, still enabled.
    let res = app
        .post_form(
            &toggle,
            &disable,
            &[("confirm_disable", "on"), ("password", "not my password")],
        )
        .await;
    assert_eq!(res.status(), 422);
    let page = parsed(res).await;
    assert!(page.text("#password-error").is_some());
    assert!(page.attr("input[name=confirm_disable]", "value").is_some());
    assert!(stored(&app, &client.client_id).is_enabled);

    assert_eq!(app.disable_app(&show).await.status(), 303);
    assert!(!stored(&app, &client.client_id).is_enabled);
    assert_eq!(token_status(&app, &client).await, 401);
    assert_eq!(logged(&app, "disabled"), 1);
    // Sent twice: it stays disabled.
    let again = app
        .post_form(&toggle, &show, &[("confirm_disable", "on")])
        .await;
    assert_eq!(again.status(), 303);
    assert!(!stored(&app, &client.client_id).is_enabled);

    // Enabling is one click, and needs no step-up even when the window is closed.
    app.close_step_up_windows();
    assert_eq!(app.enable_app(&show).await.status(), 303);
    assert!(stored(&app, &client.client_id).is_enabled);
    assert_eq!(token_status(&app, &client).await, 200);
    assert_eq!(logged(&app, "enabled"), 1);

    // Within the window the page asks for nothing but the button.
    let confirm = app
        .post_form(
            &toggle,
            &disable,
            &[("confirm_disable", "on"), ("password", MERCHANT_PASSWORD)],
        )
        .await;
    assert_eq!(confirm.status(), 303);
    app.enable_app(&show).await;
    let (_, page) = app.page(&disable).await;
    assert!(page.attr("#password", "name").is_none());
    let res = app
        .post_form(&toggle, &disable, &[("confirm_disable", "on")])
        .await;
    assert_eq!(res.status(), 303);
    assert!(!stored(&app, &client.client_id).is_enabled);
}

#[tokio::test]
async fn deleting_and_disabling_need_the_factor_of_an_account_that_has_one() {
    let app = spawn_app().await;
    merchant(&app).await;
    let key = app.enable_totp().await;
    let (show, client) = sandbox_app(&app, "Acme Pay").await;
    let delete = format!("{show}/delete");
    app.close_step_up_windows();

    let (status, page) = app.page(&delete).await;
    assert_eq!(status, 200);
    let text = page.text("section").unwrap();
    assert!(
        text.contains("cannot be undone") && text.contains("0 people who have authorized it"),
        "{text}"
    );
    assert_eq!(
        page.text("label[for=password]").as_deref(),
        Some("Authentication code")
    );
    assert_eq!(
        page.text("button.danger").as_deref(),
        Some("Delete Acme Pay")
    );

    // Nothing given: the page again; the password: refused. Neither deletes nor disables.
    let res = app.post_form(&delete, &delete, &[]).await;
    assert_eq!(res.status(), 200);
    let res = app.delete_app(&show).await;
    assert_eq!(res.status(), 422);
    assert!(parsed(res).await.text("#password-error").is_some());
    assert_eq!(app.disable_app(&show).await.status(), 422);
    assert_eq!(app.count("clients"), 1);
    assert!(stored(&app, &client.client_id).is_enabled);

    let res = app
        .post_form(&delete, &delete, &[("password", &next_code(&key))])
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), APPS);
    assert_eq!(app.count("clients"), 0);
    assert_eq!(logged(&app, "deleted"), 1);
    assert_eq!(token_status(&app, &client).await, 401);
}

#[tokio::test]
async fn deleting_needs_the_password_of_an_account_without_a_factor() {
    let app = spawn_app().await;
    merchant(&app).await;
    let (show, _) = sandbox_app(&app, "Acme Pay").await;
    let delete = format!("{show}/delete");
    let res = app
        .post_form(&delete, &delete, &[("password", "not my password")])
        .await;
    assert_eq!(res.status(), 422);
    assert_eq!(app.count("clients"), 1);
    assert_eq!(app.delete_app(&show).await.status(), 303);
    assert_eq!(app.count("clients"), 0);
}

#[tokio::test]
async fn the_address_and_password_of_an_account_with_a_factor_wait_for_it() {
    let app = spawn_app().await;
    merchant(&app).await;
    let key = app.enable_totp().await;
    app.close_step_up_windows();
    let moved = [
        ("name", "Acme"),
        ("email", "new@example.com"),
        ("password", MERCHANT_PASSWORD),
    ];
    let new_password = [
        ("current_password", MERCHANT_PASSWORD),
        ("new_password", "another long password"),
        ("confirm", "another long password"),
    ];

    let (_, page) = app.page("/account").await;
    assert_eq!(
        page.attr(".banner a", "href").as_deref(),
        Some("/account/confirm?next=/account")
    );
    // The right password alone: refused beside it, the input kept, nothing sent or changed.
    let res = app.post_form("/account/profile", "/account", &moved).await;
    assert_eq!(res.status(), 422);
    let page = parsed(res).await;
    assert!(
        page.text("#profile-password-error")
            .unwrap()
            .contains("two-step sign-in")
    );
    assert_eq!(
        page.attr("#email", "value").as_deref(),
        Some("new@example.com")
    );
    assert!(app.outbox.last_to("new@example.com").is_none());
    let res = app
        .post_form("/account/password", "/account", &new_password)
        .await;
    assert_eq!(res.status(), 422);
    assert!(
        parsed(res)
            .await
            .text("#current-error")
            .unwrap()
            .contains("two-step sign-in")
    );

    // The step-up page: the password is not a factor; a code is, and it goes on to a local
    // page only.
    let confirm = "/account/confirm?next=/account";
    let (status, page) = app.page(confirm).await;
    assert_eq!(status, 200);
    assert_eq!(
        page.text("label[for=password]").as_deref(),
        Some("Authentication code")
    );
    assert_eq!(
        page.attr("input[name=next]", "value").as_deref(),
        Some("/account")
    );
    let res = app
        .post_form(
            "/account/confirm",
            confirm,
            &[("next", "/account"), ("password", MERCHANT_PASSWORD)],
        )
        .await;
    assert_eq!(res.status(), 422);
    let res = app
        .post_form(
            "/account/confirm",
            confirm,
            &[("next", "//evil.example/"), ("password", &next_code(&key))],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/account");
    // Open now: straight on, and the page no longer asks.
    let res = app.get(confirm).await;
    assert_eq!(location(&res), "/account");
    let (_, page) = app.page("/account").await;
    assert!(page.text(".banner").is_none());

    // The password is still needed beside the factor.
    let res = app
        .post_form(
            "/account/profile",
            "/account",
            &[("name", "Acme"), ("email", "new@example.com")],
        )
        .await;
    assert_eq!(res.status(), 422);
    let res = app.post_form("/account/profile", "/account", &moved).await;
    assert_eq!(res.status(), 303);
    app.mail_to("new@example.com", 0).await;
    let res = app
        .post_form("/account/password", "/account", &new_password)
        .await;
    assert_eq!(res.status(), 303);
}

#[tokio::test]
async fn the_address_and_password_of_an_account_without_a_factor_need_the_password_only() {
    let app = spawn_app().await;
    merchant(&app).await;
    let (_, page) = app.page("/account").await;
    assert!(page.text(".banner").is_none(), "nothing to confirm first");
    let res = app
        .post_form(
            "/account/profile",
            "/account",
            &[
                ("name", "Acme"),
                ("email", "new@example.com"),
                ("password", MERCHANT_PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    let res = app
        .post_form(
            "/account/password",
            "/account",
            &[
                ("current_password", MERCHANT_PASSWORD),
                ("new_password", "another long password"),
                ("confirm", "another long password"),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
}

#[tokio::test]
async fn deleting_a_live_application_needs_its_name_typed() {
    let app = spawn_app().await;
    merchant(&app).await;
    app.enable_totp().await;
    let (show, _) = sandbox_app(&app, "Acme Pay").await;
    let mut live = form("Acme Pay", "live");
    live.push(CONFIRM_LIVE);
    let res = app
        .post_form(&format!("{show}/edit"), &format!("{show}/edit"), &live)
        .await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    let delete = format!("{show}/delete");

    // The page asks for the name; something else is refused beside the field, kept, and
    // nothing is deleted (the step-up window is open: only the name stands in the way).
    let (_, page) = app.page(&delete).await;
    assert_eq!(
        page.text("label[for=confirm_name]").as_deref(),
        Some("Type “Acme Pay” to confirm")
    );
    for typed in ["", "acme pay", "Acme"] {
        let res = app
            .post_form(&delete, &delete, &[("confirm_name", typed)])
            .await;
        assert_eq!(res.status(), 422, "{typed:?}");
        let page = parsed(res).await;
        assert!(page.text("#confirm_name-error").is_some(), "{typed:?}");
        assert_eq!(page.attr("#confirm_name", "value").as_deref(), Some(typed));
        assert_eq!(app.count("clients"), 1);
    }
    let res = app
        .post_form(&delete, &delete, &[("confirm_name", " Acme Pay ")])
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(app.count("clients"), 0);

    // A sandbox application does not ask.
    let (show, _) = sandbox_app(&app, "Acme Test").await;
    let (_, page) = app.page(&format!("{show}/delete")).await;
    assert!(page.attr("#confirm_name", "name").is_none());
}
