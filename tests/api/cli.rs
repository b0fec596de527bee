//! The command line: users, clients and scopes, and bad input that writes nothing.

use diesel::prelude::*;
use latchkey::db::models::{Client, ClientSecret, User};
use latchkey::db::schema::client_secrets;
use latchkey::domain::UserId;

use crate::helpers::spawn_app;

#[tokio::test]
async fn user_create_reads_the_password_from_stdin_and_stores_only_a_hash() {
    let app = spawn_app().await;
    let out = app.cli(
        &[
            "user",
            "create",
            "--username",
            "Yussuf",
            "--name",
            "Yussuf Ali",
            "--email",
            "Y@Example.com",
        ],
        "correct horse battery\n",
    );
    assert!(out.success(), "{}", out.stderr);
    let id: UserId = out.stdout.trim().parse().unwrap();

    let mut conn = app.db.connect();
    let user = User::find_by_username(&mut conn, "yussuf")
        .unwrap()
        .unwrap();
    assert_eq!(user.id, id);
    assert_eq!(user.name, "Yussuf Ali");
    assert_eq!(user.email.as_deref(), Some("y@example.com"));
    assert!(
        user.password.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{}",
        user.password
    );
    assert!(!user.password.contains("correct horse"));
    assert!(
        latchkey::auth::password::Passwords::default()
            .verify("correct horse battery", Some(&user.password))
    );
}

#[tokio::test]
async fn user_create_refuses_bad_input_and_writes_nothing() {
    let app = spawn_app().await;
    app.create_user("taken", "a long password 1");
    let cases: &[(&[&str], &str, &str)] = &[
        (
            &["--username", "ab", "--name", "X"],
            "long enough password\n",
            "--username",
        ),
        (
            &["--username", "newuser", "--name", "X"],
            "short\n",
            "at least 10 characters",
        ),
        (
            &["--username", "newuser", "--name", "X"],
            "NewUser\n",
            "at least 10",
        ),
        (
            &["--username", "newuser1234", "--name", "X"],
            "newuser1234\n",
            "same as the username",
        ),
        (&["--username", "newuser", "--name", "X"], "", "no password"),
        (
            &["--username", "taken", "--name", "X"],
            "long enough password\n",
            "already taken",
        ),
        (
            &["--username", "newuser", "--name", "X", "--email", "nope"],
            "long enough password\n",
            "email",
        ),
    ];
    for (args, stdin, expected) in cases {
        let mut full = vec!["user", "create"];
        full.extend_from_slice(args);
        let out = app.cli(&full, stdin);
        assert!(!out.success(), "{args:?} succeeded");
        assert!(out.stderr.contains(expected), "{args:?}: {}", out.stderr);
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    }
    assert_eq!(app.count("users"), 1);
}

