//! Input limits: header and body sizes, field lengths, redirect URIs and scopes per client.
//! Each is a 4xx that says which limit was hit, never a 500 or a hang.

use diesel::prelude::*;
use serde_json::Value;

use crate::helpers::{Html, MERCHANT_PASSWORD, TestApp, spawn_app};

const APPS: &str = "/developer/applications";

#[tokio::test]
async fn oversized_headers_get_431_with_a_reason() {
    let app = spawn_app().await;
    // Over our 8 KiB per header: refused by us, with the reason.
    let res = app
        .api
        .get(app.url("/healthz"))
        .header("X-Padding", "a".repeat(9 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 431);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("at most 8192 bytes per header")
    );
    // Many small headers, over 16 KiB together.
    let mut req = app.api.get(app.url("/healthz"));
    for i in 0..40 {
        req = req.header(format!("x-pad-{i}"), "b".repeat(500));
    }
    assert_eq!(req.send().await.unwrap().status(), 431);
    // Over actix-http's own 128 KiB head buffer: it answers 431 and closes at once, which may
    // reach the client as a reset while it is still sending; never a hang or a 500.
    let giant = reqwest::Client::new()
        .get(app.url("/healthz"))
        .header("X-Padding", "c".repeat(200 * 1024))
        .send();
    match tokio::time::timeout(std::time::Duration::from_secs(10), giant).await {
        Ok(Ok(res)) => assert_eq!(res.status(), 431),
        Ok(Err(e)) => assert!(e.is_request() || e.is_connect(), "{e:?}"),
        Err(_) => panic!("a 200 KiB header hung the request"),
    }
    // Ordinary requests are untouched.
    assert_eq!(app.get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn api_bodies_over_16_kib_get_413_invalid_request() {
    let app = spawn_app().await;
    let client = app.merchant_client(&[]);
    let padding = "x".repeat(17 * 1024);
    for path in ["/oauth/token", "/oauth/introspect", "/oauth/revoke"] {
        let res = app
            .api
            .post(app.url(path))
            .basic_auth(&client.client_id, Some(&client.secret))
            .form(&[("grant_type", "client_credentials"), ("token", &padding)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 413, "{path}");
        assert_eq!(res.headers()["cache-control"], "no-store", "{path}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request", "{path}");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("larger than 16384 bytes"),
            "{path}: {body}"
        );
    }
    // Just under the limit is read (and then judged on its merits).
    let res = app
        .api
        .post(app.url("/oauth/introspect"))
        .basic_auth(&client.client_id, Some(&client.secret))
        .form(&[("token", "y".repeat(15 * 1024))])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["active"], false);
}

#[tokio::test]
async fn a_page_form_over_64_kib_gets_413_and_changes_nothing() {
    let app = spawn_app().await;
    app.create_user("merchant", MERCHANT_PASSWORD);
    let big = "z".repeat(70 * 1024);
    let res = app
        .post_form(
            "/login",
            "/login",
            &[
                ("username", "merchant"),
                ("password", MERCHANT_PASSWORD),
                ("padding", &big),
            ],
        )
        .await;
    assert_eq!(res.status(), 413);
    let page = Html::parse(&res.text().await.unwrap());
    assert_eq!(page.text("h1").as_deref(), Some("Too much data"));
    // Not signed in.
    assert_eq!(app.get(APPS).await.status(), 303);
}

#[tokio::test]
async fn login_refuses_overlong_fields_without_counting_a_failure() {
    let app = spawn_app().await;
    app.create_user("merchant", MERCHANT_PASSWORD);
    let long_name = "m".repeat(33);
    let long_password = "p".repeat(1025);
    for (username, password) in [
        (long_name.as_str(), MERCHANT_PASSWORD),
        ("merchant", long_password.as_str()),
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
        let text = page.0.root_element().text().collect::<String>();
        assert!(
            text.contains("at most 32 characters and a password at most 1024"),
            "{text}"
        );
    }
    assert_eq!(app.count("login_attempts"), 0);
    app.log_in("merchant", MERCHANT_PASSWORD).await;
}

fn password_hash(app: &TestApp) -> String {
    use latchkey::db::schema::users;
    users::table
        .select(users::password)
        .first::<String>(&mut app.db.connect())
        .unwrap()
}

#[tokio::test]
async fn the_account_page_refuses_an_overlong_current_password_beside_the_field() {
    let app = spawn_app().await;
    app.create_user("merchant", MERCHANT_PASSWORD);
    app.log_in("merchant", MERCHANT_PASSWORD).await;
    let before = password_hash(&app);
    let long = "p".repeat(1025);
    let res = app
        .post_form(
            "/account/password",
            "/account",
            &[
                ("current_password", long.as_str()),
                ("new_password", "another long password"),
                ("confirm", "another long password"),
            ],
        )
        .await;
    assert_eq!(res.status(), 422);
    let page = Html::parse(&res.text().await.unwrap());
    let error = page.text("#current-error").unwrap();
    assert!(error.contains("at most 1024 characters"), "{error}");
    assert_eq!(password_hash(&app), before, "the password did not change");
}

#[tokio::test]
async fn signup_fields_have_maximum_lengths_shown_beside_each_field() {
    let app = spawn_app().await;
    let long_email = format!("{}@example.com", "e".repeat(250));
    let res = app
        .post_form("/signup", "/signup", &[("email", &long_email)])
        .await;
    assert_eq!(res.status(), 422);
    let page = Html::parse(&res.text().await.unwrap());
    let error = page.text("#email-error").expect("no #email-error");
    assert!(error.contains("not a valid email address"), "{error}");

    let path = app.signup_path("newcomer@example.com");
    let long_username = "u".repeat(33);
    let long_name = "n".repeat(101);
    let long_password = "p".repeat(1025);
    // The password is judged only beside a valid username (it must not equal it).
    for (username, field, message) in [
        (long_username.as_str(), "#username-error", "32"),
        ("newcomer", "#name-error", "100"),
        ("newcomer", "#password-error", "1024"),
    ] {
        let res = app
            .post_form(
                &path,
                &path,
                &[
                    ("username", username),
                    ("name", &long_name),
                    ("password", &long_password),
                ],
            )
            .await;
        assert_eq!(res.status(), 422);
        let page = Html::parse(&res.text().await.unwrap());
        let error = page
            .text(field)
            .unwrap_or_else(|| panic!("no {field} on the page"));
        assert!(error.contains(message), "{field}: {error}");
    }
    assert_eq!(app.count("users"), 0);
}

fn redirect_uris(n: usize) -> String {
    (0..n)
        .map(|i| format!("https://shop.example.com/callback/{i}"))
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// Registers `n` more scopes, straight into the table.
fn register_scopes(app: &TestApp, n: usize) -> Vec<String> {
    use latchkey::db::schema::scopes;
    let mut conn = app.db.connect();
    let names: Vec<String> = (0..n).map(|i| format!("extra_{i:02}")).collect();
    for name in &names {
        diesel::insert_into(scopes::table)
            .values((
                scopes::name.eq(name),
                scopes::description.eq("An extra scope"),
                scopes::created_at.eq(chrono::Utc::now().naive_utc()),
            ))
            .execute(&mut conn)
            .unwrap();
    }
    names
}

#[tokio::test]
async fn the_portal_allows_ten_redirect_uris_and_twenty_scopes() {
    let app = spawn_app().await;
    let res = app
        .sign_up("merchant", "merchant@example.com", MERCHANT_PASSWORD)
        .await;
    assert_eq!(res.status(), 303);
    let scopes = register_scopes(&app, 21);
    let form = |uris: &str, scopes: &[String]| {
        let mut form: Vec<(String, String)> = vec![
            ("name".into(), "Acme Shop".into()),
            ("redirect_uris".into(), uris.to_owned()),
            ("environment".into(), "sandbox".into()),
            ("client_type".into(), "confidential".into()),
            ("grant_types".into(), "authorization_code".into()),
        ];
        form.extend(scopes.iter().map(|s| ("scopes".to_owned(), s.clone())));
        form
    };
    let app = &app;
    let post = |form: Vec<(String, String)>| async move {
        let borrowed: Vec<(&str, &str)> =
            form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        app.post_form(APPS, &format!("{APPS}/new"), &borrowed).await
    };

    let res = post(form(&redirect_uris(11), &scopes[..20])).await;
    assert_eq!(res.status(), 422);
    let page = Html::parse(&res.text().await.unwrap());
    let error = page.text("#redirect_uris-error").unwrap();
    assert!(error.contains("at most 10 are allowed"), "{error}");
    assert!(page.text("#scopes-error").is_none());

    let res = post(form(&redirect_uris(10), &scopes)).await;
    assert_eq!(res.status(), 422);
    let page = Html::parse(&res.text().await.unwrap());
    let error = page.text("#scopes-error").unwrap();
    assert!(error.contains("limited to 20 per application"), "{error}");
    assert!(page.text("#redirect_uris-error").is_none());
    assert_eq!(app.count("clients"), 0);

    let res = post(form(&redirect_uris(10), &scopes[..20])).await;
    assert_eq!(res.status(), 303, "ten URIs and twenty scopes are fine");
    assert_eq!(app.count("clients"), 1);
}

#[tokio::test]
async fn the_cli_allows_ten_redirect_uris_and_twenty_scopes() {
    let app = spawn_app().await;
    app.create_user("merchant", MERCHANT_PASSWORD);
    let scopes = register_scopes(&app, 21);
    let uris: Vec<String> = (0..11)
        .map(|i| format!("https://shop.example.com/callback/{i}"))
        .collect();
    let args = |uris: &[String], scopes: &[String]| {
        let mut args: Vec<String> = ["client", "create", "--owner", "merchant", "--name", "Shop"]
            .map(String::from)
            .to_vec();
        for uri in uris {
            args.extend(["--redirect-uri".to_owned(), uri.clone()]);
        }
        for scope in scopes {
            args.extend(["--scope".to_owned(), scope.clone()]);
        }
        args
    };
    let run = |args: Vec<String>| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        app.cli(&refs, "")
    };

    let out = run(args(&uris, &scopes[..1]));
    assert!(!out.success());
    assert!(
        out.stderr.contains("at most 10 are allowed"),
        "{}",
        out.stderr
    );
    let out = run(args(&uris[..10], &scopes));
    assert!(!out.success());
    assert!(
        out.stderr
            .contains("scopes are limited to 20 per application"),
        "{}",
        out.stderr
    );
    assert_eq!(app.count("clients"), 0);
    let out = run(args(&uris[..10], &scopes[..20]));
    assert!(out.success(), "{}", out.stderr);
    assert_eq!(app.count("clients"), 1);
}

#[tokio::test]
async fn repeated_slashes_in_a_path_are_merged_and_the_query_kept() {
    let app = spawn_app().await;
    let client = app.merchant_client(&["--grant-type", "client_credentials"]);
    let res = app
        .api
        .post(app.url("//oauth//token"))
        .basic_auth(&client.client_id, Some(&client.secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // The query survives the merge: a secret in it is still refused.
    let res = app
        .api
        .post(app.url("//oauth/token?client_secret=x"))
        .basic_auth(&client.client_id, Some(&client.secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(app.get("//static//css/latchkey.css").await.status(), 200);
}
