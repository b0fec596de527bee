//! The pages' chrome by who is looking: people who only use applications see no developer
//! navigation or merchant banner; the sign-in page during an authorization names the
//! application; the home page knows who is signed in, and on a fresh server shows the
//! operator's first steps.

use crate::helpers::{
    END_USER, END_USER_PASSWORD, MERCHANT_PASSWORD, location, setup, spawn_app, spawn_app_with,
};

const DEVELOPER_NAV: &str = "header a[href='/developer/applications']";

#[tokio::test]
async fn someone_who_only_uses_apps_sees_no_developer_chrome() {
    let app = spawn_app().await;
    // Made with the CLI, with an address it never confirmed: no mail was sent to it.
    let out = app.cli(
        &[
            "user",
            "create",
            "--username",
            "shopper",
            "--name",
            "Sam Shopper",
            "--email",
            "sam@example.com",
        ],
        "shopper password 1\n",
    );
    assert!(out.success(), "{}", out.stderr);
    app.log_in("shopper", "shopper password 1").await;
    for path in [
        "/account",
        "/account/authorized-apps",
        "/account/security",
        "/",
    ] {
        let (status, page) = app.page(path).await;
        assert_eq!(status, 200, "{path}");
        assert!(page.attr(DEVELOPER_NAV, "href").is_none(), "{path}");
        assert!(
            page.text(".banner").is_none(),
            "{path}: {:?}",
            page.text(".banner")
        );
        assert!(page.text("header").unwrap().contains("Authorized apps"));
    }
    // The portal is still theirs to open, from the account page.
    let (_, account) = app.page("/account").await;
    assert_eq!(
        account.attr("#build a", "href").as_deref(),
        Some("/developer/applications")
    );
    let (status, portal) = app.page("/developer/applications").await;
    assert_eq!(status, 200);
    assert!(
        portal.attr(DEVELOPER_NAV, "href").is_some(),
        "on the portal's own pages"
    );
    // Registering an application makes the account a developer's.
    let out = app.cli(
        &[
            "client",
            "create",
            "--owner",
            "shopper",
            "--name",
            "Side Project",
        ],
        "",
    );
    assert!(out.success(), "{}", out.stderr);
    let (_, account) = app.page("/account").await;
    assert!(account.attr(DEVELOPER_NAV, "href").is_some());
    assert!(account.text("#build").is_none());
    // And the unconfirmed address now matters (going live): said honestly, with a way to fix it.
    let banner = account.text(".banner").unwrap();
    assert!(
        banner.contains("sam@example.com is not confirmed yet"),
        "{banner}"
    );
    assert!(!banner.contains("we sent you"), "{banner}");
    let sent = app.outbox.messages().len();
    let res = app.post_form("/verify-email/resend", "/account", &[]).await;
    assert_eq!(res.status(), 303);
    app.mail_to("sam@example.com", sent).await;
}

