//! The command line: `latchkey serve | migrate | user … | client … | scope … | backup | config`.
//!
//! Every subcommand reads the same [`Settings`], from flags, `LATCHKEY_*` variables and the
//! configuration file ([`crate::config::file`]). Arguments are parsed into domain types by clap
//! before anything is opened, so bad input exits non-zero having written nothing.

mod backup;
mod client;
mod config;
mod keys;
mod scope;
mod secret_key;
mod user;

use std::ffi::OsString;

use anyhow::Context as _;
use clap::{Args as _, CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

use crate::config::Settings;
use crate::config::file::{self, ConfigError, Sources};
use crate::startup::{self, Application};

/// `latchkey --version`: the release and the commit it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("LATCHKEY_COMMIT"),
    ")"
);

/// Exit codes, for scripts and service managers (also in `--help` and the man page).
pub const EXIT_CODES: &str = "Exit codes:\n  \
    0  success\n  \
    1  the command failed (the database, a key file, a port, a name that does not exist)\n  \
    2  bad usage or a bad setting (flag, environment variable or configuration file); \
    nothing was written";

#[derive(Debug, Parser)]
#[command(
    name = "latchkey",
    version = VERSION,
    about = "OAuth 2.0 authorization server with a merchant developer portal",
    after_help = EXIT_CODES,
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
    /// Copy a SQLite database to a file while the server runs: a consistent snapshot, ready to
    /// start on (`--database-url sqlite://FILE`). For PostgreSQL, use `pg_dump`.
    Backup(backup::BackupArgs),
    /// The settings in effect.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Print a shell completion script: `latchkey completions bash > /etc/bash_completion.d/latchkey`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), generated from this command line's definition; with
    /// `--dir`, write it and one page per subcommand (`latchkey-client-create.1`, …) there.
    #[command(hide = true)]
    Man {
        #[arg(long, value_name = "DIR")]
        dir: Option<std::path::PathBuf>,
    },
}

/// A parsed command line, and where each setting's value came from.
pub struct Parsed {
    pub cli: Cli,
    pub sources: Sources,
    pub matches: clap::ArgMatches,
}

/// Why the command line could not be parsed.
pub enum ParseFailure {
    /// A usage error, `--help` or `--version`, with the command it was parsed against.
    Usage(clap::Error, Box<clap::Command>),
    /// The configuration file or a `*_FILE` variable.
    Config(ConfigError),
}

/// Parses `args` (the program name first) with the configuration file and `*_FILE` variables
/// read from `env`.
pub fn parse(
    args: Vec<OsString>,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Parsed, ParseFailure> {
    let (cmd, sources) = file::prepare(Cli::command(), &args, env).map_err(ParseFailure::Config)?;
    let mut cmd = hide_unused_settings(cmd);
    let matches = match cmd.try_get_matches_from_mut(args) {
        Ok(matches) => matches,
        Err(error) => return Err(ParseFailure::Usage(error, Box::new(cmd))),
    };
    match Cli::from_arg_matches(&matches) {
        Ok(cli) => Ok(Parsed {
            cli,
            sources,
            matches,
        }),
        Err(error) => Err(ParseFailure::Usage(error, Box::new(cmd))),
    }
}

/// The ids of every setting, in the order of [`Settings`].
pub fn setting_ids() -> Vec<String> {
    Settings::augment_args(clap::Command::new("settings"))
        .get_arguments()
        .map(|a| a.get_id().to_string())
        .collect()
}

/// What the commands that only open the database read.
const STORE_SETTINGS: &[&str] = &[
    "config",
    "database_url",
    "data_dir",
    "secret_key",
    "db_pool_size",
    "log",
    "log_format",
];

/// The settings a top-level subcommand uses; `None` for all of them.
fn settings_used_by(subcommand: &str) -> Option<Vec<&'static str>> {
    match subcommand {
        "serve" | "config" => None,
        // `user mfa reset` mails the account's owner.
        "user" => Some([STORE_SETTINGS, &["smtp_url", "mail_from"]].concat()),
        "completions" | "man" => Some(Vec::new()),
        _ => Some(STORE_SETTINGS.to_vec()),
    }
}

