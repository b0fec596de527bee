//! `spawn_app()`: a real server on a free port with its own database, and helpers to drive it.
//!
//! SQLite by default: a temporary data folder per test. With `TEST_DATABASE_URL=postgres://…`,
//! each test gets its own PostgreSQL schema, dropped when the test's `TestApp` is dropped.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use diesel::connection::SimpleConnection as _;
use diesel::prelude::*;
use latchkey::config::{DatabaseUrl, LogFormat, SecretKeyMaterial, Settings};
use latchkey::crypto::ServerKey;
use latchkey::db::{AnyConnection, ConnectionManager};
use latchkey::domain::UserId;
use latchkey::startup::Application;
use rand::RngCore as _;
use reqwest::Url;
use tempfile::TempDir;

/// The database a test runs against, and the clean-up it needs.
pub struct TestDatabase {
    pub url: DatabaseUrl,
    /// PostgreSQL only: (admin URL, schema to drop).
    pg_schema: Option<(String, String)>,
}

impl TestDatabase {
    /// A fresh, empty database: a file in `data_dir`, or a new PostgreSQL schema.
    pub fn create(data_dir: &Path) -> Self {
        match std::env::var("TEST_DATABASE_URL") {
            Ok(admin) if !admin.is_empty() => {
                assert!(
                    admin.starts_with("postgres"),
                    "TEST_DATABASE_URL must be a postgres:// URL"
                );
                let schema = format!("test_{}", hex_id());
                let mut conn = diesel::PgConnection::establish(&admin)
                    .unwrap_or_else(|e| panic!("TEST_DATABASE_URL unreachable: {e}"));
                conn.batch_execute(&format!("CREATE SCHEMA {schema}"))
                    .unwrap();
                let sep = if admin.contains('?') { '&' } else { '?' };
                let url = format!("{admin}{sep}options=-c%20search_path%3D{schema}");
                Self {
                    url: DatabaseUrl::Postgres(url),
                    pg_schema: Some((admin, schema)),
                }
            }
            _ => Self {
                url: DatabaseUrl::Sqlite(data_dir.join("latchkey.db")),
                pg_schema: None,
            },
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.pg_schema.is_some()
    }

    /// A direct connection, for looking at rows.
    pub fn connect(&self) -> AnyConnection {
        ConnectionManager::new(self.url.clone())
            .establish()
            .unwrap()
    }

    /// The URL as `LATCHKEY_DATABASE_URL` takes it.
    pub fn env_value(&self) -> String {
        match &self.url {
            DatabaseUrl::Postgres(url) => url.clone(),
            DatabaseUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((admin, schema)) = &self.pg_schema
            && let Ok(mut conn) = diesel::PgConnection::establish(admin)
        {
            let _ = conn.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
        }
    }
}

/// How soon an instance must see a change to an application made by another process (another
/// instance, the CLI, SQL by hand): `LATCHKEY_CLIENT_REFRESH`, 1 s in the tests (the instance's
/// own changes take effect at once), with room for a loaded machine.
pub const CLIENT_CHANGE_SEEN_WITHIN: std::time::Duration = std::time::Duration::from_millis(2500);

/// Asks `holds` every 50 ms until it answers true, and fails if that takes longer than
/// [`CLIENT_CHANGE_SEEN_WITHIN`]: for a change to an application made outside the instance.
pub async fn once_seen(what: &str, mut holds: impl AsyncFnMut() -> bool) {
    let started = std::time::Instant::now();
    while !holds().await {
        assert!(
            started.elapsed() < CLIENT_CHANGE_SEEN_WITHIN,
            "{what}: not seen after {CLIENT_CHANGE_SEEN_WITHIN:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    println!("{what}: seen after {:?}", started.elapsed());
}

pub fn hex_id() -> String {
    let mut bytes = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

pub struct TestApp {
    pub address: String,
    /// The metrics listener (`LATCHKEY_METRICS_BIND`, a port of its own).
    pub metrics_address: String,
    /// Keeps cookies, never follows redirects: tests look at each hop.
    pub api: reqwest::Client,
    /// The cookies of `api`.
    pub jar: std::sync::Arc<reqwest::cookie::Jar>,
    pub settings: Settings,
    pub key: ServerKey,
    pub db: TestDatabase,
    /// SQL statements the server has run.
    pub statements: latchkey::db::StatementCounter,
    /// Every email the server sent.
    pub outbox: latchkey::email::Outbox,
    pub data_dir: TempDir,
}

/// Settings for a test: port 0, one worker, a fixed random key, the given database.
pub fn test_settings(data_dir: &Path, db: &TestDatabase, secret: &SecretKeyMaterial) -> Settings {
    Settings {
        bind: "127.0.0.1:0".parse().unwrap(),
        database_url: Some(db.url.clone()),
        issuer: None,
        data_dir: data_dir.to_path_buf(),
        secret_key: Some(secret.clone()),
        smtp_url: None,
        mail_from: "Latchkey <no-reply@latchkey.test>".parse().unwrap(),
        access_token_ttl: 3600,
        refresh_token_ttl: 2_592_000,
        code_ttl: 600,
        dpop_nonce: false,
        require_mfa_for_live: true,
        db_pool_size: 8,
        key_refresh: 1,
        client_refresh: 1,
        cleanup_interval: 3600,
        // Counts are written when the activity page opens; a background write would add
        // statements to the tests that count them.
        counts_interval: 3600,
        workers: Some(1),
        trusted_proxies: Vec::new(),
        metrics_bind: "127.0.0.1:0".parse().unwrap(),
        otlp_endpoint: None,
        shutdown_delay: 0,
        shutdown_timeout: 5,
        config: None,
        log_format: LogFormat::Text,
        log: "warn".into(),
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| None).await
}

/// An instance for tests that count SQL statements: its background reads (the signing keys'
/// reload and the check for clients changed elsewhere, every second in [`spawn_app`]) come once
/// an hour, so none lands between a test's two readings of the counter. (The key reload did,
/// now and then, in CI.)
pub async fn spawn_counting_app() -> TestApp {
    spawn_app_with(|settings| {
        settings.client_refresh = 3600;
        settings.key_refresh = 3600;
        None
    })
    .await
}

/// `spawn_app` with the settings adjusted, and optionally a mailer of its own (else the
/// in-memory outbox).
pub async fn spawn_app_with(
    adjust: impl FnOnce(&mut Settings) -> Option<latchkey::email::Mailer>,
) -> TestApp {
    let data_dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::create(data_dir.path());
    let mut secret = vec![0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let mut settings = test_settings(data_dir.path(), &db, &SecretKeyMaterial(secret));
    let mailer = adjust(&mut settings);
    start(settings, db, data_dir, mailer).await
}

/// A server reached as `http://localhost:{port}`, which is also its issuer: WebAuthn needs a
/// domain name, and the default issuer is the IP address the server listens on.
pub async fn spawn_app_on_localhost() -> TestApp {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut app = spawn_app_with(move |settings| {
        settings.bind = format!("127.0.0.1:{port}").parse().unwrap();
        settings.issuer = Some(format!("http://localhost:{port}").parse().unwrap());
        None
    })
    .await;
    app.address = format!("http://localhost:{port}");
    app
}

/// Starts a server on an existing test's database and data folder, as a restart would.
pub async fn restart(app: TestApp) -> TestApp {
    let TestApp {
        settings,
        db,
        data_dir,
        ..
    } = app;
    start(settings, db, data_dir, None).await
}

async fn start(
    settings: Settings,
    db: TestDatabase,
    data_dir: TempDir,
    mailer: Option<latchkey::email::Mailer>,
) -> TestApp {
    // `TEST_LOG=latchkey::sql=trace` shows, for example, every SQL statement a test runs.
    let filter = std::env::var("TEST_LOG").unwrap_or_else(|_| "warn".into());
    drop(latchkey::telemetry::init(LogFormat::Text, &filter, None));
    let key = ServerKey::from_material(settings.secret_key.as_ref().unwrap());
    let (memory, outbox) = latchkey::email::Mailer::memory(settings.mail_from.clone());
    let mailer = mailer.unwrap_or(memory);
    let app = Application::build_with_mailer(settings.clone(), mailer)
        .await
        .unwrap();
    let port = app.port();
    let metrics_port = app.metrics_port();
    let statements = app.statements();
    tokio::spawn(app.run_until_stopped());
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let api = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_provider(jar.clone())
        .build()
        .unwrap();
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        metrics_address: format!("http://127.0.0.1:{metrics_port}"),
        api,
        jar,
        settings,
        key,
        db,
        statements,
        outbox,
        data_dir,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.api.get(self.url(path)).send().await.unwrap()
    }

    /// The environment a `latchkey` process needs to use this test's database and key.
    pub fn cli_env(&self) -> Vec<(String, String)> {
        let key = self.settings.secret_key.as_ref().unwrap();
        vec![
            ("LATCHKEY_DATABASE_URL".into(), self.db.env_value()),
            (
                "LATCHKEY_DATA_DIR".into(),
                self.data_dir.path().display().to_string(),
            ),
            ("LATCHKEY_SECRET_KEY".into(), hex::encode(&key.0)),
            // Servers started by a test run beside others: each takes a free metrics port.
            ("LATCHKEY_METRICS_BIND".into(), "127.0.0.1:0".into()),
        ]
    }

    /// Runs the `latchkey` binary against this test's database, with `stdin` piped in.
    pub fn cli(&self, args: &[&str], stdin: &str) -> CliOutput {
        run_cli(args, stdin, &self.cli_env())
    }

    /// Creates a user through the CLI and returns its id.
    pub fn create_user(&self, username: &str, password: &str) -> UserId {
        let out = self.cli(
            &[
                "user",
                "create",
                "--username",
                username,
                "--name",
                "Test User",
            ],
            &format!("{password}\n"),
        );
        assert!(out.success(), "user create failed: {}", out.stderr);
        out.stdout.trim().parse().unwrap()
    }

    /// Creates a client through the CLI (`--json`) and returns the parsed output.
    pub fn create_client(&self, owner: &str, extra: &[&str]) -> serde_json::Value {
        let mut args = vec![
            "client", "create", "--owner", owner, "--name", "Test App", "--json",
        ];
        args.extend_from_slice(extra);
        let out = self.cli(&args, "");
        assert!(out.success(), "client create failed: {}", out.stderr);
        serde_json::from_str(&out.stdout).unwrap()
    }

    pub fn count(&self, table: &str) -> i64 {
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = self.db.connect();
        diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}"))
            .get_result::<Count>(&mut conn)
            .unwrap()
            .n
    }
}

/// A merchant with one application, ready to ask for tokens.
pub struct TestClient {
    pub client_id: String,
    pub secret: String,
    /// The owner's user id, as the number responses show.
    pub owner_id: i64,
}

impl TestApp {
    /// A user `merchant` (password `a long password 1`) and a confidential client of theirs with
    /// the given extra `client create` arguments.
    pub fn merchant_client(&self, extra: &[&str]) -> TestClient {
        let owner_id =
            match latchkey::db::models::User::find_by_username(&mut self.db.connect(), "merchant")
                .unwrap()
            {
                Some(user) => user.id,
                None => self.create_user("merchant", MERCHANT_PASSWORD),
            }
            .get();
        // Allowed `get_user_profile` alone unless `extra` names scopes: a client's default is
        // every registered scope, and tests read tokens' scopes.
        let mut args = extra.to_vec();
        if !args.contains(&"--scope") {
            args.extend(["--scope", "get_user_profile"]);
        }
        let created = self.create_client("merchant", &args);
        TestClient {
            client_id: created["client_id"].as_str().unwrap().to_owned(),
            secret: created["client_secret"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            owner_id,
        }
    }

    /// `POST /oauth/token` with a form body and optional Basic credentials.
    pub async fn token_form(
        &self,
        basic: Option<&TestClient>,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = self.api.post(self.url("/oauth/token")).form(form);
        if let Some(c) = basic {
            req = req.basic_auth(&c.client_id, Some(&c.secret));
        }
        req.send().await.unwrap()
    }

    /// `POST /v1/token` with a JSON body (Revenue Monster's dialect) and optional Basic credentials.
    pub async fn token_json(
        &self,
        basic: Option<&TestClient>,
        body: serde_json::Value,
    ) -> reqwest::Response {
        let mut req = self.api.post(self.url("/v1/token")).json(&body);
        if let Some(c) = basic {
            req = req.basic_auth(&c.client_id, Some(&c.secret));
        }
        req.send().await.unwrap()
    }

    pub async fn profile(&self, token: &str) -> reqwest::Response {
        self.api
            .get(self.url("/v1/user/profile"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }
}

pub const MERCHANT_PASSWORD: &str = "a long password 1";

pub struct CliOutput {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    pub fn success(&self) -> bool {
        self.status.success()
    }
}

pub fn latchkey_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_latchkey"))
}

/// Runs the binary with no inherited `LATCHKEY_*` settings, only those given.
pub fn run_cli(args: &[&str], stdin: &str, env: &[(String, String)]) -> CliOutput {
    let mut cmd = Command::new(latchkey_bin());
    for (name, _) in std::env::vars() {
        if name.starts_with("LATCHKEY_") {
            cmd.env_remove(name);
        }
    }
    cmd.env("LATCHKEY_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    // The process may exit before reading (a rejected argument): a broken pipe is expected then.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().unwrap();
    CliOutput {
        status,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// A page as a browser sees it.
pub struct Html(pub scraper::Html);

impl Html {
    pub fn parse(text: &str) -> Self {
        Self(scraper::Html::parse_document(text))
    }

    fn select(&self, css: &str) -> Vec<scraper::ElementRef<'_>> {
        let selector = scraper::Selector::parse(css).unwrap();
        self.0.select(&selector).collect()
    }

    /// The text of the first element matching `css`, whitespace folded.
    pub fn text(&self, css: &str) -> Option<String> {
        self.select(css).first().map(|e| {
            e.text()
                .collect::<Vec<_>>()
                .join(" ")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
    }

    pub fn attr(&self, css: &str, attr: &str) -> Option<String> {
        self.select(css)
            .first()
            .and_then(|e| e.value().attr(attr))
            .map(str::to_owned)
    }

    /// The CSRF token of the page's forms.
    pub fn csrf(&self) -> String {
        self.attr("input[name=csrf_token]", "value")
            .expect("no CSRF token on the page")
    }
}

impl TestApp {
    /// GETs a page and parses it.
    pub async fn page(&self, path: &str) -> (reqwest::StatusCode, Html) {
        let res = self.get(path).await;
        let status = res.status();
        (status, Html::parse(&res.text().await.unwrap()))
    }

    /// POSTs a form with the CSRF token taken from `form_page`.
    pub async fn post_form(
        &self,
        path: &str,
        form_page: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        self.post_form_in(&self.api, path, form_page, fields).await
    }

    /// [`Self::post_form`] in another browser (see [`Self::new_browser`]).
    pub async fn post_form_in(
        &self,
        browser: &reqwest::Client,
        path: &str,
        form_page: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let page = Html::parse(
            &browser
                .get(self.url(form_page))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
        let csrf = page.csrf();
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        all.push(("csrf_token", &csrf));
        browser
            .post(self.url(path))
            .form(&all)
            .send()
            .await
            .unwrap()
    }

    /// Signs in through the login page; panics unless it redirects.
    pub async fn log_in(&self, username: &str, password: &str) {
        let res = self
            .post_form(
                "/login",
                "/login",
                &[("username", username), ("password", password)],
            )
            .await;
        assert_eq!(
            res.status(),
            303,
            "login failed: {}",
            res.text().await.unwrap_or_default()
        );
    }

    /// Signs up through both steps (see [`Self::sign_up_in`]) in this app's client.
    pub async fn sign_up(&self, username: &str, email: &str, password: &str) -> reqwest::Response {
        self.sign_up_in(&self.api, username, email, password).await
    }

    /// Signs up as a person does: the address at `/signup`, the link from the mail, then the
    /// username and password on the link's page. Returns that last answer (303 on success).
    pub async fn sign_up_in(
        &self,
        browser: &reqwest::Client,
        username: &str,
        email: &str,
        password: &str,
    ) -> reqwest::Response {
        self.sign_up_next_in(browser, username, email, password, None)
            .await
    }

    /// [`Self::sign_up_in`], with the `next` page the first step's form carries.
    pub async fn sign_up_next_in(
        &self,
        browser: &reqwest::Client,
        username: &str,
        email: &str,
        password: &str,
        next: Option<&str>,
    ) -> reqwest::Response {
        let sent = self.outbox.messages().len();
        let mut fields = vec![("email", email)];
        fields.extend(next.map(|next| ("next", next)));
        let res = self
            .post_form_in(browser, "/signup", "/signup", &fields)
            .await;
        assert_eq!(
            res.status(),
            200,
            "sign-up start: {}",
            res.text().await.unwrap()
        );
        let mail = self.mail_to(email, sent).await;
        let link = self.path_of(&link_in(&mail.text, "/signup/"));
        self.post_form_in(
            browser,
            &link,
            &link,
            &[
                ("username", username),
                ("name", "Signed Up"),
                ("password", password),
            ],
        )
        .await
    }

    /// The first message to `address` after the first `after` of the outbox. Mail from the
    /// sign-up and reset forms goes out after the page has answered, so this waits for it.
    pub async fn mail_to(&self, address: &str, after: usize) -> latchkey::email::Email {
        let address = address.trim().to_lowercase();
        for _ in 0..200 {
            let found = self
                .outbox
                .messages()
                .into_iter()
                .skip(after)
                .find(|m| m.to == address);
            if let Some(mail) = found {
                return mail;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("no mail to {address} within 5 s");
    }

    /// The path of a good sign-up link for `email`, as the mail would carry it.
    pub fn signup_path(&self, email: &str) -> String {
        let link = latchkey::accounts::SignupLink {
            email: latchkey::domain::Email::parse(email).unwrap(),
            next: None,
        };
        let token =
            latchkey::accounts::signup_token(&self.key, &link, chrono::Utc::now().naive_utc());
        format!("/signup/{token}")
    }

    /// Ten minutes on: closes the step-up window of every signed-in session (signing in with a
    /// second factor, or a step-up, opened it), as time passing would.
    pub fn close_step_up_windows(&self) {
        use diesel::prelude::*;
        use latchkey::db::schema::sessions;
        let mut conn = self.db.connect();
        let rows: Vec<(i64, String)> = sessions::table
            .filter(sessions::user_id.is_not_null())
            .select((sessions::id, sessions::state))
            .load(&mut conn)
            .unwrap();
        for (id, state) in rows {
            let mut state: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&state).unwrap();
            if state.remove("reauth_at").is_some() {
                diesel::update(sessions::table.find(id))
                    .set(sessions::state.eq(serde_json::to_string(&state).unwrap()))
                    .execute(&mut conn)
                    .unwrap();
            }
        }
    }

    /// The path of a link to this server.
    pub fn path_of(&self, link: &str) -> String {
        link.strip_prefix(&self.address)
            .unwrap_or_else(|| panic!("{link} is not a link to {}", self.address))
            .to_owned()
    }

    /// A client with its own cookie jar, as a second browser would be.
    pub fn new_browser(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_store(true)
            .build()
            .unwrap()
    }
}

/// The first link to this server in an email's text body.
pub fn link_in(text: &str, prefix: &str) -> String {
    text.split_whitespace()
        .find(|w| w.contains(prefix))
        .map(|w| w.trim_end_matches(['.', ',']).to_owned())
        .unwrap_or_else(|| panic!("no link with {prefix} in: {text}"))
}

/// A second browser with an account of its own, signed up and signed in.
pub async fn spawn_browser(app: &TestApp, username: &str) -> reqwest::Client {
    let browser = app.new_browser();
    let email = format!("{username}@example.com");
    let res = app
        .sign_up_in(&browser, username, &email, MERCHANT_PASSWORD)
        .await;
    assert_eq!(res.status(), 303);
    browser
}

// ---- The authorization-code flow, as a browser walks it (used by the authorize, code grant,
// OpenID Connect, scale and attack tests).

pub const CALLBACK: &str = "https://app.example.com/callback";
/// RFC 7636 Appendix B.
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
pub const END_USER: &str = "enduser";
pub const END_USER_PASSWORD: &str = "end user password";

pub fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

pub fn query_of(url: &str) -> HashMap<String, String> {
    Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// A merchant's confidential client with the callback and a second scope, and an end user.
pub fn setup(app: &TestApp) -> TestClient {
    // `manage_payment` is one of Revenue Monster's scopes, seeded by the migrations.
    let client = app.merchant_client(&[
        "--redirect-uri",
        CALLBACK,
        "--scope",
        "get_user_profile",
        "--scope",
        "manage_payment",
    ]);
    app.create_user(END_USER, END_USER_PASSWORD);
    client
}

pub fn authorize_path(pairs: &[(&str, &str)]) -> String {
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    format!("/oauth/authorize?{query}")
}

/// From a redirect to the login page, signs in and follows back to the authorization request
/// (or, when the sign-in finished it, returns the sign-in's own redirect to the application).
pub async fn log_in_and_resume(
    app: &TestApp,
    login_location: &str,
    username: &str,
    password: &str,
) -> reqwest::Response {
    assert_eq!(login_location, "/login?next=%2Foauth%2Fauthorize%2Fresume");
    let (_, login) = app.page(login_location).await;
    let next = login.attr("input[name=next]", "value").unwrap();
    let res = app
        .api
        .post(app.url("/login"))
        .form(&[
            ("username", username),
            ("password", password),
            ("next", &next),
            ("csrf_token", &login.csrf()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    // A consent that covers the request finishes it at the sign-in: straight to the application.
    if location(&res) != "/oauth/authorize/resume" {
        return res;
    }
    app.get("/oauth/authorize/resume").await
}

/// Redeems `code` at the token endpoint as `client`, with the callback and no PKCE verifier.
pub async fn redeem_at_callback(
    app: &TestApp,
    client: &TestClient,
    code: &str,
) -> reqwest::Response {
    app.token_form(
        Some(client),
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", CALLBACK),
        ],
    )
    .await
}

/// Answers the consent page as a browser would: with every hidden field of its form.
pub async fn decide(app: &TestApp, consent: Html, decision: &str) -> reqwest::Response {
    let mut form = vec![
        ("csrf_token".to_owned(), consent.csrf()),
        (
            "request_id".to_owned(),
            consent.attr("input[name=request_id]", "value").unwrap(),
        ),
        ("decision".to_owned(), decision.to_owned()),
    ];
    if let Some(granted) = consent.attr("input[name=granted]", "value") {
        form.push(("granted".to_owned(), granted));
    }
    app.api
        .post(app.url("/oauth/authorize"))
        .form(&form)
        .send()
        .await
        .unwrap()
}

/// The whole browser part: authorize, sign in, allow. Returns the callback URL reached.
pub async fn authorize_and_allow(app: &TestApp, pairs: &[(&str, &str)]) -> String {
    let res = app.get(&authorize_path(pairs)).await;
    assert_eq!(res.status(), 303);
    let res = log_in_and_resume(app, &location(&res), END_USER, END_USER_PASSWORD).await;
    assert_eq!(res.status(), 200);
    let consent = Html::parse(&res.text().await.unwrap());
    let res = decide(app, consent, "allow").await;
    assert_eq!(res.status(), 303);
    location(&res)
}

/// A key pair a key-based (`private_key_jwt`) test client signs its assertions with.
pub struct SigningKey {
    /// The public half, as registered: a JWK with `kid`.
    pub jwk: serde_json::Value,
    key: jsonwebtoken::EncodingKey,
    alg: jsonwebtoken::Algorithm,
}

impl SigningKey {
    /// A new P-256 key (ES256) named `kid`.
    pub fn p256(kid: &str) -> Self {
        use aws_lc_rs::rand::SystemRandom;
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
        use base64::Engine as _;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        let point = pair.public_key().as_ref();
        Self {
            jwk: serde_json::json!({
                "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig",
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
            }),
            key: jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref()),
            alg: jsonwebtoken::Algorithm::ES256,
        }
    }

    /// A client assertion (RFC 7523) for `client_id` to `aud`, valid for a minute, with a fresh
    /// `jti`; `changes` then sets (or, with `null`, removes) claims.
    pub fn assertion(&self, client_id: &str, aud: &str, changes: serde_json::Value) -> String {
        let now = chrono::Utc::now().timestamp();
        let mut claims = serde_json::json!({
            "iss": client_id, "sub": client_id, "aud": aud, "jti": hex_id(),
            "iat": now, "exp": now + 60,
        });
        if let serde_json::Value::Object(changes) = changes {
            for (name, value) in changes {
                if value.is_null() {
                    claims.as_object_mut().unwrap().remove(&name);
                } else {
                    claims[name] = value;
                }
            }
        }
        let mut header = jsonwebtoken::Header::new(self.alg);
        header.kid = self.jwk["kid"].as_str().map(Into::into);
        jsonwebtoken::encode(&header, &claims, &self.key).unwrap()
    }

    /// A DPoP proof (RFC 9449 §4.2) by this key for `method` `url`, with `ath` for
    /// `access_token` when given, a fresh `jti` and `iat` now; `changes` then sets (or, with
    /// `null`, removes) claims.
    pub fn dpop(
        &self,
        method: &str,
        url: &str,
        access_token: Option<&str>,
        changes: serde_json::Value,
    ) -> String {
        use base64::Engine as _;
        use sha2::Digest as _;
        let mut claims = serde_json::json!({
            "jti": hex_id(), "htm": method, "htu": url, "iat": chrono::Utc::now().timestamp(),
        });
        if let Some(token) = access_token {
            claims["ath"] = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(sha2::Sha256::digest(token.as_bytes()))
                .into();
        }
        if let serde_json::Value::Object(changes) = changes {
            for (name, value) in changes {
                if value.is_null() {
                    claims.as_object_mut().unwrap().remove(&name);
                } else {
                    claims[name] = value;
                }
            }
        }
        let mut header = jsonwebtoken::Header::new(self.alg);
        header.typ = Some("dpop+jwt".into());
        let public = serde_json::json!({
            "kty": self.jwk["kty"], "crv": self.jwk["crv"], "x": self.jwk["x"], "y": self.jwk["y"],
        });
        header.jwk = Some(serde_json::from_value(public).unwrap());
        jsonwebtoken::encode(&header, &claims, &self.key).unwrap()
    }

    /// The key's RFC 7638 SHA-256 thumbprint: the `cnf.jkt` of tokens bound to it.
    pub fn jkt(&self) -> String {
        use base64::Engine as _;
        use sha2::Digest as _;
        let canonical = format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            self.jwk["crv"].as_str().unwrap(),
            self.jwk["x"].as_str().unwrap(),
            self.jwk["y"].as_str().unwrap()
        );
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(canonical.as_bytes()))
    }
}

/// The claims of a JWT, read without checking anything (tests look inside issued tokens).
pub fn jwt_claims(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

impl TestApp {
    /// A key-based client of `merchant` (created if need be) whose JWKS holds `keys`, made
    /// through the CLI (`--auth-method private_key_jwt --jwks-file`). Its `secret` is empty.
    pub fn key_client(&self, keys: &[&SigningKey], extra: &[&str]) -> TestClient {
        let jwks =
            serde_json::json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() });
        let path = self.data_dir.path().join(format!("jwks-{}.json", hex_id()));
        std::fs::write(&path, jwks.to_string()).unwrap();
        let path = path.display().to_string();
        let mut args = vec!["--auth-method", "private_key_jwt", "--jwks-file", &path];
        args.extend_from_slice(extra);
        let client = self.merchant_client(&args);
        assert!(client.secret.is_empty(), "a key-based client has no secret");
        client
    }
}

/// The code an authenticator app holding `key` (base32, as the setup page shows it) gives
/// `steps` steps after the moment `t0`.
pub fn totp_code(key: &str, t0: i64, steps: i64) -> String {
    let secret = totp_rs::Secret::Encoded(key.to_owned()).to_bytes().unwrap();
    let totp = totp_rs::TOTP::new(
        totp_rs::Algorithm::SHA1,
        6,
        1,
        30,
        secret,
        None,
        "test".to_owned(),
    )
    .unwrap();
    totp.generate((t0 + steps * 30) as u64)
}

impl TestApp {
    /// Sets up an authenticator app for the signed-in account (whose password is
    /// [`MERCHANT_PASSWORD`]), with the code of the current step; returns its key.
    pub async fn enable_totp(&self) -> String {
        let setup = "/account/security/totp";
        let (status, page) = self.page(setup).await;
        assert_eq!(status, 200);
        let key = page.attr("#totp-secret", "value").unwrap();
        let code = totp_code(&key, chrono::Utc::now().timestamp(), 0);
        let res = self
            .post_form(
                setup,
                setup,
                &[("code", &code), ("password", MERCHANT_PASSWORD)],
            )
            .await;
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
        key
    }
}

/// Edits the signed-in session's stored state, as time passing would.
pub fn age_session(app: &TestApp, edit: impl Fn(&mut serde_json::Map<String, serde_json::Value>)) {
    use latchkey::db::schema::sessions;
    let mut conn = app.db.connect();
    let rows: Vec<(i64, String)> = sessions::table
        .filter(sessions::user_id.is_not_null())
        .select((sessions::id, sessions::state))
        .load(&mut conn)
        .unwrap();
    assert_eq!(rows.len(), 1);
    let mut state: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&rows[0].1).unwrap();
    edit(&mut state);
    diesel::update(sessions::table.find(rows[0].0))
        .set(sessions::state.eq(serde_json::to_string(&state).unwrap()))
        .execute(&mut conn)
        .unwrap();
}

/// Marks an application form as sent from the page that says what going live means; the
/// step-up window must be open ([`TestApp::enable_totp`] opens it) or the password given.
pub const CONFIRM_LIVE: (&str, &str) = ("confirm_live", "on");

impl TestApp {
    /// Disables the application at `show` from its confirmation page, with the password for
    /// the step-up (ignored while the window is open, which an account with a factor needs).
    pub async fn disable_app(&self, show: &str) -> reqwest::Response {
        self.post_form(
            &format!("{show}/toggle"),
            &format!("{show}/disable"),
            &[("confirm_disable", "on"), ("password", MERCHANT_PASSWORD)],
        )
        .await
    }

    /// Enables the disabled application at `show`: one click, no step-up.
    pub async fn enable_app(&self, show: &str) -> reqwest::Response {
        self.post_form(&format!("{show}/toggle"), show, &[]).await
    }

    /// Deletes the application at `show` from its confirmation page, with the password for the
    /// step-up (as [`Self::disable_app`]).
    pub async fn delete_app(&self, show: &str) -> reqwest::Response {
        let delete = format!("{show}/delete");
        // A live application asks for its name, typed: read from the field's label.
        let (_, page) = self.page(&delete).await;
        let name = page
            .text("label[for=confirm_name]")
            .and_then(|label| {
                let start = label.find('“')? + '“'.len_utf8();
                let end = label.rfind('”')?;
                Some(label[start..end].to_owned())
            })
            .unwrap_or_default();
        self.post_form(
            &delete,
            &delete,
            &[("password", MERCHANT_PASSWORD), ("confirm_name", &name)],
        )
        .await
    }
}
