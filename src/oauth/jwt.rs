//! Access tokens as JWTs (RFC 9068): the claims, and checking a presented token.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::keys::{KeyRing, Verifier};
use crate::crypto::TokenDigest;
use crate::domain::UserId;

/// RFC 9068 §2.1: access tokens carry `typ: at+jwt`, so an ID token or any other JWT signed by
/// the same key is never accepted as one.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// The claims of an access token (RFC 9068 §2.2), plus the client's environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    /// The user the token acts for (for client_credentials, the client's owner), as a string.
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    pub client_id: String,
    /// Space-separated granted scopes.
    pub scope: String,
    /// `sandbox` or `live`, from the client.
    pub env: String,
    /// RFC 9449 §6.1: the DPoP key the token is bound to; absent for a bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

/// RFC 7800's confirmation claim, as DPoP uses it: the key's RFC 7638 thumbprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    pub jkt: String,
}

impl AccessClaims {
    pub fn has_scope(&self, name: &str) -> bool {
        self.scope.split(' ').any(|s| s == name)
    }

    pub fn user_id(&self) -> Option<UserId> {
        self.sub.parse().ok()
    }
}

/// Why a presented token was refused. Never shown in detail to callers beyond a short phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejected {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token is not an access token")]
    WrongType,
    #[error("the token was signed by an unknown key")]
    UnknownKey,
    #[error("the token signature or claims are invalid")]
    Invalid,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
}

/// Longest token accepted, so oversized input is refused before any parsing work.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Verifies signature, `typ`, `kid` (a key still in the ring), `alg` (fixed per key), `iss`,
/// `aud`, `exp` and `nbf` (5 seconds of leeway). Revocation is checked separately, against the
/// database.
pub fn verify(
    ring: &KeyRing,
    token: &str,
    issuer: &str,
    audience: &str,
) -> Result<AccessClaims, TokenRejected> {
    let (verifier, claims) = read_parts(ring, token, issuer, audience, unix_now())?;
    check_signature(verifier, token)?;
    Ok(claims)
}

/// [`verify`], with the signature checked only the first time this process sees the token:
/// everything else is checked on every call, the key's presence in the ring included (a key
/// revoked since takes its tokens with it).
pub fn verify_cached(
    seen: &Signatures,
    ring: &KeyRing,
    token: &str,
    digest: &TokenDigest,
    issuer: &str,
    audience: &str,
) -> Result<AccessClaims, TokenRejected> {
    let (verifier, claims) = read_parts(ring, token, issuer, audience, unix_now())?;
    let key = digest.short();
    if seen.0.get(&key).is_none() {
        check_signature(verifier, token)?;
        seen.0.insert(key, ());
    }
    Ok(claims)
}

/// The tokens whose signatures this process has verified, by digest ([`TokenDigest::short`]).
///
/// A resource request or an introspection checks the signature although it then finds the
/// token's row anyway (for revocation): the row alone must not be enough, or anyone able to
/// write to the database could mint tokens without the signing key. But a token's signature
/// stays good for its whole life, and checking it (an RSA or P-256 verification, after
/// building a verifier from the key) was most of such a request's work. So it is checked once
/// per token and process; only a token that verified goes in, so forgeries cannot fill it.
/// Bounded (least recently used go first): at [`Signatures::CAPACITY`] entries of 16 bytes.
pub struct Signatures(quick_cache::sync::Cache<u128, ()>);

impl Signatures {
    /// Tokens remembered: more than the live tokens a busy resource sees within an hour's
    /// lifetime on one instance, for well under a MiB.
    pub const CAPACITY: usize = 16_384;

    pub fn new() -> Self {
        Self(quick_cache::sync::Cache::new(Self::CAPACITY))
    }
}

impl Default for Signatures {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Signatures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signatures({} verified)", self.0.len())
    }
}

fn check_signature(verifier: &Verifier, token: &str) -> Result<(), TokenRejected> {
    let (message, signature) = token.rsplit_once('.').ok_or(TokenRejected::Malformed)?;
    match jsonwebtoken::crypto::verify(
        signature,
        message.as_bytes(),
        &verifier.key,
        verifier.algorithm,
    ) {
        Ok(true) => Ok(()),
        _ => Err(TokenRejected::Invalid),
    }
}

