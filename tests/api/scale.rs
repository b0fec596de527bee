//! Two `latchkey serve` instances on one database act as one server: sessions, tokens,
//! revocation, key rotation, the authorization flow, single-use codes, the login lockout and
//! changes to applications (which each instance caches) are all shared. (CI runs this on PostgreSQL, where several instances are meant to run; on SQLite
//! the instances share the file.)

use latchkey::startup::Application;
use serde_json::Value;

use crate::helpers::{
    CALLBACK, CHALLENGE, END_USER, END_USER_PASSWORD, VERIFIER, authorize_path, location, query_of,
    setup,
};
use crate::helpers::{Html, MERCHANT_PASSWORD, TestApp, TestClient, once_seen, spawn_app_with};

/// The first instance. Instances behind one load balancer share one issuer URL (they must:
/// it is in every token), so the tests set one rather than default to each instance's port.
async fn spawn_app() -> TestApp {
    spawn_app_with(|settings| {
        settings.issuer = Some(url::Url::parse("http://latchkey.test").unwrap());
        None
    })
    .await
}

/// A second instance on the same database and settings; returns its base URL.
async fn second_instance(app: &TestApp) -> String {
    let (mailer, _) = latchkey::email::Mailer::memory(app.settings.mail_from.clone());
    let other = Application::build_with_mailer(app.settings.clone(), mailer)
        .await
        .unwrap();
    let address = format!("http://127.0.0.1:{}", other.port());
    tokio::spawn(other.run_until_stopped());
    address
}

