//! `private_key_jwt` (RFC 7523 §2.2, OIDC Core §9): a key-based client registered with the
//! CLI authenticates with signed assertions at the token, introspection and revocation
//! endpoints, in both dialects; its keys are checked when registered; the metadata says so.
//! The refusals (replays, `none`, HS256, other keys, audiences, lifetimes) are in the attack
//! suite (`attacks::assertions`).

use serde_json::{Value, json};

use crate::helpers::{SigningKey, spawn_app};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

#[tokio::test]
async fn a_key_based_client_gets_tokens_introspects_and_revokes_with_assertions() {
    let app = spawn_app().await;
    let key = SigningKey::p256("key-1");
    let client = app.key_client(&[&key], &[]);
    let id = client.client_id.as_str();
    let token_url = app.url("/oauth/token");

    // RFC 6749's form dialect, `aud` the token endpoint.
    let assertion = key.assertion(id, &token_url, json!({}));
    let res = app
        .token_form(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", &assertion),
            ],
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.profile(&access).await.status(), 200);

    // Revenue Monster's JSON dialect, camelCase, `aud` the issuer.
    let assertion = key.assertion(id, &app.address, json!({}));
    let res = app
        .token_json(
            None,
            json!({"grantType": "client_credentials", "clientId": id,
                   "clientAssertionType": ASSERTION_TYPE, "clientAssertion": assertion}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert!(body["accessToken"].is_string(), "{body}");

    // Introspection and revocation, each with an assertion for its own URL.
    let introspect = key.assertion(id, &app.url("/oauth/introspect"), json!({}));
    let res = app
        .api
        .post(app.url("/oauth/introspect"))
        .form(&[
            ("token", access.as_str()),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &introspect),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["active"], true, "{body}");
    assert_eq!(body["client_id"], id);

    let revoke = key.assertion(id, &app.url("/oauth/revoke"), json!({}));
    let res = app
        .api
        .post(app.url("/oauth/revoke"))
        .form(&[
            ("token", access.as_str()),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &revoke),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(app.profile(&access).await.status(), 401, "revoked");
    // Each assertion's jti was recorded once.
    assert_eq!(app.count("used_jtis"), 4);
}

#[tokio::test]
async fn the_cli_checks_the_keys_and_lists_the_method() {
    let app = spawn_app().await;
    app.create_user("merchant", crate::helpers::MERCHANT_PASSWORD);
    let write = |name: &str, document: &Value| {
        let path = app.data_dir.path().join(name);
        std::fs::write(&path, document.to_string()).unwrap();
        path.display().to_string()
    };
    let key = SigningKey::p256("k");
    let mut private = key.jwk.clone();
    private["d"] = json!("c2VjcmV0");
    let cases = [
        (
            write("private.json", &json!({"keys": [private]})),
            "private",
        ),
        (
            write(
                "oct.json",
                &json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}),
            ),
            "private",
        ),
        (
            write("twice.json", &json!({"keys": [key.jwk, key.jwk]})),
            "two keys",
        ),
    ];
    for (path, says) in cases {
        let out = app.cli(
            &[
                "client",
                "create",
                "--owner",
                "merchant",
                "--name",
                "Keys",
                "--auth-method",
                "private_key_jwt",
                "--jwks-file",
                &path,
            ],
            "",
        );
        assert!(!out.success(), "{path} was accepted");
        assert!(out.stderr.contains(says), "{path}: {}", out.stderr);
    }
    let out = app.cli(
        &[
            "client",
            "create",
            "--owner",
            "merchant",
            "--name",
            "Keys",
            "--auth-method",
            "private_key_jwt",
        ],
        "",
    );
    assert!(
        !out.success() && out.stderr.contains("--jwks-file"),
        "{}",
        out.stderr
    );
    assert_eq!(app.count("clients"), 0, "nothing was created");

    let good = write("good.json", &json!({"keys": [key.jwk]}));
    let out = app.cli(
        &[
            "client",
            "create",
            "--owner",
            "merchant",
            "--name",
            "Keys",
            "--json",
            "--auth-method",
            "private_key_jwt",
            "--jwks-file",
            &good,
        ],
        "",
    );
    assert!(out.success(), "{}", out.stderr);
    let created: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(created["token_endpoint_auth_method"], "private_key_jwt");
    assert!(created["client_secret"].is_null(), "no secret: {created}");
    assert_eq!(app.count("client_secrets"), 0);
}

#[tokio::test]
async fn the_metadata_advertises_private_key_jwt() {
    let app = spawn_app().await;
    let meta: Value = app
        .get("/.well-known/oauth-authorization-server")
        .await
        .json()
        .await
        .unwrap();
    for endpoint in ["token", "introspection", "revocation"] {
        let methods = &meta[format!("{endpoint}_endpoint_auth_methods_supported")];
        assert!(
            methods
                .as_array()
                .unwrap()
                .contains(&json!("private_key_jwt")),
            "{endpoint}: {methods}"
        );
        let algs = &meta[format!("{endpoint}_endpoint_auth_signing_alg_values_supported")];
        assert_eq!(
            algs,
            &json!(["RS256", "PS256", "ES256", "EdDSA"]),
            "{endpoint}"
        );
    }
}
