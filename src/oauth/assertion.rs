//! `private_key_jwt` client assertions (RFC 7523 §2.2 and §3, RFC 7521 §4.2, OIDC Core §9): a
//! key-based client proves itself with a JWT it signed with one of its registered keys
//! (`domain::ClientKeys`).
//!
//! Accepted when: `client_assertion_type` is [`ASSERTION_TYPE`]; the header's `alg` is one a
//! registered key allows (RS256, PS256, ES256, EdDSA: never `none`, never HMAC, whose "secret"
//! would be the public key) and its `kid`, if any, names that key; the signature verifies;
//! `iss` and `sub` are the client_id; `aud` names this server's issuer or the URL of the
//! endpoint called; `exp` is in the future but at most [`MAX_LIFETIME`] away (and `nbf`, if
//! present, passed); and `jti` is there. That the `jti` was never used before is the caller's
//! to record ([`Verified::replay_key`], `db::models::UsedJti`), in a table every instance
//! shares. Every refusal is `invalid_client`, with a description that says which rule failed.

use chrono::{DateTime, NaiveDateTime, TimeDelta};
use jsonwebtoken::{DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::error::{ErrorCode, OAuthError};
use crate::domain::ClientKeys;

/// RFC 7523 §2.2's `client_assertion_type`.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How far in the future an assertion's `exp` may be: a short-lived proof, not a credential.
pub const MAX_LIFETIME: TimeDelta = TimeDelta::minutes(5);

/// Clock skew allowed on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 5;

/// Longest assertion read (an RSA-4096 signature and a few claims fit many times over).
pub const MAX_ASSERTION_LEN: usize = 8 * 1024;

/// Longest `jti` accepted.
const MAX_JTI_LEN: usize = 256;

/// An assertion whose signature and claims passed; its `jti` is still to be recorded.
#[derive(Debug)]
pub struct Verified {
    jti: String,
    pub expires_at: NaiveDateTime,
}

impl Verified {
    /// The key under which this assertion's `jti` is recorded as used: one client's `jti`s do
    /// not collide with another's.
    pub fn replay_key(&self, client_id: &str) -> String {
        let mut hash = Sha256::new();
        hash.update(b"client_assertion\0");
        hash.update(client_id.as_bytes());
        hash.update(b"\0");
        hash.update(self.jti.as_bytes());
        hex::encode(hash.finalize())
    }
}

#[derive(Deserialize)]
struct Claims {
    /// Required, but an `Option` so that its absence is reported by the validation (which
    /// names it) rather than as a claims set that does not read.
    exp: Option<i64>,
    jti: Option<String>,
}

#[derive(Deserialize)]
struct Subject {
    sub: Option<String>,
    iss: Option<String>,
}

fn refused(why: &str) -> OAuthError {
    OAuthError::new(
        ErrorCode::InvalidClient,
        format!("The client assertion was refused: {why}."),
    )
}

/// The client an assertion says it comes from (`sub`, which must equal `iss`), read before its
/// signature is checked, to find the keys to check it with. Nothing else is trusted from it.
pub fn claimed_client_id(assertion: &str) -> Result<String, OAuthError> {
    if assertion.len() > MAX_ASSERTION_LEN {
        return Err(refused("it is too long"));
    }
    let data = jsonwebtoken::dangerous::insecure_decode::<Subject>(assertion)
        .map_err(|_| refused("it is not a JWT with `iss` and `sub` claims"))?;
    match (data.claims.sub, data.claims.iss) {
        (Some(sub), Some(iss)) if sub == iss && !sub.is_empty() => Ok(sub),
        _ => Err(refused("`iss` and `sub` must both be the client_id")),
    }
}

/// Checks `assertion` as the module doc says, for `client_id` with its `keys`, accepting the
/// `audiences` given (the issuer and the endpoint's URL).
pub fn verify(
    assertion: &str,
    client_id: &str,
    keys: &ClientKeys,
    audiences: &[&str],
    now: NaiveDateTime,
) -> Result<Verified, OAuthError> {
    if assertion.len() > MAX_ASSERTION_LEN {
        return Err(refused("it is too long"));
    }
    // An unknown `alg` (`none` among them) does not even parse as a header.
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|_| refused("its header is not a JWS header with a supported `alg`"))?;
    let alg = header.alg;
    let mut validation = Validation::new(alg);
    validation.set_audience(audiences);
    validation.set_issuer(&[client_id]);
    validation.sub = Some(client_id.to_owned());
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    validation.leeway = LEEWAY_SECS;
    validation.validate_nbf = true;

    let mut last = refused(&format!(
        "no registered key of this client signs with {alg:?}{}",
        header
            .kid
            .as_deref()
            .map(|kid| format!(" under kid \"{kid}\""))
            .unwrap_or_default()
    ));
    for jwk in keys.candidates(header.kid.as_deref(), alg) {
        let Ok(key) = DecodingKey::from_jwk(jwk) else {
            continue;
        };
        match jsonwebtoken::decode::<Claims>(assertion, &key, &validation) {
            Ok(data) => return accept(data.claims, now),
            Err(e) => last = explain(&e),
        }
    }
    Err(last)
}

fn accept(claims: Claims, now: NaiveDateTime) -> Result<Verified, OAuthError> {
    let jti = claims
        .jti
        .filter(|j| !j.is_empty() && j.len() <= MAX_JTI_LEN)
        .ok_or_else(|| refused("it has no `jti` (of at most 256 characters)"))?;
    let expires_at = claims
        .exp
        .and_then(|exp| DateTime::from_timestamp(exp, 0))
        .ok_or_else(|| refused("its `exp` is not a time"))?
        .naive_utc();
    if expires_at - now > MAX_LIFETIME + TimeDelta::seconds(LEEWAY_SECS as i64) {
        return Err(refused("its `exp` is more than 5 minutes away"));
    }
    Ok(Verified { jti, expires_at })
}

