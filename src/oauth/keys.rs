//! Signing keys: generated here, kept in `signing_keys` (private half encrypted under the server
//! key), and loaded into a [`KeyRing`] that signs new access tokens with the newest active key
//! and verifies with any key still listed.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::json;
use zeroize::Zeroizing;

use crate::crypto::ServerKey;
use crate::db::models::signing_key::{NewSigningKey, SigningKeyRow};
use crate::db::{self, AnyConnection};

/// The signature algorithms Latchkey can sign with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 and a 2048-bit key: the default, understood everywhere.
    Rs256,
    /// ECDSA P-256 with SHA-256: much faster signing, smaller tokens.
    Es256,
}

impl SigningAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "RS256" => Some(Self::Rs256),
            "ES256" => Some(Self::Es256),
            _ => None,
        }
    }

    fn jwt(self) -> Algorithm {
        match self {
            Self::Rs256 => Algorithm::RS256,
            Self::Es256 => Algorithm::ES256,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key generation failed")]
    Generate,
    #[error(
        "signing key {0} cannot be decrypted: is LATCHKEY_SECRET_KEY the one it was created with?"
    )]
    Decrypt(String),
    #[error("signing key {kid} is unusable: {reason}")]
    Unusable { kid: String, reason: String },
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

/// A key able to sign, parsed once when the ring is loaded.
///
/// jsonwebtoken's `encode` parses (and for RSA, fully validates) the private key on every call,
/// which costs about as much as the signature itself; so tokens are assembled here (RFC 7515
/// §7.1 compact serialization, with jsonwebtoken's own `Header`) and signed with the key pair
/// held in memory. Verification stays with jsonwebtoken.
pub struct Signer {
    pub kid: String,
    pub algorithm: SigningAlgorithm,
    key: SigningKeyPair,
    /// The encoded header of an access token (`typ: at+jwt`), the same for every token this
    /// key signs: built once rather than serialised on every token.
    access_header: String,
}

/// A JWS header (RFC 7515 §4.1) with `alg`, `kid` and `typ`, base64url encoded.
fn encoded_header(
    kid: &str,
    algorithm: SigningAlgorithm,
    typ: &str,
) -> Result<String, serde_json::Error> {
    let mut header = jsonwebtoken::Header::new(algorithm.jwt());
    header.kid = Some(kid.to_owned());
    header.typ = Some(typ.to_owned());
    Ok(URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?))
}

enum SigningKeyPair {
    Rsa(aws_lc_rs::rsa::KeyPair),
    Ecdsa(aws_lc_rs::signature::EcdsaKeyPair),
}

/// Why a token could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("serializing the token failed: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the signature could not be computed")]
    Crypto,
}

impl Signer {
    fn new(kid: String, algorithm: SigningAlgorithm, key: SigningKeyPair) -> Self {
        let access_header = encoded_header(&kid, algorithm, super::jwt::ACCESS_TOKEN_TYP)
            .unwrap_or_else(|_| unreachable!("a header of strings always serialises"));
        Self {
            kid,
            algorithm,
            key,
            access_header,
        }
    }

    /// Signs `claims` as a JWT with `typ` set (RFC 9068 §2.1 wants `at+jwt` for access tokens).
    pub fn sign<C: serde::Serialize>(&self, typ: &str, claims: &C) -> Result<String, SignError> {
        let mut token = String::with_capacity(640);
        if typ == super::jwt::ACCESS_TOKEN_TYP {
            token.push_str(&self.access_header);
        } else {
            token.push_str(&encoded_header(&self.kid, self.algorithm, typ)?);
        }
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(serde_json::to_vec(claims)?, &mut token);
        let signature = self.signature(token.as_bytes())?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        Ok(token)
    }

