//! Migrations, the seed schema, and what survives a restart.

use std::collections::BTreeSet;
use std::path::Path;

use diesel::connection::SimpleConnection as _;
use diesel::prelude::*;
use latchkey::db::models::{Client, ClientSecret, Scope, User};
use latchkey::db::schema;

use crate::helpers::{restart, spawn_app};

fn migration_dirs(backend: &str) -> BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| {
            for file in ["up.sql", "down.sql"] {
                assert!(
                    e.path().join(file).is_file(),
                    "{:?} has no {file}",
                    e.path()
                );
            }
            e.file_name().to_string_lossy().into_owned()
        })
        .collect()
}

#[test]
fn both_migration_trees_have_the_same_migrations() {
    let sqlite = migration_dirs("sqlite");
    let postgres = migration_dirs("postgres");
    assert!(!sqlite.is_empty());
    assert_eq!(
        sqlite, postgres,
        "migrations/sqlite and migrations/postgres differ"
    );

    // What is embedded in the binary matches the folders too.
    let (embedded_sqlite, embedded_postgres) = latchkey::db::migration_names();
    assert_eq!(embedded_sqlite, embedded_postgres);
    assert_eq!(embedded_sqlite.len(), sqlite.len());
}

/// The seed's tables and columns (shared/seeds/000), with `[]string` made TEXT.
const SEED_COLUMNS: &[(&str, &str)] = &[
    ("users", "id, name, username, password"),
    (
        "clients",
        "id, client_id, name, home_page_url, logo_url, privacy_policy_url, user_id, is_live, redirect_uri",
    ),
    (
        "client_access_tokens",
        "id, client_id, user_id, client_refresh_token_id, access_token, grant_type, scope, audience, expired_at",
    ),
    (
        "client_refresh_tokens",
        "id, client_id, user_id, refresh_token, grant_type, scope, audience, expired_at",
    ),
    (
        "client_authorization_codes",
        "id, client_id, user_id, code, scope, is_used, redirect_uri, expired_at",
    ),
];

#[tokio::test]
async fn the_seed_tables_exist_with_their_columns() {
    let app = spawn_app().await;
    let mut conn = app.db.connect();
    for (table, columns) in SEED_COLUMNS {
        conn.batch_execute(&format!("SELECT {columns} FROM {table} LIMIT 0"))
            .unwrap_or_else(|e| panic!("{table}: {e}"));
    }
    // schema.rs agrees with the migrations: loading every column of every table works.
    schema::users::table
        .select(User::as_select())
        .load(&mut conn)
        .unwrap();
    schema::clients::table
        .select(Client::as_select())
        .load(&mut conn)
        .unwrap();
    schema::client_secrets::table
        .select(ClientSecret::as_select())
        .load(&mut conn)
        .unwrap();
    schema::client_access_tokens::table
        .select(schema::client_access_tokens::all_columns)
        .load::<(
            i64,
            i64,
            i64,
            Option<i64>,
            String,
            String,
            String,
            String,
            Option<i64>,
            chrono::NaiveDateTime,
            chrono::NaiveDateTime,
            Option<chrono::NaiveDateTime>,
        )>(&mut conn)
        .unwrap();
    schema::client_refresh_tokens::table
        .count()
        .get_result::<i64>(&mut conn)
        .unwrap();
    schema::client_authorization_codes::table
        .count()
        .get_result::<i64>(&mut conn)
        .unwrap();
}

#[tokio::test]
async fn scopes_are_seeded_with_get_user_profile_and_openid_connects() {
    let app = spawn_app().await;
    let mut conn = app.db.connect();
    let scopes: Vec<(String, String)> = Scope::all(&mut conn)
        .unwrap()
        .into_iter()
        .map(|s| (s.name, s.description))
        .collect();
    let expected = [
        ("email", "See your email address"),
        ("get_user_profile", "Read your user profile"),
        ("openid", "Sign you in with your Latchkey account"),
        ("profile", "See your name and username"),
    ];
    assert_eq!(scopes, expected.map(|(n, d)| (n.to_owned(), d.to_owned())));
}

#[tokio::test]
async fn foreign_keys_are_enforced() {
    let app = spawn_app().await;
    let mut conn = app.db.connect();
    // A client whose owner does not exist is refused on both backends (SQLite needs the pragma).
    let err = conn
        .batch_execute(
            "INSERT INTO clients (client_id, name, user_id, grant_types, scopes) VALUES ('x', 'x', 999, '', '')",
        )
        .unwrap_err();
    assert!(
        err.to_string().to_lowercase().contains("foreign key"),
        "{err}"
    );
}

#[tokio::test]
async fn sqlite_connections_use_wal_and_a_busy_timeout() {
    let app = spawn_app().await;
    if app.db.is_postgres() {
        return;
    }
    #[derive(QueryableByName)]
    struct Mode {
        #[diesel(sql_type = diesel::sql_types::Text)]
        journal_mode: String,
    }
    #[derive(QueryableByName)]
    struct Timeout {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        timeout: i64,
    }
    let database = latchkey::db::open(&app.db.url, 2).unwrap();
    let mut conn = database.pool.get().unwrap();
    let mode: Mode = diesel::sql_query("PRAGMA journal_mode")
        .get_result(&mut *conn)
        .unwrap();
    assert_eq!(mode.journal_mode, "wal");
    let timeout: Timeout = diesel::sql_query("PRAGMA busy_timeout")
        .get_result(&mut *conn)
        .unwrap();
    assert_eq!(timeout.timeout, 3000);
}

#[tokio::test]
async fn a_restart_keeps_all_data_and_migrating_again_is_a_no_op() {
    let app = spawn_app().await;
    app.create_user("keeper", "a long password 1");
    let client = app.create_client("keeper", &[]);
    let app = restart(app).await;
    assert_eq!(app.get("/readyz").await.status(), 200);
    let mut conn = app.db.connect();
    assert!(
        User::find_by_username(&mut conn, "keeper")
            .unwrap()
            .is_some()
    );
    let stored =
        Client::find_by_client_id(&mut conn, client["client_id"].as_str().unwrap()).unwrap();
    assert!(stored.is_some());

    let migrate = app.cli(&["migrate"], "");
    assert!(migrate.success(), "{}", migrate.stderr);
    assert_eq!(app.count("users"), 1);
}
