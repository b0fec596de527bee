//! Keys derived from the server secret, and the primitives built on them.
//!
//! Which primitive for which secret (nothing that grants access is stored in clear):
//! - human passwords: argon2id, see [`crate::auth::password`];
//! - client secrets (256 random bits): a keyed digest, HMAC-SHA256 under a key derived from the
//!   server secret, compared in constant time; plus an AEAD copy (XChaCha20-Poly1305) so the
//!   portal can show the secret again;
//! - bearer credentials (access/refresh tokens, codes, email tokens): SHA-256 digests.
//!
//! A database dump alone therefore lets nobody call the API: digests cannot be reversed, and the
//! encrypted copies need the server key, which is never stored in the database.

use std::fs;
use std::io::Write as _;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::config::{MIN_SECRET_KEY_BYTES, SecretKeyMaterial, parse_secret_key};

type HmacSha256 = Hmac<Sha256>;

/// Name of the generated key file inside the data folder.
pub const SECRET_KEY_FILE: &str = "secret.key";

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot create the data folder {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a valid key: it {reason}")]
    Invalid { path: String, reason: String },
}

/// Decryption failed: wrong key, or the stored value was altered.
#[derive(Debug, thiserror::Error)]
#[error("stored secret cannot be decrypted (wrong LATCHKEY_SECRET_KEY, or altered data)")]
pub struct DecryptError;

/// The server secret and the independent sub-keys derived from it.
#[derive(Clone)]
pub struct ServerKey {
    /// Signs and encrypts session cookies (actix-web's cookie key wants 64 bytes).
    cookie: Zeroizing<[u8; 64]>,
    /// Keys the client-secret digest.
    secret_digest: Zeroizing<[u8; 32]>,
    /// Encrypts secrets at rest.
    encryption: Zeroizing<[u8; 32]>,
    /// Authenticates DPoP server nonces (`oauth::dpop::nonce`).
    dpop_nonce: Zeroizing<[u8; 32]>,
    /// Keys the recovery-code digests (`mfa`).
    recovery_digest: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerKey(***)")
    }
}

impl ServerKey {
    pub fn from_material(material: &SecretKeyMaterial) -> Self {
        let derive = |label: &str| -> [u8; 32] {
            // HMAC as a PRF with a distinct label per purpose (the HKDF-Expand construction
            // with a single output block), so no two uses ever share a key.
            let mut mac = <HmacSha256 as Mac>::new_from_slice(&material.0)
                .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
            mac.update(b"latchkey/v1/");
            mac.update(label.as_bytes());
            mac.finalize().into_bytes().into()
        };
        let mut cookie = [0u8; 64];
        cookie[..32].copy_from_slice(&derive("cookie-signing"));
        cookie[32..].copy_from_slice(&derive("cookie-encryption"));
        Self {
            cookie: Zeroizing::new(cookie),
            secret_digest: Zeroizing::new(derive("client-secret-digest")),
            encryption: Zeroizing::new(derive("at-rest-encryption")),
            dpop_nonce: Zeroizing::new(derive("dpop-nonce")),
            recovery_digest: Zeroizing::new(derive("recovery-code-digest")),
        }
    }

