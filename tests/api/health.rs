//! The operations endpoints and the HTTP skeleton.

use crate::helpers::spawn_app;

#[tokio::test]
async fn healthz_answers_200() {
    let app = spawn_app().await;
    let res = app.get("/healthz").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn readyz_checks_the_database() {
    let app = spawn_app().await;
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["database"], "ok");
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    let generated = app.get("/healthz").await;
    let id = generated.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(id.len() >= 16, "{id}");
    assert_ne!(id, app.get("/healthz").await.headers()["x-request-id"]);

    // A well-formed id from the caller is kept, so logs can be joined across services.
    let echoed = app
        .api
        .get(app.url("/healthz"))
        .header("X-Request-Id", "lb-1234.abc")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "lb-1234.abc");

    // One that could forge log lines is replaced.
    let forged = app
        .api
        .get(app.url("/healthz"))
        .header("X-Request-Id", "x\" status=200 injected=\"y")
        .send()
        .await
        .unwrap();
    assert_ne!(
        forged.headers()["x-request-id"],
        "x\" status=200 injected=\"y"
    );
}

#[tokio::test]
async fn home_page_and_stylesheet_are_served_from_the_binary() {
    let app = spawn_app().await;
    let home = app.get("/").await;
    assert_eq!(home.status(), 200);
    assert!(
        home.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    // Tera escapes `/` as `&#x2F;`; a browser shows the plain URL.
    let html = home.text().await.unwrap().replace("&#x2F;", "/");
    assert!(
        html.contains(&format!("{}/oauth/token", app.address)),
        "{html}"
    );

    let css = app.get("/static/css/latchkey.css").await;
    assert_eq!(css.status(), 200);
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    assert!(css.text().await.unwrap().contains("prefers-color-scheme"));

    assert_eq!(app.get("/static/../Cargo.toml").await.status(), 404);
    assert_eq!(app.get("/static/nope.css").await.status(), 404);
    assert_eq!(app.get("/no-such-page").await.status(), 404);
}
