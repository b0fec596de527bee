//! Password hashing with argon2id.
//!
//! Parameters follow the OWASP Password Storage Cheat Sheet's first argon2id option:
//! m = 19 MiB (19456 KiB), t = 2 iterations, p = 1 lane. Hashes are PHC strings, so the
//! parameters travel with each hash and can be raised later without breaking old ones.
//!
//! Hashing costs tens of milliseconds of CPU: callers on the async executor run these
//! functions inside `web::block` (see [`crate::db::run`] for the same pattern).

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use zeroize::Zeroizing;

/// How long a hashing thread goes without work before it gives its argon2 memory back: a burst
/// of sign-ins should not leave the server 19 MiB per core bigger for the rest of its life.
const IDLE: Duration = Duration::from_secs(1);

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

/// Hashing and checking passwords on a few threads of their own, one per core.
///
/// Each hash takes 19 MiB for its whole run. Run on whichever thread asked, 64 sign-ins at once
/// took 1 GiB of RSS, and it stayed taken: glibc keeps a freed block of that size in the arena
/// of the thread that used it, one arena per thread. On their own threads at most one block per
/// core is ever held, and more hashes at once than cores would add no throughput anyway.
/// One per server (in `AppState` and `OAuthContext`, clones of one), cloned freely; the threads end
/// when the last clone goes.
#[derive(Clone)]
pub struct Passwords {
    jobs: Arc<Mutex<mpsc::Sender<Job>>>,
    /// Requests that will check a password inside a database task wait here first, so that a
    /// burst of sign-ins holds at most a few pooled connections while argon2 runs, not all of
    /// them (which stalled every other request behind the connection pool).
    gate: Arc<tokio::sync::Semaphore>,
    /// The gate's permits, for the metric of how many are taken.
    slots: usize,
    arrays: Arrays,
}

type Job = Box<dyn FnOnce() + Send>;

impl Default for Passwords {
    fn default() -> Self {
        Self::with_threads(
            std::thread::available_parallelism().map_or(2, NonZeroUsize::get),
            IDLE,
        )
    }
}

impl Passwords {
    /// `threads` hashing threads, each of which frees its argon2 memory once it has waited
    /// `idle` for work.
    fn with_threads(threads: usize, idle: Duration) -> Self {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let arrays = Arrays::default();
        for n in 0..threads.max(1) {
            let queue = Arc::clone(&queue);
            let arrays = arrays.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || {
                    loop {
                        // The lock is held only to take the next job, not to run it. Whichever
                        // thread waits at the queue for `idle` frees what nobody is using.
                        let next = queue
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .recv_timeout(idle);
                        match next {
                            Ok(job) => job(),
                            Err(mpsc::RecvTimeoutError::Timeout) => arrays.release(),
                            Err(mpsc::RecvTimeoutError::Disconnected) => return, // every Passwords is gone
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "could not start a password-hashing thread");
            }
        }
        Self {
            jobs: Arc::new(Mutex::new(jobs)),
            gate: Arc::new(tokio::sync::Semaphore::new(threads.max(1) * 2)),
            slots: threads.max(1) * 2,
            arrays,
        }
    }

    /// Waits (asynchronously, holding nothing) until this request may check a password. Call it
    /// before a database task that hashes or verifies one, and keep the permit until it is done.
    pub async fn admit(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        /// Counts a request as waiting until it is admitted or gives up.
        struct Waiting;
        impl Drop for Waiting {
            fn drop(&mut self) {
                metrics::gauge!(crate::metrics::PASSWORD_WAITING).decrement(1.0);
            }
        }
        metrics::gauge!(crate::metrics::PASSWORD_WAITING).increment(1.0);
        let _waiting = Waiting;
        // The gate is never closed, so this only fails if that changes; then nobody waits.
        Arc::clone(&self.gate).acquire_owned().await.ok()
    }

    /// Password checks admitted and not yet finished.
    pub fn running(&self) -> usize {
        self.slots.saturating_sub(self.gate.available_permits())
    }

    /// Runs `work` on a hashing thread and waits for it (callers are on blocking threads).
    fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let (done, result) = mpsc::sync_channel(1);
        let job: Job = Box::new(move || {
            let _ = done.send(work());
        });
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(job)
            .ok()?;
        result.recv().ok()
    }

    /// Hashes a password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
    pub fn hash(&self, password: &str) -> Result<String, HashError> {
        let password = Zeroizing::new(password.to_owned());
        let arrays = self.arrays.clone();
        self.run(move || hash(&arrays, &password))
            .unwrap_or_else(|| Err(HashError("the hashing thread stopped".into())))
    }

    /// Verifies a password against a stored hash; see [`verify`]. A hashing thread that is gone
    /// counts as a mismatch.
    pub fn verify(&self, password: &str, stored: Option<&str>) -> bool {
        let password = Zeroizing::new(password.to_owned());
        let stored = stored.map(str::to_owned);
        let arrays = self.arrays.clone();
        self.run(move || verify(&arrays, &password, stored.as_deref()))
            .unwrap_or(false)
    }
}

