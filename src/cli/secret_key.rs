//! `latchkey secret-key rotate`: move to a new server secret key.

use std::io::Read as _;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use zeroize::Zeroizing;

use crate::config::{Settings, parse_secret_key};
use crate::crypto::{SECRET_KEY_FILE, ServerKey};

#[derive(Debug, Subcommand)]
pub enum SecretKeyCommand {
    /// Re-encrypt everything under a new key read from standard input (hex or base64, at least
    /// 32 bytes; `openssl rand -hex 32 | latchkey secret-key rotate`). Stop every instance first,
    /// then start them with the new key: sessions end, client secrets and signing keys carry
    /// over. When the key lives in `<data-dir>/secret.key`, that file is replaced.
    Rotate,
}

pub fn run(settings: &Settings, cmd: SecretKeyCommand) -> anyhow::Result<()> {
    match cmd {
        SecretKeyCommand::Rotate => {
            let mut input = Zeroizing::new(String::new());
            std::io::stdin()
                .take(4096)
                .read_to_string(&mut input)
                .context("cannot read the new key from standard input")?;
            let material =
                parse_secret_key(input.trim()).map_err(|e| anyhow::anyhow!("the new key {e}"))?;
            let new = ServerKey::from_material(&material);
            let (old, mut conn) = super::connect(settings)?;
            if old.client_secret_digest("probe") == new.client_secret_digest("probe") {
                bail!("the new key is the key in use");
            }
            let moved = crate::rekey::rekey(&mut conn, &old, &new)?;
            if settings.secret_key.is_none() {
                let path = settings.data_dir.join(SECRET_KEY_FILE);
                let tmp = settings.data_dir.join(format!("{SECRET_KEY_FILE}.new"));
                write_private(&tmp, hex::encode(&material.0).as_bytes())
                    .with_context(|| format!("cannot write {}", tmp.display()))?;
                std::fs::rename(&tmp, &path)
                    .with_context(|| format!("cannot replace {}", path.display()))?;
                eprintln!("Wrote the new key to {}.", path.display());
            } else {
                eprintln!("Now set LATCHKEY_SECRET_KEY to the new key on every instance.");
            }
            eprintln!(
                "Moved {} client secrets, {} signing keys and {} TOTP secrets to the new key.",
                moved.client_secrets, moved.signing_keys, moved.totp_secrets
            );
            if moved.recovery_codes_voided > 0 {
                eprintln!(
                    "Voided {} recovery codes (kept only as digests under the old key): their owners' security pages ask them to make new ones.",
                    moved.recovery_codes_voided
                );
            }
            Ok(())
        }
    }
}

#[cfg(unix)]
fn write_private(path: &std::path::Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &std::path::Path, contents: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, contents)
}