#[tokio::test]
async fn a_session_started_on_one_instance_works_and_ends_on_the_other() {
    let a = spawn_app().await;
    let b = second_instance(&a).await;
    a.create_user("merchant", MERCHANT_PASSWORD);
    a.log_in("merchant", MERCHANT_PASSWORD).await;
    // The same browser (cookies are per host, not per port) uses the portal on B.
    let res = a
        .api
        .get(format!("{b}/developer/applications"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let page = Html::parse(&res.text().await.unwrap());
    // A form shown by B is accepted by A: the CSRF token lives in the shared session.
    let res = a
        .api
        .post(a.url("/logout"))
        .form(&[("csrf_token", page.csrf())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let res = a
        .api
        .get(format!("{b}/developer/applications"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "logout on A ends the session on B");
}

#[tokio::test]
async fn tokens_revocation_and_key_rotation_are_shared() {
    let a = spawn_app().await;
    let b = second_instance(&a).await;
    let client = a.merchant_client(&[]);
    let body: Value = a
        .token_form(Some(&client), &[("grant_type", "client_credentials")])
        .await
        .json()
        .await
        .unwrap();
    let token = body["access_token"].as_str().unwrap().to_owned();
    let on_b = |path: &str| format!("{b}{path}");

    let res = a
        .api
        .get(on_b("/v1/user/profile"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "a token from A works at B");
    let introspect = |token: String| {
        a.api
            .post(on_b("/oauth/introspect"))
            .basic_auth(&client.client_id, Some(&client.secret))
            .form(&[("token", token)])
            .send()
    };
    assert_eq!(
        introspect(token.clone())
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()["active"],
        true
    );
    let res = a
        .api
        .post(a.url("/oauth/revoke"))
        .basic_auth(&client.client_id, Some(&client.secret))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        a.api
            .get(on_b("/v1/user/profile"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        introspect(token.clone())
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()["active"],
        false
    );

    // Rotate while both run: both sign with the new key within LATCHKEY_KEY_REFRESH (1 s here).
    let out = a.cli(&["keys", "rotate"], "");
    assert!(out.success(), "{}", out.stderr);
    let new_kid = out.stdout.trim().to_owned();
    for base in [a.address.clone(), b.clone()] {
        let mut signed_with_new = false;
        for _ in 0..40 {
            let res = a
                .api
                .post(format!("{base}/oauth/token"))
                .basic_auth(&client.client_id, Some(&client.secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap();
            let token: Value = res.json().await.unwrap();
            let kid = jsonwebtoken::decode_header(token["access_token"].as_str().unwrap())
                .unwrap()
                .kid
                .unwrap();
            if kid == new_kid {
                signed_with_new = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(signed_with_new, "{base} never signed with {new_kid}");
        let jwks: Value = a
            .api
            .get(format!("{base}/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            jwks["keys"].as_array().unwrap().len(),
            2,
            "{base} publishes both keys"
        );
    }
}

#[tokio::test]
async fn the_authorization_flow_started_on_one_instance_finishes_on_the_other() {
    let a = spawn_app().await;
    let b = second_instance(&a).await;
    let client = setup(&a);
    let res = a
        .get(&authorize_path(&[
            ("client_id", &client.client_id),
            ("response_type", "code"),
            ("redirect_uri", CALLBACK),
            ("state", "across"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ]))
        .await;
    assert_eq!(res.status(), 303);
    // Sign in and decide on B.
    let login = Html::parse(
        &a.api
            .get(format!("{b}{}", location(&res)))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    let res = a
        .api
        .post(format!("{b}/login"))
        .form(&[
            ("username", END_USER),
            ("password", END_USER_PASSWORD),
            ("next", "/oauth/authorize/resume"),
            ("csrf_token", &login.csrf()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let consent = Html::parse(
        &a.api
            .get(format!("{b}/oauth/authorize/resume"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    let res = a
        .api
        .post(format!("{b}/oauth/authorize"))
        .form(&[
            ("csrf_token", consent.csrf()),
            (
                "request_id",
                consent.attr("input[name=request_id]", "value").unwrap(),
            ),
            ("decision", "allow".to_owned()),
        ])
        .send()
        .await
        .unwrap();
    let params = query_of(&location(&res));
    assert_eq!(params["state"], "across");
    let code = params["code"].clone();

    // Twenty concurrent redemptions split across A and B: exactly one succeeds.
    let requests = (0..20).map(|i| {
        let base = if i % 2 == 0 {
            a.address.clone()
        } else {
            b.clone()
        };
        let req = a
            .api
            .post(format!("{base}/oauth/token"))
            .basic_auth(&client.client_id, Some(&client.secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", CALLBACK),
                ("code_verifier", VERIFIER),
            ]);
        async move { req.send().await.unwrap().status().as_u16() }
    });
    let statuses = futures_util::future::join_all(requests).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 400),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn the_login_lockout_counts_failures_on_both_instances() {
    let a = spawn_app().await;
    let b = second_instance(&a).await;
    a.create_user("merchant", MERCHANT_PASSWORD);
    let attempt = |base: String, password: &'static str| {
        let api = a.new_browser();
        async move {
            let page = Html::parse(
                &api.get(format!("{base}/login"))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap(),
            );
            let res = api
                .post(format!("{base}/login"))
                .form(&[
                    ("username", "merchant"),
                    ("password", password),
                    ("csrf_token", &page.csrf()),
                ])
                .send()
                .await
                .unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        }
    };
    for i in 0..5 {
        let base = if i % 2 == 0 {
            a.address.clone()
        } else {
            b.clone()
        };
        assert_eq!(attempt(base, "wrong password!").await.0, 422);
    }
    for base in [a.address.clone(), b.clone()] {
        let (status, body) = attempt(base.clone(), MERCHANT_PASSWORD).await;
        assert_eq!(status, 422, "{base}");
        assert!(body.contains("Try again in 15 minutes"), "{base}");
    }
}

#[tokio::test]
async fn a_burst_of_guesses_across_both_instances_gets_five_checked() {
    let a = spawn_app().await;
    let b = second_instance(&a).await;
    let client = a.merchant_client(&["--grant-type", "password"]);
    a.create_user("target", MERCHANT_PASSWORD);
    // Thirty wrong passwords at once, half to each instance: each instance checks a few at a
    // time, and both take their slots from the same row.
    let tasks: Vec<_> = (0..30)
        .map(|i| {
            let base = if i % 2 == 0 { &a.address } else { &b };
            let request = a
                .api
                .post(format!("{base}/oauth/token"))
                .basic_auth(&client.client_id, Some(&client.secret))
                .form(&[
                    ("grant_type", "password"),
                    ("username", "target"),
                    ("password", "wrong password!"),
                ]);
            tokio::spawn(async move { request.send().await.unwrap().status().as_u16() })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 400);
    }
    assert_eq!(
        failures(&a, "account:target"),
        5,
        "every checked guess is a failure"
    );
    for base in [a.address.clone(), b.clone()] {
        let res = a
            .api
            .post(format!("{base}/oauth/token"))
            .basic_auth(&client.client_id, Some(&client.secret))
            .form(&[
                ("grant_type", "password"),
                ("username", "target"),
                ("password", MERCHANT_PASSWORD),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{base}");
        let body: Value = res.json().await.unwrap();
        let text = body["error_description"].as_str().unwrap();
        assert!(
            text.contains("Too many failed sign-in attempts"),
            "{base}: {text}"
        );
    }
}

/// The reservation itself, from many connections at once (as many instances' pools would be):
/// each of a window's slots goes to one attempt, and the failure that used the last one locks.
#[tokio::test]
async fn reservations_from_many_connections_at_once_hand_out_each_slot_once() {
    use latchkey::auth::throttle;
    let app = spawn_app().await;
    let start = std::sync::Barrier::new(16);
    let now = chrono::Utc::now().naive_utc();
    let (admitted, locks) = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let mut conn = app.db.connect();
                let start = &start;
                scope.spawn(move || {
                    start.wait();
                    let keys = [("account:shared", throttle::ACCOUNT)];
                    match throttle::reserve(&mut conn, &keys, now).unwrap() {
                        Ok(attempt) => (
                            1,
                            usize::from(attempt.failed(&mut conn, now).unwrap().is_some()),
                        ),
                        Err(_) => (0, 0),
                    }
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .fold((0, 0), |(a, l), (da, dl)| (a + da, l + dl))
    });
    assert_eq!(admitted, 5, "attempts let in");
    assert_eq!(locks, 1, "failures that set the lock");
    assert_eq!(failures(&app, "account:shared"), 5);
}

/// The failures the database holds for a throttle key (0 without a row).
fn failures(app: &TestApp, key: &str) -> i64 {
    use diesel::prelude::*;
    use latchkey::db::schema::login_attempts;
    login_attempts::table
        .filter(login_attempts::throttle_key.eq(key))
        .select(login_attempts::failures)
        .first::<i64>(&mut app.db.connect())
        .optional()
        .unwrap()
        .unwrap_or(0)
}

#[tokio::test]
async fn instances_starting_together_on_a_fresh_database_migrate_once() {
    let data_dir = tempfile::tempdir().unwrap();
    let db = crate::helpers::TestDatabase::create(data_dir.path());
    let settings = crate::helpers::test_settings(
        data_dir.path(),
        &db,
        &latchkey::config::SecretKeyMaterial(vec![7; 32]),
    );
    let starts = (0..3).map(|_| {
        let settings = settings.clone();
        async move {
            let (mailer, _) = latchkey::email::Mailer::memory(settings.mail_from.clone());
            Application::build_with_mailer(settings, mailer)
                .await
                .map(|app| app.port())
        }
    });
    for started in futures_util::future::join_all(starts).await {
        assert!(started.is_ok(), "{:?}", started.err());
    }
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    use diesel::RunQueryDsl as _;
    let applied: Count = diesel::sql_query("SELECT COUNT(*) AS n FROM __diesel_schema_migrations")
        .get_result(&mut db.connect())
        .unwrap();
    let (expected, _) = latchkey::db::migration_names();
    assert_eq!(
        applied.n,
        expected.len() as i64,
        "each migration ran exactly once"
    );
}

#[tokio::test]
async fn the_secret_key_can_be_rotated_without_losing_clients_or_keys() {
    let a = spawn_app().await;
    let client = a.merchant_client(&[]);
    let before: Value = a
        .token_form(Some(&client), &[("grant_type", "client_credentials")])
        .await
        .json()
        .await
        .unwrap();
    let old_token = before["access_token"].as_str().unwrap().to_owned();
    let kid = jsonwebtoken::decode_header(&old_token)
        .unwrap()
        .kid
        .unwrap();

    let new_key = "ab".repeat(32);
    let out = a.cli(&["secret-key", "rotate"], &format!("{new_key}\n"));
    assert!(out.success(), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("Moved 1 client secrets, 1 signing keys and 0 TOTP secrets"),
        "{}",
        out.stderr
    );
    // The stored digest changed: nothing verifies under the old key any more.
    let again = a.cli(&["secret-key", "rotate"], &format!("{new_key}\n"));
    assert!(
        !again.success(),
        "the old key no longer decrypts: {}",
        again.stderr
    );

    // An instance started with the new key serves the same client and the same signing key.
    let mut settings = a.settings.clone();
    settings.secret_key = Some(latchkey::config::parse_secret_key(&new_key).unwrap());
    let (mailer, _) = latchkey::email::Mailer::memory(settings.mail_from.clone());
    let b = Application::build_with_mailer(settings, mailer)
        .await
        .unwrap();
    let b_url = format!("http://127.0.0.1:{}", b.port());
    tokio::spawn(b.run_until_stopped());
    let res = a
        .api
        .post(format!("{b_url}/oauth/token"))
        .basic_auth(&client.client_id, Some(&client.secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let after: Value = res.json().await.unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(after["access_token"].as_str().unwrap())
            .unwrap()
            .kid
            .unwrap(),
        kid
    );
    let res = a
        .api
        .get(format!("{b_url}/v1/user/profile"))
        .bearer_auth(&old_token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        200,
        "tokens from before the rotation still verify"
    );
}

async fn token_status(app: &TestApp, base: &str, client: &TestClient) -> u16 {
    app.api
        .post(format!("{base}/oauth/token"))
        .basic_auth(&client.client_id, Some(&client.secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn introspected_active(app: &TestApp, base: &str, caller: &TestClient, token: &str) -> bool {
    let body: Value = app
        .api
        .post(format!("{base}/oauth/introspect"))
        .basic_auth(&caller.client_id, Some(&caller.secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["active"] == true
}

/// Both instances hold the client in their caches. A change made through one takes effect on it
/// at once and on the other within a second; one made by neither (the CLI, SQL by hand) on both
/// within a second.
#[tokio::test]
async fn a_change_to_a_client_reaches_every_instance_within_a_second() {
    let a = spawn_app().await;
    let b = second_instance(&a).await;
    let on_a = a.address.clone();
    let client = a.merchant_client(&[]);
    a.log_in("merchant", MERCHANT_PASSWORD).await;
    for base in [&on_a, &b] {
        assert_eq!(token_status(&a, base, &client).await, 200);
    }

    // Disabled in A's portal.
    let show = format!("/developer/applications/{}", client.client_id);
    let res = a.disable_app(&show).await;
    assert_eq!(res.status(), 303);
    assert_eq!(token_status(&a, &on_a, &client).await, 401, "at once on A");
    once_seen("disabled, on B", async || {
        token_status(&a, &b, &client).await == 401
    })
    .await;
    a.enable_app(&show).await;
    assert_eq!(token_status(&a, &on_a, &client).await, 200, "at once on A");
    once_seen("enabled again, on B", async || {
        token_status(&a, &b, &client).await == 200
    })
    .await;

    // Marked a resource server by the operator's CLI: the client may now introspect another
    // merchant's token.
    a.create_user("other", "another long password");
    let created = a.create_client("other", &[]);
    let other = TestClient {
        client_id: created["client_id"].as_str().unwrap().to_owned(),
        secret: created["client_secret"].as_str().unwrap().to_owned(),
        owner_id: 0,
    };
    let body: Value = a
        .token_form(Some(&other), &[("grant_type", "client_credentials")])
        .await
        .json()
        .await
        .unwrap();
    let token = body["access_token"].as_str().unwrap().to_owned();
    for base in [&on_a, &b] {
        assert!(!introspected_active(&a, base, &client, &token).await);
    }
    let out = a.cli(
        &[
            "client",
            "set",
            "--client-id",
            &client.client_id,
            "--resource-server",
            "true",
        ],
        "",
    );
    assert!(out.success(), "{}", out.stderr);
    for (what, base) in [("marked by the CLI, on A", &on_a), ("... on B", &b)] {
        once_seen(what, async || {
            introspected_active(&a, base, &client, &token).await
        })
        .await;
    }

    // The owner's account deleted by hand in SQL: the client goes with it (the foreign key
    // cascades).
    use diesel::RunQueryDsl as _;
    diesel::sql_query("DELETE FROM users WHERE username = 'merchant'")
        .execute(&mut a.db.connect())
        .unwrap();
    for (what, base) in [("owner deleted, on A", &on_a), ("... on B", &b)] {
        once_seen(what, async || token_status(&a, base, &client).await == 401).await;
    }
}
