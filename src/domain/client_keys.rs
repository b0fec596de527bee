//! A key-based client's public keys (`private_key_jwt`, RFC 7523 §2.2, OIDC Core §9): the JWKS
//! document (RFC 7517) its owner registers in the portal or with the CLI, checked once here so
//! that every key that reaches the database is one we can verify with and nothing else.
//!
//! A key is accepted when it is public (no private or symmetric members), of a kind we verify
//! with ([`KeyKind`]: RSA of at least 2048 bits, P-256, Ed25519), parses as such (the EC and
//! Ed25519 points are checked by aws-lc), is for signing (`use`, if given, is `sig`; `alg`, if
//! given, is one the kind allows), and has a `kid` of its own within the client (the RFC 7638
//! thumbprint becomes the `kid` of a key that has none). At most [`MAX_KEYS`] per client.
//!
//! Stored in `clients.jwks` as a JSON array of `{"jwk": …, "added_at": …}`, so the portal can
//! say when each key came; `None` there means a secret-based (or public) client.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::NaiveDateTime;
use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, ThumbprintHash};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Invalid;

/// The most keys one client may register (enough for a rotation with spares).
pub const MAX_KEYS: usize = 10;

/// The smallest RSA modulus accepted, in bytes (2048 bits).
const MIN_RSA_BYTES: usize = 256;

/// Longest `kid` kept.
const MAX_KID_LEN: usize = 128;

/// Members that only a private or symmetric key has (RFC 7518 §6.2.2, §6.3.2, §6.4.1; RFC 8037
/// §2).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The kinds of key a client assertion may be verified with, and the algorithms each allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    P256,
    Ed25519,
}

impl KeyKind {
    pub fn of(jwk: &Jwk) -> Option<Self> {
        match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Some(Self::Rsa),
            AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
                Some(Self::P256)
            }
            AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
                Some(Self::Ed25519)
            }
            _ => None,
        }
    }

    /// The signature algorithms this kind of key verifies (never `none`, never HMAC).
    pub fn algorithms(self) -> &'static [Algorithm] {
        match self {
            Self::Rsa => &[Algorithm::RS256, Algorithm::PS256],
            Self::P256 => &[Algorithm::ES256],
            Self::Ed25519 => &[Algorithm::EdDSA],
        }
    }

    /// How the portal names it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Rsa => "RSA",
            Self::P256 => "EC P-256",
            Self::Ed25519 => "Ed25519",
        }
    }
}

/// Every algorithm some registered key may sign a client assertion with, for the metadata's
/// `token_endpoint_auth_signing_alg_values_supported`.
pub const ASSERTION_ALGORITHMS: [&str; 4] = ["RS256", "PS256", "ES256", "EdDSA"];

/// One registered key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientKey {
    pub jwk: Jwk,
    pub added_at: NaiveDateTime,
}

impl ClientKey {
    pub fn kid(&self) -> &str {
        self.jwk.common.key_id.as_deref().unwrap_or_default()
    }

    pub fn kind(&self) -> Option<KeyKind> {
        KeyKind::of(&self.jwk)
    }

    /// Whether this key may have signed with `alg`: its kind allows it, and its own `alg`, if
    /// it names one, is that one.
    pub fn allows(&self, alg: Algorithm) -> bool {
        let declared = self
            .jwk
            .common
            .key_algorithm
            .and_then(|a| a.to_string().parse::<Algorithm>().ok());
        self.kind().is_some_and(|k| k.algorithms().contains(&alg))
            && declared.is_none_or(|d| d == alg)
    }
}

/// A client's registered keys.
#[derive(Debug, Clone, Default)]
pub struct ClientKeys(Vec<ClientKey>);

impl ClientKeys {
    /// The keys as stored in `clients.jwks`. A value that does not read (written by hand)
    /// counts as no keys: the client cannot authenticate until its owner registers them again.
    pub fn from_stored(stored: &str) -> Self {
        Self(serde_json::from_str(stored).unwrap_or_default())
    }

    pub fn to_stored(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_else(|_| "[]".into())
    }

