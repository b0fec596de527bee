//! Two-step sign-in (`mfa`): a merchant sets up an authenticator app (the test computes its
//! codes from the key the page shows, with the `totp-rs` crate), then signs in with a code; a
//! code works once; wrong codes lock the account like wrong passwords; recovery codes work once
//! and new ones void the old; the secret page asks for a code; the password grant is refused;
//! removing the app needs a code; the operator's CLI resets it.

use serde_json::Value;

use crate::helpers::{CONFIRM_LIVE, Html, MERCHANT_PASSWORD, TestApp, location, spawn_app};

/// The code `key` gives `steps` steps after `t0` (each test fixes its own `t0`, so that no
/// assertion depends on where a step boundary falls while it runs: a test runs well within 30
/// seconds, and a code one step ahead is accepted).
fn code(key: &str, t0: i64, steps: i64) -> String {
    crate::helpers::totp_code(key, t0, steps)
}

/// Signs `acme` up (signed in) and sets up an authenticator app with the code of `t0`'s step;
/// returns its key, the recovery codes and `t0`.
async fn enrolled(app: &TestApp) -> (String, Vec<String>, i64) {
    let t0 = chrono::Utc::now().timestamp();
    assert_eq!(
        app.sign_up("acme", "acme@example.com", MERCHANT_PASSWORD)
            .await
            .status(),
        303
    );
    let (status, page) = app.page("/account/security").await;
    assert_eq!(status, 200);
    assert!(page.text("main").unwrap().contains("Off"));
    let (status, page) = app.page("/account/security/totp").await;
    assert_eq!(status, 200);
    let key = page.attr("#totp-secret", "value").unwrap();
    assert!(
        page.attr(".qr img", "src")
            .unwrap()
            .starts_with("data:image/svg+xml;base64,")
    );
    let setup = "/account/security/totp";

    // A wrong code and no password: both said beside their fields, nothing stored.
    let res = app.post_form(setup, setup, &[("code", "000000")]).await;
    assert_eq!(res.status(), 422);
    let page = Html::parse(&res.text().await.unwrap());
    assert!(page.text("#code-error").is_some());
    assert!(page.text("#password-error").is_some());
    assert_eq!(
        page.attr("#totp-secret", "value").unwrap(),
        key,
        "the same key"
    );
    assert_eq!(app.count("user_totp"), 0);

    let res = app
        .post_form(
            setup,
            setup,
            &[
                ("code", &code(&key, t0, 0)),
                ("password", MERCHANT_PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status(), 200);
    let page = Html::parse(&res.text().await.unwrap());
    let codes: Vec<String> = page
        .text("#recovery-codes")
        .unwrap()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert_eq!(codes.len(), 10, "{codes:?}");
    assert_eq!(app.count("user_totp"), 1);
    assert_eq!(app.count("recovery_codes"), 10);
    let stored: String = {
        use diesel::prelude::*;
        use latchkey::db::schema::user_totp;
        user_totp::table
            .select(user_totp::secret_encrypted)
            .first(&mut app.db.connect())
            .unwrap()
    };
    assert!(!stored.contains(&key), "the key is stored encrypted");
    let mail = app.outbox.last_to("acme@example.com").unwrap();
    assert!(
        mail.text.contains("an authenticator app was added"),
        "{}",
        mail.text
    );
    (key, codes, t0)
}

async fn log_out(app: &TestApp) {
    app.post_form("/logout", "/account", &[]).await;
}

/// Posts the sign-in form with acme's password.
async fn post_password(app: &TestApp) -> reqwest::Response {
    app.post_form(
        "/login",
        "/login",
        &[("username", "acme"), ("password", MERCHANT_PASSWORD)],
    )
    .await
}

/// Signs in with the password; returns where it went.
async fn password_step(app: &TestApp) -> String {
    let res = post_password(app).await;
    assert_eq!(res.status(), 303);
    location(&res)
}

async fn code_step(app: &TestApp, code: &str) -> reqwest::Response {
    app.post_form("/login/verify", "/login/verify", &[("code", code)])
        .await
}

#[tokio::test]
async fn signing_in_needs_a_code_which_works_once() {
    let app = spawn_app().await;
    let (key, _, t0) = enrolled(&app).await;
    log_out(&app).await;

    assert_eq!(password_step(&app).await, "/login/verify");
    let (status, _) = app.page("/developer/applications").await;
    assert_eq!(status, 303, "the password alone does not sign in");
    let res = code_step(&app, "123456").await;
    assert_eq!(res.status(), 422);
    let page = Html::parse(&res.text().await.unwrap());
    assert!(page.text("#code-error").unwrap().contains("not right"));
    // The code used to set the app up was spent then.
    let res = code_step(&app, &code(&key, t0, 0)).await;
    assert_eq!(res.status(), 422, "a code works once");
    let next = code(&key, t0, 1);
    let res = code_step(&app, &next).await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/developer/applications");
    let (status, _) = app.page("/developer/applications").await;
    assert_eq!(status, 200);

    // The same code again, at the next sign-in: refused.
    log_out(&app).await;
    password_step(&app).await;
    assert_eq!(code_step(&app, &next).await.status(), 422);
    let (status, _) = app.page("/account/security").await;
    assert_eq!(status, 303, "still not signed in");
}

#[tokio::test]
async fn wrong_codes_lock_the_account_as_wrong_passwords_do() {
    let app = spawn_app().await;
    enrolled(&app).await;
    log_out(&app).await;
    password_step(&app).await;
    let mut last = String::new();
    for _ in 0..6 {
        let res = code_step(&app, "000000").await;
        assert_eq!(res.status(), 422);
        last = Html::parse(&res.text().await.unwrap())
            .text("#code-error")
            .unwrap();
    }
    assert!(last.contains("Too many"), "{last}");
    // The password page is locked too: one lockout for both.
    let res = post_password(&app).await;
    assert_eq!(res.status(), 422);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("Too many failed sign-in attempts")
    );
}

#[tokio::test]
async fn a_recovery_code_works_once_and_new_ones_void_the_old() {
    let app = spawn_app().await;
    let (key, codes, t0) = enrolled(&app).await;
    log_out(&app).await;

    password_step(&app).await;
    // Typed loosely: upper case, a space for the dash.
    let typed = codes[0].to_uppercase().replace('-', " ");
    let res = code_step(&app, &typed).await;
    assert_eq!(res.status(), 303);
    let (_, page) = app.page("/developer/applications").await;
    assert!(page.text(".flash").unwrap().contains("9 left"));
    let (_, page) = app.page("/account/security").await;
    assert!(page.text("main").unwrap().contains("9 of 10 left"));

    log_out(&app).await;
    password_step(&app).await;
    assert_eq!(code_step(&app, &codes[0]).await.status(), 422, "used once");
    assert_eq!(code_step(&app, &codes[1]).await.status(), 303);
    // Signing in with a factor opens the step-up window; it closes ten minutes later.
    app.close_step_up_windows();

    // New codes need a code from the app once the window the sign-in opened has closed: the
    // old ones then stop working.
    let res = app
        .post_form("/account/security/recovery-codes", "/account/security", &[])
        .await;
    assert_eq!(res.status(), 200);
    let page = Html::parse(&res.text().await.unwrap());
    assert!(page.text("h1").unwrap().contains("Confirm it is you"));
    assert!(page.text("label[for=password]").unwrap().contains("code"));
    let res = app
        .post_form(
            "/account/security/recovery-codes",
            "/account/security",
            &[("password", &code(&key, t0, 1))],
        )
        .await;
    assert_eq!(res.status(), 200);
    let page = Html::parse(&res.text().await.unwrap());
    let fresh: Vec<String> = page
        .text("#recovery-codes")
        .unwrap()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert_eq!(fresh.len(), 10);
    log_out(&app).await;
    password_step(&app).await;
    assert_eq!(code_step(&app, &codes[2]).await.status(), 422, "voided");
    assert_eq!(code_step(&app, &fresh[0]).await.status(), 303);
}

#[tokio::test]
async fn the_secret_page_asks_for_a_code_and_not_the_password() {
    let app = spawn_app().await;
    let (key, codes, t0) = enrolled(&app).await;
    log_out(&app).await;
    password_step(&app).await;
    assert_eq!(code_step(&app, &codes[0]).await.status(), 303);
    app.close_step_up_windows();
    let client = app.create_client("acme", &["--grant-type", "client_credentials"]);
    let id = client["client_id"].as_str().unwrap();
    let secret = client["client_secret"].as_str().unwrap();
    let path = format!("/developer/applications/{id}/secret");
    let show = format!("/developer/applications/{id}");

    // Signed in, but no step-up yet: the code page, no secret.
    let res = app.post_form(&path, &show, &[]).await;
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    assert!(body.contains("authenticator app") && !body.contains(secret));
    // The password is not a second factor; a spent code is refused.
    for (given, why) in [
        (MERCHANT_PASSWORD.to_owned(), "the password"),
        (code(&key, t0, 0), "the code spent when the app was set up"),
    ] {
        let res = app.post_form(&path, &show, &[("password", &given)]).await;
        assert_eq!(res.status(), 422, "{why}");
        assert!(!res.text().await.unwrap().contains(secret), "{why}");
    }
    let res = app
        .post_form(&path, &show, &[("password", &code(&key, t0, 1))])
        .await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains(secret));
}

