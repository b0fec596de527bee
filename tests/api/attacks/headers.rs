//! Security headers on every class of response: token, introspection and their errors are
//! never cached (RFC 6749 §5.1, RFC 7662 §2.2); nothing is content-sniffed; pages carry the
//! CSP and anti-framing headers; HSTS is sent when (and only when) the issuer is https.

use serde_json::Value;

use super::{Expect, H, check};
use crate::helpers::{TestApp, spawn_app, spawn_app_with};

/// Every response class, as (name, response, extra expectations on top of `base`).
async fn every_class(app: &TestApp) -> Vec<(&'static str, reqwest::Response, Expect)> {
    let client = app.merchant_client(&[]);
    let token: Value = app
        .token_form(Some(&client), &[("grant_type", "client_credentials")])
        .await
        .json()
        .await
        .unwrap();
    let access = token["access_token"].as_str().unwrap().to_owned();
    let introspect = |auth: bool, token: &str| {
        let mut req = app
            .api
            .post(app.url("/oauth/introspect"))
            .form(&[("token", token.to_owned())]);
        if auth {
            req = req.basic_auth(&client.client_id, Some(&client.secret));
        }
        req.send()
    };
    let api = |status| {
        Expect::new(status)
            .no_store()
            .header(H::Is("pragma", "no-cache"))
    };
    let page = |status| {
        Expect::new(status)
            .no_store()
            .header(H::Has("content-security-policy", "frame-ancestors 'none'"))
            .header(H::Is("x-frame-options", "DENY"))
    };
    vec![
        (
            "token success",
            app.token_form(Some(&client), &[("grant_type", "client_credentials")])
                .await,
            api(200),
        ),
        (
            "token error",
            app.token_form(Some(&client), &[("grant_type", "nope")])
                .await,
            api(400).error("unsupported_grant_type"),
        ),
        (
            "token 401",
            app.token_form(None, &[("grant_type", "client_credentials")])
                .await,
            api(401).error("invalid_client"),
        ),
        (
            "introspection active",
            introspect(true, &access).await.unwrap(),
            Expect::new(200).no_store(),
        ),
        (
            "introspection inactive",
            introspect(true, "x").await.unwrap(),
            Expect::new(200).no_store(),
        ),
        (
            "introspection 401",
            introspect(false, &access).await.unwrap(),
            Expect::new(401).no_store().error("invalid_client"),
        ),
        (
            "profile success",
            app.profile(&access).await,
            Expect::new(200).no_store(),
        ),
        (
            "profile 401",
            app.profile("x").await,
            Expect::new(401).no_store().error("invalid_token"),
        ),
        (
            "jwks",
            app.get("/.well-known/jwks.json").await,
            Expect::new(200),
        ),
        (
            "metadata",
            app.get("/.well-known/oauth-authorization-server").await,
            Expect::new(200),
        ),
        ("login page", app.get("/login").await, page(200)),
        ("signup page", app.get("/signup").await, page(200)),
        (
            "authorize error page",
            app.get("/oauth/authorize?client_id=1").await,
            page(400),
        ),
        (
            "authorize error page at Revenue Monster's path",
            app.get("/authorize?clientId=1").await,
            page(400),
        ),
        (
            "portal redirect to login",
            app.get("/developer/applications").await,
            Expect::new(303).redirect("/login?next="),
        ),
        (
            "unknown page (404)",
            app.get("/no-such-page").await,
            Expect::new(404).no_store(),
        ),
        (
            "CSRF refusal (403)",
            app.api.post(app.url("/logout")).send().await.unwrap(),
            page(403),
        ),
    ]
}

#[tokio::test]
async fn every_response_class_over_http_has_its_headers_and_no_hsts() {
    let app = spawn_app().await;
    for (name, res, expect) in every_class(&app).await {
        let expect = expect
            .header(H::Is("x-content-type-options", "nosniff"))
            .header(H::Absent("strict-transport-security"));
        check(name, res, &expect).await;
    }
}

#[tokio::test]
async fn every_response_class_gets_hsts_when_the_issuer_is_https() {
    let app = spawn_app_with(|s| {
        s.issuer = Some(url::Url::parse("https://auth.example.com").unwrap());
        None
    })
    .await;
    for (name, res, expect) in every_class(&app).await {
        let expect = expect
            .header(H::Is("x-content-type-options", "nosniff"))
            .header(H::Is(
                "strict-transport-security",
                "max-age=31536000; includeSubDomains",
            ));
        check(&format!("{name} (https issuer)"), res, &expect).await;
    }
}