    /// RFC 7518 §3.3 (RSASSA-PKCS1-v1_5 with SHA-256) or §3.4 (ECDSA P-256, the fixed-width
    /// `r ‖ s` form JWS uses).
    fn signature(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        match &self.key {
            SigningKeyPair::Rsa(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(
                    &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                    &rng,
                    message,
                    &mut signature,
                )
                .map_err(|_| SignError::Crypto)?;
                Ok(signature)
            }
            SigningKeyPair::Ecdsa(pair) => pair
                .sign(&rng, message)
                .map(|signature| signature.as_ref().to_vec())
                .map_err(|_| SignError::Crypto),
        }
    }
}

/// A key able to verify, with the one algorithm it may be used with (no algorithm confusion).
pub struct Verifier {
    pub algorithm: Algorithm,
    pub key: DecodingKey,
}

/// The keys loaded from the database: one signer and every verifier.
pub struct KeyRing {
    pub signer: Signer,
    verifiers: HashMap<String, Verifier>,
    /// Public JWKs, newest first, as published.
    pub jwks: Vec<serde_json::Value>,
    /// When the signing key was made (its age is a metric: rotation overdue shows there).
    pub signer_created_at: chrono::NaiveDateTime,
}

impl KeyRing {
    pub fn verifier(&self, kid: &str) -> Option<&Verifier> {
        self.verifiers.get(kid)
    }

    /// How many keys are published (the signer and the retired ones still verifying).
    pub fn published(&self) -> usize {
        self.verifiers.len()
    }

    /// Loads every key; creates an RS256 key first if there is no active one (first start).
    /// A retired key is kept for verification (and published) until `token_ttl` after it
    /// stopped signing, when the last token it signed has expired.
    pub fn load_or_create(
        conn: &mut AnyConnection,
        server_key: &ServerKey,
        token_ttl: std::time::Duration,
    ) -> Result<Self, KeyError> {
        let mut rows = SigningKeyRow::all(conn)?;
        if !rows.iter().any(|r| r.retired_at.is_none()) {
            // First start. Instances starting together must not each make a key of their own
            // (each would sign with one the others do not know yet), so the check and the
            // insert happen under a lock: SQLite's write lock, plus an advisory lock on
            // PostgreSQL, whose transactions would otherwise both see no key.
            rows = db::write_transaction(conn, |conn| {
                SigningKeyRow::lock_for_creation(conn)?;
                let mut rows = SigningKeyRow::all(conn)?;
                if !rows.iter().any(|r| r.retired_at.is_none()) {
                    rows.insert(0, create(conn, server_key, SigningAlgorithm::Rs256)?);
                }
                Ok::<_, KeyError>(rows)
            })?;
        }
        Self::from_rows(&rows, server_key, token_ttl)
    }

    fn from_rows(
        rows: &[SigningKeyRow],
        server_key: &ServerKey,
        token_ttl: std::time::Duration,
    ) -> Result<Self, KeyError> {
        let mut verifiers = HashMap::new();
        let mut jwks = Vec::new();
        // A minute of slack for clock skew and requests in flight.
        let keep = chrono::TimeDelta::seconds(
            i64::try_from(token_ttl.as_secs()).unwrap_or(i64::MAX / 2) + 60,
        );
        let now = db::now();
        for row in rows
            .iter()
            .filter(|r| r.retired_at.is_none_or(|at| at + keep > now))
        {
            let algorithm =
                SigningAlgorithm::parse(&row.algorithm).ok_or_else(|| KeyError::Unusable {
                    kid: row.kid.clone(),
                    reason: format!("unknown algorithm {}", row.algorithm),
                })?;
            let jwk: serde_json::Value =
                serde_json::from_str(&row.public_jwk).map_err(|e| KeyError::Unusable {
                    kid: row.kid.clone(),
                    reason: e.to_string(),
                })?;
            let decoding = decoding_key(algorithm, &jwk).ok_or_else(|| KeyError::Unusable {
                kid: row.kid.clone(),
                reason: "malformed public key".into(),
            })?;
            verifiers.insert(
                row.kid.clone(),
                Verifier {
                    algorithm: algorithm.jwt(),
                    key: decoding,
                },
            );
            jwks.push(jwk);
        }
        // The newest active key signs.
        let active = rows
            .iter()
            .filter(|r| r.retired_at.is_none())
            .max_by_key(|r| (r.created_at, r.id))
            .ok_or_else(|| KeyError::Unusable {
                kid: "-".into(),
                reason: "no active signing key".into(),
            })?;
        let algorithm =
            SigningAlgorithm::parse(&active.algorithm).ok_or_else(|| KeyError::Unusable {
                kid: active.kid.clone(),
                reason: "unknown algorithm".into(),
            })?;
        let der = server_key
            .decrypt(&active.private_key, &active.kid)
            .map_err(|_| KeyError::Decrypt(active.kid.clone()))?;
        let key = signing_key(algorithm, &der).map_err(|reason| KeyError::Unusable {
            kid: active.kid.clone(),
            reason,
        })?;
        Ok(Self {
            signer: Signer::new(active.kid.clone(), algorithm, key),
            verifiers,
            jwks,
            signer_created_at: active.created_at,
        })
    }
}

