//! `latchkey keys rotate | list`: the keys that sign access tokens.

use clap::{Subcommand, ValueEnum};
use serde_json::json;

use crate::config::Settings;
use crate::db::models::SigningKeyRow;
use crate::oauth::keys::{self, SigningAlgorithm};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Alg {
    /// RSA 2048 with SHA-256: understood by every JWT library (default).
    #[value(name = "RS256")]
    Rs256,
    /// ECDSA P-256 with SHA-256: faster to sign, smaller tokens.
    #[value(name = "ES256")]
    Es256,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a new signing key and make it the signer. Older keys stop signing but keep
    /// verifying until the tokens they signed have expired. Running servers switch within
    /// LATCHKEY_KEY_REFRESH seconds (30).
    Rotate {
        /// Signature algorithm of the new key.
        #[arg(long, value_enum, default_value_t = Alg::Rs256)]
        alg: Alg,
    },
    /// List the signing keys.
    List {
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(settings: &Settings, cmd: KeysCommand) -> anyhow::Result<()> {
    let (key, mut conn) = super::connect(settings)?;
    match cmd {
        KeysCommand::Rotate { alg } => {
            let algorithm = match alg {
                Alg::Rs256 => SigningAlgorithm::Rs256,
                Alg::Es256 => SigningAlgorithm::Es256,
            };
            let row = keys::rotate(&mut conn, &key, algorithm)?;
            eprintln!(
                "New {} signing key {} is the signer now; the previous one is retired.",
                row.algorithm, row.kid
            );
            println!("{}", row.kid);
            Ok(())
        }
        KeysCommand::List { json } => {
            let rows = SigningKeyRow::all(&mut conn)?;
            let fmt = |t: Option<chrono::NaiveDateTime>| {
                t.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            };
            if json {
                let list: Vec<_> = rows
                    .iter()
                    .map(|r| json!({ "kid": r.kid, "alg": r.algorithm, "created": fmt(Some(r.created_at)), "retired": fmt(r.retired_at) }))
                    .collect();
                println!("{}", serde_json::Value::Array(list));
            } else {
                println!("{:<24} {:<6} {:<24} RETIRED", "KID", "ALG", "CREATED");
                for r in &rows {
                    println!(
                        "{:<24} {:<6} {:<24} {}",
                        r.kid,
                        r.algorithm,
                        fmt(Some(r.created_at)).unwrap_or_default(),
                        fmt(r.retired_at).unwrap_or_else(|| "- (signing)".into())
                    );
                }
            }
            Ok(())
        }
    }
}
