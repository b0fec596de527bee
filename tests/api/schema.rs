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
}

/// Loads every row of `table` as its model, so each column's type in `schema.rs` and the model
/// meets a real value written by the server.
macro_rules! load_all {
    ($conn:expr, $table:ident, $model:ty) => {{
        let rows = schema::$table::table
            .select(<$model>::as_select())
            .load(&mut $conn)
            .unwrap_or_else(|e| panic!("{}: {e}", stringify!($table)));
        assert!(
            !rows.is_empty(),
            "{} has no rows to load",
            stringify!($table)
        );
        rows.len()
    }};
}

/// schema.rs and the models agree with the migrations: after a day's work has written a row
/// into every table, every row of every table loads as its model, every column read.
#[tokio::test]
async fn every_table_loads_every_column_as_its_model() {
    use crate::helpers::{CALLBACK, authorize_and_allow, query_of, setup};
    use latchkey::db::models::{
        AccessToken, AuditEvent, AuthorizationCode, ClientChanges, Consent, EmailToken,
        LoginAttempt, RefreshToken, SessionRow, SigningKeyRow,
    };

    let app = spawn_app().await;
    let client = setup(&app);
    // A consent, a code, a session and a sign-in counter.
    let callback = authorize_and_allow(
        &app,
        &[
            ("client_id", &client.client_id),
            ("response_type", "code"),
            ("redirect_uri", CALLBACK),
            ("scope", "get_user_profile"),
        ],
    )
    .await;
    let code = query_of(&callback)["code"].clone();
    // Access and refresh tokens.
    let res = app
        .token_form(
            Some(&client),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", CALLBACK),
            ],
        )
        .await;
    assert_eq!(res.status(), 200);
    // An email token (a reset link) and an audit event (a sign-in).
    let res = app
        .sign_up_in(
            &app.new_browser(),
            "auditor",
            "auditor@example.com",
            "auditor password 1",
        )
        .await;
    assert_eq!(res.status(), 303);
    let sent = app.outbox.messages().len();
    let res = app
        .post_form_in(
            &app.new_browser(),
            "/password/forgot",
            "/password/forgot",
            &[("email", "auditor@example.com")],
        )
        .await;
    assert_eq!(res.status(), 303);
    let reset = app.mail_to("auditor@example.com", sent).await;
    assert_eq!(reset.subject, "Reset your Latchkey password");
    let res = app
        .post_form_in(
            &app.new_browser(),
            "/login",
            "/login",
            &[("username", "auditor"), ("password", "auditor password 1")],
        )
        .await;
    assert_eq!(res.status(), 303);
    // A failed sign-in leaves a counter.
    app.post_form_in(
        &app.new_browser(),
        "/login",
        "/login",
        &[("username", "nobody"), ("password", "wrong password")],
    )
    .await;

    let mut conn = app.db.connect();
    load_all!(conn, users, User);
    load_all!(conn, clients, Client);
    load_all!(conn, client_secrets, ClientSecret);
    load_all!(conn, client_changes, ClientChanges);
    load_all!(conn, client_access_tokens, AccessToken);
    load_all!(conn, client_refresh_tokens, RefreshToken);
    load_all!(conn, client_authorization_codes, AuthorizationCode);
    load_all!(conn, consents, Consent);
    load_all!(conn, scopes, Scope);
    load_all!(conn, sessions, SessionRow);
    load_all!(conn, signing_keys, SigningKeyRow);
    load_all!(conn, email_tokens, EmailToken);
    load_all!(conn, login_attempts, LoginAttempt);
    load_all!(conn, audit_events, AuditEvent);
}

#[tokio::test]
async fn scopes_are_seeded_with_revenue_monsters_and_openid_connects() {
    let app = spawn_app().await;
    let mut conn = app.db.connect();
    let scopes: Vec<(String, String)> = Scope::all(&mut conn)
        .unwrap()
        .into_iter()
        .map(|s| (s.name, s.description))
        .collect();
    let expected = [
        ("email", "See your email address"),
        ("get_merchant_profile", "Read your business profile"),
        ("get_user_profile", "Read your user profile"),
        (
            "manage_payment",
            "Take and refund payments for your business",
        ),
        ("manage_store", "Manage your stores"),
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
    let database = latchkey::db::open(&app.db.url, 2, app.settings.client_refresh()).unwrap();
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
