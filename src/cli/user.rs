//! `latchkey user create`.

use std::io::{IsTerminal as _, Read as _};

use anyhow::{Context as _, bail};
use clap::Subcommand;
use zeroize::Zeroizing;

use crate::accounts::{self, NewAccount};
use crate::config::Settings;
use crate::domain::{DisplayName, Email, NewPassword, Username};

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
    },
}

pub fn run(settings: &Settings, cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Create {
            username,
            name,
            email,
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
                },
            )?;
            eprintln!("Created user {} (id {}).", user.username, user.id);
            println!("{}", user.id);
            Ok(())
        }
    }
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
