//! Crash safety: `latchkey serve` is killed with SIGKILL in the middle of concurrent token
//! traffic and started again on the same database. Whatever was answered 200 before the crash
//! must hold after it: every access token is still active at introspection, and no code or
//! refresh token that was redeemed can be redeemed again. The database must pass an integrity
//! check: `PRAGMA integrity_check` on SQLite; on PostgreSQL, `amcheck`'s `bt_index_check` on
//! every index (when the extension is available) and a query that no token or code row
//! points at a missing client or user.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use latchkey::db::AnyConnection;
use latchkey::db::models::{AuthorizationCode, Client, Consent, NewAuthorizationCode};
use serde_json::Value;

use crate::helpers::{TestApp, TestClient, spawn_app};
use crate::served::Served;

const REDIRECT: &str = "https://shop.example/callback";
/// RFC 7636 Appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
/// Both runs share one issuer, as instances behind one name do: it is in every token.
const ISSUER: &str = "http://latchkey.test";
const CODES: usize = 40;

/// A `latchkey serve` process on the test's database.
struct Server {
    served: Served,
    base: String,
}

impl Server {
    fn start(app: &TestApp) -> Self {
        let mut env = app.cli_env();
        env.push(("LATCHKEY_ISSUER".into(), ISSUER.into()));
        env.push(("LATCHKEY_WORKERS".into(), "2".into()));
        let served = Served::start(&env, &[]);
        Self {
            base: served.base(),
            served,
        }
    }

    /// SIGKILL: no shutdown, no flushing, in-flight requests cut off.
    fn kill(mut self) {
        self.served.child.kill().unwrap();
        self.served.child.wait().unwrap();
    }
}

/// Stores `n` codes for the client and the merchant, and the consent they were issued under,
/// as the authorization endpoint would.
fn issue_codes(app: &TestApp, client: &TestClient, n: usize) -> Vec<String> {
    let mut conn = app.db.connect();
    let row = Client::find_by_client_id(&mut conn, &client.client_id)
        .unwrap()
        .unwrap();
    let now = chrono::Utc::now().naive_utc();
    let owner = latchkey::domain::UserId::new(client.owner_id);
    // The consent the codes were issued under: the code grant checks it still holds.
    Consent::grant(&mut conn, owner, row.id, "get_user_profile", now).unwrap();
    (0..n)
        .map(|_| {
            let code = latchkey::crypto::random_token(32);
            AuthorizationCode::insert(
                &mut conn,
                &NewAuthorizationCode {
                    client_id: row.id,
                    user_id: owner,
                    code: &latchkey::crypto::token_digest(&code),
                    scope: "get_user_profile",
                    redirect_uri: REDIRECT,
                    code_challenge: Some(CHALLENGE),
                    code_challenge_method: Some("S256"),
                    nonce: None,
                    expired_at: now + chrono::TimeDelta::seconds(600),
                    created_at: now,
                    auth_time: Some(now),
                    redirect_uri_given: true,
                },
            )
            .unwrap();
            code
        })
        .collect()
}

/// What the clients were told before the crash.
#[derive(Default)]
struct Answered {
    access_tokens: Vec<String>,
    /// Codes answered 200.
    redeemed_codes: Vec<String>,
    /// Refresh tokens answered 200 when presented (so rotated, spent).
    spent_refresh_tokens: Vec<String>,
}

struct Load {
    http: reqwest::Client,
    base: String,
    client_id: String,
    secret: String,
    stop: AtomicBool,
    codes: Mutex<Vec<String>>,
    answered: Mutex<Answered>,
}

impl Load {
    async fn token(&self, form: &[(&str, &str)]) -> Option<Value> {
        let res = self
            .http
            .post(format!("{}/oauth/token", self.base))
            .basic_auth(&self.client_id, Some(&self.secret))
            .form(form)
            .send()
            .await
            .ok()?;
        if res.status() != 200 {
            return None;
        }
        // A 200 whose body was cut off by the kill was not received: it proves nothing.
        res.json().await.ok()
    }

    async fn client_credentials(self: Arc<Self>) {
        while !self.stop.load(Ordering::SeqCst) {
            if let Some(body) = self.token(&[("grant_type", "client_credentials")]).await {
                let token = body["access_token"].as_str().unwrap().to_owned();
                self.answered.lock().unwrap().access_tokens.push(token);
            }
        }
    }

    /// Redeems codes, then refreshes each refresh token down a chain.
    async fn codes_and_refreshes(self: Arc<Self>) {
        while !self.stop.load(Ordering::SeqCst) {
            let Some(code) = self.codes.lock().unwrap().pop() else {
                return;
            };
            let Some(body) = self
                .token(&[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", REDIRECT),
                    ("code_verifier", VERIFIER),
                ])
                .await
            else {
                continue;
            };
            let mut refresh = body["refresh_token"].as_str().unwrap().to_owned();
            {
                let mut answered = self.answered.lock().unwrap();
                answered.redeemed_codes.push(code);
                answered
                    .access_tokens
                    .push(body["access_token"].as_str().unwrap().to_owned());
            }
            for _ in 0..3 {
                if self.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Some(body) = self
                    .token(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)])
                    .await
                else {
                    break;
                };
                let mut answered = self.answered.lock().unwrap();
                answered.spent_refresh_tokens.push(refresh);
                answered
                    .access_tokens
                    .push(body["access_token"].as_str().unwrap().to_owned());
                refresh = body["refresh_token"].as_str().unwrap().to_owned();
            }
        }
    }
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Text {
    #[diesel(sql_type = diesel::sql_types::Text)]
    value: String,
}

