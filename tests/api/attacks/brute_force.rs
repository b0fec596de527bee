//! Brute force and enumeration: the login page and the password grant share one lockout per
//! account and one per address, which guesses sent all at once do not overrun (only as many
//! are checked as there is room for);
//! neither login, the password grant nor password reset tells an unknown account from a wrong
//! password, and neither sign-up nor a change of address tells a registered address from a new
//! one, by status, body or time; and the mail those forms send is rationed per address.

use std::time::{Duration, Instant};

use super::{Expect, assert_similar_times, check, median};
use crate::helpers::{Html, TestApp, spawn_app};

const PASSWORD: &str = "the right password";

async fn login(app: &TestApp, username: &str, password: &str) -> reqwest::Response {
    app.post_form_in(
        &app.new_browser(),
        "/login",
        "/login",
        &[("username", username), ("password", password)],
    )
    .await
}

async fn grant(
    app: &TestApp,
    client: &crate::helpers::TestClient,
    username: &str,
    password: &str,
) -> reqwest::Response {
    app.token_form(
        Some(client),
        &[
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
        ],
    )
    .await
}

fn password_client(app: &TestApp) -> crate::helpers::TestClient {
    app.merchant_client(&["--grant-type", "password"])
}

#[tokio::test]
async fn the_login_page_and_the_password_grant_share_one_lockout() {
    let app = spawn_app().await;
    let client = password_client(&app);
    app.create_user("alice", PASSWORD);
    app.create_user("bob", PASSWORD);
    let refused = Expect::new(422);
    let invalid_grant = Expect::new(400).error("invalid_grant").no_store();

    // Five failures on the login page lock the password grant.
    for i in 1..=5 {
        check(
            &format!("alice: wrong password {i} on the login page"),
            login(&app, "alice", "wrong password").await,
            &refused,
        )
        .await;
    }
    check(
        "alice: right password at the grant after 5 page failures",
        grant(&app, &client, "alice", PASSWORD).await,
        &invalid_grant,
    )
    .await;
    let locked = check(
        "alice: right password on the page after 5 failures",
        login(&app, "alice", PASSWORD).await,
        &refused,
    )
    .await;
    assert!(
        locked.body.contains("Too many failed sign-in attempts"),
        "case `alice locked`: no lock message"
    );

    // Five failures at the grant lock the login page.
    for i in 1..=5 {
        check(
            &format!("bob: wrong password {i} at the grant"),
            grant(&app, &client, "bob", "wrong password").await,
            &invalid_grant,
        )
        .await;
    }
    let locked = check(
        "bob: right password on the page after 5 grant failures",
        login(&app, "bob", PASSWORD).await,
        &refused,
    )
    .await;
    assert!(
        locked.body.contains("Too many failed sign-in attempts"),
        "case `bob locked`: no lock message"
    );
    check(
        "bob: right password at the grant after 5 grant failures",
        grant(&app, &client, "bob", PASSWORD).await,
        &invalid_grant,
    )
    .await;
}

/// Alternating timed requests; returns the two medians.
async fn timed<F, G, Fa, Fb>(rounds: usize, mut a: F, mut b: G) -> (Duration, Duration)
where
    F: FnMut(usize) -> Fa,
    G: FnMut(usize) -> Fb,
    Fa: std::future::Future<Output = ()>,
    Fb: std::future::Future<Output = ()>,
{
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        let started = Instant::now();
        a(i).await;
        ta.push(started.elapsed());
        let started = Instant::now();
        b(i).await;
        tb.push(started.elapsed());
    }
    (median(ta), median(tb))
}