#[tokio::test]
async fn client_create_json_prints_a_secret_that_verifies_and_is_not_stored_in_clear() {
    let app = spawn_app().await;
    app.create_user("merchant", "a long password 1");
    let created = app.create_client(
        "merchant",
        &["--redirect-uri", "https://shop.example/callback"],
    );

    let client_id = created["client_id"].as_str().unwrap();
    let secret = created["client_secret"].as_str().unwrap();
    assert_eq!(client_id.len(), 19);
    assert!(secret.starts_with("lks_"));
    // 256 random bits, base64url: 43 characters after the prefix.
    assert_eq!(secret.len(), 4 + 43);

    // Defaults: confidential, sandbox, three grants, every registered scope (Revenue Monster's
    // four, seeded; not OpenID Connect's).
    assert_eq!(created["environment"], "sandbox");
    assert_eq!(created["confidential"], true);
    assert_eq!(
        created["grant_types"],
        serde_json::json!(["authorization_code", "client_credentials", "refresh_token"])
    );
    assert_eq!(
        created["scopes"],
        serde_json::json!([
            "get_merchant_profile",
            "get_user_profile",
            "manage_payment",
            "manage_store"
        ])
    );
    assert_eq!(
        created["redirect_uris"],
        serde_json::json!(["https://shop.example/callback"])
    );

    let mut conn = app.db.connect();
    let client = Client::find_by_client_id(&mut conn, client_id)
        .unwrap()
        .unwrap();
    let secrets: Vec<ClientSecret> = client_secrets::table
        .filter(client_secrets::client_id.eq(client.id))
        .select(ClientSecret::as_select())
        .load(&mut conn)
        .unwrap();
    assert_eq!(secrets.len(), 1);
    let stored = &secrets[0];
    // The secret verifies against the stored digest, and only the right secret does.
    assert!(app.key.verify_client_secret(secret, &stored.secret_digest));
    assert!(
        !app.key
            .verify_client_secret(&format!("{secret}x"), &stored.secret_digest)
    );
    // The encrypted copy opens with the server key (the portal shows it again this way).
    let opened = app
        .key
        .decrypt(&stored.secret_encrypted, client_id)
        .unwrap();
    assert_eq!(opened.as_slice(), secret.as_bytes());
    assert_eq!(stored.secret_hint, &secret[secret.len() - 4..]);

    // Nothing stored holds the secret in clear.
    let body = &secret[4..];
    for value in [&stored.secret_digest, &stored.secret_encrypted] {
        assert!(!value.contains(body));
    }
    drop(conn);
    if !app.db.is_postgres() {
        // Every byte SQLite wrote (database and write-ahead log) is free of the secret.
        for file in ["latchkey.db", "latchkey.db-wal"] {
            if let Ok(bytes) = std::fs::read(app.data_dir.path().join(file)) {
                assert!(
                    !bytes.windows(body.len()).any(|w| w == body.as_bytes()),
                    "{file} contains the client secret"
                );
            }
        }
    }
}

#[tokio::test]
async fn client_create_text_output_and_list() {
    let app = spawn_app().await;
    app.create_user("merchant", "a long password 1");
    let out = app.cli(
        &[
            "client",
            "create",
            "--owner",
            "merchant",
            "--name",
            "Mobile",
            "--public",
            "--live",
            "--redirect-uri",
            "com.example.mobile:/oauth",
            "--redirect-uri",
            "http://127.0.0.1:8000/cb",
        ],
        "",
    );
    assert!(out.success(), "{}", out.stderr);
    assert!(out.stdout.starts_with("client_id:"), "{}", out.stdout);
    assert!(
        !out.stdout.contains("client_secret"),
        "public clients get no secret"
    );
    assert!(out.stderr.contains("live public client"), "{}", out.stderr);

    let list = app.cli(&["client", "list", "--json"], "");
    assert!(list.success(), "{}", list.stderr);
    let list: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["name"], "Mobile");
    assert_eq!(list[0]["owner"], "merchant");
    assert_eq!(list[0]["environment"], "live");
    assert_eq!(list[0]["confidential"], false);
    assert_eq!(
        list[0]["grant_types"],
        serde_json::json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(app.count("client_secrets"), 0);

    let table = app.cli(&["client", "list"], "");
    assert!(
        table.stdout.contains("Mobile") && table.stdout.contains("public"),
        "{}",
        table.stdout
    );
}

#[tokio::test]
async fn client_create_refuses_bad_input_and_writes_nothing() {
    let app = spawn_app().await;
    app.create_user("merchant", "a long password 1");
    let cases: &[(&[&str], &str)] = &[
        (&["--owner", "nobody"], "no user named `nobody`"),
        (
            &["--owner", "merchant", "--redirect-uri", "not a url"],
            "LATCHKEY",
        ),
        (
            &["--owner", "merchant", "--redirect-uri", "/relative/cb"],
            "absolute URL",
        ),
        (
            &[
                "--owner",
                "merchant",
                "--redirect-uri",
                "https://x.example/cb#f",
            ],
            "fragment",
        ),
        (
            &["--owner", "merchant", "--grant-type", "implicit"],
            "not a grant type",
        ),
        (
            &["--owner", "merchant", "--scope", "manage_unicorns"],
            "not a registered scope",
        ),
        (
            &[
                "--owner",
                "merchant",
                "--public",
                "--grant-type",
                "client_credentials",
            ],
            "public client",
        ),
        (
            &[
                "--owner",
                "merchant",
                "--live",
                "--redirect-uri",
                "http://shop.example/cb",
            ],
            "https://",
        ),
    ];
    for (args, expected) in cases {
        let mut full = vec!["client", "create", "--name", "App"];
        full.extend_from_slice(args);
        let out = app.cli(&full, "");
        assert!(!out.success(), "{args:?} succeeded");
        let expected = if *expected == "LATCHKEY" {
            "--redirect-uri"
        } else {
            expected
        };
        assert!(out.stderr.contains(expected), "{args:?}: {}", out.stderr);
        assert_eq!(
            out.stderr.trim().lines().count(),
            1,
            "{args:?}: {}",
            out.stderr
        );
    }
    assert_eq!(app.count("clients"), 0);
    assert_eq!(app.count("client_secrets"), 0);
}

