//! OpenID Connect's `prompt` and `max_age` (OIDC Core §3.1.2.1, §15.1): a client that asks for a
//! fresh sign-in gets one, not a code from an old session; `prompt=none` never shows a page;
//! `prompt=consent` and `select_account` always show the consent page; bad values go back as
//! `invalid_request`; an id_token answering `max_age` carries `auth_time` (§2).

use base64::Engine as _;
use diesel::prelude::*;
use latchkey::db::models::User;
use latchkey::db::schema::sessions;
use serde_json::Value;

use super::{Answer, Expect, check};
use crate::helpers::{
    CALLBACK, END_USER, END_USER_PASSWORD, authorize_and_allow, authorize_path, location,
    log_in_and_resume, query_of, setup,
};
use crate::helpers::{Html, TestApp, spawn_app};

type Pairs<'a> = Vec<(&'a str, &'a str)>;

/// A code straight back to the application.
fn code() -> Expect {
    Expect::new(303).redirect(format!("{CALLBACK}?code="))
}

/// An error sent back to the verified redirect URI.
fn back(error: &'static str) -> Expect {
    Expect::new(303)
        .error(error)
        .redirect(format!("{CALLBACK}?"))
}

/// Our login page, the request waiting.
fn to_login() -> Expect {
    Expect::new(303).redirect("/login?next=%2Foauth%2Fauthorize%2Fresume")
}

/// A page for the person (the consent page).
fn page() -> Expect {
    Expect::new(200)
}

/// Moves the end user's last password entry `seconds` into the past, as time passing would.
fn age_sign_in(app: &TestApp, seconds: i64) {
    let mut conn = app.db.connect();
    let user = User::find_by_username(&mut conn, END_USER)
        .unwrap()
        .unwrap();
    let rows: Vec<(i64, String)> = sessions::table
        .filter(sessions::user_id.eq(user.id))
        .select((sessions::id, sessions::state))
        .load(&mut conn)
        .unwrap();
    assert!(!rows.is_empty(), "the end user is not signed in");
    let then = chrono::Utc::now().timestamp() - seconds;
    for (id, state) in rows {
        let mut state: serde_json::Map<String, Value> = serde_json::from_str(&state).unwrap();
        state.insert("signed_in_at".into(), Value::String(then.to_string()));
        diesel::update(sessions::table.find(id))
            .set(sessions::state.eq(serde_json::to_string(&state).unwrap()))
            .execute(&mut conn)
            .unwrap();
    }
}

/// A redirected error carries the state and the issuer, and no code.
fn assert_error_redirect(app: &TestApp, name: &str, answer: &Answer) {
    let q = answer.query();
    assert_eq!(
        q.get("state").map(String::as_str),
        Some("keep-me"),
        "case `{name}`: state"
    );
    assert_eq!(q.get("iss"), Some(&app.address), "case `{name}`: iss");
    assert!(
        !q.contains_key("code"),
        "case `{name}`: a code with an error"
    );
}