#[tokio::test]
async fn the_password_grant_is_refused_for_an_account_with_a_factor() {
    let app = spawn_app().await;
    enrolled(&app).await;
    let created = app.create_client(
        "acme",
        &[
            "--grant-type",
            "password",
            "--grant-type",
            "client_credentials",
        ],
    );
    let client = crate::helpers::TestClient {
        client_id: created["client_id"].as_str().unwrap().to_owned(),
        secret: created["client_secret"].as_str().unwrap().to_owned(),
        owner_id: 0,
    };
    let res = app
        .token_form(
            Some(&client),
            &[
                ("grant_type", "password"),
                ("username", "acme"),
                ("password", MERCHANT_PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("two-step sign-in"),
        "{body}"
    );
}

#[tokio::test]
async fn removing_the_app_needs_a_code_and_the_operator_can_reset_it() {
    let app = spawn_app().await;
    let (key, codes, t0) = enrolled(&app).await;
    log_out(&app).await;
    password_step(&app).await;
    assert_eq!(code_step(&app, &codes[0]).await.status(), 303);
    app.close_step_up_windows();

    let (status, page) = app.page("/account/security/totp/remove").await;
    assert_eq!(status, 200);
    assert!(page.text("h1").unwrap().contains("Remove"));
    let remove = "/account/security/totp/remove";
    let res = app
        .post_form(remove, remove, &[("password", "000000")])
        .await;
    assert_eq!(res.status(), 422);
    assert_eq!(app.count("user_totp"), 1);
    let res = app
        .post_form(remove, remove, &[("password", &code(&key, t0, 1))])
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(app.count("user_totp"), 0);
    assert_eq!(app.count("recovery_codes"), 0);
    let mail = app.outbox.last_to("acme@example.com").unwrap();
    assert!(mail.text.contains("removed"), "{}", mail.text);
    log_out(&app).await;
    assert_eq!(password_step(&app).await, "/developer/applications");

    // Again, and this time the operator takes it off.
    let (status, page) = app.page("/account/security/totp").await;
    assert_eq!(status, 200);
    let key = page.attr("#totp-secret", "value").unwrap();
    let setup = "/account/security/totp";
    let res = app
        .post_form(
            setup,
            setup,
            &[
                ("code", &code(&key, chrono::Utc::now().timestamp(), 0)),
                ("password", MERCHANT_PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status(), 200);
    let out = app.cli(&["user", "mfa", "reset", "--username", "acme"], "");
    assert!(out.success(), "{}", out.stderr);
    assert!(out.stderr.contains("Removed the second factor of acme"));
    assert_eq!(app.count("user_totp"), 0);
    let audit: i64 = {
        use diesel::prelude::*;
        use latchkey::db::schema::audit_events;
        audit_events::table
            .filter(audit_events::action.eq("mfa_reset"))
            .count()
            .get_result(&mut app.db.connect())
            .unwrap()
    };
    assert_eq!(audit, 1);
    let out = app.cli(&["user", "mfa", "reset", "--username", "nobody"], "");
    assert!(!out.success());
}

#[tokio::test]
async fn going_live_needs_a_second_factor_and_live_apps_without_one_are_flagged() {
    let app = spawn_app().await;
    assert_eq!(
        app.sign_up("acme", "acme@example.com", MERCHANT_PASSWORD)
            .await
            .status(),
        303
    );
    let apps = "/developer/applications";
    let form = |environment: &'static str| {
        vec![
            ("name", "Acme Pay"),
            ("redirect_uris", "https://pay.example.com/cb"),
            ("environment", environment),
            ("client_type", "confidential"),
            ("grant_types", "client_credentials"),
            ("scopes", "get_user_profile"),
        ]
    };
    // Created live: refused beside Environment, with the way to the Security page.
    let res = app
        .post_form(apps, &format!("{apps}/new"), &form("live"))
        .await;
    assert_eq!(res.status(), 422);
    let page = Html::parse(&res.text().await.unwrap());
    assert!(
        page.text("#environment-error")
            .unwrap()
            .contains("two-step sign-in")
    );
    assert_eq!(
        page.attr("#environment-error a", "href").as_deref(),
        Some("/account/security")
    );
    assert_eq!(app.count("clients"), 0);
    // Sandbox, then switched to live: refused the same way.
    let res = app
        .post_form(apps, &format!("{apps}/new"), &form("sandbox"))
        .await;
    assert_eq!(res.status(), 303);
    let edit = format!("{}/edit", location(&res));
    let res = app.post_form(&edit, &edit, &form("live")).await;
    assert_eq!(res.status(), 422);

    // An application made live by the operator before: it keeps working, and the list asks
    // its owner to add a factor.
    let live = app.create_client("acme", &["--live", "--grant-type", "client_credentials"]);
    let client = crate::helpers::TestClient {
        client_id: live["client_id"].as_str().unwrap().to_owned(),
        secret: live["client_secret"].as_str().unwrap().to_owned(),
        owner_id: 0,
    };
    let res = app
        .token_form(Some(&client), &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(res.status(), 200);
    let (_, page) = app.page(apps).await;
    assert!(
        page.text(".banner")
            .unwrap()
            .contains("no two-step sign-in")
    );

    // With an authenticator app: going live works, and the list says nothing more.
    app.enable_totp().await;
    let mut live = form("live");
    live.push(CONFIRM_LIVE);
    let res = app.post_form(&edit, &edit, &live).await;
    assert_eq!(res.status(), 303);
    let (_, page) = app.page(apps).await;
    assert!(page.text(".banner").is_none());
}

#[tokio::test]
async fn the_live_rule_can_be_turned_off() {
    let app = crate::helpers::spawn_app_with(|settings| {
        settings.require_mfa_for_live = false;
        None
    })
    .await;
    assert_eq!(
        app.sign_up("acme", "acme@example.com", MERCHANT_PASSWORD)
            .await
            .status(),
        303
    );
    let apps = "/developer/applications";
    let res = app
        .post_form(
            apps,
            &format!("{apps}/new"),
            &[
                ("name", "Acme Pay"),
                ("redirect_uris", "https://pay.example.com/cb"),
                ("environment", "live"),
                ("client_type", "confidential"),
                ("grant_types", "client_credentials"),
                CONFIRM_LIVE,
                ("password", MERCHANT_PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
}

#[tokio::test]
async fn the_security_page_lists_the_sessions_and_signs_them_out() {
    let app = spawn_app().await;
    assert_eq!(
        app.sign_up("acme", "acme@example.com", MERCHANT_PASSWORD)
            .await
            .status(),
        303
    );
    let firefox = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .user_agent("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
        .build()
        .unwrap();
    let sign_in = async || {
        let res = app
            .post_form_in(
                &firefox,
                "/login",
                "/login",
                &[("username", "acme"), ("password", MERCHANT_PASSWORD)],
            )
            .await;
        assert_eq!(res.status(), 303);
    };
    let firefox_status = async || {
        firefox
            .get(app.url("/account/security"))
            .send()
            .await
            .unwrap()
            .status()
    };
    sign_in().await;
    assert_eq!(firefox_status().await, 200);

    let (_, page) = app.page("/account/security").await;
    let table = page.text("tbody").unwrap();
    assert!(table.contains("This session"), "{table}");
    assert!(table.contains("Firefox on Linux"), "{table}");
    assert!(table.contains("127.0.0.1"), "{table}");
    // The other session's Sign out form.
    let action = page
        .attr("tbody form", "action")
        .expect("a Sign out for the other session");
    let res = app.post_form(&action, "/account/security", &[]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(firefox_status().await, 303, "signed out on the server");
    let (status, _) = app.page("/account/security").await;
    assert_eq!(status, 200, "this session stays");

    // Everywhere else.
    sign_in().await;
    let res = app
        .post_form(
            "/account/security/sessions/end-others",
            "/account/security",
            &[],
        )
        .await;
    assert_eq!(res.status(), 303);
    let (_, page) = app.page("/account/security").await;
    assert!(page.text(".flash").unwrap().contains("1 other session"));
    assert_eq!(firefox_status().await, 303);
    assert!(page.text("main").unwrap().contains("only session"));

    // Another account's session is not found from here, and stays signed in.
    let bob = app.create_user("bob", MERCHANT_PASSWORD);
    let other = app.new_browser();
    let res = app
        .post_form_in(
            &other,
            "/login",
            "/login",
            &[("username", "bob"), ("password", MERCHANT_PASSWORD)],
        )
        .await;
    assert_eq!(res.status(), 303);
    let bobs: i64 = {
        use diesel::prelude::*;
        use latchkey::db::schema::sessions;
        sessions::table
            .filter(sessions::user_id.eq(bob.get()))
            .select(sessions::id)
            .first(&mut app.db.connect())
            .unwrap()
    };
    let foreign = format!("/account/security/sessions/{bobs}/end");
    let res = app.post_form(&foreign, "/account/security", &[]).await;
    assert_eq!(res.status(), 404);
    let res = other.get(app.url("/account")).send().await.unwrap();
    assert_eq!(res.status(), 200, "bob is still signed in");
}

/// Reminders of `LATCHKEY_REQUIRE_MFA_FOR_LIVE` in `app`'s outbox, waiting for the clean-up
/// round that sends them (every second in this test).
async fn reminders(app: &TestApp, expected: usize) -> Vec<latchkey::email::Email> {
    let of_kind = || {
        app.outbox
            .messages()
            .into_iter()
            .filter(|m| m.subject.contains("second factor"))
            .collect::<Vec<_>>()
    };
    for _ in 0..100 {
        if of_kind().len() >= expected {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    // A round more: no further reminder may come.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    of_kind()
}

#[tokio::test]
async fn owners_of_live_applications_without_a_factor_are_reminded_by_email_once_a_month() {
    let app = crate::helpers::spawn_app_with(|settings| {
        settings.cleanup_interval = 1;
        None
    })
    .await;
    app.sign_up("acme", "acme@example.com", MERCHANT_PASSWORD)
        .await;
    log_out(&app).await;
    app.sign_up("guarded", "guarded@example.com", MERCHANT_PASSWORD)
        .await;
    app.enable_totp().await;
    // Live applications made by the operator's CLI (the portal would not let acme go live).
    for (owner, name) in [
        ("acme", "Acme Shop"),
        ("acme", "Acme Tills"),
        ("guarded", "Guarded"),
    ] {
        let out = app.cli(
            &[
                "client",
                "create",
                "--owner",
                owner,
                "--name",
                name,
                "--live",
                "--grant-type",
                "client_credentials",
            ],
            "",
        );
        assert!(out.success(), "{}", out.stderr);
    }
    app.create_client("acme", &[]);

    // At the next round: acme is told, once, naming both live applications; the account with
    // a factor is not.
    let sent = reminders(&app, 1).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].to, "acme@example.com");
    assert!(
        sent[0].text.contains("Acme Shop, Acme Tills"),
        "{}",
        sent[0].text
    );
    assert!(
        !sent[0].text.contains("Test App"),
        "a sandbox application is not named"
    );
    assert!(sent[0].text.contains("/account/security"));

    // Rounds later, and on a restarted server: not again.
    assert_eq!(reminders(&app, 2).await.len(), 1);
    let app = crate::helpers::restart(app).await;
    assert_eq!(reminders(&app, 1).await.len(), 0);

    // A month on: again, while acme still has no factor.
    let a_month_ago = || {
        use diesel::prelude::*;
        use latchkey::db::schema::account_notices;
        diesel::update(account_notices::table)
            .set(
                account_notices::sent_at
                    .eq(chrono::Utc::now().naive_utc() - chrono::TimeDelta::days(31)),
            )
            .execute(&mut app.db.connect())
            .unwrap();
    };
    a_month_ago();
    assert_eq!(reminders(&app, 1).await.len(), 1);

    // With a factor: no more.
    app.log_in("acme", MERCHANT_PASSWORD).await;
    app.enable_totp().await;
    a_month_ago();
    assert_eq!(reminders(&app, 2).await.len(), 1);
}