fn explain(e: &jsonwebtoken::errors::Error) -> OAuthError {
    use jsonwebtoken::errors::ErrorKind;
    refused(match e.kind() {
        ErrorKind::InvalidSignature => "the signature does not verify with the client's key",
        ErrorKind::ExpiredSignature => "it has expired",
        ErrorKind::ImmatureSignature => "it is not valid yet (`nbf`)",
        ErrorKind::InvalidAudience => "its `aud` is neither this server's issuer nor this endpoint",
        ErrorKind::InvalidIssuer => "its `iss` is not the client_id",
        ErrorKind::InvalidSubject => "its `sub` is not the client_id",
        ErrorKind::MissingRequiredClaim(_) => "it lacks one of `iss`, `sub`, `aud` and `exp`",
        _ => "it could not be verified",
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    use serde_json::json;

    use super::*;
    use crate::domain::tests_support::p256;

    const ISSUER: &str = "https://auth.example";
    const TOKEN_URL: &str = "https://auth.example/oauth/token";

    /// A client's keys with one P-256 key `k1`, and that key's signing half.
    fn client() -> (ClientKeys, EncodingKey) {
        let (jwk, pkcs8) = p256("k1");
        let mut keys = ClientKeys::default();
        keys.add(&jwk.to_string(), crate::db::now()).unwrap();
        (keys, EncodingKey::from_ec_der(&pkcs8))
    }

    fn sign(key: &EncodingKey, header: Header, claims: serde_json::Value) -> String {
        jsonwebtoken::encode(&header, &claims, key).unwrap()
    }

    fn es256(kid: Option<&str>) -> Header {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = kid.map(Into::into);
        header
    }

    fn claims(now: NaiveDateTime) -> serde_json::Value {
        json!({"iss": "app", "sub": "app", "aud": TOKEN_URL, "jti": "j-1",
               "exp": (now + TimeDelta::seconds(60)).and_utc().timestamp(),
               "iat": now.and_utc().timestamp()})
    }

    fn check(assertion: &str, keys: &ClientKeys) -> Result<Verified, OAuthError> {
        verify(
            assertion,
            "app",
            keys,
            &[ISSUER, TOKEN_URL],
            crate::db::now(),
        )
    }

    #[test]
    fn a_good_assertion_passes_with_or_without_kid_and_either_audience() {
        let (keys, key) = client();
        let now = crate::db::now();
        let ok = check(&sign(&key, es256(Some("k1")), claims(now)), &keys).unwrap();
        assert_eq!(ok.replay_key("app").len(), 64);
        assert_ne!(ok.replay_key("app"), ok.replay_key("other"));
        check(&sign(&key, es256(None), claims(now)), &keys).unwrap();
        let mut to_issuer = claims(now);
        to_issuer["aud"] = json!([ISSUER]);
        check(&sign(&key, es256(None), to_issuer), &keys).unwrap();
        assert_eq!(
            claimed_client_id(&sign(&key, es256(None), claims(now))).unwrap(),
            "app"
        );
    }

    #[test]
    fn each_broken_rule_is_refused_as_invalid_client() {
        let (keys, key) = client();
        let (_, other_pkcs8) = p256("k1");
        let other = EncodingKey::from_ec_der(&other_pkcs8);
        let now = crate::db::now();
        let with = |field: &str, value: serde_json::Value| {
            let mut c = claims(now);
            if value.is_null() {
                c.as_object_mut().unwrap().remove(field);
            } else {
                c[field] = value;
            }
            sign(&key, es256(Some("k1")), c)
        };
        let unsigned = {
            let good = sign(&key, es256(None), claims(now));
            let payload = good.split('.').nth(1).unwrap().to_owned();
            format!("eyJhbGciOiJub25lIn0.{payload}.")
        };
        let hs256 = sign(
            &EncodingKey::from_secret(keys.to_stored().as_bytes()),
            Header::new(Algorithm::HS256),
            claims(now),
        );
        let cases = [
            (sign(&other, es256(Some("k1")), claims(now)), "signature"),
            (
                sign(&key, es256(Some("k2")), claims(now)),
                "no registered key",
            ),
            (unsigned, "header"),
            (hs256, "no registered key"),
            (with("aud", json!("https://elsewhere.example/token")), "aud"),
            (with("iss", json!("intruder")), "iss"),
            (with("sub", json!("intruder")), "sub"),
            (
                with(
                    "exp",
                    json!((now - TimeDelta::minutes(2)).and_utc().timestamp()),
                ),
                "expired",
            ),
            (
                with(
                    "exp",
                    json!((now + TimeDelta::hours(1)).and_utc().timestamp()),
                ),
                "5 minutes",
            ),
            (
                with(
                    "nbf",
                    json!((now + TimeDelta::minutes(2)).and_utc().timestamp()),
                ),
                "nbf",
            ),
            (with("jti", serde_json::Value::Null), "jti"),
            (with("exp", serde_json::Value::Null), "lacks"),
            ("not.a.jwt".to_owned(), "header"),
        ];
        for (assertion, says) in cases {
            let err = check(&assertion, &keys).expect_err(says);
            assert_eq!(err.code, ErrorCode::InvalidClient, "{says}");
            assert!(
                err.description.contains(says),
                "{says}: {}",
                err.description
            );
        }
        assert!(claimed_client_id(&with("sub", json!("other"))).is_err());
    }
}
