//! Attacks on `private_key_jwt` client authentication (RFC 7523 §3, RFC 7521 §4.2, RFC 8725):
//! a replayed assertion, `alg: none`, HS256 keyed with the public key, another key, another
//! client's assertion, a foreign audience, an expired or too long-lived one, missing claims,
//! mixing methods, and the two kinds of client crossing over.

use serde_json::json;

use super::{Expect, H, check};
use crate::helpers::{SigningKey, spawn_app};

const TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const BASIC: &str = r#"Basic realm="latchkey", charset="UTF-8""#;

/// Form fields of a case, beside the grant type.
type Fields<'a> = Vec<(&'a str, String)>;

fn invalid_client() -> Expect {
    Expect::new(401)
        .error("invalid_client")
        .no_store()
        .header(H::Is("www-authenticate", BASIC))
}

fn invalid_request() -> Expect {
    Expect::new(400).error("invalid_request").no_store()
}

/// `header.payload.` with the header `{"alg":"none"}` and the payload of `signed`.
fn unsigned(signed: &str) -> String {
    let payload = signed.split('.').nth(1).unwrap();
    format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.")
}

/// `signed`'s claims signed again with HS256, the "secret" being the client's public JWK as
/// the server stores it (the classic key-confusion attack).
fn hs256_with_public_key(signed: &str, jwk: &serde_json::Value) -> String {
    let claims: serde_json::Value = jsonwebtoken::dangerous::insecure_decode(signed)
        .unwrap()
        .claims;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = jwk["kid"].as_str().map(Into::into);
    let key = jsonwebtoken::EncodingKey::from_secret(jwk.to_string().as_bytes());
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

#[tokio::test]
async fn forged_replayed_and_misdirected_assertions_are_refused() {
    let app = spawn_app().await;
    let key = SigningKey::p256("key-1");
    let stranger = SigningKey::p256("key-1");
    let client = app.key_client(&[&key], &[]);
    let other = app.key_client(&[&stranger], &[]);
    let secret_client = app.merchant_client(&[]);
    let id = client.client_id.as_str();
    let aud = app.url("/oauth/token");
    let now = chrono::Utc::now().timestamp();
    let good = |changes| key.assertion(id, &aud, changes);

    let replayed = good(json!({}));
    let first = good(json!({}));
    // (name, Authorization header, form fields, expectation). Each row's assertion is new
    // unless the row is about reuse.
    let rows: Vec<(&str, Option<String>, Fields, Expect)> = vec![
        (
            "baseline",
            None,
            vec![("client_assertion", replayed.clone())],
            Expect::new(200).no_store(),
        ),
        (
            "the same assertion again",
            None,
            vec![("client_assertion", replayed.clone())],
            invalid_client(),
        ),
        (
            "alg none",
            None,
            vec![("client_assertion", unsigned(&first))],
            invalid_client(),
        ),
        (
            "HS256 keyed with the public JWK",
            None,
            vec![("client_assertion", hs256_with_public_key(&first, &key.jwk))],
            invalid_client(),
        ),
        (
            "signed by another client's key under the same kid",
            None,
            vec![("client_assertion", stranger.assertion(id, &aud, json!({})))],
            invalid_client(),
        ),
        (
            "another client's own good assertion, with this client_id beside it",
            None,
            vec![
                (
                    "client_assertion",
                    stranger.assertion(&other.client_id, &aud, json!({})),
                ),
                ("client_id", id.to_owned()),
            ],
            invalid_client(),
        ),
        (
            "aud another server's token endpoint",
            None,
            vec![(
                "client_assertion",
                good(json!({"aud": "https://elsewhere.example/oauth/token"})),
            )],
            invalid_client(),
        ),
        (
            "expired",
            None,
            vec![("client_assertion", good(json!({"exp": now - 120})))],
            invalid_client(),
        ),
        (
            "exp an hour away",
            None,
            vec![("client_assertion", good(json!({"exp": now + 3600})))],
            invalid_client(),
        ),
        (
            "no jti",
            None,
            vec![("client_assertion", good(json!({"jti": null})))],
            invalid_client(),
        ),
        (
            "no exp",
            None,
            vec![("client_assertion", good(json!({"exp": null})))],
            invalid_client(),
        ),
        (
            "iss is not sub",
            None,
            vec![("client_assertion", good(json!({"iss": other.client_id})))],
            invalid_client(),
        ),
        (
            "not a JWT",
            None,
            vec![("client_assertion", "not-a-jwt".to_owned())],
            invalid_client(),
        ),
        (
            "an assertion and Basic",
            Some(format!(
                "Basic {}",
                base64_of(&format!(
                    "{}:{}",
                    secret_client.client_id, secret_client.secret
                ))
            )),
            vec![("client_assertion", good(json!({})))],
            invalid_request(),
        ),
        (
            "an assertion and a client_secret",
            None,
            vec![
                ("client_assertion", good(json!({}))),
                ("client_secret", "lks_whatever".to_owned()),
            ],
            invalid_request(),
        ),
        (
            "a secret-based client presenting an assertion",
            None,
            vec![(
                "client_assertion",
                key.assertion(&secret_client.client_id, &aud, json!({})),
            )],
            invalid_client(),
        ),
    ];
    for (name, authorization, fields, expect) in rows {
        let mut form = vec![("grant_type", "client_credentials".to_owned())];
        form.push(("client_assertion_type", TYPE.to_owned()));
        form.extend(fields);
        let mut req = app.api.post(&aud).form(&form);
        if let Some(a) = authorization {
            req = req.header("Authorization", a);
        }
        check(name, req.send().await.unwrap(), &expect).await;
    }

    // Malformed types, and a key-based client trying a secret (it has none; any is wrong).
    let rows: Vec<(&str, Fields, Expect)> = vec![
        (
            "a wrong client_assertion_type",
            vec![
                ("client_assertion_type", "urn:example:saml".to_owned()),
                ("client_assertion", good(json!({}))),
            ],
            invalid_request(),
        ),
        (
            "no client_assertion_type",
            vec![("client_assertion", good(json!({})))],
            invalid_request(),
        ),
        (
            "a client_assertion_type without an assertion",
            vec![
                ("client_assertion_type", TYPE.to_owned()),
                ("client_id", id.to_owned()),
            ],
            invalid_request(),
        ),
        (
            "a key-based client with a client_secret",
            vec![
                ("client_id", id.to_owned()),
                ("client_secret", "lks_guess".to_owned()),
            ],
            invalid_client(),
        ),
    ];
    for (name, fields, expect) in rows {
        let mut form = vec![("grant_type", "client_credentials".to_owned())];
        form.extend(fields);
        let res = app.api.post(&aud).form(&form).send().await.unwrap();
        check(name, res, &expect).await;
    }

    // An assertion spent at the token endpoint is spent at introspection too.
    let spent = good(json!({"aud": app.address.clone()}));
    for (path, expect) in [
        ("/oauth/token", Expect::new(200).no_store()),
        ("/oauth/introspect", invalid_client()),
    ] {
        let res = app
            .api
            .post(app.url(path))
            .form(&[
                ("grant_type", "client_credentials"),
                ("token", "whatever"),
                ("client_assertion_type", TYPE),
                ("client_assertion", &spent),
            ])
            .send()
            .await
            .unwrap();
        check(&format!("one assertion at {path}"), res, &expect).await;
    }
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}
