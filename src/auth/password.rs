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
use std::sync::{Arc, Condvar, Mutex};

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

/// Hashing and checking passwords, at most one per core at a time. Each hash takes 19 MiB for
/// its whole run, and more at once than there are cores adds memory but no throughput: 64
/// sign-ins at once took 1 GiB of RSS (bench/run.sh's password scenario) before this limit.
/// One per server (in `OAuthContext`), cloned freely.
#[derive(Clone)]
pub struct Passwords(Arc<Permits>);

impl Default for Passwords {
    fn default() -> Self {
        Self(Arc::new(Permits::new(
            std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get),
        )))
    }
}

impl Passwords {
    /// Hashes a password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
    pub fn hash(&self, password: &str) -> Result<String, HashError> {
        self.0.with(|| hash(password))
    }

    /// Verifies a password against a stored hash; see [`verify`].
    pub fn verify(&self, password: &str, stored: Option<&str>) -> bool {
        self.0.with(|| verify(password, stored))
    }
}

/// A counting semaphore for blocking threads (the callers run on `web::block`'s pool).
struct Permits {
    free: Mutex<usize>,
    released: Condvar,
}

impl Permits {
    fn new(count: usize) -> Self {
        Self {
            free: Mutex::new(count.max(1)),
            released: Condvar::new(),
        }
    }

    /// Runs `work` once a permit is free.
    fn with<T>(&self, work: impl FnOnce() -> T) -> T {
        {
            let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
            while *free == 0 {
                free = self.released.wait(free).unwrap_or_else(|p| p.into_inner());
            }
            *free -= 1;
        }
        // Released on the way out, even if `work` panics.
        struct Release<'a>(&'a Permits);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                *self.0.free.lock().unwrap_or_else(|p| p.into_inner()) += 1;
                self.0.released.notify_one();
            }
        }
        let _release = Release(self);
        work()
    }
}

/// Hashes a password into a PHC string. Servers go through [`Passwords::hash`].
fn hash(password: &str) -> Result<String, HashError> {
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
fn verify(password: &str, stored: Option<&str>) -> bool {
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

    /// No more than the permits run at once, and every caller gets through.
    #[test]
    fn permits_bound_how_many_run_at_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let permits = Permits::new(2);
        let running = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let done = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    permits.with(|| {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        running.fetch_sub(1, Ordering::SeqCst);
                        done.fetch_add(1, Ordering::SeqCst);
                    })
                });
            }
        });
        assert_eq!(done.load(Ordering::SeqCst), 8);
        assert_eq!(most.load(Ordering::SeqCst), 2);
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