/// The integrity check of each backend; panics with what is wrong.
fn check_integrity(conn: &mut AnyConnection, postgres: bool) {
    if !postgres {
        // PRAGMA integrity_check, as a table-valued function so the column can be named.
        let rows: Vec<Text> =
            diesel::sql_query("SELECT integrity_check AS value FROM pragma_integrity_check")
                .load(conn)
                .unwrap();
        let results: Vec<&str> = rows.iter().map(|r| r.value.as_str()).collect();
        assert_eq!(results, ["ok"], "PRAGMA integrity_check");
    } else {
        let available: Count = diesel::sql_query(
            "SELECT COUNT(*) AS n FROM pg_available_extensions WHERE name = 'amcheck'",
        )
        .get_result(conn)
        .unwrap();
        if available.n > 0 {
            // Installed into this test's schema (first on the search path), dropped with it.
            diesel::sql_query("CREATE EXTENSION IF NOT EXISTS amcheck")
                .execute(conn)
                .unwrap();
            let checked: Count = diesel::sql_query(
                "SELECT COUNT(bt_index_check(c.oid)) AS n FROM pg_index i \
                 JOIN pg_class c ON c.oid = i.indexrelid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 JOIN pg_am am ON am.oid = c.relam \
                 WHERE n.nspname = current_schema() AND am.amname = 'btree'",
            )
            .get_result(conn)
            .unwrap();
            assert!(checked.n > 0, "amcheck found no index to check");
        } else {
            eprintln!("amcheck is not installed: only the row-consistency check runs");
        }
    }
    // No row that grants access may point at a client or user that is not there.
    for (table, column, parent) in [
        ("client_access_tokens", "client_id", "clients"),
        ("client_access_tokens", "user_id", "users"),
        ("client_refresh_tokens", "client_id", "clients"),
        ("client_authorization_codes", "client_id", "clients"),
        ("clients", "user_id", "users"),
    ] {
        let orphans: Count = diesel::sql_query(format!(
            "SELECT COUNT(*) AS n FROM {table} t WHERE t.{column} IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE p.id = t.{column})"
        ))
        .get_result(conn)
        .unwrap();
        assert_eq!(orphans.n, 0, "{table}.{column} rows without a {parent} row");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_answered_before_a_sigkill_survive_it_and_spent_grants_stay_spent() {
    let app = spawn_app().await;
    let client = app.merchant_client(&["--redirect-uri", REDIRECT]);
    let codes = issue_codes(&app, &client, CODES);

    let server = Server::start(&app);
    let load = Arc::new(Load {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
        base: server.base.clone(),
        client_id: client.client_id.clone(),
        secret: client.secret.clone(),
        stop: AtomicBool::new(false),
        codes: Mutex::new(codes),
        answered: Mutex::new(Answered::default()),
    });
    let mut tasks = Vec::new();
    for _ in 0..4 {
        tasks.push(tokio::spawn(load.clone().client_credentials()));
        tasks.push(tokio::spawn(load.clone().codes_and_refreshes()));
    }
    // Let the load run until some of everything was answered, then kill mid-flight.
    let started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let answered = load.answered.lock().unwrap();
        let enough = answered.access_tokens.len() >= 60
            && answered.redeemed_codes.len() >= 8
            && answered.spent_refresh_tokens.len() >= 8;
        drop(answered);
        if enough || started.elapsed() > Duration::from_secs(20) {
            break;
        }
    }
    server.kill();
    load.stop.store(true, Ordering::SeqCst);
    for task in tasks {
        task.await.unwrap();
    }
    let answered = std::mem::take(&mut *load.answered.lock().unwrap());
    assert!(
        answered.redeemed_codes.len() >= 8 && answered.spent_refresh_tokens.len() >= 8,
        "too little traffic before the kill to check anything: {} codes, {} refreshes",
        answered.redeemed_codes.len(),
        answered.spent_refresh_tokens.len()
    );

    check_integrity(&mut app.db.connect(), app.db.is_postgres());

    let server = Server::start(&app);
    let http = reqwest::Client::new();
    let post = |path: &str, form: Vec<(&'static str, String)>| {
        http.post(format!("{}{path}", server.base))
            .basic_auth(&client.client_id, Some(&client.secret))
            .form(&form)
            .send()
    };
    // Introspection first: replaying a spent grant below revokes what it issued.
    for token in &answered.access_tokens {
        let body: Value = post("/oauth/introspect", vec![("token", token.clone())])
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            body["active"], true,
            "a token answered 200 was lost: {body}"
        );
    }
    for code in &answered.redeemed_codes {
        let res = post(
            "/oauth/token",
            vec![
                ("grant_type", "authorization_code".into()),
                ("code", code.clone()),
                ("redirect_uri", REDIRECT.into()),
                ("code_verifier", VERIFIER.into()),
            ],
        )
        .await
        .unwrap();
        assert_eq!(res.status(), 400, "a redeemed code was accepted again");
        assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_grant");
    }
    for refresh in &answered.spent_refresh_tokens {
        let res = post(
            "/oauth/token",
            vec![
                ("grant_type", "refresh_token".into()),
                ("refresh_token", refresh.clone()),
            ],
        )
        .await
        .unwrap();
        assert_eq!(
            res.status(),
            400,
            "a spent refresh token was accepted again"
        );
        assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_grant");
    }
    server.kill();
    check_integrity(&mut app.db.connect(), app.db.is_postgres());
    eprintln!(
        "crash test: {} access tokens, {} codes, {} refresh tokens checked",
        answered.access_tokens.len(),
        answered.redeemed_codes.len(),
        answered.spent_refresh_tokens.len()
    );
}
