//! Key-based proofs: the JWKS a merchant registers (`ClientKeys::add`), the client assertions
//! checked against it (`oauth::assertion::{claimed_client_id, verify}`), with a real P-256 key
//! made once, and DPoP proofs (`oauth::dpop::verify`, `normalize_htu`).
//!
//! The first byte picks a mode (its value modulo 5), the rest is the input:
//! - 0: a JWKS document (or one JWK). Refused, or every key kept is public, of a kind we verify
//!   with, under a `kid` of its own, and the set reads back the same from its stored form.
//! - 1: an assertion. Not signed by the key (made at start-up), so `verify` must refuse it:
//!   success would be a forgery. `claimed_client_id` must not panic.
//! - 2: claims as JSON, signed by the key. If `verify` accepts them, `iss` and `sub` are the
//!   client, `exp` is at most five minutes away, and one changed byte of the payload is
//!   refused.
//! - 3: a DPoP proof. Whatever it is, `verify` answers without panicking; if it passes, its
//!   `jkt` is a SHA-256 thumbprint (43 base64url characters).
//! - 4: a URL. `normalize_htu` of its own output is that output (normalising is idempotent),
//!   and it never keeps a query or a fragment.
#![no_main]

use std::sync::OnceLock;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use latchkey::domain::ClientKeys;
use latchkey::oauth::assertion::{self, MAX_LIFETIME};
use libfuzzer_sys::fuzz_target;

const CLIENT: &str = "1234567890123456789";
const AUDIENCES: [&str; 2] = [
    "https://auth.example.com",
    "https://auth.example.com/oauth/token",
];

struct Fixture {
    keys: ClientKeys,
    signer: jsonwebtoken::EncodingKey,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .expect("a P-256 key");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .expect("its pair");
        let point = pair.public_key().as_ref();
        let jwk = serde_json::json!({
            "kty": "EC", "crv": "P-256", "kid": "k1",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        });
        let mut keys = ClientKeys::default();
        keys.add(&jwk.to_string(), now_naive()).expect("the key");
        Fixture {
            keys,
            signer: jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref()),
        }
    })
}

fn now_naive() -> chrono::NaiveDateTime {
    chrono::Utc::now().naive_utc()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let fixture = fixture();
    let now = now_naive();
    match mode % 5 {
        0 => {
            let mut keys = ClientKeys::default();
            if keys.add(text, now).is_ok() {
                let mut kids: Vec<&str> = keys.iter().map(|k| k.kid()).collect();
                assert!(keys.iter().all(|k| k.kind().is_some() && !k.kid().is_empty()));
                kids.sort_unstable();
                kids.dedup();
                assert_eq!(kids.len(), keys.len(), "kids repeat");
                let stored = keys.to_stored();
                // No key keeps a private member (`d`, RSA's primes and exponents, a symmetric
                // `k`), read as JSON: a `kid` or another value may well be the string "d".
                let parsed: serde_json::Value = serde_json::from_str(&stored).unwrap();
                let entries = parsed.as_array().expect("the stored keys are a list");
                assert_eq!(entries.len(), keys.len());
                let private = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];
                for entry in entries {
                    let jwk = entry["jwk"].as_object().expect("each entry holds its JWK");
                    for member in private {
                        assert!(!jwk.contains_key(member), "a private member was kept: {member}");
                    }
                }
                assert_eq!(ClientKeys::from_stored(&stored).len(), keys.len());
            }
        }
        1 => {
            let _ = assertion::claimed_client_id(text);
            assert!(
                assertion::verify(text, CLIENT, &fixture.keys, &AUDIENCES, now).is_err(),
                "forged"
            );
        }
        3 => {
            let expected = latchkey::oauth::dpop::Expected {
                method: "POST",
                url: "https://auth.example.com/oauth/token",
                access_token: None,
                nonce: None,
                now: now.and_utc().timestamp(),
            };
            if let Ok(proof) = latchkey::oauth::dpop::verify(text, &expected) {
                assert_eq!(proof.jkt.len(), 43);
            }
        }
        4 => {
            if let Some(once) = latchkey::oauth::dpop::normalize_htu(text) {
                assert!(!once.contains('?') && !once.contains('#'), "{once}");
                assert_eq!(
                    latchkey::oauth::dpop::normalize_htu(&once).as_deref(),
                    Some(once.as_str())
                );
            }
        }
        _ => {
            let Ok(claims) = serde_json::from_str::<serde_json::Value>(text) else {
                return;
            };
            let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
            header.kid = Some("k1".into());
            let Ok(token) = jsonwebtoken::encode(&header, &claims, &fixture.signer) else {
                return;
            };
            let Ok(verified) = assertion::verify(&token, CLIENT, &fixture.keys, &AUDIENCES, now)
            else {
                return;
            };
            assert_eq!(claims["iss"], CLIENT);
            assert_eq!(claims["sub"], CLIENT);
            assert!(verified.expires_at - now <= MAX_LIFETIME + chrono::TimeDelta::seconds(5));
            let mut bytes = token.into_bytes();
            let at = bytes.iter().position(|&b| b == b'.').expect("a JWS") + 1;
            bytes[at] = if bytes[at] == b'e' { b'f' } else { b'e' };
            let tampered = String::from_utf8(bytes).expect("ASCII");
            assert!(
                assertion::verify(&tampered, CLIENT, &fixture.keys, &AUDIENCES, now).is_err(),
                "tampered"
            );
        }
    }
});