#[tokio::test]
async fn client_create_with_explicit_grants_and_scopes() {
    let app = spawn_app().await;
    app.create_user("merchant", "a long password 1");
    let out = app.cli(
        &[
            "scope",
            "create",
            "refund_payment",
            "--description",
            "Refund payments for you",
        ],
        "",
    );
    assert!(out.success(), "{}", out.stderr);
    let created = app.create_client(
        "merchant",
        &[
            "--grant-type",
            "password",
            "--grant-type",
            "refresh_token",
            "--scope",
            "refund_payment",
        ],
    );
    assert_eq!(
        created["grant_types"],
        serde_json::json!(["password", "refresh_token"])
    );
    assert_eq!(created["scopes"], serde_json::json!(["refund_payment"]));
}

#[tokio::test]
async fn scopes_are_created_listed_and_unique() {
    let app = spawn_app().await;
    let out = app.cli(
        &[
            "scope",
            "create",
            "manage_terminals",
            "--description",
            "Manage your payment terminals",
        ],
        "",
    );
    assert!(out.success(), "{}", out.stderr);
    let again = app.cli(
        &[
            "scope",
            "create",
            "manage_terminals",
            "--description",
            "Again",
        ],
        "",
    );
    assert!(!again.success());
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
    let bad = app.cli(&["scope", "create", "Bad Scope", "--description", "x"], "");
    assert!(!bad.success());
    let blank = app.cli(&["scope", "create", "blank", "--description", "  "], "");
    assert!(!blank.success());
    assert!(blank.stderr.contains("--description"), "{}", blank.stderr);

    let list = app.cli(&["scope", "list", "--json"], "");
    let list: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "email",
            "get_merchant_profile",
            "get_user_profile",
            "manage_payment",
            "manage_store",
            "manage_terminals",
            "openid",
            "profile"
        ]
    );
    assert_eq!(app.count("scopes"), 8);
}

#[tokio::test]
async fn client_set_marks_a_resource_server_and_refuses_bad_input() {
    let app = spawn_app().await;
    app.create_user("merchant", "a long password 1");
    let created = app.create_client("merchant", &[]);
    let id = created["client_id"].as_str().unwrap();
    assert_eq!(created["resource_server"], false, "not by default");
    let flag = || {
        let mut conn = app.db.connect();
        Client::find_by_client_id(&mut conn, id)
            .unwrap()
            .unwrap()
            .is_resource_server
    };
    let cases: &[(&[&str], &str)] = &[
        (
            &["--client-id", "1234567890", "--resource-server", "true"],
            "no client with client_id",
        ),
        (&["--client-id", id], "nothing to change"),
        (
            &["--client-id", id, "--resource-server", "yes"],
            "true, false",
        ),
    ];
    for (args, message) in cases {
        let mut all = vec!["client", "set"];
        all.extend_from_slice(args);
        let out = app.cli(&all, "");
        assert!(!out.success(), "{args:?} succeeded");
        assert!(out.stderr.contains(message), "{args:?}: {}", out.stderr);
        assert!(!flag(), "{args:?} changed the client");
    }
    let out = app.cli(
        &[
            "client",
            "set",
            "--client-id",
            id,
            "--resource-server",
            "true",
        ],
        "",
    );
    assert!(out.success(), "{}", out.stderr);
    assert!(
        out.stderr.contains("is a resource server"),
        "{}",
        out.stderr
    );
    assert!(flag());
    let created = app.create_client("merchant", &["--resource-server"]);
    assert_eq!(created["resource_server"], true);
}
