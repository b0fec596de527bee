//! The command line: `latchkey serve | migrate | user … | client … | scope …`.
//!
//! Every subcommand reads the same [`Settings`]. Arguments are parsed into domain types by clap
//! before anything is opened, so bad input exits non-zero having written nothing.

mod client;
mod keys;
mod scope;
mod secret_key;
mod user;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::config::Settings;
use crate::startup::{self, Application};

#[derive(Debug, Parser)]
#[command(
    name = "latchkey",
    version,
    about = "OAuth 2.0 authorization server with a merchant developer portal"
)]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (migrates the database first).
    Serve,
    /// Bring the database schema up to date, then exit.
    Migrate,
    /// Manage user accounts.
    #[command(subcommand)]
    User(user::UserCommand),
    /// Manage OAuth clients (applications).
    #[command(subcommand)]
    Client(client::ClientCommand),
    /// Manage the scopes clients may request.
    #[command(subcommand)]
    Scope(scope::ScopeCommand),
    /// Manage the keys that sign access tokens.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Move to a new server secret key.
    #[command(subcommand, name = "secret-key")]
    SecretKey(secret_key::SecretKeyCommand),
}

/// Runs a parsed command line. Errors come back as one chain, printed by `main` on one line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = cli.settings;
    match cli.command {
        Command::Serve => serve(settings),
        Command::Migrate => {
            // Opening the database runs any pending migrations.
            let url = settings.database();
            let (_key, database) = startup::open_stores(&settings)?;
            drop(database);
            eprintln!("Database {} is up to date.", url.redacted());
            Ok(())
        }
        Command::User(cmd) => user::run(&settings, cmd),
        Command::Client(cmd) => client::run(&settings, cmd),
        Command::Scope(cmd) => scope::run(&settings, cmd),
        Command::Keys(cmd) => keys::run(&settings, cmd),
        Command::SecretKey(cmd) => secret_key::run(&settings, cmd),
    }
}

fn serve(settings: Settings) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings).await?;
        app.run_until_stopped()
            .await
            .context("server stopped with an error")
    })
}

/// Opens the stores for a CLI command and hands back one connection.
fn connect(
    settings: &Settings,
) -> anyhow::Result<(crate::crypto::ServerKey, crate::db::PooledConnection)> {
    let (key, database) = startup::open_stores(settings)?;
    let conn = database
        .pool
        .get()
        .context("LATCHKEY_DATABASE_URL: no database connection available")?;
    Ok((key, conn))
}
