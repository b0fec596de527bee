//! Attacks on sessions and forms: fixation, logout, CSRF on every POST route, clickjacking,
//! `next=` open redirects, and one merchant reaching another's applications.

use reqwest::Client as Browser;

use super::{Expect, H, check};
use crate::helpers::{
    CALLBACK, END_USER, END_USER_PASSWORD, authorize_path, log_in_and_resume, setup,
};
use crate::helpers::{Html, MERCHANT_PASSWORD, TestApp, spawn_app, spawn_browser};

const APPS: &str = "/developer/applications";

/// Every POST route of the pages, with `{id}` for an application, `{secret}` for a secret and
/// `{passkey}` for a passkey.
/// The guard below fails when `src/routes/mod.rs` registers a POST this list does not name.
const POST_ROUTES: &[&str] = &[
    "/oauth/authorize",
    "/oauth/authorize/switch",
    "/login/verify",
    "/login",
    "/logout",
    "/signup",
    "/signup/{token}",
    "/verify-email/resend",
    "/password/forgot",
    "/password/reset/{token}",
    "/account/profile",
    "/account/confirm",
    "/account/password",
    "/account/email/undo/{token}",
    "/account/security/totp",
    "/account/security/totp/remove",
    "/account/security/passkeys",
    "/account/security/passkeys/{passkey}/name",
    "/account/security/passkeys/{passkey}/remove",
    "/account/security/recovery-codes",
    "/account/security/sessions/end-others",
    "/account/security/sessions/{id}/end",
    "/account/authorized-apps/{id}/revoke",
    "/account/authorized-apps/{id}/scopes/{scope}/revoke",
    "/developer/applications",
    "/developer/applications/{id}/edit",
    "/developer/applications/{id}/toggle",
    "/developer/applications/{id}/delete",
    "/developer/applications/{id}/secret",
    "/developer/applications/{id}/secret/rotate",
    "/developer/applications/{id}/secrets/{secret}/revoke",
    "/developer/applications/{id}/keys",
    "/developer/applications/{id}/keys/remove",
];

#[test]
fn the_csrf_list_names_every_post_route_of_the_pages() {
    let routes = include_str!("../../../src/routes/mod.rs");
    let pages = routes
        .split("pub fn pages")
        .nth(1)
        .expect("src/routes/mod.rs has no `pages`");
    let registered = pages.matches("web::post()").count();
    assert_eq!(
        registered,
        POST_ROUTES.len(),
        "src/routes/mod.rs registers {registered} page POST routes, the CSRF attack list names {}: add the new route to POST_ROUTES",
        POST_ROUTES.len()
    );
    for route in POST_ROUTES {
        let literal = route
            .replace("{id}", "{")
            .replace("{secret}", "{")
            .replace("{passkey}", "{")
            .replace("{scope}", "{")
            .replace("{token}", "{");
        let head = literal.split('{').next().unwrap();
        assert!(
            pages.contains(&format!("\"{head}")),
            "{route} is not registered"
        );
    }
}

/// Row counts that a refused form must leave alone.
fn snapshot(app: &TestApp) -> Vec<(String, i64)> {
    [
        "users",
        "clients",
        "client_secrets",
        "consents",
        "audit_events",
        "user_totp",
        "recovery_codes",
        "passkeys",
        "email_tokens",
        "client_access_tokens",
    ]
    .iter()
    .map(|t| (t.to_string(), app.count(t)))
    .collect()
}

