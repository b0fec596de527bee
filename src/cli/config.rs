//! `latchkey config show`: every setting in effect and where it came from.

use clap::Subcommand;

use crate::config::file::{SECRETS, Source, Sources};

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print every setting as TOML (usable as a configuration file), each with where its value
    /// came from: flag, environment, config file or default. Secrets are masked.
    Show,
}

pub fn run(
    cmd: ConfigCommand,
    sources: &Sources,
    matches: &clap::ArgMatches,
) -> anyhow::Result<()> {
    match cmd {
        ConfigCommand::Show => {
            print!("{}", show(sources, matches));
            Ok(())
        }
    }
}

/// The settings as TOML lines with their sources as comments.
pub fn show(sources: &Sources, matches: &clap::ArgMatches) -> String {
    let command = <super::Cli as clap::CommandFactory>::command();
    let mut out = String::from(
        "# The settings in effect: a flag beats its environment variable, which beats the\n\
         # configuration file, which beats the default.\n",
    );
    if let Some(file) = &sources.file {
        out.push_str(&format!("# Configuration file: {}\n", file.display()));
    }
    for id in super::setting_ids() {
        if id == "config" {
            continue;
        }
        let env = command
            .get_arguments()
            .find(|a| a.get_id() == id.as_str())
            .and_then(|a| a.get_env());
        let source = sources.of(&id, matches.value_source(&id), env);
        let raw: Vec<String> = matches
            .get_raw(&id)
            .map(|values| values.map(|v| v.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        if source == Source::Unset || raw.is_empty() {
            out.push_str(&format!("# {id} is not set\n"));
            continue;
        }
        if SECRETS.contains(&id.as_str()) {
            // A masked value is shown as a comment, so the output stays a working file.
            let masked = mask(&id, &raw[0]);
            let comment = if masked == raw[0] { "" } else { "# " };
            out.push_str(&format!(
                "{comment}{id} = {}  # {source}\n",
                toml_string(&masked)
            ));
            continue;
        }
        let value = if raw.len() > 1 || id == "trusted_proxies" {
            let items: Vec<String> = raw.iter().map(|v| toml_string(v)).collect();
            format!("[{}]", items.join(", "))
        } else {
            toml_scalar(&raw[0])
        };
        out.push_str(&format!("{id} = {value}  # {source}\n"));
    }
    out
}

/// Secrets are shown only as much as an operator needs to tell them apart: a database URL
/// without its password, an SMTP URL without its password, a key not at all.
fn mask(id: &str, raw: &str) -> String {
    match id {
        "database_url" | "smtp_url" => match url::Url::parse(raw) {
            Ok(mut url) => {
                if url.password().is_some() {
                    let _ = url.set_password(Some("***"));
                }
                url.to_string()
            }
            Err(_) if raw.starts_with("sqlite:") => raw.to_owned(),
            Err(_) => "***".to_owned(),
        },
        _ => "***".to_owned(),
    }
}

fn toml_scalar(raw: &str) -> String {
    if raw == "true"
        || raw == "false"
        || (!raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()))
    {
        raw.to_owned()
    } else {
        toml_string(raw)
    }
}

fn toml_string(raw: &str) -> String {
    toml::Value::String(raw.to_owned()).to_string()
}
