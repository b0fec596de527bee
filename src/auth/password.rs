//! Password hashing with argon2id.
//!
//! Parameters follow the OWASP Password Storage Cheat Sheet's first argon2id option:
//! m = 19 MiB (19456 KiB), t = 2 iterations, p = 1 lane. Hashes are PHC strings, so the
//! parameters travel with each hash and can be raised later without breaking old ones.
//!
//! Hashing costs tens of milliseconds of CPU: callers on the async executor run these
//! functions inside `web::block` (see [`crate::db::run`] for the same pattern).

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// OWASP's argon2id parameters: memory in KiB, iterations, parallelism.
const MEMORY_KIB: u32 = 19_456;
const ITERATIONS: u32 = 2;
const PARALLELISM: u32 = 1;

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

fn hasher() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None)
        .unwrap_or_else(|_| unreachable!("constant argon2 parameters are valid"));
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
pub fn hash(password: &str) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError(e.to_string()))
}

/// Verifies a password against a stored hash. A malformed hash counts as a mismatch.
///
/// Pass `None` for an unknown user: a fixed dummy hash is verified instead, so that an unknown
/// username costs the same time as a wrong password and reveals nothing.
pub fn verify(password: &str, stored: Option<&str>) -> bool {
    let stored_or_dummy = stored.unwrap_or(DUMMY_HASH);
    let Ok(parsed) = PasswordHash::new(stored_or_dummy) else {
        return false;
    };
    let ok = hasher()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    ok && stored.is_some()
}

/// An argon2id hash, with our parameters, of a random password nobody knows.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$1fO2kMHEm8Ek9VaTlA6Yk0J4YcEhzaIVgNdoGhT0m7E";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_carry_owasp_parameters() {
        let h = hash("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify("correct horse battery", Some(&h)));
        assert!(!verify("wrong horse battery", Some(&h)));
        assert!(!verify("anything", Some("not a hash")));
    }

    #[test]
    fn unknown_users_never_verify() {
        assert!(!verify("", None));
        assert!(!verify("correct horse battery", None));
        // The dummy must be a well-formed hash with our parameters, or the timing would differ.
        let parsed = PasswordHash::new(DUMMY_HASH).unwrap();
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        assert_eq!(parsed.params.get_decimal("m"), Some(MEMORY_KIB));
        assert_eq!(parsed.params.get_decimal("t"), Some(ITERATIONS));
    }
}