#[tokio::test]
async fn developers_made_on_the_command_line_or_signing_up_from_the_portal_see_the_portal() {
    let app = spawn_app().await;
    let out = app.cli(
        &[
            "user",
            "create",
            "--username",
            "merchant2",
            "--name",
            "Mo Merchant",
            "--developer",
        ],
        "merchant password 1\n",
    );
    assert!(out.success(), "{}", out.stderr);
    app.log_in("merchant2", "merchant password 1").await;
    let (_, page) = app.page("/account").await;
    assert!(page.attr(DEVELOPER_NAV, "href").is_some());

    let browser = app.new_browser();
    let res = app
        .sign_up_in(&browser, "acme", "acme@example.com", MERCHANT_PASSWORD)
        .await;
    assert_eq!(res.status(), 303);
    let html = browser
        .get(app.url("/account/security"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Developer › Applications"));
}

#[tokio::test]
async fn signing_in_or_up_during_an_authorization_names_the_application() {
    let app = spawn_app().await;
    let client = setup(&app);
    let authorize = crate::helpers::authorize_path(&[
        ("response_type", "code"),
        ("client_id", &client.client_id),
        ("redirect_uri", crate::helpers::CALLBACK),
        ("scope", "get_user_profile"),
        ("state", "xyz"),
        ("code_challenge", crate::helpers::CHALLENGE),
        ("code_challenge_method", "S256"),
    ]);
    let res = app.get(&authorize).await;
    assert_eq!(res.status(), 303);
    let login = location(&res);
    let (_, page) = app.page(&login).await;
    assert_eq!(
        page.text("h1").as_deref(),
        Some("Sign in to continue to Test App")
    );
    assert!(
        page.text("#for-app")
            .unwrap()
            .contains("never sees your password")
    );
    // Without an authorization, the plain page.
    let (_, plain) = app.page("/login").await;
    assert_eq!(plain.text("h1").as_deref(), Some("Sign in"));

    // Someone new signs up from there: an account that uses apps, not a developer's.
    let signup = page.attr("main a[href^='/signup']", "href").unwrap();
    assert_eq!(signup, "/signup?next=%2Foauth%2Fauthorize%2Fresume");
    let res = app
        .sign_up_next_in(
            &app.api,
            "newcomer",
            "newcomer@example.com",
            "newcomer password 1",
            Some("/oauth/authorize/resume"),
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/oauth/authorize/resume");
    let (_, account) = app.page("/account").await;
    assert!(account.attr(DEVELOPER_NAV, "href").is_none());
}

#[tokio::test]
async fn the_home_page_knows_a_fresh_server_and_who_is_signed_in() {
    let app = spawn_app().await;
    let (status, fresh) = app.page("/").await;
    assert_eq!(status, 200);
    let steps = fresh.text("#first-steps").unwrap();
    assert!(steps.contains("has no accounts yet"), "{steps}");
    assert!(steps.contains("latchkey user create"), "{steps}");
    assert!(
        steps.contains(&format!("{}/.well-known/openid-configuration", app.address)),
        "{steps}"
    );
    assert!(steps.contains("Messages are kept in memory"), "{steps}");
    // Without SMTP, where the files go.
    let folder = tempfile::tempdir().unwrap();
    let dir = folder.path().to_owned();
    let files = spawn_app_with(move |_| {
        Some(
            latchkey::email::Mailer::new(
                None,
                dir,
                "Latchkey <no-reply@example.com>".parse().unwrap(),
            )
            .unwrap(),
        )
    })
    .await;
    let (_, page) = files.page("/").await;
    let steps = page.text("#first-steps").unwrap();
    assert!(
        steps.contains(&format!(
            "No SMTP server is set ( LATCHKEY_SMTP_URL ), so each message is written as a file to {} ,",
            folder.path().display()
        )),
        "{steps}"
    );

    app.create_user(END_USER, END_USER_PASSWORD);
    let (_, signed_out) = app.page("/").await;
    assert!(signed_out.text("#first-steps").is_none());
    assert_eq!(
        signed_out.attr("main a.button", "href").as_deref(),
        Some("/login")
    );

    app.log_in(END_USER, END_USER_PASSWORD).await;
    let (_, home) = app.page("/").await;
    assert!(home.text("h1").unwrap().starts_with("Hello"));
    assert!(
        home.attr("main a[href='/account/authorized-apps']", "href")
            .is_some()
    );
    assert!(
        home.attr("main a[href='/developer/applications']", "href")
            .is_none()
    );
}

#[tokio::test]
async fn check_your_inbox_sends_the_link_again_within_the_mail_ration() {
    let app = spawn_app().await;
    let res = app
        .post_form("/signup", "/signup", &[("email", "new@example.com")])
        .await;
    assert_eq!(res.status(), 200);
    let page = crate::helpers::Html::parse(&res.text().await.unwrap());
    assert_eq!(
        page.attr("form[action='/signup'] input[name=email]", "value")
            .as_deref(),
        Some("new@example.com")
    );
    assert_eq!(
        page.text("form[action='/signup'] button").as_deref(),
        Some("Send the link again")
    );
    app.mail_to("new@example.com", 0).await;
    // Pressed again and again: the address gets five messages in the hour, no more.
    for _ in 0..6 {
        let res = app
            .post_form("/signup", "/signup", &[("email", "new@example.com")])
            .await;
        assert_eq!(res.status(), 200);
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let sent = app
        .outbox
        .messages()
        .into_iter()
        .filter(|m| m.to == "new@example.com")
        .count();
    assert_eq!(sent, 5);
}

#[tokio::test]
async fn a_logo_is_drawn_over_its_initials_and_the_script_that_drops_a_broken_one_is_served() {
    let app = spawn_app().await;
    let client = setup(&app);
    let mut conn = app.db.connect();
    {
        use diesel::prelude::*;
        use latchkey::db::schema::clients;
        diesel::update(clients::table)
            .set(clients::logo_url.eq("https://shop.example.com/missing.png"))
            .execute(&mut conn)
            .unwrap();
    }
    app.log_in("merchant", crate::helpers::MERCHANT_PASSWORD)
        .await;
    let (_, page) = app
        .page(&format!("/developer/applications/{}", client.client_id))
        .await;
    assert_eq!(
        page.attr(".app-logo", "data-initials").as_deref(),
        Some("TA")
    );
    assert!(page.attr(".app-logo img", "src").is_some());
    assert!(
        page.attr("script[src='/static/js/logo.js']", "src")
            .is_some()
    );
    let script = app.get("/static/js/logo.js").await;
    assert_eq!(script.status(), 200);
    assert!(script.text().await.unwrap().contains("img.remove()"));
}

/// The start-up log says which URL to open, in words, after the line that says it listens.
#[tokio::test]
async fn the_start_up_log_prints_the_url_to_open() {
    let app = spawn_app().await;
    let mut env = app.cli_env();
    env.push(("LATCHKEY_ISSUER".into(), "http://latchkey.test".into()));
    let served = tokio::task::spawn_blocking(move || {
        let served = crate::served::Served::start(&env, &[]);
        let line = served.line(std::time::Duration::from_secs(10), |line| {
            line["message"]
                .as_str()
                .is_some_and(|m| m.contains("in a browser"))
        });
        (served, line)
    });
    let (_served, line) = served.await.unwrap();
    let line = line.expect("no line saying which URL to open");
    let line = line["message"].as_str().unwrap_or_default();
    assert!(
        line.contains(
            "open http://latchkey.test/ in a browser to sign in, or to see the first steps"
        ),
        "{line}"
    );
}
