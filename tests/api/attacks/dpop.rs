//! Attacks on DPoP (RFC 9449 §11): at the token endpoint, a proof replayed, for another URL or
//! method, stale or from the future, unsigned or HMAC-signed with its own public key, without a
//! `jti`; at the resource, a bound token's proof replayed, signed with another token's key,
//! without `ath` or with another token's, for another method or URL, the bound token sent as
//! Bearer or without its proof, a bearer token passed off as DPoP, and a revoked bound token.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::{Expect, H, check};
use crate::helpers::{SigningKey, spawn_app};

fn invalid_proof() -> Expect {
    Expect::new(400).error("invalid_dpop_proof").no_store()
}

/// A 401 at the resource with a `DPoP` challenge carrying `error`.
fn refused(error: &'static str) -> Expect {
    Expect::new(401)
        .error(error)
        .header(H::Has("www-authenticate", "DPoP realm=\"latchkey\""))
        .no_store()
}

/// `proof` with its header replaced by `header` and no signature, or re-signed with HS256
/// keyed by the proof's own public JWK (the classic key confusion).
fn forged(proof: &str, alg: &str) -> String {
    let mut parts = proof.split('.');
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap()).unwrap();
    let payload = parts.next().unwrap();
    match alg {
        "none" => {
            let mut header = header;
            header["alg"] = "none".into();
            format!(
                "{}.{payload}.",
                URL_SAFE_NO_PAD.encode(header.to_string().as_bytes())
            )
        }
        _ => {
            let claims: Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
            let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
            h.typ = Some("dpop+jwt".into());
            h.jwk = Some(serde_json::from_value(header["jwk"].clone()).unwrap());
            let secret = header["jwk"].to_string();
            let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
            jsonwebtoken::encode(&h, &claims, &key).unwrap()
        }
    }
}

#[tokio::test]
async fn forged_replayed_and_misdirected_proofs_are_refused_at_the_token_endpoint() {
    let app = spawn_app().await;
    let client = app.merchant_client(&[]);
    let key = SigningKey::p256("k");
    let url = app.url("/oauth/token");
    let now = chrono::Utc::now().timestamp();
    let good = |changes| key.dpop("POST", &url, None, changes);
    let replayed = good(json!({}));

    let rows: Vec<(&str, String, Expect)> = vec![
        ("baseline", replayed.clone(), Expect::new(200).no_store()),
        ("the same proof again", replayed, invalid_proof()),
        (
            "a proof for the introspection endpoint",
            key.dpop("POST", &app.url("/oauth/introspect"), None, json!({})),
            invalid_proof(),
        ),
        (
            "a proof for another server",
            key.dpop(
                "POST",
                "https://elsewhere.example/oauth/token",
                None,
                json!({}),
            ),
            invalid_proof(),
        ),
        (
            "a proof for GET",
            key.dpop("GET", &url, None, json!({})),
            invalid_proof(),
        ),
        (
            "iat two minutes ago",
            good(json!({"iat": now - 120})),
            invalid_proof(),
        ),
        (
            "iat two minutes ahead",
            good(json!({"iat": now + 120})),
            invalid_proof(),
        ),
        ("no jti", good(json!({"jti": null})), invalid_proof()),
        ("no htu", good(json!({"htu": null})), invalid_proof()),
        (
            "alg none",
            forged(&good(json!({})), "none"),
            invalid_proof(),
        ),
        (
            "HS256 keyed with its own public key",
            forged(&good(json!({})), "HS256"),
            invalid_proof(),
        ),
        ("not a JWT", "not-a-proof".into(), invalid_proof()),
    ];
    for (name, proof, expect) in rows {
        let res = app
            .api
            .post(&url)
            .basic_auth(&client.client_id, Some(&client.secret))
            .header("DPoP", proof)
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        check(name, res, &expect).await;
    }
}

