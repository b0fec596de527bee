//! Bearer tokens presented to resources: the `Authorization: Bearer` header
//! (`bearer::from_header`, RFC 6750 §2.1 and RFC 9449 §7.1), the JOSE header (`jsonwebtoken::decode_header`)
//! and `jwt::verify` against a real key ring (an ES256 signer and a retired RS256 key, made once
//! in an in-memory SQLite database through the ordinary key API).
//!
//! The first byte picks a mode (its value modulo 4), the rest is the input:
//! - 0: an Authorization header; 1: a token. Neither was signed by the ring's keys (they are
//!   made at start-up), so `verify` must refuse every one: success would be a forgery.
//! - 2: `typ`, a newline, then claims as JSON, signed by the ring. If `verify` accepts it, the
//!   token is an access token (`typ: at+jwt`) for our issuer and audience, and changing one
//!   byte of its payload makes it fail.
//! - 3: newline-separated `sub`, `jti`, `client_id`, `scope`, `env` put in well-formed claims
//!   and signed: `verify` must accept the token and return exactly those claims, and refuse it
//!   for another issuer.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use latchkey::config::{DatabaseUrl, SecretKeyMaterial};
use latchkey::crypto::ServerKey;
use latchkey::db::{self, ConnectionManager};
use latchkey::oauth::bearer::from_header;
use latchkey::oauth::jwt::{self, ACCESS_TOKEN_TYP, AccessClaims};
use latchkey::oauth::keys::{self, KeyRing, SigningAlgorithm};
use libfuzzer_sys::fuzz_target;

const ISSUER: &str = "https://auth.example.com";

fn ring() -> &'static KeyRing {
    static RING: OnceLock<KeyRing> = OnceLock::new();
    RING.get_or_init(|| {
        let mut conn = ConnectionManager::new(DatabaseUrl::Sqlite(":memory:".into()))
            .establish()
            .expect("in-memory SQLite");
        db::migrate(&mut conn).expect("migrations");
        let key = ServerKey::from_material(&SecretKeyMaterial(vec![7; 32]));
        let ttl = Duration::from_secs(3600);
        // The first key (RS256), then an ES256 one that signs: RS256 stays a verifier.
        KeyRing::load_or_create(&mut conn, &key, ttl).expect("first key");
        keys::rotate(&mut conn, &key, SigningAlgorithm::Es256).expect("rotation");
        KeyRing::load_or_create(&mut conn, &key, ttl).expect("key ring")
    })
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let ring = ring();
    match mode % 4 {
        0 => {
            if let Ok((_, token)) = from_header(Some(rest)) {
                assert!(!token.is_empty() && token == token.trim());
                assert!(jwt::verify(ring, &token, ISSUER, ISSUER).is_err(), "forged");
            }
        }
        1 => {
            let Ok(token) = std::str::from_utf8(rest) else {
                return;
            };
            let _ = jsonwebtoken::decode_header(token);
            assert!(jwt::verify(ring, token, ISSUER, ISSUER).is_err(), "forged");
        }
        2 => {
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            let (typ, claims) = text.split_once('\n').unwrap_or((text, "{}"));
            let Ok(claims) = serde_json::from_str::<serde_json::Value>(claims) else {
                return;
            };
            let Ok(token) = ring.signer.sign(typ, &claims) else {
                return;
            };
            let Ok(verified) = jwt::verify(ring, &token, ISSUER, ISSUER) else {
                return;
            };
            assert_eq!(typ.to_ascii_lowercase(), ACCESS_TOKEN_TYP);
            assert_eq!(
                (verified.iss.as_str(), verified.aud.as_str()),
                (ISSUER, ISSUER)
            );
            // One byte of the payload changed (to another base64url character): refused.
            let mut bytes = token.into_bytes();
            let at = bytes.iter().position(|&b| b == b'.').expect("a JWS") + 1;
            bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(bytes).expect("ASCII");
            assert!(
                jwt::verify(ring, &tampered, ISSUER, ISSUER).is_err(),
                "tampered"
            );
        }
        _ => {
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            let mut fields = text.split('\n').map(str::to_owned);
            let mut next = || fields.next().unwrap_or_default();
            let now = now();
            let claims = AccessClaims {
                iss: ISSUER.into(),
                sub: next(),
                aud: ISSUER.into(),
                exp: now + 3600,
                iat: now,
                nbf: now,
                jti: next(),
                client_id: next(),
                scope: next(),
                env: next(),
                cnf: Some(latchkey::oauth::jwt::Confirmation { jkt: next() }),
            };
            let token = ring
                .signer
                .sign(ACCESS_TOKEN_TYP, &claims)
                .expect("signing");
            assert_eq!(jwt::verify(ring, &token, ISSUER, ISSUER), Ok(claims));
            assert!(jwt::verify(ring, &token, "https://other.example", ISSUER).is_err());
        }
    }
});
