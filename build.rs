//! Rebuilds when a migration is added or changed: `embed_migrations!` reads `migrations/` at
//! compile time, and cargo does not know to look there on its own (a new migration alone would
//! otherwise leave the old set in the binary).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
