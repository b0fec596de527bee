//! `latchkey`: parse the command line, start logging, run the subcommand.

use std::error::Error as _;
use std::process::ExitCode;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory as _, Parser as _};
use latchkey::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return report_parse_error(error),
    };
    latchkey::telemetry::init(cli.settings.log_format, &cli.settings.log);
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line: "setting: what failed: why".
            let error: &(dyn std::error::Error + 'static) = error.as_ref();
            eprintln!("latchkey: {}", latchkey::error::error_chain(error));
            ExitCode::FAILURE
        }
    }
}

/// A bad setting gets one line naming the flag and its environment variable, without echoing
/// the value (it may be a password or a key). Help, version and usage errors print as clap has
/// them.
fn report_parse_error(error: clap::Error) -> ExitCode {
    if !matches!(
        error.kind(),
        ErrorKind::ValueValidation | ErrorKind::InvalidValue
    ) {
        error.exit();
    }
    let arg = match error.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) => arg.clone(),
        _ => error.exit(),
    };
    let long = arg
        .split_whitespace()
        .next()
        .unwrap_or(&arg)
        .trim_start_matches('-')
        .to_owned();
    let env = Cli::command()
        .get_arguments()
        .chain(
            Cli::command()
                .get_subcommands()
                .flat_map(|s| s.get_arguments().cloned().collect::<Vec<_>>())
                .collect::<Vec<_>>()
                .iter(),
        )
        .find(|a| a.get_long() == Some(long.as_str()))
        .and_then(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()));
    let reason = match error.source() {
        Some(source) => source.to_string(),
        None => match error.get(ContextKind::ValidValue) {
            Some(ContextValue::Strings(valid)) => format!("must be one of: {}", valid.join(", ")),
            _ => "is not valid".to_owned(),
        },
    };
    match env {
        Some(env) => eprintln!("latchkey: {env} (--{long}): {reason}"),
        None => eprintln!("latchkey: --{long}: {reason}"),
    }
    ExitCode::from(2)
}