#[tokio::test]
async fn login_and_password_grant_do_not_tell_unknown_users_from_wrong_passwords() {
    let app = spawn_app().await;
    let client = password_client(&app);
    // Usernames of one length, so the echoed username is the only difference in the page.
    app.create_user("known1", PASSWORD);
    app.create_user("known2", PASSWORD);

    let wrong = check(
        "login: wrong password",
        login(&app, "known1", "wrong password").await,
        &Expect::new(422),
    )
    .await;
    let unknown = check(
        "login: unknown user",
        login(&app, "nobod1", "wrong password").await,
        &Expect::new(422),
    )
    .await;
    let strip = |body: &str, name: &str| {
        let page = Html::parse(&body.replace(name, "USER"));
        (
            page.text("main"),
            page.attr("input[name=username]", "value"),
        )
    };
    assert_eq!(
        strip(&wrong.body, "known1"),
        strip(&unknown.body, "nobod1"),
        "case `login pages differ`"
    );

    let invalid_grant = Expect::new(400).error("invalid_grant").no_store();
    let wrong = check(
        "grant: wrong password",
        grant(&app, &client, "known2", "wrong password").await,
        &invalid_grant,
    )
    .await;
    let unknown = check(
        "grant: unknown user",
        grant(&app, &client, "nobody", "wrong password").await,
        &invalid_grant,
    )
    .await;
    assert_eq!(wrong.body, unknown.body, "case `grant bodies differ`");

    // Time: argon2 runs for unknown users too (a dummy hash). Three more failures per known
    // account stay under its lockout of five, and all of them under the address's twenty.
    let app = &app;
    let (known, missing) = timed(
        3,
        |i| async move {
            let user = if i % 2 == 0 { "known1" } else { "known2" };
            login(app, user, "wrong password").await;
        },
        |i| async move {
            login(app, &format!("ghost{i}"), "wrong password").await;
        },
    )
    .await;
    assert_similar_times(
        "case `login: unknown user vs wrong password, time`",
        known,
        missing,
    );
    let client = &client;
    let (known, missing) = timed(
        2,
        |i| async move {
            let user = if i % 2 == 0 { "known1" } else { "known2" };
            grant(app, client, user, "wrong password").await;
        },
        |i| async move {
            grant(app, client, &format!("phantom{i}"), "wrong password").await;
        },
    )
    .await;
    assert_similar_times(
        "case `grant: unknown user vs wrong password, time`",
        known,
        missing,
    );
}

#[tokio::test]
async fn password_reset_does_not_tell_known_addresses_from_unknown() {
    let app = spawn_app().await;
    assert_eq!(
        app.sign_up("resetme", "resetme@example.com", "a long password 1")
            .await
            .status(),
        303
    );
    let forgot = |email: &'static str| {
        let app = &app;
        async move {
            let browser = app.new_browser();
            let page = Html::parse(
                &browser
                    .get(app.url("/password/forgot"))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap(),
            );
            browser
                .post(app.url("/password/forgot"))
                .form(&[("email", email), ("csrf_token", &page.csrf())])
                .send()
                .await
                .unwrap()
        }
    };
    let known = forgot("resetme@example.com").await;
    let expect = Expect::new(known.status().as_u16()).redirect(
        known
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned())
            .unwrap_or_default(),
    );
    let known = check("reset: known address", known, &expect).await;
    let unknown = check(
        "reset: unknown address",
        forgot("nobody@example.com").await,
        &expect,
    )
    .await;
    assert_eq!(
        known.location, unknown.location,
        "case `reset answers differ`"
    );
    assert_eq!(known.body, unknown.body, "case `reset bodies differ`");
    let (k, u) = timed(
        5,
        |_| async {
            forgot("resetme@example.com").await;
        },
        |_| async {
            forgot("nobody@example.com").await;
        },
    )
    .await;
    assert_similar_times("case `reset: known vs unknown address, time`", k, u);
}

/// What a page says, with `address` written as ADDRESS: the part a visitor can compare.
fn main_text(body: &str, address: &str) -> Option<String> {
    Html::parse(&body.replace(address, "ADDRESS")).text("main")
}

#[tokio::test]
async fn sign_up_does_not_tell_registered_addresses_from_new_ones() {
    let app = spawn_app().await;
    assert_eq!(
        app.sign_up("holder", "taken@example.com", PASSWORD)
            .await
            .status(),
        303
    );
    let users = app.count("users");
    // Addresses of one length, so the echoed address is the only difference in the page.
    let start = |email: String| {
        let app = &app;
        async move {
            app.post_form_in(
                &app.new_browser(),
                "/signup",
                "/signup",
                &[("email", email.as_str())],
            )
            .await
        }
    };
    let sent = app.outbox.messages().len();
    let known = check(
        "sign-up: registered address",
        start("taken@example.com".into()).await,
        &Expect::new(200).no_store(),
    )
    .await;
    let new = check(
        "sign-up: new address",
        start("fresh@example.com".into()).await,
        &Expect::new(200).no_store(),
    )
    .await;
    assert_eq!(
        main_text(&known.body, "taken@example.com"),
        main_text(&new.body, "fresh@example.com"),
        "case `sign-up pages differ`"
    );
    assert_eq!(app.count("users"), users, "no account was created");

    // The mail tells each owner the next step: a reminder, or the link.
    let reminder = app.mail_to("taken@example.com", sent).await;
    assert_eq!(
        reminder.subject,
        "Your Latchkey account already uses this address"
    );
    assert!(reminder.text.contains("your username is holder"));
    assert!(!reminder.text.contains("/signup/"), "no sign-up link");
    let link = app.mail_to("fresh@example.com", sent).await;
    assert_eq!(link.subject, "Finish creating your Latchkey account");
    assert!(link.text.contains("/signup/"));

    let (k, n) = timed(
        4,
        |_| async move {
            start("taken@example.com".into()).await;
        },
        |i| async move {
            start(format!("new{i}x@example.com")).await;
        },
    )
    .await;
    assert_similar_times("case `sign-up: registered vs new address, time`", k, n);
}

