//! Database faults: while the database does not answer, every kind of request gets a quick 503
//! with `Retry-After` (OAuth's `temporarily_unavailable` for the API, our page for people),
//! `/readyz` fails, and service comes back by itself when the database does, without a restart.
//!
//! PostgreSQL is cut off by a TCP proxy in the test; SQLite by a second connection holding the
//! write lock.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection as _;
use latchkey::config::DatabaseUrl;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::helpers::{Html, MERCHANT_PASSWORD, TestApp, TestClient, spawn_app, spawn_app_with};

/// A TCP proxy between Latchkey and PostgreSQL that the test can cut.
struct Proxy {
    port: u16,
    down: Arc<AtomicBool>,
    /// Bumped on every switch: each connection task ends (closing both sides) when it changes.
    generation: watch::Sender<u64>,
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let (generation, _) = watch::channel(0u64);
        let (accept_down, accept_generation) = (down.clone(), generation.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let mut changed = accept_generation.subscribe();
                let blackhole = accept_down.load(Ordering::SeqCst);
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    if blackhole {
                        // Accept and say nothing, as a dead route or a dropping firewall does:
                        // only libpq's connect_timeout gets the caller out.
                        let _ = changed.changed().await;
                        return;
                    }
                    let Ok(mut server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = changed.changed() => {}
                    }
                });
            }
        });
        Self {
            port,
            down,
            generation,
        }
    }

    /// Drops every open connection and blackholes new ones.
    fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Forwards new connections again.
    fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }
}

/// `postgres://…@host:port/db?…` with host and port replaced by the proxy's; options kept.
fn through_proxy(url: &str, port: u16) -> String {
    let mut parsed = url::Url::parse(url).unwrap();
    parsed.set_host(Some("127.0.0.1")).unwrap();
    parsed.set_port(Some(port)).unwrap();
    parsed.to_string()
}

/// The `host:port` of a PostgreSQL URL.
fn upstream_of(url: &str) -> String {
    let parsed = url::Url::parse(url).unwrap();
    format!(
        "{}:{}",
        parsed.host_str().unwrap(),
        parsed.port().unwrap_or(5432)
    )
}

async fn client_token(app: &TestApp, client: &TestClient) -> reqwest::Response {
    app.token_form(
        Some(client),
        &[
            ("grant_type", "client_credentials"),
            ("scope", "get_user_profile"),
        ],
    )
    .await
}

async fn introspect(app: &TestApp, client: &TestClient, token: &str) -> reqwest::Response {
    app.api
        .post(app.url("/oauth/introspect"))
        .basic_auth(&client.client_id, Some(&client.secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
}

/// A browser holding a login form (and its session), to post it later.
async fn login_form(app: &TestApp) -> (reqwest::Client, String) {
    let browser = app.new_browser();
    let page = browser
        .get(app.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    (browser, Html::parse(&page).csrf())
}

async fn post_login(app: &TestApp, browser: &reqwest::Client, csrf: &str) -> reqwest::Response {
    browser
        .post(app.url("/login"))
        .form(&[
            ("username", "merchant"),
            ("password", MERCHANT_PASSWORD),
            ("csrf_token", csrf),
        ])
        .send()
        .await
        .unwrap()
}

/// 503 with `Retry-After` and `temporarily_unavailable` in RFC 6749's JSON shape, not cached.
async fn assert_api_unavailable(what: &str, res: reqwest::Response) {
    assert_eq!(res.status(), 503, "{what}");
    assert_retry_after(what, &res);
    assert_eq!(res.headers()["cache-control"], "no-store", "{what}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{what}: {body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("try again"),
        "{what}: {body}"
    );
}

/// 503 with `Retry-After` and our page saying what happened.
async fn assert_page_unavailable(what: &str, res: reqwest::Response) {
    assert_eq!(res.status(), 503, "{what}");
    assert_retry_after(what, &res);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "{what}"
    );
    let page = Html::parse(&res.text().await.unwrap());
    assert_eq!(
        page.text("h1").as_deref(),
        Some("Temporarily unavailable"),
        "{what}"
    );
}

fn assert_retry_after(what: &str, res: &reqwest::Response) {
    let seconds: u64 = res
        .headers()
        .get("retry-after")
        .unwrap_or_else(|| panic!("{what}: no Retry-After"))
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&seconds), "{what}: Retry-After {seconds}");
}