    /// Uses the configured key, or reads `<data_dir>/secret.key`, creating it (mode 0600) with
    /// 32 random bytes the first time. Returns whether a new key was generated.
    pub fn load_or_generate(
        configured: Option<&SecretKeyMaterial>,
        data_dir: &Path,
    ) -> Result<(Self, bool), KeyFileError> {
        if let Some(material) = configured {
            return Ok((Self::from_material(material), false));
        }
        let path = data_dir.join(SECRET_KEY_FILE);
        let shown = path.display().to_string();
        match fs::read_to_string(&path) {
            Ok(text) => {
                let material = parse_secret_key(&text).map_err(|reason| KeyFileError::Invalid {
                    path: shown,
                    reason,
                })?;
                Ok((Self::from_material(&material), false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::create_dir_all(data_dir).map_err(|source| KeyFileError::CreateDir {
                    path: data_dir.display().to_string(),
                    source,
                })?;
                let mut bytes = Zeroizing::new([0u8; MIN_SECRET_KEY_BYTES]);
                OsRng.fill_bytes(bytes.as_mut());
                let encoded = Zeroizing::new(hex::encode(bytes.as_ref()));
                write_private_file(&path, encoded.as_bytes()).map_err(|source| {
                    KeyFileError::Write {
                        path: shown,
                        source,
                    }
                })?;
                let material = SecretKeyMaterial(bytes.to_vec());
                Ok((Self::from_material(&material), true))
            }
            Err(source) => Err(KeyFileError::Read {
                path: shown,
                source,
            }),
        }
    }

    /// 64 bytes for actix-web's cookie `Key`.
    pub fn cookie_key(&self) -> &[u8; 64] {
        &self.cookie
    }

    /// Keyed digest of a client secret, hex encoded, for storage and lookup.
    pub fn client_secret_digest(&self, secret: &str) -> String {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(self.secret_digest.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(secret.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Keyed digest of a recovery code (already normalised), hex: what `recovery_codes` stores.
    /// The codes are random (50 bits each), so a keyed hash is enough; the key keeps a copy of
    /// the table from being searched offline.
    pub fn recovery_code_digest(&self, code: &str) -> String {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(self.recovery_digest.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(code.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The tag of a DPoP server nonce for `period` (`oauth::dpop::nonce`): 128 bits of an HMAC
    /// under a key of its own, so every instance sharing the server key makes and accepts the
    /// same nonces without storing any.
    pub fn dpop_nonce_tag(&self, period: i64) -> [u8; 16] {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(self.dpop_nonce.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(&period.to_be_bytes());
        let mut tag = [0u8; 16];
        tag.copy_from_slice(&mac.finalize().into_bytes()[..16]);
        tag
    }

    /// Whether `secret` matches a stored digest, in time independent of where they differ.
    pub fn verify_client_secret(&self, secret: &str, stored_digest: &str) -> bool {
        let computed = self.client_secret_digest(secret);
        computed.as_bytes().ct_eq(stored_digest.as_bytes()).into()
    }

    /// Encrypts `plaintext` with XChaCha20-Poly1305. `context` is authenticated but not stored
    /// (for example the row's client_id), so a ciphertext moved to another row fails to decrypt.
    /// Output: base64url(nonce ‖ ciphertext).
    pub fn encrypt(&self, plaintext: &[u8], context: &str) -> String {
        let cipher = XChaCha20Poly1305::new(self.encryption.as_ref().into());
        let mut nonce = [0u8; 24];
        OsRng.fill_bytes(&mut nonce);
        let sealed = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .unwrap_or_else(|_| unreachable!("XChaCha20-Poly1305 encryption cannot fail"));
        let mut out = Vec::with_capacity(nonce.len() + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(out)
    }

    pub fn decrypt(&self, stored: &str, context: &str) -> Result<Zeroizing<Vec<u8>>, DecryptError> {
        let raw = URL_SAFE_NO_PAD.decode(stored).map_err(|_| DecryptError)?;
        if raw.len() < 24 {
            return Err(DecryptError);
        }
        let (nonce, sealed) = raw.split_at(24);
        let cipher = XChaCha20Poly1305::new(self.encryption.as_ref().into());
        cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: context.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| DecryptError)
    }
}

/// SHA-256 of a bearer credential, hex encoded: how tokens and codes are stored and looked up.
pub fn token_digest(token: &str) -> String {
    TokenDigest::of(token).hex()
}

/// SHA-256 of a bearer credential, for a request that needs it more than once.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// Hex, as stored ([`token_digest`]).
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Its first 128 bits: a key for an in-process cache of tokens (finding another token with
    /// the same 128 bits is a second preimage of them, 2^128 work).
    pub fn short(&self) -> u128 {
        let mut first = [0u8; 16];
        first.copy_from_slice(&self.0[..16]);
        u128::from_be_bytes(first)
    }
}

impl std::fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenDigest({:032x}…)", self.short())
    }
}

/// `bytes` random bytes from the OS, base64url without padding.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

#[cfg(unix)]
fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> ServerKey {
        ServerKey::from_material(&SecretKeyMaterial(vec![byte; 32]))
    }

    #[test]
    fn encryption_round_trips_and_is_bound_to_its_context() {
        let k = key(1);
        let sealed = k.encrypt(b"lks_secret", "client-1");
        assert!(!sealed.contains("lks_secret"));
        assert_eq!(
            k.decrypt(&sealed, "client-1").unwrap().as_slice(),
            b"lks_secret"
        );
        assert!(k.decrypt(&sealed, "client-2").is_err());
        assert!(key(2).decrypt(&sealed, "client-1").is_err());
        assert!(k.decrypt("short", "client-1").is_err());
    }

    #[test]
    fn secret_digests_are_keyed_and_verify() {
        let digest = key(1).client_secret_digest("s3cret");
        assert_ne!(digest, key(2).client_secret_digest("s3cret"));
        assert!(key(1).verify_client_secret("s3cret", &digest));
        assert!(!key(1).verify_client_secret("s3cres", &digest));
    }

    #[test]
    fn random_tokens_carry_256_bits() {
        let a = random_token(32);
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_token(32));
    }

    #[test]
    fn key_file_is_generated_once_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let (first, created) = ServerKey::load_or_generate(None, dir.path()).unwrap();
        assert!(created);
        let (second, created_again) = ServerKey::load_or_generate(None, dir.path()).unwrap();
        assert!(!created_again);
        assert_eq!(
            first.client_secret_digest("x"),
            second.client_secret_digest("x")
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(dir.path().join(SECRET_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