#[tokio::test]
async fn a_bound_token_is_useless_without_its_key_and_a_fresh_proof() {
    let app = spawn_app().await;
    let client = app.merchant_client(&[]);
    let key = SigningKey::p256("k");
    let thief = SigningKey::p256("thief");
    let token_url = app.url("/oauth/token");
    let profile = app.url("/v1/user/profile");
    let now = chrono::Utc::now().timestamp();

    let issue = async |key: &SigningKey| -> String {
        let req = app
            .api
            .post(&token_url)
            .basic_auth(&client.client_id, Some(&client.secret))
            .header("DPoP", key.dpop("POST", &token_url, None, json!({})))
            .form(&[("grant_type", "client_credentials")]);
        let body: Value = req.send().await.unwrap().json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    };
    let bound = issue(&key).await;
    let thiefs_own = issue(&thief).await;
    let bearer = {
        let res = app
            .token_form(Some(&client), &[("grant_type", "client_credentials")])
            .await;
        let body: Value = res.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    };
    let revoked = issue(&key).await;
    let res = app
        .api
        .post(app.url("/oauth/revoke"))
        .basic_auth(&client.client_id, Some(&client.secret))
        .form(&[("token", revoked.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let proof =
        |key: &SigningKey, token: &str, changes| key.dpop("GET", &profile, Some(token), changes);
    let replayed = proof(&key, &bound, json!({}));
    // (name, Authorization, DPoP header, expectation)
    let rows: Vec<(&str, String, Option<String>, Expect)> = vec![
        (
            "baseline",
            format!("DPoP {bound}"),
            Some(replayed.clone()),
            Expect::new(200),
        ),
        (
            "the same proof again",
            format!("DPoP {bound}"),
            Some(replayed),
            refused("invalid_dpop_proof"),
        ),
        (
            "a proof signed with another token's key",
            format!("DPoP {bound}"),
            Some(proof(&thief, &bound, json!({}))),
            refused("invalid_token"),
        ),
        (
            "the thief's own token's proof beside the stolen token",
            format!("DPoP {bound}"),
            Some(proof(&thief, &thiefs_own, json!({}))),
            refused("invalid_dpop_proof"),
        ),
        (
            "no ath",
            format!("DPoP {bound}"),
            Some(proof(&key, &bound, json!({"ath": null}))),
            refused("invalid_dpop_proof"),
        ),
        (
            "the ath of another token",
            format!("DPoP {bound}"),
            Some(proof(&key, &thiefs_own, json!({}))),
            refused("invalid_dpop_proof"),
        ),
        (
            "a proof for POST",
            format!("DPoP {bound}"),
            Some(key.dpop("POST", &profile, Some(&bound), json!({}))),
            refused("invalid_dpop_proof"),
        ),
        (
            "a proof for userinfo",
            format!("DPoP {bound}"),
            Some(key.dpop("GET", &app.url("/oauth/userinfo"), Some(&bound), json!({}))),
            refused("invalid_dpop_proof"),
        ),
        (
            "iat two minutes ago",
            format!("DPoP {bound}"),
            Some(proof(&key, &bound, json!({"iat": now - 120}))),
            refused("invalid_dpop_proof"),
        ),
        (
            "the bound token as Bearer",
            format!("Bearer {bound}"),
            None,
            refused("invalid_token"),
        ),
        (
            "the bound token as Bearer, with a good proof beside it",
            format!("Bearer {bound}"),
            Some(proof(&key, &bound, json!({}))),
            refused("invalid_token"),
        ),
        (
            "the DPoP scheme without a proof",
            format!("DPoP {bound}"),
            None,
            refused("invalid_dpop_proof"),
        ),
        (
            "a bearer token passed off as DPoP",
            format!("DPoP {bearer}"),
            Some(proof(&key, &bearer, json!({}))),
            refused("invalid_token"),
        ),
        (
            "a revoked bound token with a good proof",
            format!("DPoP {revoked}"),
            Some(proof(&key, &revoked, json!({}))),
            refused("invalid_token"),
        ),
    ];
    for (name, authorization, dpop, expect) in rows {
        let mut req = app.api.get(&profile).header("Authorization", authorization);
        if let Some(dpop) = dpop {
            req = req.header("DPoP", dpop);
        }
        check(name, req.send().await.unwrap(), &expect).await;
    }
}

/// The assertion's and the proof's `jti`s are spent in the token row's group commit: sent many
/// times at once, in one group or several, exactly one copy gets a token.
#[tokio::test]
async fn of_many_copies_sent_at_once_exactly_one_gets_a_token() {
    let app = spawn_app().await;
    let client_key = SigningKey::p256("client");
    let client = app.key_client(&[&client_key], &["--grant-type", "client_credentials"]);
    let key = SigningKey::p256("k");
    let url = app.url("/oauth/token");
    const TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

    for (case, same_assertion) in [
        ("one proof, fresh assertions", false),
        ("one assertion, fresh proofs", true),
    ] {
        let proof = key.dpop("POST", &url, None, json!({}));
        let assertion = client_key.assertion(&client.client_id, &url, json!({}));
        let sends = (0..8).map(|_| {
            let assertion = if same_assertion {
                assertion.clone()
            } else {
                client_key.assertion(&client.client_id, &url, json!({}))
            };
            let proof = if same_assertion {
                key.dpop("POST", &url, None, json!({}))
            } else {
                proof.clone()
            };
            let req = app.api.post(&url).header("DPoP", proof).form(&[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", TYPE),
                ("client_assertion", &assertion),
            ]);
            async move { req.send().await.unwrap().status().as_u16() }
        });
        let statuses = futures_util::future::join_all(sends).await;
        let issued = statuses.iter().filter(|s| **s == 200).count();
        assert_eq!(issued, 1, "{case}: {statuses:?}");
        let refused = if same_assertion { 401 } else { 400 };
        assert!(
            statuses.iter().all(|s| *s == 200 || *s == refused),
            "{case}: {statuses:?}"
        );
    }
}
