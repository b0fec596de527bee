//! `latchkey`: parse the command line (with the configuration file), start logging, run the
//! subcommand. Exit codes: 0 success, 1 the command failed, 2 bad usage or a bad setting.

use std::error::Error as _;
use std::process::ExitCode;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use latchkey::cli::{self, ParseFailure};

fn main() -> ExitCode {
    let parsed = match cli::parse(std::env::args_os().collect(), &|name| {
        std::env::var_os(name)
    }) {
        Ok(parsed) => parsed,
        Err(ParseFailure::Usage(error, cmd)) => return report_parse_error(error, &cmd),
        Err(ParseFailure::Config(error)) => {
            eprintln!("latchkey: {error}");
            return ExitCode::from(2);
        }
    };
    let settings = &parsed.cli.settings;
    let _telemetry = latchkey::telemetry::init(
        settings.log_format,
        &settings.log,
        settings.otlp_endpoint.as_ref(),
    );
    match cli::run(parsed) {
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
fn report_parse_error(error: clap::Error, cmd: &clap::Command) -> ExitCode {
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
    let env = cmd
        .get_arguments()
        .chain(cmd.get_subcommands().flat_map(|s| s.get_arguments()))
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