#[tokio::test]
async fn prompt_login_and_max_age_ask_for_the_password_again_and_then_answer() {
    let app = spawn_app().await;
    let client = setup(&app);
    let base: Pairs = vec![
        ("client_id", client.client_id.as_str()),
        ("response_type", "code"),
        ("redirect_uri", CALLBACK),
        ("scope", "get_user_profile"),
        ("state", "keep-me"),
    ];
    // Signed in, and the consent remembered: without prompt, codes come back at once.
    authorize_and_allow(&app, &base).await;

    struct Row {
        name: &'static str,
        extra: Pairs<'static>,
        expect: Expect,
        /// After signing in again from the login page: a code, not the login page once more.
        signs_in_again: bool,
    }
    let row = |name, extra, expect| Row {
        name,
        extra,
        expect,
        signs_in_again: false,
    };
    let again = |name, extra| Row {
        name,
        extra,
        expect: to_login(),
        signs_in_again: true,
    };
    let rows = vec![
        row("control: no prompt", vec![], code()),
        again("prompt=login", vec![("prompt", "login")]),
        again("max_age=0", vec![("max_age", "0")]),
        again(
            "max_age shorter than the sign-in's age",
            vec![("max_age", "60")],
        ),
        row(
            "max_age longer than the sign-in's age",
            vec![("max_age", "3600")],
            code(),
        ),
        row(
            "prompt=none, signed in and agreed",
            vec![("prompt", "none")],
            code(),
        ),
        row(
            "prompt=none with max_age=0",
            vec![("prompt", "none"), ("max_age", "0")],
            back("login_required"),
        ),
        row(
            "prompt=consent with remembered consent",
            vec![("prompt", "consent")],
            page(),
        ),
        row(
            "prompt=select_account",
            vec![("prompt", "select_account")],
            page(),
        ),
    ];
    for r in rows {
        // Signed in two minutes ago, before this request.
        age_sign_in(&app, 120);
        let mut pairs = base.clone();
        pairs.extend(r.extra);
        let answer = check(r.name, app.get(&authorize_path(&pairs)).await, &r.expect).await;
        if r.expect.error.is_some() {
            assert_error_redirect(&app, r.name, &answer);
        }
        if r.expect.status == 200 {
            let page = Html::parse(&answer.body);
            assert!(
                page.text("button[value=allow]").is_some(),
                "case `{}`: the consent page",
                r.name
            );
            assert!(
                page.text("form[action='/oauth/authorize/switch'] button")
                    .is_some_and(|t| t.contains("Not you?")),
                "case `{}`: the page names the account and offers another",
                r.name
            );
        }
        if r.signs_in_again {
            // A link alone must not sign anyone out: the session is still there, and the login
            // page asks for the password because of the waiting request.
            assert_eq!(
                app.get("/account").await.status(),
                200,
                "case `{}`: still signed in",
                r.name
            );
            let (status, login) = app.page("/login").await;
            assert_eq!(status, 200, "case `{}`: the login form is shown", r.name);
            assert!(
                login
                    .text(".notice, .flash, main")
                    .is_some_and(|t| t.contains("enter your password again")),
                "case `{}`: the login page says why",
                r.name
            );
            let res = log_in_and_resume(
                &app,
                answer.location.as_deref().unwrap(),
                END_USER,
                END_USER_PASSWORD,
            )
            .await;
            let name = format!("{}, after signing in again", r.name);
            let answer = check(&name, res, &code()).await;
            assert_eq!(answer.query()["state"], "keep-me", "case `{name}`");
        }
    }
}

#[tokio::test]
async fn prompt_none_never_shows_a_page() {
    let app = spawn_app().await;
    let client = setup(&app);
    let none: Pairs = vec![
        ("client_id", client.client_id.as_str()),
        ("response_type", "code"),
        ("redirect_uri", CALLBACK),
        ("state", "keep-me"),
        ("prompt", "none"),
    ];
    let name = "prompt=none, nobody signed in";
    let answer = check(
        name,
        app.get(&authorize_path(&none)).await,
        &back("login_required"),
    )
    .await;
    assert_error_redirect(&app, name, &answer);

    app.log_in(END_USER, END_USER_PASSWORD).await;
    let name = "prompt=none, signed in, never agreed";
    let answer = check(
        name,
        app.get(&authorize_path(&none)).await,
        &back("consent_required"),
    )
    .await;
    assert_error_redirect(&app, name, &answer);
    assert_eq!(app.count("client_authorization_codes"), 0);
    assert_eq!(app.count("consents"), 0);
}

