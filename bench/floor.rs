//! The machine's floors for the benchmark (`bench/run.sh`): how many RS256 and ES256 signatures
//! and argon2id password checks (with Latchkey's parameters) this machine does per second on
//! all its cores, with the same libraries the server uses (aws-lc-rs, argon2). Throughputs in
//! the benchmark are reported as fractions of these, so figures from noisy, shared machines
//! can be compared.
//!
//! `target/release/latchkey-floor [seconds]` prints one `name=value` line per floor.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _, RSA_PKCS1_SHA256,
};

/// About the size of the signing input of one of our access tokens.
const MESSAGE: &[u8] = &[b'a'; 520];

/// Runs `work` on every core for `seconds` and returns the operations per second.
fn rate(seconds: f64, work: impl Fn() + Sync) -> f64 {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    work();
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        std::thread::sleep(Duration::from_secs_f64(seconds));
        stop.store(true, Ordering::Relaxed);
    });
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    // The first number given is the seconds per floor.
    let seconds = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<f64>().ok())
        .unwrap_or(3.0);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    println!("threads={threads}");

    let rng = SystemRandom::new();
    let rsa = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
    let rs256 = rate(seconds, || {
        let mut signature = vec![0; rsa.public_modulus_len()];
        rsa.sign(&RSA_PKCS1_SHA256, &rng, MESSAGE, &mut signature)
            .unwrap();
    });
    println!("rs256_sign_per_s={rs256:.0}");

    let ec = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let _ = ec.public_key();
    let es256 = rate(seconds, || {
        ec.sign(&rng, MESSAGE).unwrap();
    });
    println!("es256_sign_per_s={es256:.0}");

    // One Passwords per thread: the server's own bounds concurrency to the cores, which is
    // what this measures anyway.
    let passwords = latchkey::auth::password::Passwords::default();
    let stored = passwords.hash("a benchmark password").unwrap();
    let argon2 = rate(seconds, || {
        assert!(passwords.verify("a benchmark password", Some(&stored)));
    });
    println!("argon2id_verify_per_s={argon2:.1}");
}
