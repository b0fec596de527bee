//! Where an authorization request waits while the person signs in and decides: a sealed cookie
//! of its own (`latchkey_authorization`), never the signed-in session's row, which every change
//! to the request used to rewrite; in the session only when it is too big for a cookie.

use diesel::prelude::*;
use latchkey::db::schema::sessions;

use crate::helpers::{
    CALLBACK, END_USER, END_USER_PASSWORD, Html, TestApp, authorize_path, decide, location,
    log_in_and_resume, query_of, setup, spawn_app,
};

const COOKIE: &str = "latchkey_authorization";

/// The `Set-Cookie` value the response gives the waiting request's cookie, if any.
fn set_cookie(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{COOKIE}=")))
        .map(str::to_owned)
}

/// The states of the session rows, as stored.
fn session_states(app: &TestApp) -> Vec<String> {
    sessions::table
        .select(sessions::state)
        .load(&mut app.db.connect())
        .unwrap()
}

fn pairs<'a>(client_id: &'a str, state: &'a str) -> [(&'a str, &'a str); 5] {
    [
        ("client_id", client_id),
        ("response_type", "code"),
        ("redirect_uri", CALLBACK),
        ("scope", "get_user_profile"),
        ("state", state),
    ]
}

#[tokio::test]
async fn the_request_waits_in_a_sealed_cookie_and_leaves_with_the_answer() {
    let app = spawn_app().await;
    let client = setup(&app);
    let state = "st4te-in-the-clear";
    let res = app
        .get(&authorize_path(&pairs(&client.client_id, state)))
        .await;
    assert_eq!(res.status(), 303);
    let cookie = set_cookie(&res).expect("the request waits in its cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    // Sealed: neither the client, the redirect URI nor the state can be read from it.
    for clear in [client.client_id.as_str(), "shop.example", state] {
        assert!(!cookie.contains(clear), "{clear} in {cookie}");
    }

    let consent = log_in_and_resume(&app, &location(&res), END_USER, END_USER_PASSWORD).await;
    assert_eq!(consent.status(), 200);
    let states = session_states(&app);
    assert_eq!(states.len(), 1, "the signed-in session");
    assert!(
        !states[0].contains("pending_authorization"),
        "the session row does not carry the request: {}",
        states[0]
    );

    let res = decide(&app, Html::parse(&consent.text().await.unwrap()), "allow").await;
    assert_eq!(res.status(), 303);
    assert_eq!(query_of(&location(&res))["state"], state);
    let removal = set_cookie(&res).expect("the answer drops the cookie");
    assert!(
        removal.contains("Max-Age=0") || removal.contains("1970"),
        "{removal}"
    );
    // Answered: nothing waits any more.
    let res = app.get("/oauth/authorize/resume").await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("expired"));
}

#[tokio::test]
async fn a_forged_or_garbled_cookie_is_no_request() {
    let app = spawn_app().await;
    let client = setup(&app);
    let res = app
        .get(&authorize_path(&pairs(&client.client_id, "s")))
        .await;
    let cookie = set_cookie(&res).unwrap();
    let sealed = cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches(&format!("{COOKIE}="))
        .to_owned();
    // One character changed: the seal no longer opens.
    let mut forged = sealed.into_bytes();
    let last = forged.len() - 5;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let url = reqwest::Url::parse(&app.url("/")).unwrap();
    app.jar
        .add_cookie_str(&format!("{COOKIE}={forged}; Path=/"), &url);
    let res = app
        .api
        .get(app.url("/oauth/authorize/resume"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("expired"));
}

/// A request with a very long `state` does not fit in a cookie: it waits in the session, as
/// every request did before, and comes back whole.
#[tokio::test]
async fn a_request_too_big_for_a_cookie_waits_in_the_session() {
    let app = spawn_app().await;
    let client = setup(&app);
    let state = "x".repeat(4000);
    let res = app
        .get(&authorize_path(&pairs(&client.client_id, &state)))
        .await;
    assert_eq!(res.status(), 303);
    assert!(
        set_cookie(&res).is_none_or(|c| c.contains("Max-Age=0")),
        "no cookie for it"
    );
    let consent = log_in_and_resume(&app, &location(&res), END_USER, END_USER_PASSWORD).await;
    assert_eq!(consent.status(), 200);
    assert!(
        session_states(&app)
            .iter()
            .any(|s| s.contains("pending_authorization")),
        "in the session instead"
    );
    let res = decide(&app, Html::parse(&consent.text().await.unwrap()), "allow").await;
    assert_eq!(res.status(), 303);
    assert_eq!(query_of(&location(&res))["state"], state);
    assert!(
        session_states(&app)
            .iter()
            .all(|s| !s.contains("pending_authorization")),
        "answered, it left the session"
    );
}

/// Posts the login form that `login_location` shows, as END_USER.
async fn sign_in(app: &TestApp, login_location: &str) -> reqwest::Response {
    let (_, login) = app.page(login_location).await;
    app.api
        .post(app.url("/login"))
        .form(&[
            ("username", END_USER),
            ("password", END_USER_PASSWORD),
            ("next", &login.attr("input[name=next]", "value").unwrap()),
            ("csrf_token", &login.csrf()),
        ])
        .send()
        .await
        .unwrap()
}

/// Signing in for a request whose consent the person gave before finishes it: the sign-in
/// answers with the redirect to the application (code and state), without the trip back to
/// the authorization endpoint. A request that asks for consent again goes back as always.
#[tokio::test]
async fn a_sign_in_whose_consent_covers_the_request_finishes_it() {
    let app = spawn_app().await;
    let client = setup(&app);
    crate::helpers::authorize_and_allow(&app, &pairs(&client.client_id, "first")).await;
    let log_out = || app.post_form("/logout", "/account", &[]);
    assert_eq!(log_out().await.status(), 303);

    let res = app
        .get(&authorize_path(&pairs(&client.client_id, "again")))
        .await;
    let res = sign_in(&app, &location(&res)).await;
    assert_eq!(res.status(), 303);
    let back = location(&res);
    assert!(back.starts_with(CALLBACK), "{back}");
    let params = query_of(&back);
    assert_eq!(params["state"], "again");
    assert!(!params["code"].is_empty());
    assert!(
        set_cookie(&res).is_some_and(|c| c.contains("Max-Age=0") || c.contains("1970")),
        "the request is gone"
    );
    // Signed in all the same.
    assert_eq!(app.get("/account").await.status(), 200);

    assert_eq!(log_out().await.status(), 303);
    let mut ask = pairs(&client.client_id, "ask").to_vec();
    ask.push(("prompt", "consent"));
    let res = app.get(&authorize_path(&ask)).await;
    let res = sign_in(&app, &location(&res)).await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        location(&res),
        "/oauth/authorize/resume",
        "the consent page next"
    );
}
