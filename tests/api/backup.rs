//! `latchkey backup`: a restore drill. Tokens are issued without pause while the backup runs;
//! a server started on the copy must know every token that was answered before the backup
//! began. On PostgreSQL the command says to use pg_dump.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{TestApp, spawn_app};
use crate::served::Served;

/// Issues client_credentials tokens until told to stop; each with the moment it was answered.
async fn issue(
    base: String,
    client_id: String,
    secret: String,
    stop: Arc<AtomicBool>,
    answered: Arc<Mutex<Vec<(Instant, String)>>>,
) {
    let http = reqwest::Client::new();
    while !stop.load(Ordering::SeqCst) {
        let res = http
            .post(format!("{base}/oauth/token"))
            .basic_auth(&client_id, Some(&secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        let token = body["access_token"].as_str().unwrap().to_owned();
        answered.lock().unwrap().push((Instant::now(), token));
    }
}

fn env_with(app: &TestApp, pairs: &[(&str, String)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = app
        .cli_env()
        .into_iter()
        .filter(|(k, _)| pairs.iter().all(|(p, _)| p != k))
        .collect();
    env.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())));
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_taken_under_load_restores_every_token_answered_before_it() {
    let app = spawn_app().await;
    if app.db.is_postgres() {
        let out = app.cli(&["backup", "--to", "/tmp/never-written.db"], "");
        assert_eq!(out.status.code(), Some(1));
        assert!(out.stderr.contains("pg_dump"), "{}", out.stderr);
        assert!(!std::path::Path::new("/tmp/never-written.db").exists());
        return;
    }
    let client = app.merchant_client(&[]);
    // Both servers are one issuer, as instances behind one name are: it is in every token.
    let issuer = ("LATCHKEY_ISSUER", "http://latchkey.test".to_owned());
    let served = Served::start(
        &env_with(&app, &[("LATCHKEY_WORKERS", "2".into()), issuer.clone()]),
        &[],
    );
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(Mutex::new(Vec::new()));
    let load: Vec<_> = (0..3)
        .map(|_| {
            tokio::spawn(issue(
                served.base(),
                client.client_id.clone(),
                client.secret.clone(),
                stop.clone(),
                answered.clone(),
            ))
        })
        .collect();
    // Some tokens first, then the backup while the load goes on.
    while answered.lock().unwrap().len() < 30 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let copy = app.data_dir.path().join("backup").join("copy.db");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    let began = Instant::now();
    let env = app.cli_env();
    let to = copy.display().to_string();
    let out = tokio::task::spawn_blocking(move || {
        crate::helpers::run_cli(&["backup", "--to", &to], "", &env)
    })
    .await
    .unwrap();
    assert!(out.success(), "{}", out.stderr);
    assert!(out.stderr.contains("Copied"), "{}", out.stderr);
    // The load went on during the backup and after it.
    let during = answered.lock().unwrap().len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    for task in load {
        task.await.unwrap();
    }
    let answered = answered.lock().unwrap().clone();
    assert!(
        answered.len() > during,
        "no tokens were issued after the backup"
    );
    let before: Vec<&String> = answered
        .iter()
        .filter(|(at, _)| *at < began)
        .map(|(_, token)| token)
        .collect();
    assert!(before.len() >= 30);

    // A second backup to the same file is refused; the first is untouched.
    let size = std::fs::metadata(&copy).unwrap().len();
    let again = app.cli(&["backup", "--to", &copy.display().to_string()], "");
    assert_eq!(again.status.code(), Some(1));
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
    assert_eq!(std::fs::metadata(&copy).unwrap().len(), size);

    // Start on the copy: every token answered before the backup began is active there.
    drop(served);
    let restored = Served::start(
        &env_with(
            &app,
            &[
                (
                    "LATCHKEY_DATABASE_URL",
                    format!("sqlite://{}", copy.display()),
                ),
                issuer,
            ],
        ),
        &[],
    );
    let http = reqwest::Client::new();
    for token in &before {
        let res = http
            .post(format!("{}/oauth/introspect", restored.base()))
            .basic_auth(&client.client_id, Some(&client.secret))
            .form(&[("token", token.as_str())])
            .send()
            .await
            .unwrap();
        let body: Value = res.json().await.unwrap();
        assert_eq!(
            body["active"], true,
            "a token answered before the backup is gone: {body}"
        );
    }
    // The copy is a sound database.
    #[derive(diesel::QueryableByName)]
    struct Check {
        #[diesel(sql_type = diesel::sql_types::Text)]
        integrity_check: String,
    }
    use diesel::{Connection as _, RunQueryDsl as _};
    let mut conn = diesel::SqliteConnection::establish(&copy.display().to_string()).unwrap();
    let rows: Vec<Check> = diesel::sql_query("PRAGMA integrity_check")
        .load(&mut conn)
        .unwrap();
    let results: Vec<&str> = rows.iter().map(|r| r.integrity_check.as_str()).collect();
    assert_eq!(results, ["ok"]);
}