/// Every setting is accepted after every subcommand (they are global), but each subcommand's
/// `--help` lists only the ones it reads: the others are given to it as hidden copies, which
/// clap's propagation of global arguments then leaves alone (it skips ids a subcommand has).
fn hide_unused_settings(mut cmd: clap::Command) -> clap::Command {
    let all = setting_ids();
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    for name in names {
        let Some(used) = settings_used_by(&name) else {
            continue;
        };
        let hidden: Vec<clap::Arg> = cmd
            .get_arguments()
            .filter(|a| all.iter().any(|id| a.get_id() == id.as_str()))
            .filter(|a| !used.contains(&a.get_id().as_str()))
            .map(|a| a.clone().hide(true))
            .collect();
        cmd = cmd.mut_subcommand(name, |sub| sub.args(hidden));
    }
    cmd
}

/// Runs a parsed command line. Errors come back as one chain, printed by `main` on one line.
pub fn run(parsed: Parsed) -> anyhow::Result<()> {
    let Parsed {
        cli,
        sources,
        matches,
    } = parsed;
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
        Command::Backup(args) => backup::run(&settings, args),
        Command::Config(cmd) => config::run(cmd, &sources, &matches),
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "latchkey", &mut script);
            print_out(&script)
        }
        Command::Man { dir: None } => print_out(&man_page().context("rendering the man page")?),
        Command::Man { dir: Some(dir) } => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("--dir: cannot create {}", dir.display()))?;
            // One page per subcommand, named as the top page's SUBCOMMANDS section names them;
            // then the top page, with its ENVIRONMENT section, over the plain one.
            clap_mangen::generate_to(Cli::command(), &dir)
                .with_context(|| format!("--dir: cannot write to {}", dir.display()))?;
            std::fs::write(dir.join("latchkey.1"), man_page()?)
                .with_context(|| format!("--dir: cannot write to {}", dir.display()))?;
            Ok(())
        }
    }
}

/// The man page: clap_mangen's sections, with an ENVIRONMENT section (the variable behind each
/// setting, and the `*_FILE` variants) before the exit codes.
fn man_page() -> std::io::Result<Vec<u8>> {
    let cmd = Cli::command();
    let man = clap_mangen::Man::new(cmd.clone());
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    man.render_subcommands_section(&mut page)?;
    let mut environment = String::from(".SH ENVIRONMENT\n");
    for arg in cmd.get_arguments() {
        let (Some(env), Some(long)) = (arg.get_env(), arg.get_long()) else {
            continue;
        };
        let env = env.to_string_lossy();
        environment.push_str(&format!(
            ".TP\n\\fB{env}\\fR\nThe same as \\fB\\-\\-{}\\fR.\n",
            long.replace('-', "\\-")
        ));
        if let Some((_, var)) = file::FROM_FILES.iter().find(|(id, _)| *id == arg.get_id()) {
            environment.push_str(&format!(
                ".TP\n\\fB{var}_FILE\\fR\nA file holding the value of \\fB{var}\\fR (a secret kept out of the environment and \\fBps\\fR).\n"
            ));
        }
    }
    page.extend_from_slice(environment.as_bytes());
    man.render_extra_section(&mut page)?;
    man.render_version_section(&mut page)?;
    Ok(page)
}

/// Writes to standard output; a reader that went away (`| head`) is not an error.
fn print_out(bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("writing to standard output")
        }
        _ => Ok(()),
    }
}

/// Runs the server until SIGTERM (drain: `/readyz` fails at once, requests are served for
/// `LATCHKEY_SHUTDOWN_DELAY`, then in-flight ones finish) or SIGINT (the same without the
/// delay: Ctrl-C at a terminal).
fn serve(settings: Settings) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let delay = std::time::Duration::from_secs(settings.shutdown_delay);
    actix_web::rt::System::new().block_on(async move {
        // Listening before the server says it is up, so no signal finds the default action.
        let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
        let app = Application::build(settings).await?;
        let shutdown = app.shutdown();
        tokio::spawn(async move {
            let delay = tokio::select! {
                _ = terminate.recv() => delay,
                _ = interrupt.recv() => std::time::Duration::ZERO,
            };
            shutdown.drain(delay).await;
        });
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