#[tokio::test]
async fn bad_prompt_and_max_age_values_go_back_as_invalid_request() {
    let app = spawn_app().await;
    let client = setup(&app);
    let cases: Vec<(&str, Pairs, Expect)> = vec![
        (
            "unknown prompt",
            vec![("prompt", "bogus")],
            back("invalid_request"),
        ),
        (
            "prompt in capitals",
            vec![("prompt", "LOGIN")],
            back("invalid_request"),
        ),
        (
            "prompt=none login",
            vec![("prompt", "none login")],
            back("invalid_request"),
        ),
        (
            "prompt=consent none",
            vec![("prompt", "consent none")],
            back("invalid_request"),
        ),
        (
            "prompt=none select_account",
            vec![("prompt", "none select_account")],
            back("invalid_request"),
        ),
        (
            "a known and an unknown prompt",
            vec![("prompt", "login bogus")],
            back("invalid_request"),
        ),
        (
            "prompt twice",
            vec![("prompt", "login"), ("prompt", "consent")],
            back("invalid_request"),
        ),
        (
            "negative max_age",
            vec![("max_age", "-1")],
            back("invalid_request"),
        ),
        (
            "max_age with a sign",
            vec![("max_age", "+5")],
            back("invalid_request"),
        ),
        (
            "fractional max_age",
            vec![("max_age", "1.5")],
            back("invalid_request"),
        ),
        (
            "max_age not a number",
            vec![("max_age", "soon")],
            back("invalid_request"),
        ),
        (
            "max_age twice",
            vec![("max_age", "5"), ("max_age", "0")],
            back("invalid_request"),
        ),
        (
            "control: two prompts that go together",
            vec![("prompt", "login consent")],
            to_login(),
        ),
        (
            "control: a huge max_age",
            vec![("max_age", "99999999999999999999999")],
            to_login(),
        ),
    ];
    for (name, extra, expect) in cases {
        let mut pairs: Pairs = vec![
            ("client_id", client.client_id.as_str()),
            ("response_type", "code"),
            ("redirect_uri", CALLBACK),
        ];
        pairs.extend(extra);
        pairs.push(("state", "keep-me"));
        let answer = check(name, app.get(&authorize_path(&pairs)).await, &expect).await;
        if expect.error.is_some() {
            assert_error_redirect(&app, name, &answer);
        }
    }
}

#[tokio::test]
async fn an_id_token_answering_max_age_says_when_the_person_signed_in() {
    let app = spawn_app().await;
    setup(&app);
    let client = app.merchant_client(&[
        "--redirect-uri",
        CALLBACK,
        "--scope",
        "openid",
        "--scope",
        "get_user_profile",
    ]);
    let base: Pairs = vec![
        ("client_id", client.client_id.as_str()),
        ("response_type", "code"),
        ("redirect_uri", CALLBACK),
        ("scope", "openid"),
        ("state", "keep-me"),
    ];
    authorize_and_allow(&app, &base).await;
    age_sign_in(&app, 120);

    let started = chrono::Utc::now().timestamp();
    let mut pairs = base.clone();
    pairs.push(("max_age", "30"));
    let answer = check(
        "max_age=30 after a sign-in two minutes ago",
        app.get(&authorize_path(&pairs)).await,
        &to_login(),
    )
    .await;
    let res = log_in_and_resume(
        &app,
        answer.location.as_deref().unwrap(),
        END_USER,
        END_USER_PASSWORD,
    )
    .await;
    let callback = location(&res);
    let code = query_of(&callback)["code"].clone();
    let res = app
        .token_form(
            Some(&client),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", CALLBACK),
            ],
        )
        .await;
    let answer = check("the code exchange", res, &Expect::new(200).no_store()).await;
    let id_token = answer.json()["id_token"].as_str().unwrap().to_owned();
    let payload = id_token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    let auth_time = claims["auth_time"]
        .as_i64()
        .expect("case `id_token after max_age`: auth_time (OIDC Core §2)");
    assert!(
        auth_time >= started && auth_time <= claims["iat"].as_i64().unwrap(),
        "case `id_token after max_age`: auth_time {auth_time} is the old sign-in, the request began at {started}"
    );
}

#[tokio::test]
async fn the_metadata_lists_the_prompt_values() {
    let app = spawn_app().await;
    let meta: Value = app
        .get("/.well-known/openid-configuration")
        .await
        .json()
        .await
        .unwrap();
    let mut values: Vec<&str> = meta["prompt_values_supported"]
        .as_array()
        .expect("case `prompt_values_supported`")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    values.sort_unstable();
    assert_eq!(
        values,
        ["consent", "login", "none", "select_account"],
        "case `prompt_values_supported`"
    );
}
