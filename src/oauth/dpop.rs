//! DPoP proofs (RFC 9449 §4.3): the checks a `DPoP` header must pass before a token is bound
//! to its key (token endpoint) or a bound token is accepted (resources).
//!
//! A proof passes when it is one compact JWS whose header has `typ: dpop+jwt`, an asymmetric
//! `alg` of [`ALGORITHMS`] (never `none`, never HMAC) and a `jwk` that is a sound public key
//! (`domain::public_key`: no private or symmetric members, RSA of 2048 bits or more, P-256 or
//! Ed25519) that verifies the signature; and whose claims have a `jti`, `htm` equal to the
//! request's method, `htu` equal to the request's URL without query and fragment (both
//! normalised, RFC 3986 §6.2.2 and §6.2.3), an `iat` within [`WINDOW`] of now, `ath` equal to
//! the hash of the access token when one is presented with it, and the server's nonce when
//! one is required. The key's RFC 7638 thumbprint (`jkt`) is what a token is bound to.
//!
//! That the `jti` was not used before is the caller's to record ([`Proof::replay_key`], in
//! `used_jtis`, shared by every instance), as for client assertions.
//!
//! [`check`] is the whole check for a request (with the server's nonce when
//! `LATCHKEY_DPOP_NONCE` asks for one), [`spend`] records the `jti`. The token endpoint
//! (`token::exchange`) binds tokens to `Proof::jkt`; the resources (`bearer::verify`) accept a
//! bound token only with a proof by the same key.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::ThumbprintHash;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::context::OAuthContext;
use super::error::{ErrorCode, OAuthError};
use crate::crypto::ServerKey;
use crate::db::models::UsedJti;
use crate::db::{AnyConnection, DbError};
use crate::domain::{KeyKind, public_key};

/// `dpop_signing_alg_values_supported`.
pub const ALGORITHMS: [&str; 4] = ["ES256", "EdDSA", "RS256", "PS256"];

/// How far `iat` may be from now, either way, in seconds (clock skew plus the request's trip).
pub const WINDOW: i64 = 60;

/// Longest proof read.
pub const MAX_PROOF_LEN: usize = 8 * 1024;

/// Longest `jti` accepted.
const MAX_JTI_LEN: usize = 256;

/// Why a proof was refused: `invalid_dpop_proof` with a reason, or `use_dpop_nonce` when the
/// server's nonce is missing or stale (the client retries with the one in `DPoP-Nonce`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpopError {
    #[error("The DPoP proof was refused: {0}.")]
    Invalid(&'static str),
    #[error("A fresh DPoP nonce is required: retry with the one in the DPoP-Nonce header.")]
    UseNonce,
}

impl DpopError {
    /// The error code (RFC 9449 §5, §7.1, §8).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid_dpop_proof",
            Self::UseNonce => "use_dpop_nonce",
        }
    }
}

impl From<DpopError> for OAuthError {
    fn from(e: DpopError) -> Self {
        let code = match e {
            DpopError::Invalid(_) => ErrorCode::InvalidDpopProof,
            DpopError::UseNonce => ErrorCode::UseDpopNonce,
        };
        OAuthError::new(code, e.to_string())
    }
}

/// How long one server nonce is current, in seconds: a nonce is accepted during its period and
/// the next, so for five to ten minutes.
pub const NONCE_PERIOD: i64 = 300;