/// The current key ring, shared by all workers and replaced when keys change.
pub struct Keys(RwLock<Arc<KeyRing>>);

impl Keys {
    pub fn new(ring: KeyRing) -> Self {
        Self(RwLock::new(Arc::new(ring)))
    }

    pub fn current(&self) -> Arc<KeyRing> {
        match self.0.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    pub fn replace(&self, ring: KeyRing) {
        match self.0.write() {
            Ok(mut guard) => *guard = Arc::new(ring),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(ring),
        }
    }
}

/// Makes a new key the signer and retires every other active one (`latchkey keys rotate`).
/// Running servers pick it up at their next key refresh.
pub fn rotate(
    conn: &mut AnyConnection,
    server_key: &ServerKey,
    algorithm: SigningAlgorithm,
) -> Result<SigningKeyRow, KeyError> {
    let row = create(conn, server_key, algorithm)?;
    SigningKeyRow::retire_all_but(conn, row.id, db::now())?;
    Ok(row)
}

/// Generates a key, stores it encrypted, and returns its row.
pub fn create(
    conn: &mut AnyConnection,
    server_key: &ServerKey,
    algorithm: SigningAlgorithm,
) -> Result<SigningKeyRow, KeyError> {
    let now = db::now();
    // Date-like, as Revenue Monster's (`2018-03-13`), plus randomness so two keys made the
    // same day, or by two instances at once, never clash.
    let kid = format!(
        "{}-{}",
        now.format("%Y-%m-%d"),
        &crate::crypto::random_token(6)
    );
    let (pkcs8, mut jwk) = generate(algorithm)?;
    jwk["kid"] = json!(kid);
    jwk["alg"] = json!(algorithm.as_str());
    jwk["use"] = json!("sig");
    let private_key = server_key.encrypt(&pkcs8, &kid);
    SigningKeyRow::insert(
        conn,
        &NewSigningKey {
            kid: &kid,
            algorithm: algorithm.as_str(),
            private_key: &private_key,
            public_jwk: &jwk.to_string(),
            created_at: now,
        },
    )
    .map_err(KeyError::from)
}

/// A new key pair: its PKCS#8 DER and its public JWK (without kid/alg/use).
fn generate(
    algorithm: SigningAlgorithm,
) -> Result<(Zeroizing<Vec<u8>>, serde_json::Value), KeyError> {
    match algorithm {
        SigningAlgorithm::Rs256 => {
            let pair = aws_lc_rs::rsa::KeyPair::generate(KeySize::Rsa2048)
                .map_err(|_| KeyError::Generate)?;
            let der = pair.as_der().map_err(|_| KeyError::Generate)?;
            let components = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
            let jwk = json!({
                "kty": "RSA",
                "n": URL_SAFE_NO_PAD.encode(strip_leading_zeros(&components.n)),
                "e": URL_SAFE_NO_PAD.encode(strip_leading_zeros(&components.e)),
            });
            Ok((Zeroizing::new(der.as_ref().to_vec()), jwk))
        }
        SigningAlgorithm::Es256 => {
            let pair = aws_lc_rs::signature::EcdsaKeyPair::generate(
                &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            )
            .map_err(|_| KeyError::Generate)?;
            let der = pair.to_pkcs8v1().map_err(|_| KeyError::Generate)?;
            // Uncompressed point: 0x04 ‖ x (32 bytes) ‖ y (32 bytes).
            let point = pair.public_key().as_ref();
            if point.len() != 65 || point[0] != 4 {
                return Err(KeyError::Generate);
            }
            let jwk = json!({
                "kty": "EC",
                "crv": "P-256",
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&point[33..]),
            });
            Ok((Zeroizing::new(der.as_ref().to_vec()), jwk))
        }
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len().saturating_sub(1));
    &bytes[start..]
}