/// Clock leeway for `exp` and `nbf`, in seconds.
const LEEWAY: i64 = 5;

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Everything [`verify`] checks but the signature; returns the token's key with the claims.
fn read_parts<'r>(
    ring: &'r KeyRing,
    token: &str,
    issuer: &str,
    audience: &str,
    now: i64,
) -> Result<(&'r Verifier, AccessClaims), TokenRejected> {
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Err(TokenRejected::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenRejected::Malformed);
    };
    if header.is_empty() {
        return Err(TokenRejected::Malformed);
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenRejected::Malformed)?;
    if header
        .typ
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
        != Some(ACCESS_TOKEN_TYP)
    {
        return Err(TokenRejected::WrongType);
    }
    let kid = header.kid.as_deref().ok_or(TokenRejected::UnknownKey)?;
    let verifier = ring.verifier(kid).ok_or(TokenRejected::UnknownKey)?;
    // The algorithm comes from our key, never from the token: `none` or HS256 signed with the
    // public key fail here (RFC 8725 §3.1).
    if header.alg != verifier.algorithm {
        return Err(TokenRejected::Invalid);
    }
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenRejected::Malformed)?;
    // Every claim is required (`AccessClaims` has no defaults); `aud` is one string, ours.
    let claims: AccessClaims =
        serde_json::from_slice(&payload).map_err(|_| TokenRejected::Invalid)?;
    if claims.iss != issuer || claims.aud != audience {
        return Err(TokenRejected::Invalid);
    }
    if claims.exp < now - LEEWAY {
        return Err(TokenRejected::Expired);
    }
    if claims.nbf > now + LEEWAY {
        return Err(TokenRejected::NotYetValid);
    }
    Ok((verifier, claims))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{DatabaseUrl, SecretKeyMaterial};
    use crate::crypto::ServerKey;
    use crate::db::{self, ConnectionManager};

    const ISSUER: &str = "https://auth.example.com";

    fn rings() -> (KeyRing, KeyRing) {
        let mut conn = ConnectionManager::new(DatabaseUrl::Sqlite(":memory:".into()))
            .establish()
            .unwrap();
        db::migrate(&mut conn).unwrap();
        let key = ServerKey::from_material(&SecretKeyMaterial(vec![7; 32]));
        let ttl = Duration::from_secs(3600);
        let first = KeyRing::load_or_create(&mut conn, &key, ttl).unwrap();
        // Another database: another key, and the first one's kid is unknown to it.
        let mut other = ConnectionManager::new(DatabaseUrl::Sqlite(":memory:".into()))
            .establish()
            .unwrap();
        db::migrate(&mut other).unwrap();
        let second = KeyRing::load_or_create(&mut other, &key, ttl).unwrap();
        (first, second)
    }

    fn claims(exp_in: i64) -> AccessClaims {
        let now = unix_now();
        AccessClaims {
            iss: ISSUER.into(),
            sub: "1".into(),
            aud: ISSUER.into(),
            exp: now + exp_in,
            iat: now,
            nbf: now,
            jti: "j".into(),
            client_id: "c".into(),
            scope: "get_user_profile".into(),
            env: "sandbox".into(),
            cnf: None,
        }
    }

    fn cached(
        seen: &Signatures,
        ring: &KeyRing,
        token: &str,
    ) -> Result<AccessClaims, TokenRejected> {
        verify_cached(seen, ring, token, &TokenDigest::of(token), ISSUER, ISSUER)
    }

    /// A forgery never enters the cache, so it is refused every time; a good token enters it
    /// once verified, and is still refused once its key has left the ring or it has expired.
    #[test]
    fn the_signature_cache_holds_only_verified_tokens_and_skips_no_other_check() {
        let (ring, other) = rings();
        let seen = Signatures::new();
        let live = claims(3600);
        let good = ring.signer.sign(ACCESS_TOKEN_TYP, &live).unwrap();
        let (message, _) = good.rsplit_once('.').unwrap();
        let forged = format!("{message}.{}", URL_SAFE_NO_PAD.encode([0u8; 256]));
        for _ in 0..2 {
            assert_eq!(cached(&seen, &ring, &forged), Err(TokenRejected::Invalid));
        }
        assert_eq!(seen.0.len(), 0);
        assert_eq!(cached(&seen, &ring, &good).unwrap(), live);
        assert_eq!(seen.0.len(), 1);
        assert!(cached(&seen, &ring, &good).is_ok());
        // The key is gone (revoked): the cached token goes with it.
        assert_eq!(cached(&seen, &other, &good), Err(TokenRejected::UnknownKey));
        // Expiry is read from the claims on every call.
        let short = ring.signer.sign(ACCESS_TOKEN_TYP, &claims(-60)).unwrap();
        assert_eq!(cached(&seen, &ring, &short), Err(TokenRejected::Expired));
        // And `verify` checks the signature each time.
        assert_eq!(
            verify(&ring, &forged, ISSUER, ISSUER),
            Err(TokenRejected::Invalid)
        );
        assert!(verify(&ring, &good, ISSUER, ISSUER).is_ok());
    }
}
