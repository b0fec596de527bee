//! `latchkey backup --to FILE`: a consistent copy of a SQLite database, taken while the server
//! runs.
//!
//! `VACUUM INTO` reads the database in one read transaction (WAL lets the server keep writing
//! meanwhile) and writes a compacted copy, so the copy is the database as it was at one
//! instant: every token answered before the backup began is in it. The copy is written beside
//! the target under a temporary name and renamed into place, so a file at the target's name is
//! always a whole backup.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::Args;
use diesel::RunQueryDsl as _;
use diesel::sql_types::Text;

use crate::config::Settings;
use crate::db::AnyConnection;
use crate::db::ConnectionManager;

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where to write the copy. It must not exist yet.
    #[arg(long, value_name = "FILE")]
    pub to: PathBuf,
}

pub fn run(settings: &Settings, args: BackupArgs) -> anyhow::Result<()> {
    let database = settings.database();
    let Some(source) = database.sqlite_path() else {
        bail!(
            "LATCHKEY_DATABASE_URL: `latchkey backup` copies SQLite databases; for PostgreSQL use pg_dump (see the README's Backups section)"
        );
    };
    if !source.is_file() {
        bail!(
            "LATCHKEY_DATABASE_URL: there is no database at {}",
            source.display()
        );
    }
    let target = &args.to;
    if target.exists() {
        bail!("--to: {} already exists", target.display());
    }
    let partial = partial_name(target);
    let _ = std::fs::remove_file(&partial);
    let started = std::time::Instant::now();
    let manager = ConnectionManager::new(database.clone());
    let mut conn = manager
        .establish()
        .with_context(|| format!("cannot open {}", source.display()))?;
    let AnyConnection::Sqlite(sqlite) = &mut conn else {
        bail!("LATCHKEY_DATABASE_URL: not a SQLite database");
    };
    let copied = diesel::sql_query("VACUUM INTO ?")
        .bind::<Text, _>(partial.to_string_lossy().into_owned())
        .execute(sqlite);
    if let Err(error) = copied {
        let _ = std::fs::remove_file(&partial);
        return Err(error).with_context(|| format!("cannot write {}", partial.display()));
    }
    std::fs::rename(&partial, target).with_context(|| {
        format!(
            "cannot rename {} to {}",
            partial.display(),
            target.display()
        )
    })?;
    let size = std::fs::metadata(target).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "Copied {} to {} ({} KiB in {} ms).",
        source.display(),
        target.display(),
        size.div_ceil(1024),
        started.elapsed().as_millis()
    );
    eprintln!(
        "Keep the server secret key with it (LATCHKEY_SECRET_KEY or {}): the copy's signing keys and client secrets are sealed under it.",
        settings
            .data_dir
            .join(crate::crypto::SECRET_KEY_FILE)
            .display()
    );
    Ok(())
}

/// `FILE.partial`, in the target's folder, so the rename stays on one file system.
fn partial_name(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    target.with_file_name(name)
}