fn signing_key(algorithm: SigningAlgorithm, pkcs8: &[u8]) -> Result<SigningKeyPair, String> {
    match algorithm {
        SigningAlgorithm::Rs256 => aws_lc_rs::rsa::KeyPair::from_pkcs8(pkcs8)
            .map(SigningKeyPair::Rsa)
            .map_err(|e| e.to_string()),
        SigningAlgorithm::Es256 => aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8,
        )
        .map(SigningKeyPair::Ecdsa)
        .map_err(|e| e.to_string()),
    }
}

fn decoding_key(algorithm: SigningAlgorithm, jwk: &serde_json::Value) -> Option<DecodingKey> {
    match algorithm {
        SigningAlgorithm::Rs256 => {
            DecodingKey::from_rsa_components(jwk["n"].as_str()?, jwk["e"].as_str()?).ok()
        }
        SigningAlgorithm::Es256 => {
            DecodingKey::from_ec_components(jwk["x"].as_str()?, jwk["y"].as_str()?).ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Claims {
        sub: String,
        exp: i64,
    }

    /// Each algorithm's generated key signs, and its published JWK verifies, while a JWK of
    /// another key does not.
    #[test]
    fn generated_keys_sign_and_their_jwks_verify() {
        for algorithm in [SigningAlgorithm::Rs256, SigningAlgorithm::Es256] {
            let (der, jwk) = generate(algorithm).unwrap();
            let (_, other_jwk) = generate(algorithm).unwrap();
            let signer = Signer::new(
                "k1".into(),
                algorithm,
                signing_key(algorithm, &der).unwrap(),
            );
            let claims = Claims {
                sub: "42".into(),
                exp: 4_102_444_800,
            };
            let token = signer.sign("at+jwt", &claims).unwrap();
            let header = jsonwebtoken::decode_header(&token).unwrap();
            assert_eq!(header.alg, algorithm.jwt());
            assert_eq!(header.kid.as_deref(), Some("k1"));

            let mut validation = jsonwebtoken::Validation::new(algorithm.jwt());
            validation.required_spec_claims.clear();
            let key = decoding_key(algorithm, &jwk).unwrap();
            let decoded = jsonwebtoken::decode::<Claims>(&token, &key, &validation).unwrap();
            assert_eq!(decoded.claims, claims);
            let wrong = decoding_key(algorithm, &other_jwk).unwrap();
            assert!(jsonwebtoken::decode::<Claims>(&token, &wrong, &validation).is_err());
        }
    }

    #[test]
    fn rsa_jwk_components_have_no_leading_zeros() {
        let (_, jwk) = generate(SigningAlgorithm::Rs256).unwrap();
        let n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
        assert_eq!(n.len(), 256);
        assert_ne!(n[0], 0);
        assert_eq!(jwk["e"], "AQAB");
    }
}