/// The server's current DPoP nonce (RFC 9449 §8): the period's number and its HMAC tag under
/// the server key, base64url. Stateless, so every instance sharing the key accepts it.
pub fn nonce(key: &ServerKey, now: i64) -> String {
    let period = now.div_euclid(NONCE_PERIOD);
    let mut bytes = [0u8; 24];
    bytes[..8].copy_from_slice(&period.to_be_bytes());
    bytes[8..].copy_from_slice(&key.dpop_nonce_tag(period));
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether `nonce` is one this server made in the current period or the one before.
pub fn nonce_is_current(key: &ServerKey, nonce: &str, now: i64) -> bool {
    let Ok(bytes) = URL_SAFE_NO_PAD.decode(nonce) else {
        return false;
    };
    let Some((period, tag)) = bytes.split_first_chunk::<8>() else {
        return false;
    };
    let period = i64::from_be_bytes(*period);
    let current = now.div_euclid(NONCE_PERIOD);
    if period != current && period != current - 1 {
        return false;
    }
    subtle::ConstantTimeEq::ct_eq(tag, &key.dpop_nonce_tag(period)[..]).into()
}

/// Checks the proof that came with a request to `url` (this server's issuer and the path) by
/// `method`, presenting `access_token` at a resource: [`verify`], with the server's nonce when
/// `LATCHKEY_DPOP_NONCE` requires one. The `jti` is [`spend`]'s to record.
pub fn check(
    ctx: &OAuthContext,
    proof: &str,
    method: &str,
    url: &str,
    access_token: Option<&str>,
) -> Result<Proof, DpopError> {
    let now = crate::db::now().and_utc().timestamp();
    let current = |n: &str| nonce_is_current(&ctx.server_key, n, now);
    verify(
        proof,
        &Expected {
            method,
            url,
            access_token,
            nonce: ctx.dpop_nonce.then_some(&current as &dyn Fn(&str) -> bool),
            now,
        },
    )
}

/// Records the proof's `jti` as used (in `used_jtis`, shared by every instance) until no proof
/// with its `iat` would pass; `Err(Invalid)` if it was used before (a replay).
pub fn spend(
    conn: &mut AnyConnection,
    ctx: &OAuthContext,
    proof: &Proof,
) -> Result<Result<(), DpopError>, DbError> {
    let until = chrono::DateTime::from_timestamp(proof.expires_at, 0)
        .unwrap_or_default()
        .naive_utc();
    let first = ctx
        .writer
        .hold(|| UsedJti::record(conn, &proof.replay_key(), until))?;
    Ok(if first {
        Ok(())
    } else {
        Err(DpopError::Invalid("its jti was used before"))
    })
}

/// The `DPoP` request header: `None` if absent, an error if it is sent more than once or is
/// not text (RFC 9449 §4.3: exactly one).
pub fn header(headers: &actix_web::http::header::HeaderMap) -> Result<Option<&str>, DpopError> {
    let mut all = headers.get_all("dpop");
    let Some(first) = all.next() else {
        return Ok(None);
    };
    if all.next().is_some() {
        return Err(DpopError::Invalid("more than one DPoP header was sent"));
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| DpopError::Invalid("its header is not text"))
}

/// What the request the proof came with was.
pub struct Expected<'a> {
    /// `GET`, `POST`…
    pub method: &'a str,
    /// The URL the request was sent to, as the client saw it (the server's public base and
    /// the path); any query or fragment is ignored.
    pub url: &'a str,
    /// The access token presented with the proof, at a resource: its hash must be `ath`.
    pub access_token: Option<&'a str>,
    /// When the server requires a nonce: whether the proof's `nonce` is a current one.
    pub nonce: Option<&'a dyn Fn(&str) -> bool>,
    /// Now, in seconds since the epoch.
    pub now: i64,
}

/// A proof that passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// The RFC 7638 SHA-256 thumbprint of the proof's key, base64url: `cnf.jkt`.
    pub jkt: String,
    jti: String,
    /// When the `jti` may be forgotten: no proof with this `iat` passes after it.
    pub expires_at: i64,
}

impl Proof {
    /// The key under which this proof's `jti` is recorded as used: one key's `jti`s do not
    /// collide with another's, nor with client assertions'.
    pub fn replay_key(&self) -> String {
        let mut hash = Sha256::new();
        hash.update(b"dpop\0");
        hash.update(self.jkt.as_bytes());
        hash.update(b"\0");
        hash.update(self.jti.as_bytes());
        hex::encode(hash.finalize())
    }
}

#[derive(Deserialize)]
struct Claims {
    jti: Option<String>,
    htm: Option<String>,
    htu: Option<String>,
    iat: Option<i64>,
    ath: Option<String>,
    nonce: Option<String>,
}

/// `base64url(SHA-256(access token))`, the `ath` a proof for that token must carry.
pub fn access_token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

