//! The `Authorization: Basic` header at the token endpoint (`client_auth::presented`,
//! RFC 6749 §2.3.1), alone and together with body credentials.
//!
//! Invariants besides "no panic":
//! - a header that parses yields a non-empty client_id and a secret, each at most 256 bytes
//!   (the documented limit: anything longer cannot be ours);
//! - the credentials round-trip: encoded again as §2.3.1 says, they parse to the same values;
//! - the same client_id in the body is accepted, a secret in the body as well is refused
//!   (one authentication method only).
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use latchkey::oauth::client_auth::{Presented, presented};
use latchkey::oauth::error::ErrorCode;
use latchkey::oauth::request::BodyCredentials;
use libfuzzer_sys::fuzz_target;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

const MAX_CREDENTIAL_LEN: usize = 256;

fuzz_target!(|data: &[u8]| {
    let none = BodyCredentials::default();
    let Ok(found) = presented(Some(data), &none) else {
        return;
    };
    let Presented::Secret { client_id, secret } = &found else {
        panic!("a Basic header must give a secret: {found:?}");
    };
    assert!(!client_id.is_empty() && client_id.len() <= MAX_CREDENTIAL_LEN);
    assert!(secret.len() <= MAX_CREDENTIAL_LEN);

    let encode = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
    let again = format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", encode(client_id), encode(secret)))
    );
    assert_eq!(
        presented(Some(again.as_bytes()), &none).ok(),
        Some(found.clone())
    );

    let same_id = BodyCredentials {
        client_id: Some(client_id.clone()),
        ..Default::default()
    };
    assert_eq!(presented(Some(data), &same_id).ok(), Some(found.clone()));
    let both = BodyCredentials {
        client_secret: Some(secret.clone()),
        ..Default::default()
    };
    let err = presented(Some(data), &both).expect_err("two methods at once");
    assert_eq!(err.code, ErrorCode::InvalidRequest);
});
