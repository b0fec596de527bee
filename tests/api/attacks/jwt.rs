//! Forged and malformed JWTs at `/v1/user/profile` (RFC 6750 §3.1: 401 `invalid_token`) and at
//! introspection (RFC 7662 §2.2: 200 `{"active":false}`): alg none, HS256 keyed with our public
//! key, unknown kid, time claims, wrong iss/aud/typ, claims of the wrong JSON type, truncated and
//! oversized tokens. Forgeries are signed with the server's real key where that isolates the flaw.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use latchkey::oauth::keys::KeyRing;
use serde_json::{Value, json};

use super::{Expect, H, check};
use crate::helpers::spawn_app;

/// Stores a row for `forged` copied from the issued token's, as if the server had issued it.
fn store_like(app: &crate::helpers::TestApp, issued: &str, forged: &str) {
    use diesel::connection::SimpleConnection as _;
    let cols = "client_id, user_id, client_refresh_token_id, grant_type, scope, audience, \
                client_authorization_code_id, expired_at, created_at, revoked_at";
    app.db
        .connect()
        .batch_execute(&format!(
            "INSERT INTO client_access_tokens (access_token, {cols}) \
             SELECT '{}', {cols} FROM client_access_tokens WHERE access_token = '{}'",
            latchkey::crypto::token_digest(forged),
            latchkey::crypto::token_digest(issued),
        ))
        .unwrap();
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

#[tokio::test]
async fn forged_and_malformed_tokens_are_refused_at_the_resource_and_by_introspection() {
    let app = spawn_app().await;
    let client = app.merchant_client(&[]);
    let good: Value = app
        .token_form(Some(&client), &[("grant_type", "client_credentials")])
        .await
        .json()
        .await
        .unwrap();
    let good = good["access_token"].as_str().unwrap().to_owned();
    let parts: Vec<&str> = good.split('.').collect();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let kid = header["kid"].clone();
    let ring = KeyRing::load_or_create(
        &mut app.db.connect(),
        &app.key,
        std::time::Duration::from_secs(3600),
    )
    .unwrap();
    // The real key, with edited claims: only the edit can make these fail. Each forgery also
    // gets a stored row like the issued token's (see `store_like`), so the row check cannot be
    // what refuses it; the control case below shows such a token is accepted when unedited.
    let sign = |typ: &str, edit: &dyn Fn(&mut Value)| {
        let mut c = claims.clone();
        edit(&mut c);
        ring.signer.sign(typ, &c).unwrap()
    };
    let now = chrono::Utc::now().timestamp();
    let hs256 = |secret: &[u8]| {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        h.kid = kid.as_str().map(str::to_owned);
        h.typ = Some("at+jwt".into());
        jsonwebtoken::encode(&h, &claims, &jsonwebtoken::EncodingKey::from_secret(secret)).unwrap()
    };
    let with_header = |h: Value| format!("{}.{}.{}", b64(&h), parts[1], parts[2]);
    let jwk = ring.jwks[0].clone();
    let mut tampered = claims.clone();
    tampered["sub"] = json!("999");
    let oversized = format!("{}.{}.{}", parts[0], "A".repeat(7000), parts[2]);

    let forged: Vec<(&str, String)> = vec![
        (
            "alg none, empty signature",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "at+jwt", "kid": kid})),
                parts[1]
            ),
        ),
        (
            "alg none, no signature part",
            format!(
                "{}.{}",
                b64(&json!({"alg": "none", "typ": "at+jwt", "kid": kid})),
                parts[1]
            ),
        ),
        (
            "alg None (capitalised)",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "None", "typ": "at+jwt", "kid": kid})),
                parts[1]
            ),
        ),
        (
            "HS256 keyed with the JWK as text",
            hs256(jwk.to_string().as_bytes()),
        ),
        (
            "HS256 keyed with the RSA modulus",
            hs256(&URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap()),
        ),
        (
            "RS256 header swapped to RS512",
            with_header(json!({"alg": "RS512", "typ": "at+jwt", "kid": kid})),
        ),
        (
            "unknown kid",
            with_header(json!({"alg": header["alg"], "typ": "at+jwt", "kid": "no-such-key"})),
        ),
        (
            "no kid",
            with_header(json!({"alg": header["alg"], "typ": "at+jwt"})),
        ),
        ("typ JWT (an id_token-like JWT)", sign("JWT", &|_| {})),
        (
            "typ missing",
            with_header(json!({"alg": header["alg"], "kid": kid})),
        ),
        (
            "expired a minute ago",
            sign("at+jwt", &|c| c["exp"] = json!(now - 60)),
        ),
        (
            "not valid for ten minutes",
            sign("at+jwt", &|c| c["nbf"] = json!(now + 600)),
        ),
        (
            "issued in the future",
            sign("at+jwt", &|c| {
                c["iat"] = json!(now + 600);
                c["nbf"] = json!(now + 600)
            }),
        ),
        (
            "wrong iss",
            sign("at+jwt", &|c| c["iss"] = json!("https://evil.example")),
        ),
        (
            "wrong aud",
            sign("at+jwt", &|c| c["aud"] = json!("https://other-api.example")),
        ),
        (
            "iss missing",
            sign("at+jwt", &|c| {
                c.as_object_mut().unwrap().remove("iss");
            }),
        ),
        (
            "exp missing",
            sign("at+jwt", &|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
        ),
        (
            "exp as a string",
            sign("at+jwt", &|c| c["exp"] = json!("tomorrow")),
        ),
        (
            "exp as a float far away",
            sign("at+jwt", &|c| c["exp"] = json!(1e300)),
        ),
        (
            "sub as an object",
            sign("at+jwt", &|c| c["sub"] = json!({"id": 1})),
        ),
        (
            "scope as an array",
            sign("at+jwt", &|c| c["scope"] = json!(["get_user_profile"])),
        ),
        (
            "client_id as a number",
            sign("at+jwt", &|c| c["client_id"] = json!(1)),
        ),
        (
            "claims not an object",
            ring.signer
                .sign("at+jwt", &json!(["not", "claims"]))
                .unwrap(),
        ),
        (
            "payload changed, signature kept",
            format!("{}.{}.{}", parts[0], b64(&tampered), parts[2]),
        ),
        ("signature removed", format!("{}.{}.", parts[0], parts[1])),
        ("signature truncated", good[..good.len() - 10].to_owned()),
        ("header only", parts[0].to_owned()),
        ("five parts (JWE shape)", format!("{good}.x.y")),
        ("not base64", "!!!.???.***".into()),
        ("oversized (7 KB payload)", oversized),
    ];
    let profile_refused = Expect::new(401)
        .error("invalid_token")
        .header(H::Has("www-authenticate", "Bearer"))
        .header(H::Is("cache-control", "no-store"));
    let inactive = Expect::new(200).no_store();
    let control = sign("at+jwt", &|c| c["jti"] = json!("control"));
    for token in forged.iter().map(|(_, t)| t).chain([&control]) {
        store_like(&app, &good, token);
    }
    check(
        "control: re-signed unedited claims with a stored row",
        app.profile(&control).await,
        &Expect::new(200),
    )
    .await;
    for (name, token) in &forged {
        check(
            &format!("{name} at /v1/user/profile"),
            app.profile(token).await,
            &profile_refused,
        )
        .await;
        let res = app
            .api
            .post(app.url("/oauth/introspect"))
            .basic_auth(&client.client_id, Some(&client.secret))
            .form(&[("token", token.as_str())])
            .send()
            .await
            .unwrap();
        let answer = check(&format!("{name} at introspection"), res, &inactive).await;
        assert_eq!(
            answer.json(),
            json!({"active": false}),
            "case `{name} at introspection`"
        );
    }
    // The untouched token passes both: the forgeries failed for what they changed.
    check(
        "the issued token at /v1/user/profile",
        app.profile(&good).await,
        &Expect::new(200),
    )
    .await;
    let res = app
        .api
        .post(app.url("/oauth/introspect"))
        .basic_auth(&client.client_id, Some(&client.secret))
        .form(&[("token", good.as_str())])
        .send()
        .await
        .unwrap();
    let answer = check("the issued token at introspection", res, &inactive).await;
    assert_eq!(answer.json()["active"], true);
}