/// Checks `proof` against the request (see the module doc).
pub fn verify(proof: &str, expected: &Expected<'_>) -> Result<Proof, DpopError> {
    use DpopError::Invalid;
    if proof.len() > MAX_PROOF_LEN {
        return Err(Invalid("it is too long"));
    }
    let header_part = proof.split('.').next().unwrap_or_default();
    let raw_header: serde_json::Value = URL_SAFE_NO_PAD
        .decode(header_part)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(Invalid("its header is not base64url JSON"))?;
    if raw_header["typ"].as_str() != Some("dpop+jwt") {
        return Err(Invalid("its typ is not dpop+jwt"));
    }
    let alg = raw_header["alg"].as_str().unwrap_or_default();
    if !ALGORITHMS.contains(&alg) {
        return Err(Invalid(
            "its alg is not one of ES256, EdDSA, RS256 and PS256",
        ));
    }
    let alg: Algorithm = alg.parse().map_err(|_| Invalid("its alg is unknown"))?;
    let jwk = public_key(raw_header["jwk"].clone())
        .map_err(|_| Invalid("its jwk is not a sound public key of a supported kind"))?;
    let kind = KeyKind::of(&jwk).ok_or(Invalid("its jwk is of an unsupported kind"))?;
    if !kind.algorithms().contains(&alg) {
        return Err(Invalid("its alg does not fit its jwk"));
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| Invalid("its jwk cannot verify"))?;
    let mut validation = Validation::new(alg);
    validation.set_required_spec_claims::<&str>(&[]);
    validation.validate_exp = false;
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<Claims>(proof, &key, &validation)
        .map_err(|_| Invalid("its signature does not verify with its jwk"))?
        .claims;

    let jti = claims
        .jti
        .filter(|j| !j.is_empty() && j.len() <= MAX_JTI_LEN)
        .ok_or(Invalid("it has no jti"))?;
    if claims.htm.as_deref() != Some(expected.method) {
        return Err(Invalid("its htm is not this request's method"));
    }
    let htu = claims.htu.as_deref().and_then(normalize_htu);
    if htu.is_none() || htu != normalize_htu(expected.url) {
        return Err(Invalid("its htu is not this request's URL"));
    }
    let iat = claims.iat.ok_or(Invalid("it has no iat"))?;
    if (iat - expected.now).abs() > WINDOW {
        return Err(Invalid("its iat is too far from now"));
    }
    if let Some(token) = expected.access_token {
        let ath = claims
            .ath
            .ok_or(Invalid("it has no ath for the access token"))?;
        let want = access_token_hash(token);
        let same: bool = subtle::ConstantTimeEq::ct_eq(ath.as_bytes(), want.as_bytes()).into();
        if !same {
            return Err(Invalid("its ath is not the hash of this access token"));
        }
    }
    if let Some(current) = expected.nonce
        && !claims.nonce.as_deref().is_some_and(current)
    {
        return Err(DpopError::UseNonce);
    }
    Ok(Proof {
        jkt: jwk.thumbprint(ThumbprintHash::SHA256),
        jti,
        expires_at: iat + WINDOW,
    })
}

/// `htu` as compared (RFC 9449 §4.3 step 9): no query or fragment, scheme and host in lower
/// case, the default port dropped, an empty path as `/` (the `url` crate's parsing does these),
/// and in the path percent-encoded unreserved characters decoded and the other escapes in
/// upper case (RFC 3986 §6.2.2.1, §6.2.2.2). `None` if it is not an absolute http(s) URL.
pub fn normalize_htu(text: &str) -> Option<String> {
    let mut url = url::Url::parse(text).ok()?;
    if !matches!(url.scheme(), "https" | "http") || url.cannot_be_a_base() {
        return None;
    }
    url.set_query(None);
    url.set_fragment(None);
    let path = normalize_escapes(url.path());
    url.set_path(&path);
    Some(url.to_string())
}

