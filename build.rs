//! Build-time facts for the binary:
//! - rebuilds when a migration is added or changed: `embed_migrations!` reads `migrations/` at
//!   compile time, and cargo does not know to look there on its own (a new migration alone
//!   would otherwise leave the old set in the binary);
//! - `LATCHKEY_COMMIT`, the commit built (for `--version` and `latchkey_build_info`): from the
//!   variable of that name when set (a container build has no `.git`), else from git, else
//!   `unknown`.
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-env-changed=LATCHKEY_COMMIT");
    for watched in [".git/HEAD", ".git/refs/heads", ".git/packed-refs"] {
        if std::path::Path::new(watched).exists() {
            println!("cargo:rerun-if-changed={watched}");
        }
    }
    let commit = std::env::var("LATCHKEY_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| {
            Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()
                .filter(|out| out.status.success())
                .and_then(|out| String::from_utf8(out.stdout).ok())
                .map(|s| s.trim().to_owned())
        })
        .filter(|c| c.bytes().all(|b| b.is_ascii_alphanumeric()) && !c.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=LATCHKEY_COMMIT={commit}");
}