/// Waits (at most 20 s) until `/readyz` answers 200 again.
async fn wait_until_ready(app: &TestApp) -> Duration {
    let started = Instant::now();
    loop {
        if app.get("/readyz").await.status() == 200 {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the server did not become ready again on its own"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Everything works again, on the connections made after the outage.
async fn assert_service_back(
    app: &TestApp,
    client: &TestClient,
    old_token: &str,
    login: (&reqwest::Client, &str),
) {
    let res = client_token(app, client).await;
    assert_eq!(res.status(), 200, "token endpoint after recovery");
    let fresh: Value = res.json().await.unwrap();
    let fresh = fresh["access_token"].as_str().unwrap();
    assert_eq!(app.profile(fresh).await.status(), 200);
    assert_eq!(app.profile(old_token).await.status(), 200);
    let body: Value = introspect(app, client, old_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["active"], true, "{body}");
    assert_eq!(app.get("/developer/applications").await.status(), 200);
    // The form shown before the outage still works: its session outlived it.
    let res = post_login(app, login.0, login.1).await;
    assert_eq!(res.status(), 303, "login after recovery");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_answers_503_quickly_and_service_resumes_by_itself() {
    let Ok(admin) = std::env::var("TEST_DATABASE_URL") else {
        eprintln!("skipped: the PostgreSQL outage test needs TEST_DATABASE_URL");
        return;
    };
    if admin.is_empty() {
        return;
    }
    let proxy = Proxy::start(upstream_of(&admin)).await;
    let port = proxy.port;
    let app = spawn_app_with(|settings| {
        let Some(DatabaseUrl::Postgres(url)) = &settings.database_url else {
            panic!("a PostgreSQL test database");
        };
        settings.database_url = Some(DatabaseUrl::Postgres(through_proxy(url, port)));
        None
    })
    .await;
    let client = app.merchant_client(&[]);
    app.log_in("merchant", MERCHANT_PASSWORD).await;
    let (browser, csrf) = login_form(&app).await;
    let res = client_token(&app, &client).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap().to_owned();

    proxy.cut();
    let started = Instant::now();
    let (
        token_res,
        json_res,
        profile_res,
        introspect_res,
        page_res,
        login_res,
        ready_res,
        metadata_res,
    ) = tokio::join!(
        client_token(&app, &client),
        app.token_json(
            Some(&client),
            serde_json::json!({"grantType": "client_credentials"})
        ),
        app.profile(&token),
        introspect(&app, &client, &token),
        app.get("/developer/applications"),
        post_login(&app, &browser, &csrf),
        app.get("/readyz"),
        app.get("/.well-known/openid-configuration"),
    );
    let took = started.elapsed();
    assert_api_unavailable("token endpoint", token_res).await;
    assert_api_unavailable("metadata", metadata_res).await;
    assert_eq!(json_res.status(), 503);
    assert!(json_res.headers().contains_key("retry-after"));
    let body: Value = json_res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "TemporaryUnAvailable", "{body}");
    assert_api_unavailable("profile", profile_res).await;
    assert_api_unavailable("introspection", introspect_res).await;
    assert_page_unavailable("portal page", page_res).await;
    assert_page_unavailable("login form", login_res).await;
    assert_eq!(ready_res.status(), 503);
    assert_retry_after("readyz", &ready_res);
    assert!(
        took < Duration::from_secs(8),
        "answers while the database is down took {took:?}"
    );

    proxy.restore();
    wait_until_ready(&app).await;
    assert_service_back(&app, &client, &token, (&browser, &csrf)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_sqlite_file_answers_503_and_service_resumes_when_released() {
    let app = spawn_app().await;
    if app.db.is_postgres() {
        return;
    }
    let client = app.merchant_client(&[]);
    app.log_in("merchant", MERCHANT_PASSWORD).await;
    let (browser, csrf) = login_form(&app).await;
    let body: Value = client_token(&app, &client).await.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap().to_owned();
    let (_, new_app) = app.page("/developer/applications/new").await;
    let portal_csrf = new_app.csrf();

    // Another process (here: connection) takes SQLite's write lock and keeps it.
    let mut locker = app.db.connect();
    locker.batch_execute("BEGIN EXCLUSIVE").unwrap();
    let started = Instant::now();
    let (token_res, page_res, login_res, ready_res, profile_res) = tokio::join!(
        client_token(&app, &client),
        app.api
            .post(app.url("/developer/applications"))
            .form(&[
                ("name", "Locked Out"),
                ("environment", "sandbox"),
                ("client_type", "confidential"),
                ("grant_types", "client_credentials"),
                ("csrf_token", portal_csrf.as_str()),
            ])
            .send(),
        post_login(&app, &browser, &csrf),
        app.get("/readyz"),
        app.profile(&token),
    );
    let page_res = page_res.unwrap();
    let took = started.elapsed();
    // Writes (a token row, a sign-in, the session's expiry) wait for busy_timeout, then 503.
    assert_api_unavailable("token endpoint", token_res).await;
    assert_page_unavailable("portal page", page_res).await;
    assert_page_unavailable("login form", login_res).await;
    assert_eq!(
        ready_res.status(),
        503,
        "readyz while writes are locked out"
    );
    assert_retry_after("readyz", &ready_res);
    // Reads go on under WAL: checking a token needs no write.
    assert_eq!(profile_res.status(), 200);
    assert!(
        took < Duration::from_secs(8),
        "answers while the file is locked took {took:?}"
    );

    locker.batch_execute("ROLLBACK").unwrap();
    wait_until_ready(&app).await;
    assert_service_back(&app, &client, &token, (&browser, &csrf)).await;
}