/// `%7E` → `~`, `%2f` → `%2F`: escapes of unreserved characters decoded, the rest upper case,
/// and a `%` that begins no escape written as `%25`, so that decoding cannot make a new escape
/// (`%6%43` would otherwise become `%6C` and then `l`: the fuzzer's find).
fn normalize_escapes(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|_| bytes[i] == b'%')
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(b) if b.is_ascii_alphanumeric() || b"-._~".contains(&b) => {
                out.push(char::from(b));
                i += 3;
            }
            Some(b) => {
                out.push_str(&format!("%{b:02X}"));
                i += 3;
            }
            None if bytes[i] == b'%' => {
                out.push_str("%25");
                i += 1;
            }
            None => {
                out.push(char::from(bytes[i]));
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::{Value, json};

    use super::*;
    use crate::domain::tests_support::p256;

    const URL: &str = "https://auth.example.com/oauth/token";

    struct Key {
        jwk: Value,
        signer: EncodingKey,
    }

    fn key() -> Key {
        let (jwk, pkcs8) = p256("ignored");
        Key {
            jwk,
            signer: EncodingKey::from_ec_der(&pkcs8),
        }
    }

    fn now() -> i64 {
        crate::db::now().and_utc().timestamp()
    }

    fn proof_with(key: &Key, header: impl FnOnce(&mut Header), claims: Value) -> String {
        let mut h = Header::new(Algorithm::ES256);
        h.typ = Some("dpop+jwt".into());
        h.jwk = Some(serde_json::from_value(key.jwk.clone()).unwrap());
        header(&mut h);
        jsonwebtoken::encode(&h, &claims, &key.signer).unwrap()
    }

    fn claims(changes: Value) -> Value {
        let mut c = json!({"jti": "j-1", "htm": "POST", "htu": URL, "iat": now()});
        for (name, value) in changes.as_object().unwrap() {
            if value.is_null() {
                c.as_object_mut().unwrap().remove(name);
            } else {
                c[name] = value.clone();
            }
        }
        c
    }

    fn expected<'a>(
        access_token: Option<&'a str>,
        nonce: Option<&'a dyn Fn(&str) -> bool>,
    ) -> Expected<'a> {
        Expected {
            method: "POST",
            url: URL,
            access_token,
            nonce,
            now: now(),
        }
    }

    #[test]
    fn a_good_proof_passes_and_names_its_key() {
        let key = key();
        let proof = proof_with(&key, |_| {}, claims(json!({})));
        let passed = verify(&proof, &expected(None, None)).unwrap();
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.jwk.clone()).unwrap();
        assert_eq!(passed.jkt, jwk.thumbprint(ThumbprintHash::SHA256));
        assert_eq!(passed.replay_key().len(), 64);
        // htu compared after normalisation; the query of the request is ignored.
        let proof = proof_with(
            &key,
            |_| {},
            claims(json!({"htu": "HTTPS://Auth.Example.com:443/oauth/token"})),
        );
        let mut e = expected(None, None);
        e.url = "https://auth.example.com/oauth/token?x=1";
        verify(&proof, &e).unwrap();
        // At a resource, with the token's hash.
        let proof = proof_with(
            &key,
            |_| {},
            claims(json!({"ath": access_token_hash("the-token")})),
        );
        verify(&proof, &expected(Some("the-token"), None)).unwrap();
        // With a nonce the server gave.
        let proof = proof_with(&key, |_| {}, claims(json!({"nonce": "n-1"})));
        let current = |n: &str| n == "n-1";
        verify(&proof, &expected(None, Some(&current))).unwrap();
    }

    #[test]
    fn each_broken_rule_is_refused() {
        let key = key();
        let other = self::key();
        let mut private = key.jwk.clone();
        private["d"] = json!("c2VjcmV0");
        let cases: Vec<(&str, String, Option<&str>, DpopError)> = vec![
            (
                "typ JWT",
                proof_with(&key, |h| h.typ = Some("JWT".into()), claims(json!({}))),
                None,
                DpopError::Invalid("its typ is not dpop+jwt"),
            ),
            (
                "signed by another key than its jwk",
                {
                    let jwk = key.jwk.clone();
                    proof_with(
                        &other,
                        |h| h.jwk = Some(serde_json::from_value(jwk).unwrap()),
                        claims(json!({})),
                    )
                },
                None,
                DpopError::Invalid("its signature does not verify with its jwk"),
            ),
            (
                "a private jwk",
                {
                    // jsonwebtoken's Jwk drops `d`: put it in the encoded header by hand.
                    let good = proof_with(&key, |_| {}, claims(json!({})));
                    let mut parts = good.split('.');
                    let header: Value = serde_json::from_slice(
                        &URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap(),
                    )
                    .unwrap();
                    let mut header = header;
                    header["jwk"] = private.clone();
                    format!(
                        "{}.{}.{}",
                        URL_SAFE_NO_PAD.encode(header.to_string()),
                        parts.next().unwrap(),
                        parts.next().unwrap()
                    )
                },
                None,
                DpopError::Invalid("its jwk is not a sound public key of a supported kind"),
            ),
            (
                "for another method",
                proof_with(&key, |_| {}, claims(json!({"htm": "GET"}))),
                None,
                DpopError::Invalid("its htm is not this request's method"),
            ),
            (
                "for another URL",
                proof_with(
                    &key,
                    |_| {},
                    claims(json!({"htu": "https://auth.example.com/v1/user/profile"})),
                ),
                None,
                DpopError::Invalid("its htu is not this request's URL"),
            ),
            (
                "a stale iat",
                proof_with(&key, |_| {}, claims(json!({"iat": now() - 600}))),
                None,
                DpopError::Invalid("its iat is too far from now"),
            ),
            (
                "no jti",
                proof_with(&key, |_| {}, claims(json!({"jti": null}))),
                None,
                DpopError::Invalid("it has no jti"),
            ),
            (
                "no ath at a resource",
                proof_with(&key, |_| {}, claims(json!({}))),
                Some("the-token"),
                DpopError::Invalid("it has no ath for the access token"),
            ),
            (
                "the ath of another token",
                proof_with(
                    &key,
                    |_| {},
                    claims(json!({"ath": access_token_hash("another")})),
                ),
                Some("the-token"),
                DpopError::Invalid("its ath is not the hash of this access token"),
            ),
            (
                "alg none",
                {
                    let good = proof_with(&key, |_| {}, claims(json!({})));
                    let payload = good.split('.').nth(1).unwrap().to_owned();
                    let header = json!({"typ": "dpop+jwt", "alg": "none", "jwk": key.jwk});
                    format!("{}.{payload}.", URL_SAFE_NO_PAD.encode(header.to_string()))
                },
                None,
                DpopError::Invalid("its alg is not one of ES256, EdDSA, RS256 and PS256"),
            ),
            (
                "not a JWT",
                "not-a-jwt".to_owned(),
                None,
                DpopError::Invalid("its header is not base64url JSON"),
            ),
        ];
        for (name, proof, access_token, want) in cases {
            let got = verify(&proof, &expected(access_token, None)).unwrap_err();
            assert_eq!(got, want, "{name}");
            assert_eq!(got.code(), "invalid_dpop_proof");
        }
        // A nonce required: missing or stale asks for a fresh one.
        let current = |n: &str| n == "fresh";
        for changes in [json!({}), json!({"nonce": "stale"})] {
            let proof = proof_with(&key, |_| {}, claims(changes));
            let got = verify(&proof, &expected(None, Some(&current))).unwrap_err();
            assert_eq!(got, DpopError::UseNonce);
            assert_eq!(got.code(), "use_dpop_nonce");
        }
    }

    #[test]
    fn htu_is_compared_normalised() {
        for (a, b) in [
            ("https://A.example/x", "https://a.example/x"),
            ("https://a.example:443/x", "https://a.example/x"),
            ("http://a.example:80/x", "http://a.example/x"),
            ("https://a.example/x?q=1#f", "https://a.example/x"),
            ("https://a.example/%7Euser", "https://a.example/~user"),
            ("https://a.example/a%2fb", "https://a.example/a%2Fb"),
            ("https://a.example", "https://a.example/"),
        ] {
            assert_eq!(normalize_htu(a), normalize_htu(b), "{a} ~ {b}");
        }
        assert_ne!(
            normalize_htu("https://a.example/x"),
            normalize_htu("https://a.example/y")
        );
        assert_ne!(
            normalize_htu("https://a.example:8443/x"),
            normalize_htu("https://a.example/x")
        );
        for tricky in [
            "https://a.example/a/%2E%2E/b",
            "https://a.example/%zz/%4",
            "https://a.example/%41%2f%7e",
            "https://a.example/%6%43/%%41/%4%4",
            // the CI fuzz run's crash input (client_assertion, mode 4)
            "HTTPS:/A/\u{1c}23iom:44`/ao`/a/%43\u{4}H/a/%4cc\u{1d}\u{1d}\u{1d}\u{1d}/TTPS:x21@833ut/%6%43/a/%42",
        ] {
            let once = normalize_htu(tricky).unwrap();
            assert_eq!(
                normalize_htu(&once).as_deref(),
                Some(once.as_str()),
                "{tricky}"
            );
        }
        assert_eq!(normalize_htu("urn:x:y"), None);
        assert_eq!(normalize_htu("/oauth/token"), None);
    }

    #[test]
    fn server_nonces_hold_for_their_period_and_the_next_and_only_under_their_key() {
        use crate::config::SecretKeyMaterial;
        use crate::crypto::ServerKey;
        let key = ServerKey::from_material(&SecretKeyMaterial(vec![7; 32]));
        let other = ServerKey::from_material(&SecretKeyMaterial(vec![8; 32]));
        let start = 1_800_000_000 - 1_800_000_000 % NONCE_PERIOD;
        let nonce = nonce(&key, start + 10);
        assert_eq!(nonce.len(), 32);
        assert!(nonce_is_current(&key, &nonce, start));
        assert!(nonce_is_current(&key, &nonce, start + NONCE_PERIOD - 1));
        assert!(nonce_is_current(&key, &nonce, start + 2 * NONCE_PERIOD - 1));
        assert!(!nonce_is_current(&key, &nonce, start + 2 * NONCE_PERIOD));
        assert!(
            !nonce_is_current(&key, &nonce, start - 1),
            "not before its period"
        );
        assert!(
            !nonce_is_current(&other, &nonce, start),
            "another server key"
        );
        let mut forged = nonce.clone().into_bytes();
        forged[31] = if forged[31] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).unwrap();
        assert!(!nonce_is_current(&key, &forged, start));
        for junk in ["", "x", "!!!!", &nonce[..16]] {
            assert!(!nonce_is_current(&key, junk, start), "{junk:?}");
        }
    }
}