#[tokio::test]
async fn changing_the_address_does_not_tell_registered_addresses_from_new_ones() {
    let app = spawn_app().await;
    app.sign_up("holder", "taken@example.com", PASSWORD).await;
    let prober = app.new_browser();
    assert_eq!(
        app.sign_up_in(&prober, "prober", "prober@example.com", PASSWORD)
            .await
            .status(),
        303
    );
    let change = |email: String| {
        let (app, prober) = (&app, &prober);
        async move {
            let res = app
                .post_form_in(
                    prober,
                    "/account/profile",
                    "/account",
                    &[
                        ("name", "Prober"),
                        ("email", email.as_str()),
                        ("password", PASSWORD),
                    ],
                )
                .await;
            let location = res.headers().get("location").cloned();
            let page = prober
                .get(app.url("/account"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            (res.status(), location, page)
        }
    };
    let sent = app.outbox.messages().len();
    let (status_k, location_k, page_k) = change("taken@example.com".into()).await;
    let (status_n, location_n, page_n) = change("fresh@example.com".into()).await;
    assert_eq!((status_k, &location_k), (status_n, &location_n));
    assert_eq!(status_k, 303, "case `address change answers`");
    let flash =
        |page: &str, address: &str| Html::parse(&page.replace(address, "ADDRESS")).text(".flash");
    assert_eq!(
        flash(&page_k, "taken@example.com"),
        flash(&page_n, "fresh@example.com"),
        "case `address change flashes differ`"
    );
    let reminder = app.mail_to("taken@example.com", sent).await;
    assert!(reminder.text.contains("your username is holder"));
    app.mail_to("fresh@example.com", sent).await;
    let prober_email =
        latchkey::db::models::User::find_by_username(&mut app.db.connect(), "prober")
            .unwrap()
            .unwrap()
            .email;
    assert_eq!(
        prober_email.as_deref(),
        Some("prober@example.com"),
        "nothing changes before a link is opened"
    );

    let (k, n) = timed(
        4,
        |_| async move {
            change("taken@example.com".into()).await;
        },
        |i| async move {
            change(format!("new{i}x@example.com")).await;
        },
    )
    .await;
    assert_similar_times("case `address change: registered vs new, time`", k, n);
}

#[tokio::test]
async fn mail_that_anyone_can_ask_for_is_rationed_per_address() {
    let app = spawn_app().await;
    let forms = app.new_browser();
    let start = |email: &'static str| {
        let (app, forms) = (&app, &forms);
        async move {
            let res = app
                .post_form_in(forms, "/signup", "/signup", &[("email", email)])
                .await;
            assert_eq!(res.status(), 200);
        }
    };
    let to_busy = || {
        app.outbox
            .messages()
            .iter()
            .filter(|m| m.to == "busy@example.com")
            .count()
    };
    // Five sign-up mails in the hour: the link, then reminders once the account exists.
    assert_eq!(
        app.sign_up("busy", "busy@example.com", PASSWORD)
            .await
            .status(),
        303
    );
    for sent in 2..=5 {
        let before = app.outbox.messages().len();
        start("busy@example.com").await;
        app.mail_to("busy@example.com", before).await;
        assert_eq!(to_busy(), sent);
    }
    // The sixth, whether a sign-up reminder or a reset link, is not sent; the pages still
    // answer as always, and other addresses still get theirs.
    start("busy@example.com").await;
    let res = app
        .post_form_in(
            &forms,
            "/password/forgot",
            "/password/forgot",
            &[("email", "busy@example.com")],
        )
        .await;
    assert_eq!(res.status(), 303);
    let before = app.outbox.messages().len();
    start("other@example.com").await;
    app.mail_to("other@example.com", before).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        to_busy(),
        5,
        "case `the sixth mail to one address was sent`"
    );
}