/// argon2's memory (19 MiB per hash with our parameters), kept from one hash to the next and
/// shared by one [`Passwords`]' threads. argon2's own `hash_password_into` allocates and
/// zero-fills a fresh block array per call; glibc then kept the freed arrays in per-thread
/// arenas, which is how 64 concurrent sign-ins reached 187 MiB of RSS. Reusing the arrays bounds
/// the memory at one per hashing thread and skips the zero-fill and its page faults (argon2
/// overwrites every block before reading it, so what the last hash left there does not
/// matter). Once the queue has been idle, [`Arrays::release`] frees them: kept for good, a burst
/// of sign-ins left the server 19 MiB per core bigger for the rest of its life (the benchmark's
/// token scenarios after its password one peaked at 71–86 MiB of RSS instead of about 30).
#[derive(Clone, Default)]
struct Arrays(Arc<Mutex<Vec<Vec<Block>>>>);

impl Arrays {
    /// Runs `work` on an array of `blocks` blocks: a kept one, or a new one.
    fn with<T>(&self, blocks: usize, work: impl FnOnce(&mut [Block]) -> T) -> T {
        let kept = self.lock().pop();
        // A new array asks for more than glibc's largest mmap threshold (32 MiB), so that it is
        // always a mapping of its own, which `free` gives straight back to the kernel. Asked for
        // at its size (19 MiB), the first one was, but freeing it raised the threshold past
        // that size and every later one came from a thread's arena, which keeps what is freed
        // (the benchmark's scenarios after its flow peaked at 66–76 MiB of RSS, not about
        // 35). The part past what argon2 uses is never touched, so never resident.
        let mut array = kept.unwrap_or_else(|| Vec::with_capacity(blocks.max(MAPPED_BLOCKS)));
        if array.len() < blocks {
            array.resize(blocks, Block::default());
        }
        let result = work(&mut array[..blocks]);
        self.lock().push(array);
        result
    }