#[tokio::test]
async fn every_post_route_refuses_a_missing_or_wrong_csrf_token_and_changes_nothing() {
    let app = spawn_app().await;
    let client = app.merchant_client(&[]);
    app.log_in("merchant", MERCHANT_PASSWORD).await;
    let before = snapshot(&app);
    let fields = [
        ("name", "Changed"),
        ("password", MERCHANT_PASSWORD),
        ("current_password", MERCHANT_PASSWORD),
        ("new_password", "another long password"),
        ("username", "newcomer"),
        ("email", "newcomer@example.com"),
        ("redirect_uris", "https://x.example/cb"),
        ("decision", "allow"),
        ("grace", "now"),
        ("confirm_disable", "on"),
        ("confirm_live", "on"),
        ("environment", "live"),
    ];
    // A good sign-up link, so only the CSRF check stands between the form and a new account.
    let signup = app.signup_path("newcomer@example.com");
    for route in POST_ROUTES {
        let path = if *route == "/signup/{token}" {
            signup.clone()
        } else {
            route
                .replace("{id}", &client.client_id)
                .replace("{secret}", "1")
                .replace("{passkey}", "1")
                .replace("{scope}", "get_user_profile")
                .replace("{token}", "sometoken")
        };
        for (how, token) in [
            ("no CSRF token", None),
            ("a wrong CSRF token", Some("forged")),
        ] {
            let mut form = fields.to_vec();
            if let Some(t) = token {
                form.push(("csrf_token", t));
            }
            let res = app
                .api
                .post(app.url(&path))
                .form(&form)
                .send()
                .await
                .unwrap();
            check(
                &format!("POST {route} with {how}"),
                res,
                &Expect::new(403).no_store(),
            )
            .await;
        }
    }
    assert_eq!(snapshot(&app), before, "a refused form changed something");
    let (status, _) = app.page("/account").await;
    assert_eq!(status, 200, "the refused logout signed the user out");
}

