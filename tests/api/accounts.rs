//! Accounts in the browser: sign-up and email verification, login and its throttle, sessions
//! (fixation, logout, restart), CSRF, password reset and the account page.

use diesel::prelude::*;
use latchkey::db::models::User;
use latchkey::db::schema::sessions;
use latchkey::domain::UserId;
use reqwest::cookie::CookieStore as _;

use crate::helpers::{Html, MERCHANT_PASSWORD, TestApp, age_session, link_in, location, spawn_app};

fn session_rows(app: &TestApp) -> Vec<(String, Option<UserId>)> {
    sessions::table
        .select((sessions::session_key, sessions::user_id))
        .load(&mut app.db.connect())
        .unwrap()
}

fn user(app: &TestApp, username: &str) -> User {
    User::find_by_username(&mut app.db.connect(), username)
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn sign_up_starts_with_the_address_and_finishes_from_the_emailed_link() {
    let app = spawn_app().await;
    let (status, page) = app.page("/signup").await;
    assert_eq!(status, 200);
    assert!(page.attr("#email", "name").is_some());
    assert!(
        page.attr("#username", "name").is_none(),
        "the first step asks only for the address"
    );

    let res = app
        .post_form("/signup", "/signup", &[("email", "Alice@Example.com")])
        .await;
    assert_eq!(res.status(), 200);
    let page = Html::parse(&res.text().await.unwrap());
    assert_eq!(page.text("h1").as_deref(), Some("Check your inbox"));
    assert!(page.text("#sent").unwrap().contains("alice@example.com"));
    assert_eq!(app.count("users"), 0, "no account before the link is used");

    let mail = app.mail_to("alice@example.com", 0).await;
    assert_eq!(mail.subject, "Finish creating your Latchkey account");
    let link = link_in(&mail.text, "/signup/");
    assert!(mail.html.contains(&link.replace('/', "&#x2F;")) || mail.html.contains(&link));
    let path = app.path_of(&link);

    // Opening the link shows the form and spends nothing (mail scanners open links too).
    for _ in 0..2 {
        let (status, form) = app.page(&path).await;
        assert_eq!(status, 200);
        assert_eq!(
            form.text("#signup-email").as_deref(),
            Some("alice@example.com")
        );
        assert!(
            form.text("#password-hint")
                .unwrap()
                .contains("At least 10 characters")
        );
    }

    let res = app
        .post_form(
            &path,
            &path,
            &[
                ("username", "Alice"),
                ("name", "Alice Tan"),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/developer/applications");
    let alice = user(&app, "alice");
    assert_eq!(alice.email.as_deref(), Some("alice@example.com"));
    assert!(
        alice.email_verified_at.is_some(),
        "the link proved the address"
    );

    // Signed in, welcomed, and not asked to confirm the address again.
    let (_, account) = app.page("/account").await;
    assert!(account.text(".banner").is_none());
    assert!(account.text(".flash").unwrap().contains("Welcome"));

    // The account spent the link: a second browser cannot use it again.
    let other = app.new_browser();
    let res = app
        .post_form_in(
            &other,
            &path,
            "/login",
            &[
                ("username", "alice2"),
                ("name", "Again"),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    assert_eq!(res.status(), 400);
    let page = Html::parse(&res.text().await.unwrap());
    assert_eq!(
        page.text("h1").as_deref(),
        Some("You already have an account")
    );
    assert_eq!(app.count("users"), 1);
}

#[tokio::test]
async fn sign_up_links_that_are_altered_expired_or_for_another_purpose_do_not_work() {
    let app = spawn_app().await;
    let link = latchkey::accounts::SignupLink {
        email: latchkey::domain::Email::parse("late@example.com").unwrap(),
        next: None,
    };
    let now = chrono::Utc::now().naive_utc();
    let good = latchkey::accounts::signup_token(&app.key, &link, now);
    let expired = latchkey::accounts::signup_token(
        &app.key,
        &link,
        now - latchkey::accounts::SIGNUP_TTL - chrono::TimeDelta::minutes(1),
    );
    let mut altered = good.clone().into_bytes();
    let last = altered.len() - 5;
    altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    // A value we seal for something else (a client secret's copy) is not a sign-up token.
    let other_purpose = app.key.encrypt(
        format!(
            r#"{{"email":"late@example.com","expires":{}}}"#,
            now.and_utc().timestamp() + 3600
        )
        .as_bytes(),
        "client secret",
    );
    let (status, _) = app.page(&format!("/signup/{good}")).await;
    assert_eq!(status, 200, "the untouched token works");
    for (case, token) in [
        ("expired", expired.as_str()),
        ("altered", altered.as_str()),
        ("other purpose", other_purpose.as_str()),
        ("garbage", "not-a-token"),
    ] {
        let (status, page) = app.page(&format!("/signup/{token}")).await;
        assert_eq!(status, 400, "{case}");
        assert!(page.text("h1").unwrap().contains("does not work"), "{case}");
        assert!(
            page.text("main a").unwrap().contains("new sign-up link"),
            "{case}: the page offers a new link"
        );
    }
}

#[tokio::test]
async fn sign_up_errors_sit_beside_their_fields_and_keep_the_input() {
    let app = spawn_app().await;
    // The first step: the address.
    let res = app
        .post_form("/signup", "/signup", &[("email", "not-an-email")])
        .await;
    assert_eq!(res.status(), 422);
    let page = Html::parse(&res.text().await.unwrap());
    assert!(
        page.text("#email-error")
            .unwrap()
            .contains("not a valid email")
    );
    assert_eq!(
        page.attr("#email", "value").as_deref(),
        Some("not-an-email")
    );
    assert!(page.text(".alert.error").is_some());

    // The second step: username, name and password.
    let path = app.signup_path("bob@example.com");
    let cases: &[(&str, &str, &str, &str, &str)] = &[
        (
            "a",
            "Bob",
            "long enough password",
            "#username-error",
            "3 to 32",
        ),
        ("bob", "Bob", "short", "#password-error", "at least 10"),
        (
            "bob1234567",
            "Bob",
            "BOB1234567",
            "#password-error",
            "same as the username",
        ),
        (
            "bob",
            "",
            "long enough password",
            "#name-error",
            "can't be blank",
        ),
    ];
    for (username, name, password, field, message) in cases {
        let res = app
            .post_form(
                &path,
                &path,
                &[
                    ("username", username),
                    ("name", name),
                    ("password", password),
                ],
            )
            .await;
        assert_eq!(res.status(), 422, "{username}");
        let page = Html::parse(&res.text().await.unwrap());
        let error = page
            .text(field)
            .unwrap_or_else(|| panic!("no {field} for {username}"));
        assert!(error.contains(message), "{error}");
        assert_eq!(page.attr("#username", "value").as_deref(), Some(*username));
        assert_eq!(page.attr("#name", "value").as_deref(), Some(*name));
        assert_eq!(
            page.attr("#password", "value"),
            None,
            "a password is never sent back"
        );
        assert_eq!(
            page.text("#signup-email").as_deref(),
            Some("bob@example.com")
        );
        assert!(page.text(".alert.error").is_some());
    }

    // A taken username: the message is on the field, and the link still works afterwards.
    app.create_user("carol", "long enough password");
    let res = app
        .post_form(
            &path,
            &path,
            &[
                ("username", "Carol"),
                ("name", "Bob"),
                ("password", "long enough password"),
            ],
        )
        .await;
    assert_eq!(res.status(), 422);
    let page = Html::parse(&res.text().await.unwrap());
    assert!(page.text("#username-error").unwrap().contains("taken"));
    assert_eq!(page.attr("#username", "value").as_deref(), Some("Carol"));
    assert_eq!(app.count("users"), 1);
    let res = app
        .post_form(
            &path,
            &path,
            &[
                ("username", "bob"),
                ("name", "Bob"),
                ("password", "long enough password"),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(app.count("users"), 2);
}

#[tokio::test]
async fn login_gives_one_message_for_unknown_users_and_wrong_passwords() {
    let app = spawn_app().await;
    app.create_user("merchant", MERCHANT_PASSWORD);
    let mut messages = Vec::new();
    for (username, password) in [
        ("merchant", "wrong password!"),
        ("nobody", "wrong password!"),
    ] {
        let res = app
            .post_form(
                "/login",
                "/login",
                &[("username", username), ("password", password)],
            )
            .await;
        assert_eq!(res.status(), 422);
        let page = Html::parse(&res.text().await.unwrap());
        messages.push(page.text("#login-error").unwrap());
        assert_eq!(page.attr("#username", "value").as_deref(), Some(username));
    }
    assert_eq!(messages[0], "Incorrect username or password.");
    assert_eq!(messages[0], messages[1]);
}

#[tokio::test]
async fn login_renews_the_session_and_follows_only_local_next() {
    let app = crate::helpers::spawn_counting_app().await;
    app.create_user("merchant", MERCHANT_PASSWORD);
    // A protected page sends to the login page with next=.
    let res = app.get("/account").await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/login?next=%2Faccount");

    let statements = app.statements.get();
    let (_, page) = app.page("/login?next=/account").await;
    assert!(
        session_rows(&app).is_empty(),
        "the login form's anonymous session travels in its cookie"
    );
    assert_eq!(
        app.statements.get(),
        statements,
        "the login page costs no statement"
    );
    let url: reqwest::Url = app.address.parse().unwrap();
    let anonymous = app.jar.cookies(&url).unwrap();
    assert_eq!(
        page.attr("input[name=next]", "value").as_deref(),
        Some("/account")
    );
    let res = app
        .api
        .post(app.url("/login"))
        .form(&[
            ("username", "merchant"),
            ("password", MERCHANT_PASSWORD),
            ("next", "/account"),
            ("csrf_token", &page.csrf()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/account");
    // No fixation: a new key carries the user, and the pre-login cookie is still anonymous.
    let after = session_rows(&app);
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].1, Some(user(&app, "merchant").id));
    assert_ne!(app.jar.cookies(&url).unwrap(), anonymous);
    assert_eq!(app.get("/account").await.status(), 200);
    let replay = app
        .new_browser()
        .get(app.url("/account"))
        .header("Cookie", &anonymous)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 303, "the pre-login cookie signs no one in");

    // Cookie flags.
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("latchkey_session="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "no Secure flag over plain http: {cookie}"
    );

    // next= that leaves the site is ignored.
    for next in [
        "//evil.example/x",
        "https://evil.example",
        "/\\evil.example",
    ] {
        let browser = app.new_browser();
        let res = browser.get(app.url("/login")).send().await.unwrap();
        let page = Html::parse(&res.text().await.unwrap());
        let res = browser
            .post(app.url("/login"))
            .form(&[
                ("username", "merchant"),
                ("password", MERCHANT_PASSWORD),
                ("next", next),
                ("csrf_token", &page.csrf()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(location(&res), "/developer/applications", "{next}");
    }
}

#[tokio::test]
async fn repeated_failures_lock_the_login_and_the_password_grant_together() {
    let app = spawn_app().await;
    let client = app.merchant_client(&["--grant-type", "password"]);
    // Four failures through the token endpoint, one through the page.
    for _ in 0..4 {
        let res = app
            .token_form(
                Some(&client),
                &[
                    ("grant_type", "password"),
                    ("username", "merchant"),
                    ("password", "wrong password!"),
                ],
            )
            .await;
        assert_eq!(res.status(), 400);
    }
    let res = app
        .post_form(
            "/login",
            "/login",
            &[("username", "merchant"), ("password", "wrong password!")],
        )
        .await;
    assert_eq!(res.status(), 422);
    // Now even the right password is refused, with the time to wait.
    let res = app
        .post_form(
            "/login",
            "/login",
            &[("username", "merchant"), ("password", MERCHANT_PASSWORD)],
        )
        .await;
    assert_eq!(res.status(), 422);
    let page = Html::parse(&res.text().await.unwrap());
    assert!(
        page.text("#login-error")
            .unwrap()
            .contains("Try again in 15 minutes"),
        "{:?}",
        page.text("#login-error")
    );
    let res = app
        .token_form(
            Some(&client),
            &[
                ("grant_type", "password"),
                ("username", "merchant"),
                ("password", MERCHANT_PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn logout_ends_the_session_on_the_server() {
    let app = spawn_app().await;
    app.create_user("merchant", MERCHANT_PASSWORD);
    app.log_in("merchant", MERCHANT_PASSWORD).await;
    // A copy of the session cookie, as a thief would hold it.
    let url: reqwest::Url = app.address.parse().unwrap();
    let cookie = app.jar.cookies(&url).unwrap();
    let thief = app.new_browser();
    let stolen = thief
        .get(app.url("/account"))
        .header("Cookie", cookie.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(stolen.status(), 200);

    let res = app.post_form("/logout", "/account", &[]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/login?signed_out=1");
    assert!(session_rows(&app).iter().all(|(_, user)| user.is_none()));
    let replay = thief
        .get(app.url("/account"))
        .header("Cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        replay.status(),
        303,
        "the old cookie must not work after logout"
    );
    let (_, page) = app.page("/login?signed_out=1").await;
    assert!(page.text(".flash").unwrap().contains("signed out"));
}

#[tokio::test]
async fn sessions_survive_a_restart() {
    let app = spawn_app().await;
    app.create_user("merchant", MERCHANT_PASSWORD);
    app.log_in("merchant", MERCHANT_PASSWORD).await;
    let url: reqwest::Url = app.address.parse().unwrap();
    let cookie = app.jar.cookies(&url).unwrap();
    let app = crate::helpers::restart(app).await;
    let res = app
        .api
        .get(app.url("/account"))
        .header("Cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn forms_without_the_csrf_token_change_nothing() {
    let app = spawn_app().await;
    app.create_user("merchant", MERCHANT_PASSWORD);
    let res = app
        .api
        .post(app.url("/login"))
        .form(&[("username", "merchant"), ("password", MERCHANT_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(session_rows(&app).iter().all(|(_, user)| user.is_none()));

    app.log_in("merchant", MERCHANT_PASSWORD).await;
    for token in ["", "wrong-token"] {
        let res = app
            .api
            .post(app.url("/account/profile"))
            .form(&[
                ("name", "Hacked"),
                ("email", "evil@example.com"),
                ("csrf_token", token),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403);
        let page = Html::parse(&res.text().await.unwrap());
        assert!(page.text("h1").unwrap().contains("expired"));
    }
    assert_eq!(user(&app, "merchant").name, "Test User");
    let res = app.api.post(app.url("/logout")).send().await.unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(app.get("/account").await.status(), 200, "still signed in");
}

#[tokio::test]
async fn password_reset_is_neutral_single_use_and_ends_every_session() {
    let app = spawn_app().await;
    assert_eq!(
        app.sign_up("dave", "dave@example.com", "original password")
            .await
            .status(),
        303
    );
    // A second browser, signed in too.
    let other = app.new_browser();
    app.post_form_in(
        &other,
        "/login",
        "/login",
        &[("username", "dave"), ("password", "original password")],
    )
    .await;
    assert_eq!(
        other
            .get(app.url("/account"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let mut notices = Vec::new();
    for email in ["nobody@example.com", "dave@example.com"] {
        let browser = app.new_browser();
        let res = app
            .post_form_in(
                &browser,
                "/password/forgot",
                "/password/forgot",
                &[("email", email)],
            )
            .await;
        assert_eq!(res.status(), 303);
        let page = Html::parse(
            &browser
                .get(app.url("/login"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
        notices.push(page.text(".flash").unwrap());
    }
    assert_eq!(notices[0], notices[1]);
    assert!(notices[0].starts_with("If an account with that email address exists"));

    // The email is sent after the answer: wait for it.
    let mut email = None;
    for _ in 0..50 {
        email = app
            .outbox
            .messages()
            .into_iter()
            .find(|m| m.subject.contains("Reset"));
        if email.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let email = email.expect("no reset email");
    assert_eq!(email.to, "dave@example.com");
    assert!(
        app.outbox
            .messages()
            .iter()
            .all(|m| m.to != "nobody@example.com")
    );
    let path = link_in(&email.text, "/password/reset/")
        .strip_prefix(&app.address)
        .unwrap()
        .to_owned();

    let browser = app.new_browser();
    let form = Html::parse(
        &browser
            .get(app.url(&path))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    let res = browser
        .post(app.url(&path))
        .form(&[
            ("password", "brand new password"),
            ("confirm", "different password"),
            ("csrf_token", &form.csrf()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let page = Html::parse(&res.text().await.unwrap());
    assert!(page.text("#confirm-error").unwrap().contains("differ"));
    let res = browser
        .post(app.url(&path))
        .form(&[
            ("password", "brand new password"),
            ("confirm", "brand new password"),
            ("csrf_token", &form.csrf()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/login?password_reset=1");

    // Every session of the account ended; the old password no longer works, the new one does.
    assert_eq!(
        other
            .get(app.url("/account"))
            .send()
            .await
            .unwrap()
            .status(),
        303
    );
    assert_eq!(app.get("/account").await.status(), 303);
    let res = app
        .post_form(
            "/login",
            "/login",
            &[("username", "dave"), ("password", "original password")],
        )
        .await;
    assert_eq!(res.status(), 422);
    app.log_in("dave", "brand new password").await;
    let (status, _) = app.page(&path).await;
    assert_eq!(status, 400, "a reset link works once");
}

#[tokio::test]
async fn the_account_page_changes_name_email_and_password() {
    let app = spawn_app().await;
    assert_eq!(
        app.sign_up("erin", "erin@example.com", "original password")
            .await
            .status(),
        303
    );
    let res = app
        .post_form(
            "/account/profile",
            "/account",
            &[("name", "Erin E."), ("email", "erin@example.com")],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(user(&app, "erin").name, "Erin E.");

    // A new address is stored once its owner opens the link sent to it.
    let sent = app.outbox.messages().len();
    let res = app
        .post_form(
            "/account/profile",
            "/account",
            &[
                ("name", "Erin E."),
                ("email", "erin2@example.com"),
                ("password", "original password"),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    let (_, account) = app.page("/account").await;
    assert!(account.text(".flash").unwrap().contains("when you open it"));
    assert_eq!(
        user(&app, "erin").email.as_deref(),
        Some("erin@example.com"),
        "the old address stays until the new one is confirmed"
    );
    let mail = app.mail_to("erin2@example.com", sent).await;
    assert_eq!(mail.subject, "Confirm your email address");
    let res = app
        .get(&app.path_of(&link_in(&mail.text, "/verify-email/")))
        .await;
    assert_eq!(res.status(), 303);
    let erin = user(&app, "erin");
    assert_eq!(erin.email.as_deref(), Some("erin2@example.com"));
    assert!(erin.email_verified_at.is_some());

    // A link whose address another account took meanwhile changes nothing.
    let sent = app.outbox.messages().len();
    app.post_form(
        "/account/profile",
        "/account",
        &[
            ("name", "Erin E."),
            ("email", "erin3@example.com"),
            ("password", "original password"),
        ],
    )
    .await;
    let mail = app.mail_to("erin3@example.com", sent).await;
    let out = app.cli(
        &[
            "user",
            "create",
            "--username",
            "other",
            "--name",
            "Other",
            "--email",
            "erin3@example.com",
        ],
        "another long password\n",
    );
    assert!(out.success(), "{}", out.stderr);
    let (status, page) = app
        .page(&app.path_of(&link_in(&mail.text, "/verify-email/")))
        .await;
    assert_eq!(status, 400);
    assert_eq!(page.text("h1").as_deref(), Some("This address is taken"));
    assert_eq!(
        user(&app, "erin").email.as_deref(),
        Some("erin2@example.com")
    );

    let res = app
        .post_form(
            "/account/profile",
            "/account",
            &[("name", ""), ("email", "bad")],
        )
        .await;
    assert_eq!(res.status(), 422);
    let page = Html::parse(&res.text().await.unwrap());
    assert!(page.text("#name-error").is_some() && page.text("#email-error").is_some());

    let res = app
        .post_form(
            "/account/password",
            "/account",
            &[
                ("current_password", "not it at all"),
                ("new_password", "a newer password"),
                ("confirm", "a newer password"),
            ],
        )
        .await;
    assert_eq!(res.status(), 422);
    let page = Html::parse(&res.text().await.unwrap());
    assert!(
        page.text("#current-error")
            .unwrap()
            .contains("not your current password")
    );
    let res = app
        .post_form(
            "/account/password",
            "/account",
            &[
                ("current_password", "original password"),
                ("new_password", "a newer password"),
                ("confirm", "a newer password"),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        app.get("/account").await.status(),
        200,
        "this session goes on"
    );
    let stored = user(&app, "erin").password;
    assert!(
        latchkey::auth::password::Passwords::default().verify("a newer password", Some(&stored))
    );
}

#[tokio::test]
async fn pages_carry_anti_framing_and_no_store_headers() {
    let app = spawn_app().await;
    for path in ["/login", "/signup", "/password/forgot", "/"] {
        let res = app.get(path).await;
        assert_eq!(res.status(), 200, "{path}");
        let h = res.headers();
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'")
        );
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["cache-control"], "no-store");
        assert_eq!(h["referrer-policy"], "no-referrer");
    }
    // Programs' endpoints get no session cookie.
    let res = app.get("/healthz").await;
    assert!(res.headers().get("set-cookie").is_none());
}

#[tokio::test]
async fn authorized_apps_lists_and_revokes_what_acts_for_the_user() {
    let app = spawn_app().await;
    let client = app.merchant_client(&[
        "--grant-type",
        "password",
        "--grant-type",
        "refresh_token",
        "--grant-type",
        "client_credentials",
    ]);
    app.create_user("yussuf", "yussuf password 1");
    app.log_in("yussuf", "yussuf password 1").await;
    let (_, page) = app.page("/account/authorized-apps").await;
    assert!(
        page.text(".empty h2")
            .unwrap()
            .contains("not authorized any")
    );
    // The merchant's own client_credentials tokens do not count as anyone's authorization.
    app.token_form(Some(&client), &[("grant_type", "client_credentials")])
        .await;

    let res = app
        .token_form(
            Some(&client),
            &[
                ("grant_type", "password"),
                ("username", "yussuf"),
                ("password", "yussuf password 1"),
            ],
        )
        .await;
    let tokens: serde_json::Value = res.json().await.unwrap();
    let (_, page) = app.page("/account/authorized-apps").await;
    let table = page.text("table").unwrap();
    assert!(
        page.text("section.authorized h2")
            .unwrap()
            .contains("Test App")
            && table.contains("Read your user profile (get_user_profile)"),
        "{table}"
    );

    let revoke = format!("/account/authorized-apps/{}/revoke", client.client_id);
    let (status, confirm) = app.page(&revoke).await;
    assert_eq!(status, 200);
    assert!(confirm.text("h1").unwrap().contains("Revoke access"));
    let res = app.post_form(&revoke, &revoke, &[]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        app.profile(tokens["access_token"].as_str().unwrap())
            .await
            .status(),
        401
    );
    let res = app
        .token_form(
            Some(&client),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ],
        )
        .await;
    assert_eq!(res.status(), 400);
    let (_, page) = app.page("/account/authorized-apps").await;
    assert!(page.text(".flash").unwrap().contains("Access revoked"));
    assert!(page.text(".empty").is_some());
    // Nothing to revoke: 404.
    assert_eq!(app.page(&revoke).await.0, 404);
}

#[tokio::test]
async fn sessions_end_after_the_absolute_and_the_idle_timeout() {
    let app = spawn_app().await;
    app.create_user("merchant", MERCHANT_PASSWORD);
    app.log_in("merchant", MERCHANT_PASSWORD).await;
    assert_eq!(app.get("/account").await.status(), 200);
    // Signed in 13 hours ago: past the 12-hour absolute limit, however active.
    let thirteen_hours_ago = (chrono::Utc::now() - chrono::TimeDelta::hours(13)).timestamp();
    age_session(&app, |state| {
        state.insert(
            "signed_in_at".into(),
            serde_json::Value::String(thirteen_hours_ago.to_string()),
        );
    });
    assert_eq!(app.get("/account").await.status(), 303);

    // Idle: a session whose expiry has passed is gone.
    app.log_in("merchant", MERCHANT_PASSWORD).await;
    assert_eq!(app.get("/account").await.status(), 200);
    diesel::update(sessions::table)
        .set(
            sessions::expires_at.eq(chrono::Utc::now().naive_utc() - chrono::TimeDelta::seconds(1)),
        )
        .execute(&mut app.db.connect())
        .unwrap();
    assert_eq!(app.get("/account").await.status(), 303);
}

#[tokio::test]
async fn many_failures_from_one_address_lock_that_address() {
    let app = spawn_app().await;
    app.create_user("merchant", MERCHANT_PASSWORD);
    // Twenty failures spread over made-up accounts (so no single account locks)…
    for i in 0..20 {
        let res = app
            .post_form(
                "/login",
                "/login",
                &[
                    ("username", &format!("guess{i}")),
                    ("password", "wrong password!"),
                ],
            )
            .await;
        assert_eq!(res.status(), 422);
    }
    // …lock the address, even for a real account with the right password.
    let res = app
        .post_form(
            "/login",
            "/login",
            &[("username", "merchant"), ("password", MERCHANT_PASSWORD)],
        )
        .await;
    assert_eq!(res.status(), 422);
    let page = Html::parse(&res.text().await.unwrap());
    assert!(
        page.text("#login-error").unwrap().contains("Try again in"),
        "{:?}",
        page.text("#login-error")
    );
}

#[tokio::test]
async fn a_sign_in_from_a_new_address_is_emailed_once() {
    let app = spawn_app().await;
    assert_eq!(
        app.sign_up("frank", "frank@example.com", "frank password 1")
            .await
            .status(),
        303
    );
    let sign_ins = |app: &TestApp| {
        app.outbox
            .messages()
            .into_iter()
            .filter(|m| m.subject == "New sign-in to your Latchkey account")
            .count()
    };
    app.post_form("/logout", "/account", &[]).await;
    app.log_in("frank", "frank password 1").await;
    // Signing up counted as the first sign-in from this address: no email.
    assert_eq!(sign_ins(&app), 0);
    // From an address not seen before (recorded sign-ins are per address).
    diesel::delete(latchkey::db::schema::audit_events::table)
        .execute(&mut app.db.connect())
        .unwrap();
    app.post_form("/logout", "/account", &[]).await;
    app.log_in("frank", "frank password 1").await;
    assert_eq!(sign_ins(&app), 1);
    let email = app.outbox.last_to("frank@example.com").unwrap();
    assert!(email.text.contains("127.0.0.1"), "{}", email.text);
    app.post_form("/logout", "/account", &[]).await;
    app.log_in("frank", "frank password 1").await;
    assert_eq!(sign_ins(&app), 1, "the same address again: no second email");
}

#[tokio::test]
async fn activity_extends_the_session_at_most_once_a_minute() {
    let app = spawn_app().await;
    app.create_user("merchant", MERCHANT_PASSWORD);
    app.log_in("merchant", MERCHANT_PASSWORD).await;
    let expiry = || {
        sessions::table
            .filter(sessions::user_id.is_not_null())
            .select(sessions::expires_at)
            .first::<chrono::NaiveDateTime>(&mut app.db.connect())
            .unwrap()
    };
    // Pages viewed within the minute: the session is not written again.
    let signed_in = expiry();
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(app.get("/account").await.status(), 200);
    assert_eq!(app.get("/developer/applications").await.status(), 200);
    assert_eq!(expiry(), signed_in);
    // Last seen two minutes ago and close to the idle timeout: the next request extends it.
    let soon = chrono::Utc::now().naive_utc() + chrono::TimeDelta::minutes(5);
    diesel::update(sessions::table)
        .set(sessions::expires_at.eq(soon))
        .execute(&mut app.db.connect())
        .unwrap();
    let two_minutes_ago = (chrono::Utc::now() - chrono::TimeDelta::minutes(2)).timestamp();
    age_session(&app, |state| {
        state.insert(
            "seen_at".into(),
            serde_json::Value::String(two_minutes_ago.to_string()),
        );
    });
    assert_eq!(app.get("/account").await.status(), 200);
    let extended = expiry();
    assert!(
        extended > chrono::Utc::now().naive_utc() + chrono::TimeDelta::minutes(110),
        "{extended}"
    );
}