    pub fn iter(&self) -> impl Iterator<Item = &ClientKey> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds the keys of a JWKS document (or of one JWK) to these, each checked (see the module
    /// doc); refuses the lot if any key is refused, if a `kid` repeats, or past [`MAX_KEYS`].
    pub fn add(&mut self, document: &str, now: NaiveDateTime) -> Result<usize, Invalid> {
        let new = parse_document(document)?;
        if self.0.len() + new.len() > MAX_KEYS {
            return Err(Invalid::new(format!(
                "would give the application {} keys; at most {MAX_KEYS} are allowed",
                self.0.len() + new.len()
            )));
        }
        for jwk in &new {
            let kid = jwk.common.key_id.as_deref().unwrap_or_default();
            if self.0.iter().any(|k| k.kid() == kid) {
                return Err(Invalid::new(format!(
                    "has a key with kid \"{kid}\", which the application already has"
                )));
            }
        }
        let added = new.len();
        self.0
            .extend(new.into_iter().map(|jwk| ClientKey { jwk, added_at: now }));
        Ok(added)
    }

    /// Removes the key with this `kid`; whether there was one.
    pub fn remove(&mut self, kid: &str) -> bool {
        let before = self.0.len();
        self.0.retain(|k| k.kid() != kid);
        self.0.len() != before
    }

    /// The keys that may have signed a JWT with header `kid` and `alg`: the one with that kid,
    /// or, when the JWT names none, every key that allows the algorithm.
    pub fn candidates(&self, kid: Option<&str>, alg: Algorithm) -> impl Iterator<Item = &Jwk> {
        self.0
            .iter()
            .filter(move |k| kid.is_none_or(|kid| k.kid() == kid) && k.allows(alg))
            .map(|k| &k.jwk)
    }
}

/// A JWKS document (`{"keys": [...]}`) or a single JWK, every key checked.
fn parse_document(document: &str) -> Result<Vec<Jwk>, Invalid> {
    let value: Value = serde_json::from_str(document.trim())
        .map_err(|_| Invalid::new("is not JSON: paste a JWKS document ({\"keys\": [...]})"))?;
    let keys = match value {
        Value::Object(mut object) if object.contains_key("keys") => match object.remove("keys") {
            Some(Value::Array(keys)) => keys,
            _ => return Err(Invalid::new("has a \"keys\" member that is not an array")),
        },
        Value::Object(_) => vec![value],
        _ => {
            return Err(Invalid::new(
                "must be a JWKS document ({\"keys\": [...]}) or one JWK",
            ));
        }
    };
    if keys.is_empty() {
        return Err(Invalid::new("has no keys"));
    }
    if keys.len() > MAX_KEYS {
        return Err(Invalid::new(format!(
            "has {} keys; at most {MAX_KEYS} are allowed",
            keys.len()
        )));
    }
    let mut parsed: Vec<Jwk> = Vec::with_capacity(keys.len());
    for (n, key) in keys.into_iter().enumerate() {
        let jwk = public_key(key).map_err(|e| Invalid::new(format!("key {}: {e}", n + 1)))?;
        let kid = jwk.common.key_id.as_deref().unwrap_or_default();
        if parsed
            .iter()
            .any(|p| p.common.key_id.as_deref() == Some(kid))
        {
            return Err(Invalid::new(format!(
                "has two keys with kid \"{kid}\": each key needs its own"
            )));
        }
        parsed.push(jwk);
    }
    Ok(parsed)
}

/// One JWK, checked: see the module doc. The message completes "key N: …". Also the check of
/// the key a DPoP proof carries (`oauth::dpop`): public, of a kind we verify with, sound.
pub fn public_key(value: Value) -> Result<Jwk, Invalid> {
    let Value::Object(object) = &value else {
        return Err(Invalid::new("is not a JSON object"));
    };
    if let Some(member) = PRIVATE_MEMBERS.iter().find(|m| object.contains_key(**m)) {
        return Err(Invalid::new(format!(
            "has the member \"{member}\", which only a private or secret key has: register the public key only"
        )));
    }
    let kty = object
        .get("kty")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if !matches!(kty.as_str(), "RSA" | "EC" | "OKP") {
        return Err(Invalid::new(format!(
            "has kty \"{kty}\"; RSA, EC (P-256) and OKP (Ed25519) keys are accepted"
        )));
    }
    if let Some(key_use) = object.get("use")
        && key_use.as_str() != Some("sig")
    {
        return Err(Invalid::new("has a \"use\" other than \"sig\""));
    }
    if let Some(kid) = object.get("kid") {
        match kid.as_str() {
            Some(kid)
                if !kid.is_empty()
                    && kid.len() <= MAX_KID_LEN
                    && !kid.chars().any(char::is_control) => {}
            _ => {
                return Err(Invalid::new(format!(
                    "has a kid that is not a string of 1 to {MAX_KID_LEN} characters"
                )));
            }
        }
    }
    let mut jwk: Jwk = serde_json::from_value(value)
        .map_err(|e| Invalid::new(format!("is not a valid {kty} key ({e})")))?;
    let kind = KeyKind::of(&jwk)
        .ok_or_else(|| Invalid::new("is on a curve other than P-256 (EC) or Ed25519 (OKP)"))?;
    check_material(&jwk, kind)?;
    if let Some(alg) = jwk.common.key_algorithm {
        let allowed = alg
            .to_string()
            .parse::<Algorithm>()
            .is_ok_and(|a| kind.algorithms().contains(&a));
        if !allowed {
            return Err(Invalid::new(format!(
                "has alg \"{alg}\", which a {} key cannot sign client assertions with",
                kind.label()
            )));
        }
    }
    if jwk.common.key_id.is_none() {
        jwk.common.key_id = Some(jwk.thumbprint(ThumbprintHash::SHA256));
    }
    Ok(jwk)
}

/// The key material itself: sizes, and for EC and Ed25519 that the point is one.
fn check_material(jwk: &Jwk, kind: KeyKind) -> Result<(), Invalid> {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ED25519, ParsedPublicKey};
    let decode = |field: &str, text: &str| {
        URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| Invalid::new(format!("has a \"{field}\" that is not base64url")))
    };
    match (&jwk.algorithm, kind) {
        (AlgorithmParameters::RSA(rsa), KeyKind::Rsa) => {
            let n = decode("n", &rsa.n)?;
            let e = decode("e", &rsa.e)?;
            let bits = n.iter().skip_while(|b| **b == 0).count();
            if bits < MIN_RSA_BYTES {
                return Err(Invalid::new(format!(
                    "is an RSA key of {} bits; at least 2048 are needed",
                    bits * 8
                )));
            }
            if e.is_empty() || e.len() > 8 || e.last().is_none_or(|b| b & 1 == 0) {
                return Err(Invalid::new("has an RSA exponent that is not usable"));
            }
            Ok(())
        }
        (AlgorithmParameters::EllipticCurve(ec), KeyKind::P256) => {
            let (x, y) = (decode("x", &ec.x)?, decode("y", &ec.y)?);
            if x.len() != 32 || y.len() != 32 {
                return Err(Invalid::new("has P-256 coordinates that are not 32 bytes"));
            }
            let point = [&[0x04][..], &x, &y].concat();
            ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                .map(|_| ())
                .map_err(|_| Invalid::new("is not a point on the P-256 curve"))
        }
        (AlgorithmParameters::OctetKeyPair(okp), KeyKind::Ed25519) => {
            let x = decode("x", &okp.x)?;
            ParsedPublicKey::new(&ED25519, x)
                .map(|_| ())
                .map_err(|_| Invalid::new("is not an Ed25519 public key"))
        }
        _ => Err(Invalid::new("does not match its kty")),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A P-256 key pair made for a test: its public JWK (with `kid`) and its PKCS#8 private key.
    pub fn p256(kid: &str) -> (Value, Vec<u8>) {
        use aws_lc_rs::rand::SystemRandom;
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        let point = pair.public_key().as_ref();
        let jwk = serde_json::json!({
            "kty": "EC", "crv": "P-256", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        });
        (jwk, pkcs8.as_ref().to_vec())
    }

    fn now() -> NaiveDateTime {
        crate::db::now()
    }

    fn added(document: &str) -> Result<ClientKeys, Invalid> {
        let mut keys = ClientKeys::default();
        keys.add(document, now()).map(|_| keys)
    }

    #[test]
    fn public_keys_of_each_kind_are_accepted_and_stored() {
        let (ec, _) = p256("ec-1");
        let ed = serde_json::json!({"kty": "OKP", "crv": "Ed25519",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "use": "sig"});
        let rsa = serde_json::json!({"kty": "RSA", "kid": "rsa-1", "alg": "PS256", "e": "AQAB",
            "n": URL_SAFE_NO_PAD.encode([0xc5u8; 256])});
        let document = serde_json::json!({ "keys": [ec, ed, rsa] }).to_string();
        let keys = added(&document).unwrap();
        let kinds: Vec<_> = keys.iter().map(|k| k.kind().unwrap().label()).collect();
        assert_eq!(kinds, ["EC P-256", "Ed25519", "RSA"]);
        // The Ed25519 key had no kid: its RFC 7638 thumbprint is its kid.
        assert_eq!(
            keys.iter().nth(1).unwrap().kid(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
        let again = ClientKeys::from_stored(&keys.to_stored());
        assert_eq!(again.len(), 3);
        assert_eq!(
            again.candidates(None, Algorithm::ES256).count(),
            1,
            "one key signs ES256"
        );
        assert_eq!(again.candidates(Some("rsa-1"), Algorithm::PS256).count(), 1);
        assert_eq!(
            again.candidates(Some("rsa-1"), Algorithm::RS256).count(),
            0,
            "the key says PS256"
        );
        assert_eq!(again.candidates(Some("ec-1"), Algorithm::HS256).count(), 0);
    }

    #[test]
    fn private_secret_weak_and_foreign_keys_are_refused() {
        let (ec, _) = p256("ec-1");
        let with = |extra: (&str, Value)| {
            let mut key = ec.clone();
            key[extra.0] = extra.1;
            key.to_string()
        };
        let cases = [
            (with(("d", "AAAA".into())), "private"),
            (r#"{"kty":"oct","k":"c2VjcmV0"}"#.to_owned(), "private"),
            (r#"{"kty":"oct"}"#.to_owned(), "kty"),
            (with(("use", "enc".into())), "use"),
            (with(("alg", "RS256".into())), "alg"),
            (with(("crv", "P-384".into())), "curve"),
            (with(("x", URL_SAFE_NO_PAD.encode([1u8; 32]).into())), "point"),
            (with(("kid", "".into())), "kid"),
            (
                serde_json::json!({"kty": "RSA", "e": "AQAB", "n": URL_SAFE_NO_PAD.encode([0xc5u8; 128])})
                    .to_string(),
                "1024 bits",
            ),
            ("[1]".to_owned(), "JWKS"),
            (r#"{"keys": []}"#.to_owned(), "no keys"),
            ("not json".to_owned(), "not JSON"),
        ];
        for (document, says) in cases {
            let err = added(&document).expect_err(&document);
            assert!(err.0.contains(says), "{document}: {err}");
        }
    }

    #[test]
    fn kids_are_unique_and_keys_at_most_ten() {
        let (a, _) = p256("same");
        let (b, _) = p256("same");
        let err = added(&serde_json::json!({"keys": [a.clone(), b]}).to_string()).unwrap_err();
        assert!(err.0.contains("two keys"), "{err}");
        let mut keys = added(&a.to_string()).unwrap();
        let (c, _) = p256("same");
        let err = keys.add(&c.to_string(), now()).unwrap_err();
        assert!(err.0.contains("already has"), "{err}");
        for n in 1..MAX_KEYS {
            keys.add(&p256(&format!("k{n}")).0.to_string(), now())
                .unwrap();
        }
        let err = keys
            .add(&p256("one-more").0.to_string(), now())
            .unwrap_err();
        assert!(err.0.contains("at most 10"), "{err}");
        assert!(keys.remove("k3"));
        assert!(!keys.remove("k3"));
        keys.add(&p256("one-more").0.to_string(), now()).unwrap();
    }
}