/// The session cookie a browser holds for the app.
fn cookie(app: &TestApp) -> String {
    use reqwest::cookie::CookieStore as _;
    app.jar
        .cookies(&app.url("/").parse().unwrap())
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

async fn with_cookie(app: &TestApp, cookie: &str, path: &str) -> reqwest::Response {
    app.new_browser()
        .get(app.url(path))
        .header("Cookie", cookie)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn fixation_and_logout() {
    let app = spawn_app().await;
    app.merchant_client(&[]);
    let signed_out = Expect::new(303).redirect("/login?next=%2Faccount");
    app.get("/login").await;
    let planted = cookie(&app);
    assert!(!planted.is_empty());
    app.log_in("merchant", MERCHANT_PASSWORD).await;
    let signed_in = cookie(&app);
    assert_ne!(planted, signed_in, "case `login renews the session id`");
    check(
        "the pre-login cookie after login (fixation)",
        with_cookie(&app, &planted, "/account").await,
        &signed_out,
    )
    .await;
    check(
        "the signed-in cookie",
        with_cookie(&app, &signed_in, "/account").await,
        &Expect::new(200),
    )
    .await;

    let (_, page) = app.page("/account").await;
    let res = app
        .api
        .post(app.url("/logout"))
        .form(&[("csrf_token", page.csrf())])
        .send()
        .await
        .unwrap();
    check("logout", res, &Expect::new(303).redirect("/login")).await;
    check(
        "the old cookie replayed after logout",
        with_cookie(&app, &signed_in, "/account").await,
        &signed_out,
    )
    .await;
    check(
        "the browser after logout",
        app.get("/account").await,
        &signed_out,
    )
    .await;
}

#[tokio::test]
async fn pages_cannot_be_framed() {
    let app = spawn_app().await;
    let client = setup(&app);
    let framed = |status| {
        Expect::new(status)
            .header(H::Is("x-frame-options", "DENY"))
            .header(H::Has("content-security-policy", "frame-ancestors 'none'"))
            .no_store()
    };
    check("login page", app.get("/login").await, &framed(200)).await;
    check("sign-up page", app.get("/signup").await, &framed(200)).await;
    check(
        "sign-up link page",
        app.get(&app.signup_path("framed@example.com")).await,
        &framed(200),
    )
    .await;
    check(
        "forgot-password page",
        app.get("/password/forgot").await,
        &framed(200),
    )
    .await;
    let res = app
        .get(&authorize_path(&[
            ("client_id", &client.client_id),
            ("response_type", "code"),
            ("redirect_uri", CALLBACK),
        ]))
        .await;
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let consent = log_in_and_resume(&app, &location, END_USER, END_USER_PASSWORD).await;
    check("consent page", consent, &framed(200)).await;
    // The merchant, in a browser of their own.
    let merchant = app.new_browser();
    let res = app
        .post_form_in(
            &merchant,
            "/login",
            "/login",
            &[("username", "merchant"), ("password", MERCHANT_PASSWORD)],
        )
        .await;
    assert_eq!(res.status(), 303);
    let id = &client.client_id;
    for path in [
        APPS.to_owned(),
        format!("{APPS}/new"),
        format!("{APPS}/{id}"),
        format!("{APPS}/{id}/edit"),
        format!("{APPS}/{id}/delete"),
        format!("{APPS}/{id}/disable"),
        format!("{APPS}/{id}/activity"),
        "/account".to_owned(),
        "/account/confirm".to_owned(),
        "/account/authorized-apps".to_owned(),
    ] {
        let res = merchant.get(app.url(&path)).send().await.unwrap();
        check(&format!("portal page {path}"), res, &framed(200)).await;
    }
}

#[tokio::test]
async fn next_never_leaves_the_site() {
    let app = spawn_app().await;
    app.merchant_client(&[]);
    let cases = [
        ("//evil.example", APPS),
        ("https://evil.example/", APPS),
        ("/\\evil.example", APPS),
        (" //evil.example", APPS),
        ("javascript:alert(1)", APPS),
        ("/\t/evil.example", APPS),
        ("evil.example", APPS),
        ("/developer/applications/new", "/developer/applications/new"),
    ];
    for (next, expected) in cases {
        let browser = app.new_browser();
        let res = app
            .post_form_in(
                &browser,
                "/login",
                "/login",
                &[
                    ("username", "merchant"),
                    ("password", MERCHANT_PASSWORD),
                    ("next", next),
                ],
            )
            .await;
        let answer = check(
            &format!("login with next={next:?}"),
            res,
            &Expect::new(303).redirect(expected),
        )
        .await;
        assert_eq!(
            answer.location.as_deref(),
            Some(expected),
            "case `login with next={next:?}`"
        );
        // Signed in, the login page follows next= too.
        let path = format!(
            "/login?{}",
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("next", next)
                .finish()
        );
        let res = browser.get(app.url(&path)).send().await.unwrap();
        let answer = check(
            &format!("signed-in GET /login?next={next:?}"),
            res,
            &Expect::new(303).redirect(expected),
        )
        .await;
        assert_eq!(answer.location.as_deref(), Some(expected));
    }
}

#[tokio::test]
async fn another_merchant_reaches_none_of_the_portal_routes() {
    let app = spawn_app().await;
    let victim = app.merchant_client(&[]);
    let intruder: Browser = spawn_browser(&app, "mallory").await;
    let show = format!("{APPS}/{}", victim.client_id);
    let not_found = Expect::new(404).no_store();
    for path in [
        show.clone(),
        format!("{show}/edit"),
        format!("{show}/delete"),
        format!("{show}/disable"),
        format!("{show}/activity"),
    ] {
        let res = intruder.get(app.url(&path)).send().await.unwrap();
        check(&format!("GET {path} as another merchant"), res, &not_found).await;
    }
    let csrf = Html::parse(
        &intruder
            .get(app.url(APPS))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .csrf();
    let before = snapshot(&app);
    for (path, mut form) in [
        (
            format!("{show}/edit"),
            vec![
                ("name", "Owned"),
                ("redirect_uris", "https://evil.example/cb"),
            ],
        ),
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
    ] {
        form.push(("csrf_token", &csrf));
        let res = intruder
            .post(app.url(&path))
            .form(&form)
            .send()
            .await
            .unwrap();
        check(&format!("POST {path} as another merchant"), res, &not_found).await;
    }
    assert_eq!(snapshot(&app), before, "another merchant changed something");
    let res = app
        .token_form(Some(&victim), &[("grant_type", "client_credentials")])
        .await;
    check(
        "the victim's client still works",
        res,
        &Expect::new(200).no_store(),
    )
    .await;
}
