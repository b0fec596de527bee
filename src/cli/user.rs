//! `latchkey user create` and `latchkey user mfa reset`.

use std::io::{IsTerminal as _, Read as _};

use anyhow::{Context as _, bail};
use clap::Subcommand;
use zeroize::Zeroizing;

use crate::accounts::{self, NewAccount};
use crate::config::Settings;
use crate::db::models::{AuditEvent, User};
use crate::domain::{DisplayName, Email, NewPassword, Username};
use crate::email::{Mailer, Template};
use crate::mfa;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account. The password is read from standard input (prompted on a terminal).
    /// Prints the new user's id.
    Create {
        /// Login name: 3–32 characters of a-z 0-9 . _ -
        #[arg(long, value_parser = |s: &str| Username::parse(s).map_err(|e| e.to_string()))]
        username: Username,
        /// Display name.
        #[arg(long, value_parser = |s: &str| DisplayName::parse(s).map_err(|e| e.to_string()))]
        name: DisplayName,
        /// Email address (marked unverified).
        #[arg(long, value_parser = |s: &str| Email::parse(s).map_err(|e| e.to_string()))]
        email: Option<Email>,
        /// A merchant's account: the portal's Developer pages are in its navigation from the
        /// start (they are anyway once it owns an application). Without it, the account is one
        /// that only uses applications.
        #[arg(long)]
        developer: bool,
    },
    /// An account's second factor.
    #[command(subcommand)]
    Mfa(MfaCommand),
}

#[derive(Debug, Subcommand)]
pub enum MfaCommand {
    /// Remove an account's authenticator app and recovery codes, for a person who lost both
    /// (check who they are first): they sign in with the password alone and set up a new app.
    /// Recorded in the activity log and emailed to the account's address.
    Reset {
        #[arg(long)]
        username: String,
    },
}

pub fn run(settings: &Settings, cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Create {
            username,
            name,
            email,
            developer,
        } => {
            let raw = read_password()?;
            let password =
                NewPassword::parse(&raw, &username).map_err(|e| anyhow::anyhow!("password {e}"))?;
            let (_key, mut conn) = super::connect(settings)?;
            let user = accounts::create_user(
                &mut conn,
                &Default::default(),
                &NewAccount {
                    username,
                    name,
                    email,
                    email_verified: false,
                    password,
                    developer,
                },
            )?;
            eprintln!("Created user {} (id {}).", user.username, user.id);
            println!("{}", user.id);
            Ok(())
        }
        UserCommand::Mfa(MfaCommand::Reset { username }) => mfa_reset(settings, &username),
    }
}

fn mfa_reset(settings: &Settings, username: &str) -> anyhow::Result<()> {
    let (_key, mut conn) = super::connect(settings)?;
    let Some(user) = User::find_by_username(&mut conn, &username.trim().to_lowercase())? else {
        bail!("no user named `{username}`");
    };
    if !mfa::remove_all(&mut conn, user.id)? {
        eprintln!("{} has no second factor: nothing to reset.", user.username);
        return Ok(());
    }
    let change = "the operator removed the authenticator app, the passkeys and the recovery codes";
    AuditEvent::record(&mut conn, Some(user.id), None, "mfa_reset", change, None)?;
    if let Some(address) = user.email.as_deref() {
        let mailer = Mailer::new(
            settings.smtp_url.as_ref(),
            settings.data_dir.join("mail"),
            settings.mail_from.clone(),
        )?;
        let when = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string();
        let email = Template::SecurityEvent {
            name: &user.name,
            change,
            when: &when,
            ip: "the server's command line",
        }
        .render(&crate::templates::load()?, address)?;
        mailer.send(&email)?;
    }
    eprintln!(
        "Removed the second factor of {}: they sign in with their password alone until they set up a new one.",
        user.username
    );
    Ok(())
}

/// A terminal gets a hidden prompt, asked twice; a pipe gives the first line of its input.
fn read_password() -> anyhow::Result<Zeroizing<String>> {
    if std::io::stdin().is_terminal() {
        let first = Zeroizing::new(
            rpassword::prompt_password("Password: ").context("cannot read the password")?,
        );
        let again = Zeroizing::new(
            rpassword::prompt_password("Repeat password: ").context("cannot read the password")?,
        );
        if first != again {
            bail!("the two passwords differ");
        }
        return Ok(first);
    }
    let mut input = Zeroizing::new(String::new());
    std::io::stdin()
        .take(64 * 1024)
        .read_to_string(&mut input)
        .context("cannot read the password from standard input (it must be UTF-8)")?;
    let line = input.lines().next().unwrap_or_default();
    if line.is_empty() {
        bail!(
            "no password on standard input: pipe it in, e.g. `printf '%s\\n' \"$PASSWORD\" | latchkey user create …`"
        );
    }
    Ok(Zeroizing::new(line.to_owned()))
}