    /// Frees every array not in use (one in use goes back and is freed next time).
    fn release(&self) {
        let kept = std::mem::take(&mut *self.lock());
        drop(kept); // outside the lock
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<Block>>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// 33 MiB of argon2 blocks (1 KiB each): see [`Arrays::with`].
const MAPPED_BLOCKS: usize = 33 * 1024 * 1024 / std::mem::size_of::<Block>();

/// The raw argon2 output for `password` and `salt` under `argon2`'s parameters, computed in
/// one of `arrays`.
fn compute(
    arrays: &Arrays,
    argon2: &Argon2<'_>,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> argon2::Result<()> {
    arrays.with(argon2.params().block_count(), |blocks| {
        argon2.hash_password_into_with_memory(password, salt, out, blocks)
    })
}

/// Hashes a password into a PHC string. Servers go through [`Passwords::hash`].
fn hash(arrays: &Arrays, password: &str) -> Result<String, HashError> {
    let error = |e: &dyn std::fmt::Display| HashError(e.to_string());
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes).map_err(|e| error(&e))?;
    let argon2 = hasher();
    let output = Output::init_with(Params::DEFAULT_OUTPUT_LEN, |out| {
        compute(arrays, &argon2, password.as_bytes(), salt_bytes, out)
            .map_err(argon2::password_hash::Error::from)
    })
    .map_err(|e| error(&e))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(argon2.params()).map_err(|e| error(&e))?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

/// Verifies a password against a stored hash. A malformed hash counts as a mismatch.
///
/// Pass `None` for an unknown user: a fixed dummy hash is verified instead, so that an unknown
/// username costs the same time as a wrong password and reveals nothing.
fn verify(arrays: &Arrays, password: &str, stored: Option<&str>) -> bool {
    let stored_or_dummy = stored.unwrap_or(DUMMY_HASH);
    matches(arrays, password, stored_or_dummy).unwrap_or(false) && stored.is_some()
}

/// Recomputes a PHC hash with its own algorithm, version, parameters and salt, and compares
/// the outputs in constant time (`Output`'s `==`). `None` if the hash is malformed.
fn matches(arrays: &Arrays, password: &str, phc: &str) -> Option<bool> {
    let parsed = PasswordHash::new(phc).ok()?;
    let expected = parsed.hash?;
    let mut salt = [0u8; 64];
    let salt = parsed.salt?.decode_b64(&mut salt).ok()?;
    let argon2 = Argon2::new(
        Algorithm::try_from(parsed.algorithm).ok()?,
        parsed
            .version
            .map_or(Ok(Version::V0x13), Version::try_from)
            .ok()?,
        Params::try_from(&parsed).ok()?,
    );
    let computed = Output::init_with(expected.len(), |out| {
        compute(arrays, &argon2, password.as_bytes(), salt, out)
            .map_err(argon2::password_hash::Error::from)
    })
    .ok()?;
    Some(computed == expected)
}

/// An argon2id hash, with our parameters, of a random password nobody knows.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$1fO2kMHEm8Ek9VaTlA6Yk0J4YcEhzaIVgNdoGhT0m7E";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_carry_owasp_parameters() {
        let arrays = Arrays::default();
        let h = hash(&arrays, "correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify(&arrays, "correct horse battery", Some(&h)));
        assert!(!verify(&arrays, "wrong horse battery", Some(&h)));
        assert!(!verify(&arrays, "anything", Some("not a hash")));
    }

    /// Work runs only on the hashing threads, every caller gets its answer, and hashes made
    /// there verify.
    #[test]
    fn hashing_runs_on_its_own_threads_only() {
        let passwords = Passwords::with_threads(2, IDLE);
        let names = Mutex::new(std::collections::BTreeSet::new());
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    let name = passwords
                        .run(|| std::thread::current().name().map(str::to_owned))
                        .unwrap()
                        .unwrap();
                    names.lock().unwrap().insert(name);
                });
            }
        });
        let names = names.into_inner().unwrap();
        assert!(!names.is_empty() && names.len() <= 2, "{names:?}");
        assert!(names.iter().all(|n| n.starts_with("argon2-")), "{names:?}");
        let stored = passwords.hash("correct horse battery").unwrap();
        assert!(passwords.verify("correct horse battery", Some(&stored)));
        assert!(!passwords.verify("wrong horse battery", Some(&stored)));
    }

    /// The argon2 memory is kept from one hash to the next, at most one array per hashing
    /// thread, and given back once the queue has had nothing to do for the idle time, whichever
    /// thread was waiting; the next hash still works.
    #[test]
    fn idle_hashing_threads_give_their_memory_back() {
        let idle = Duration::from_millis(100);
        let passwords = Passwords::with_threads(2, idle);
        let held = || passwords.arrays.lock().len();
        let stored = passwords.hash("correct horse battery").unwrap();
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| assert!(passwords.verify("correct horse battery", Some(&stored))));
            }
        });
        assert!((1..=2).contains(&held()), "{} arrays kept", held());
        std::thread::sleep(idle * 5);
        assert_eq!(held(), 0, "still held after {:?} without work", idle * 5);
        assert!(passwords.verify("correct horse battery", Some(&stored)));
        assert_eq!(held(), 1);
    }

    /// Two requests per hashing thread get in; the next waits until one is done.
    #[tokio::test]
    async fn the_gate_admits_two_requests_per_hashing_thread() {
        use std::time::Duration;
        let passwords = Passwords::with_threads(1, IDLE);
        let first = passwords.admit().await;
        let _second = passwords.admit().await;
        let third = tokio::time::timeout(Duration::from_millis(50), passwords.admit()).await;
        assert!(third.is_err(), "a third request got in");
        drop(first);
        let third = tokio::time::timeout(Duration::from_secs(5), passwords.admit()).await;
        assert!(third.is_ok_and(|permit| permit.is_some()));
    }

    /// Our hashes are the library's: each side verifies what the other made, including hashes
    /// with other parameters (so stored hashes keep working if ours are raised).
    #[test]
    fn hashes_agree_with_the_argon2_crate() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let arrays = Arrays::default();
        let ours = hash(&arrays, "correct horse battery").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            hasher()
                .verify_password(b"correct horse battery", &parsed)
                .is_ok()
        );
        for (m, t, p) in [
            (MEMORY_KIB, ITERATIONS, PARALLELISM),
            (8_192, 3, 2),
            (65_536, 1, 1),
        ] {
            let params = Params::new(m, t, p, None).unwrap();
            let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
                .hash_password(b"correct horse battery", &SaltString::generate(&mut OsRng))
                .unwrap()
                .to_string();
            assert!(
                verify(&arrays, "correct horse battery", Some(&theirs)),
                "{theirs}"
            );
            assert!(
                !verify(&arrays, "correct horse batterz", Some(&theirs)),
                "{theirs}"
            );
        }
        // Argon2i and Argon2d hashes, too.
        for algorithm in [Algorithm::Argon2i, Algorithm::Argon2d] {
            let theirs = Argon2::new(algorithm, Version::V0x13, Params::default())
                .hash_password(b"pw", &SaltString::generate(&mut OsRng))
                .unwrap()
                .to_string();
            assert!(verify(&arrays, "pw", Some(&theirs)), "{theirs}");
        }
        assert!(!verify(
            &arrays,
            "pw",
            Some("$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ")
        ));
    }

    #[test]
    fn unknown_users_never_verify() {
        let arrays = Arrays::default();
        assert!(!verify(&arrays, "", None));
        assert!(!verify(&arrays, "correct horse battery", None));
        // The dummy must be a well-formed hash with our parameters, or the timing would differ.
        let parsed = PasswordHash::new(DUMMY_HASH).unwrap();
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        assert_eq!(parsed.params.get_decimal("m"), Some(MEMORY_KIB));
        assert_eq!(parsed.params.get_decimal("t"), Some(ITERATIONS));
    }
}