// ---- Guesses in flight together ------------------------------------------------------------

/// Guesses sent at once: far more than the server evaluates in parallel (twice its cores).
const BURST: usize = 30;

/// How a sign-in attempt was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Granted,
    /// The password was checked and was wrong.
    Incorrect,
    /// "Too many failed sign-in attempts": refused, or the failure that set the lock.
    Locked,
}

/// What the password grant's answer says.
fn grant_verdict(case: &str, answer: &super::Answer) -> Verdict {
    let description = answer.json()["error_description"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    match answer.status {
        200 => Verdict::Granted,
        _ if description.contains("incorrect") => Verdict::Incorrect,
        _ if description.contains("Too many failed sign-in attempts") => Verdict::Locked,
        _ => panic!("case `{case}`: unexpected answer {}", answer.body),
    }
}

/// What the login page's answer says.
fn login_verdict(case: &str, answer: &super::Answer) -> Verdict {
    let error = Html::parse(&answer.body)
        .text("#login-error")
        .unwrap_or_default();
    match answer.status {
        303 => Verdict::Granted,
        _ if error.contains("Incorrect username or password") => Verdict::Incorrect,
        _ if error.contains("Too many failed sign-in attempts") => Verdict::Locked,
        _ => panic!("case `{case}`: unexpected answer {error:?}"),
    }
}

fn tally(verdicts: &[Verdict], which: Verdict) -> usize {
    verdicts.iter().filter(|v| **v == which).count()
}

/// The failures the database holds for a throttle key (0 without a row).
fn failures(app: &TestApp, key: &str) -> i64 {
    use diesel::prelude::*;
    use latchkey::db::schema::login_attempts;
    login_attempts::table
        .filter(login_attempts::throttle_key.eq(key))
        .select(login_attempts::failures)
        .first::<i64>(&mut app.db.connect())
        .optional()
        .unwrap()
        .unwrap_or(0)
}

/// Sends every password at once, each as its own password-grant request for `username`, and
/// returns the verdicts in the order given. A right password must get 200, a wrong one 400
/// `invalid_grant`.
async fn grant_burst(
    app: &TestApp,
    client: &crate::helpers::TestClient,
    username: &str,
    passwords: &[&str],
) -> Vec<Verdict> {
    let tasks: Vec<_> = passwords
        .iter()
        .enumerate()
        .map(|(i, password)| {
            let request = app
                .api
                .post(app.url("/oauth/token"))
                .basic_auth(&client.client_id, Some(&client.secret))
                .form(&[
                    ("grant_type", "password"),
                    ("username", username),
                    ("password", password),
                ]);
            let right = *password == PASSWORD;
            tokio::spawn(async move {
                let case = format!("burst at the grant: attempt {i}");
                let res = request.send().await.unwrap();
                let expect = if res.status() == 200 && right {
                    Expect::new(200).no_store()
                } else {
                    Expect::new(400).error("invalid_grant").no_store()
                };
                let answer = check(&case, res, &expect).await;
                grant_verdict(&case, &answer)
            })
        })
        .collect();
    let mut verdicts = Vec::new();
    for task in tasks {
        verdicts.push(task.await.unwrap());
    }
    verdicts
}

#[tokio::test]
async fn a_burst_of_wrong_passwords_at_the_grant_gets_five_guesses_checked() {
    let app = spawn_app().await;
    let client = password_client(&app);
    app.create_user("burst", PASSWORD);

    let verdicts = grant_burst(&app, &client, "burst", &["wrong password"; BURST]).await;
    assert_eq!(tally(&verdicts, Verdict::Granted), 0);
    // Each checked guess is a failure in the database; a refused one leaves no trace. The one
    // that used the fifth slot answers "locked" itself, so "incorrect" is at most five too.
    assert_eq!(
        failures(&app, "account:burst"),
        5,
        "case `burst: guesses checked` ({verdicts:?})"
    );
    assert!(
        tally(&verdicts, Verdict::Incorrect) <= 5,
        "case `burst: incorrect answers` ({verdicts:?})"
    );
    let after = check(
        "burst: the right password after the burst",
        grant(&app, &client, "burst", PASSWORD).await,
        &Expect::new(400).error("invalid_grant").no_store(),
    )
    .await;
    assert_eq!(
        grant_verdict("burst: after", &after),
        Verdict::Locked,
        "case `burst: the account is locked`"
    );
}

#[tokio::test]
async fn a_burst_that_ends_with_the_right_password_does_not_open_the_account() {
    let app = spawn_app().await;
    let client = password_client(&app);
    app.create_user("lastone", PASSWORD);

    let mut passwords = vec!["wrong password"; BURST - 1];
    passwords.push(PASSWORD);
    let verdicts = grant_burst(&app, &client, "lastone", &passwords).await;
    let (wrong, right) = verdicts.split_at(BURST - 1);
    assert_eq!(
        tally(wrong, Verdict::Granted),
        0,
        "case `right last: a wrong password was granted`"
    );
    match right[0] {
        // The right password got one of the five slots: a success clears the account's
        // failures, so the account may be open again.
        Verdict::Granted => {}
        Verdict::Locked => {
            assert_eq!(
                failures(&app, "account:lastone"),
                5,
                "case `right last: guesses checked` ({verdicts:?})"
            );
            let after = check(
                "right last: the right password again",
                grant(&app, &client, "lastone", PASSWORD).await,
                &Expect::new(400).error("invalid_grant").no_store(),
            )
            .await;
            assert_eq!(
                grant_verdict("right last: after", &after),
                Verdict::Locked,
                "case `right last: the account is still locked`"
            );
        }
        Verdict::Incorrect => panic!("case `right last`: the right password was incorrect"),
    }
}

#[tokio::test]
async fn a_burst_of_wrong_passwords_at_the_login_page_gets_five_guesses_checked() {
    let app = spawn_app().await;
    app.create_user("pageburst", PASSWORD);

    // Each attempt from its own browser with its own CSRF token, fetched beforehand so that
    // the posts go out together.
    let mut forms = Vec::new();
    for _ in 0..BURST {
        let browser = app.new_browser();
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
        forms.push((browser, page.csrf()));
    }
    let tasks: Vec<_> = forms
        .into_iter()
        .enumerate()
        .map(|(i, (browser, csrf))| {
            let url = app.url("/login");
            tokio::spawn(async move {
                let res = browser
                    .post(url)
                    .form(&[
                        ("username", "pageburst"),
                        ("password", "wrong password"),
                        ("csrf_token", &csrf),
                    ])
                    .send()
                    .await
                    .unwrap();
                let case = format!("burst at the login page: attempt {i}");
                let answer = check(&case, res, &Expect::new(422)).await;
                login_verdict(&case, &answer)
            })
        })
        .collect();
    let mut verdicts = Vec::new();
    for task in tasks {
        verdicts.push(task.await.unwrap());
    }
    assert_eq!(
        failures(&app, "account:pageburst"),
        5,
        "case `page burst: guesses checked` ({verdicts:?})"
    );
    assert!(
        tally(&verdicts, Verdict::Incorrect) <= 5,
        "case `page burst: incorrect answers` ({verdicts:?})"
    );
    let after = check(
        "page burst: the right password after the burst",
        login(&app, "pageburst", PASSWORD).await,
        &Expect::new(422),
    )
    .await;
    assert_eq!(
        login_verdict("page burst: after", &after),
        Verdict::Locked,
        "case `page burst: the account is locked`"
    );
}

/// Password re-entry before a sensitive action goes through `accounts::check_password`, which
/// is the login page's check: its failures lock the account there, and its lock holds here.
#[tokio::test]
async fn password_re_entry_counts_against_the_sign_in_lockout() {
    use latchkey::accounts::{SignInError, check_password};
    let app = spawn_app().await;
    let id = app.create_user("reentry", PASSWORD);
    let mut conn = app.db.connect();
    let user = latchkey::db::models::User::find(&mut conn, id)
        .unwrap()
        .unwrap();
    let passwords = latchkey::auth::password::Passwords::default();
    let mut re_enter =
        |given: &str| check_password(&mut conn, &passwords, &user, given, "127.0.0.1").unwrap();

    assert_eq!(
        re_enter(PASSWORD),
        Ok(()),
        "case `re-entry: right password`"
    );
    for i in 1..=4 {
        assert_eq!(
            re_enter("wrong password"),
            Err(SignInError::Invalid),
            "case `re-entry: wrong password {i}`"
        );
    }
    assert!(
        matches!(re_enter("wrong password"), Err(SignInError::Locked { .. })),
        "case `re-entry: the fifth wrong password locks`"
    );
    assert!(
        matches!(re_enter(PASSWORD), Err(SignInError::Locked { .. })),
        "case `re-entry: right password while locked`"
    );
    let page = check(
        "re-entry: right password on the login page after five wrong re-entries",
        login(&app, "reentry", PASSWORD).await,
        &Expect::new(422),
    )
    .await;
    assert_eq!(
        login_verdict("re-entry: login", &page),
        Verdict::Locked,
        "case `re-entry: the login page answers locked`"
    );
}

// ---- The address budget covers the password grant ------------------------------------------

/// Accounts `{prefix}0` … that all have [`PASSWORD`]: one through the CLI, the rest copies of
/// its row (hashing twenty passwords would only slow the test down).
fn accounts(app: &TestApp, prefix: &str, n: usize) -> Vec<String> {
    use latchkey::db::models::{NewUser, User};
    let names: Vec<String> = (0..n).map(|i| format!("{prefix}{i}")).collect();
    app.create_user(&names[0], PASSWORD);
    let mut conn = app.db.connect();
    let first = User::find_by_username(&mut conn, &names[0])
        .unwrap()
        .unwrap();
    let now = chrono::Utc::now().naive_utc();
    for name in &names[1..] {
        User::insert(
            &mut conn,
            &NewUser {
                name: "Test User",
                username: name,
                password: &first.password,
                email: None,
                email_verified_at: None,
                created_at: now,
                updated_at: now,
                is_developer: false,
            },
        )
        .unwrap();
    }
    names
}

#[tokio::test]
async fn an_address_locked_at_the_login_page_is_refused_at_the_password_grant() {
    let app = spawn_app().await;
    let client = password_client(&app);
    app.create_user("fresh", PASSWORD);
    // Twenty failures on made-up accounts, so no account locks, only the address.
    for i in 1..=20 {
        check(
            &format!("address: wrong password {i} on the login page"),
            login(&app, &format!("nobody{i}"), "wrong password").await,
            &Expect::new(422),
        )
        .await;
    }
    let answer = check(
        "address: right password for a fresh account at the grant",
        grant(&app, &client, "fresh", PASSWORD).await,
        &Expect::new(400).error("invalid_grant").no_store(),
    )
    .await;
    assert_eq!(
        grant_verdict("address: grant", &answer),
        Verdict::Locked,
        "case `address: the grant answers locked`"
    );
    assert_eq!(app.count("client_access_tokens"), 0, "no token was issued");
}

#[tokio::test]
async fn spraying_passwords_at_the_grant_from_one_address_locks_the_address() {
    let app = spawn_app().await;
    let client = password_client(&app);
    let names = accounts(&app, "spray", 21);
    // One wrong guess at each of twenty accounts: no account locks…
    for (i, name) in names[..20].iter().enumerate() {
        check(
            &format!("spray: wrong password {} for {name}", i + 1),
            grant(&app, &client, name, "wrong password").await,
            &Expect::new(400).error("invalid_grant").no_store(),
        )
        .await;
    }
    assert_eq!(failures(&app, "address:127.0.0.1"), 20);
    // …but the address is spent: the right password for a 21st account is refused, at the
    // grant and at the login page.
    let answer = check(
        "spray: right password for a 21st account at the grant",
        grant(&app, &client, &names[20], PASSWORD).await,
        &Expect::new(400).error("invalid_grant").no_store(),
    )
    .await;
    assert_eq!(
        grant_verdict("spray: grant", &answer),
        Verdict::Locked,
        "case `spray: the grant answers locked`"
    );
    let page = check(
        "spray: right password for the 21st account on the login page",
        login(&app, &names[20], PASSWORD).await,
        &Expect::new(422),
    )
    .await;
    assert_eq!(
        login_verdict("spray: login", &page),
        Verdict::Locked,
        "case `spray: the login page answers locked`"
    );
    assert_eq!(app.count("client_access_tokens"), 0, "no token was issued");
}
