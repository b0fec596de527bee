//! The configuration file (`--config FILE`, TOML) and the `LATCHKEY_*_FILE` variables.
//!
//! Both become clap default values before the command line is parsed, so clap's own order
//! gives the precedence: a flag beats its environment variable, which beats the file, which
//! beats the built-in default. [`Sources`] remembers which values came from where, for
//! `latchkey config show`.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use clap::Command;
use clap::parser::ValueSource;

/// Settings that may be read from a file of their own, so that a secret is neither on the
/// command line (where `ps` shows it) nor in the environment: the setting's id and variable.
/// `LATCHKEY_SECRET_KEY_FILE=/run/secrets/key`, or `secret_key_file = "…"` in the file.
pub const FROM_FILES: [(&str, &str); 3] = [
    ("secret_key", "LATCHKEY_SECRET_KEY"),
    ("database_url", "LATCHKEY_DATABASE_URL"),
    ("smtp_url", "LATCHKEY_SMTP_URL"),
];

/// Settings whose values are never printed (`config show`, `--help`).
pub const SECRETS: [&str; 3] = ["secret_key", "database_url", "smtp_url"];

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag,
    Environment(String),
    /// A `LATCHKEY_*_FILE` variable: the variable's name.
    EnvironmentFile(String),
    /// The configuration file, under this key (`secret_key_file` for a secret read from the
    /// file it names).
    File(String),
    Default,
    Unset,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Flag => f.write_str("flag"),
            Self::Environment(var) => write!(f, "environment ({var})"),
            Self::EnvironmentFile(var) => write!(f, "environment ({var})"),
            Self::File(key) => write!(f, "config file ({key})"),
            Self::Default => f.write_str("default"),
            Self::Unset => f.write_str("not set"),
        }
    }
}

/// What [`prepare`] set as defaults, and from where.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    /// The configuration file read, if any.
    pub file: Option<PathBuf>,
    /// Setting id → where its default was replaced from.
    replaced: BTreeMap<String, Source>,
}

impl Sources {
    /// Where `id`'s value came from, given how clap filled it in.
    pub fn of(&self, id: &str, clap_source: Option<ValueSource>, env: Option<&OsStr>) -> Source {
        match clap_source {
            Some(ValueSource::CommandLine) => Source::Flag,
            Some(ValueSource::EnvVariable) => Source::Environment(
                env.map(|e| e.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            ),
            Some(ValueSource::DefaultValue) => {
                self.replaced.get(id).cloned().unwrap_or(Source::Default)
            }
            _ => Source::Unset,
        }
    }
}

/// Why the configuration could not be read. One line, naming the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read the configuration file: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not valid TOML: {reason}")]
    Syntax { path: String, reason: String },
    #[error("{path}: `{key}` is not a setting (the settings are the long flags, with `_` for `-`)")]
    Unknown { path: String, key: String },
    #[error("{path}: `{key}` {reason}")]
    Value {
        path: String,
        key: String,
        reason: String,
    },
    #[error("{var}_FILE ({path}): {source}")]
    ReadSecret {
        var: String,
        path: String,
        source: std::io::Error,
    },
    #[error("{var} and {var}_FILE are both set: set one")]
    Both { var: String },
}

/// Reads the configuration file named by `--config` in `args` (or `LATCHKEY_CONFIG`) and the
/// `LATCHKEY_*_FILE` variables, and returns `cmd` with their values as defaults.
pub fn prepare(
    mut cmd: Command,
    args: &[OsString],
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<(Command, Sources), ConfigError> {
    let mut sources = Sources::default();
    let path = config_argument(args).or_else(|| env("LATCHKEY_CONFIG").map(PathBuf::from));
    if let Some(path) = &path {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        let table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    path: shown.clone(),
                    reason: one_line(&e.to_string()),
                })?;
        for (key, value) in table {
            let value_error = |reason: String| ConfigError::Value {
                path: shown.clone(),
                key: key.clone(),
                reason,
            };
            let (id, values) = match key.strip_suffix("_file") {
                Some(base) if FROM_FILES.iter().any(|(id, _)| *id == base) => {
                    let named = match &value {
                        toml::Value::String(s) => PathBuf::from(s),
                        _ => return Err(value_error("must be a file path (a string)".into())),
                    };
                    let secret = read_secret(&named).map_err(|e| {
                        value_error(format!("cannot read {}: {e}", named.display()))
                    })?;
                    (base.to_owned(), vec![secret])
                }
                _ => {
                    let values = toml_values(&value).map_err(value_error)?;
                    (key.clone(), values)
                }
            };
            if id == "config" || !cmd.get_arguments().any(|a| a.get_id() == id.as_str()) {
                return Err(ConfigError::Unknown {
                    path: shown.clone(),
                    key: key.clone(),
                });
            }
            validate(&cmd, &id, &values).map_err(value_error)?;
            cmd = set_default(cmd, &id, values);
            sources.replaced.insert(id, Source::File(key.clone()));
        }
        sources.file = Some(path.clone());
    }
    for (id, var) in FROM_FILES {
        let file_var = format!("{var}_FILE");
        let Some(named) = env(&file_var) else {
            continue;
        };
        if env(var).is_some() {
            return Err(ConfigError::Both {
                var: var.to_owned(),
            });
        }
        let named = PathBuf::from(named);
        let secret = read_secret(&named).map_err(|source| ConfigError::ReadSecret {
            var: var.to_owned(),
            path: named.display().to_string(),
            source,
        })?;
        let values = vec![secret];
        validate(&cmd, id, &values).map_err(|reason| ConfigError::Value {
            path: file_var.clone(),
            key: id.to_owned(),
            reason,
        })?;
        cmd = set_default(cmd, id, values);
        sources
            .replaced
            .insert(id.to_owned(), Source::EnvironmentFile(file_var));
    }
    Ok((cmd, sources))
}

/// `--config FILE` or `--config=FILE`, wherever it is on the command line.
fn config_argument(args: &[OsString]) -> Option<PathBuf> {
    let mut args = args.iter().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--" {
            return None;
        }
        if arg == "--config" {
            return args.next().map(PathBuf::from);
        }
        if let Some(path) = arg.to_str().and_then(|a| a.strip_prefix("--config=")) {
            return Some(PathBuf::from(path));
        }
    }
    None
}

/// A secret file's contents, without the line break editors and `echo` add.
fn read_secret(path: &Path) -> std::io::Result<String> {
    let text = std::fs::read_to_string(path)?;
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

/// A TOML value as the strings clap would have read from the command line.
fn toml_values(value: &toml::Value) -> Result<Vec<String>, String> {
    let one = |value: &toml::Value| match value {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        _ => Err("must be a string, a whole number or true/false".to_owned()),
    };
    match value {
        toml::Value::Array(items) => items.iter().map(one).collect(),
        other => one(other).map(|v| vec![v]),
    }
}

/// Runs the setting's own parser over the values, so that a bad value names the file and key
/// (clap would blame the flag).
fn validate(cmd: &Command, id: &str, values: &[String]) -> Result<(), String> {
    let Some(arg) = cmd.get_arguments().find(|a| a.get_id() == id) else {
        return Ok(());
    };
    let takes_many = arg.get_value_delimiter().is_some()
        || arg
            .get_num_args()
            .is_some_and(|range| range.max_values() > 1);
    if values.len() > 1 && !takes_many {
        return Err("takes one value, not a list".into());
    }
    // A flag that takes no value (`--dpop-nonce`): the file says true or false.
    if matches!(arg.get_action(), clap::ArgAction::SetTrue) {
        return match values {
            [v] if v == "true" || v == "false" => Ok(()),
            _ => Err("must be true or false".into()),
        };
    }
    let Some(long) = arg.get_long() else {
        return Ok(());
    };
    // The setting's own parser, run as if the value were given as its flag.
    let check = clap::Command::new("check")
        .no_binary_name(true)
        .arg(arg.clone().global(false).required(false));
    for value in values {
        if let Err(error) = check
            .clone()
            .try_get_matches_from([format!("--{long}={value}")])
        {
            use std::error::Error as _;
            let reason = error
                .source()
                .map(ToString::to_string)
                .unwrap_or_else(|| format!("has an invalid value `{value}`"));
            return Err(reason);
        }
    }
    Ok(())
}

fn set_default(cmd: Command, id: &str, values: Vec<String>) -> Command {
    let secret = SECRETS.contains(&id);
    cmd.mut_arg(id, |arg| {
        arg.default_values(values.into_iter().map(clap::builder::OsStr::from))
            .hide_default_value(secret)
    })
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_flag_is_found_in_either_form() {
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            config_argument(&args(&["latchkey", "--config", "a.toml", "serve"])),
            Some(PathBuf::from("a.toml"))
        );
        assert_eq!(
            config_argument(&args(&["latchkey", "serve", "--config=b.toml"])),
            Some(PathBuf::from("b.toml"))
        );
        assert_eq!(config_argument(&args(&["latchkey", "serve"])), None);
    }

    #[test]
    fn toml_values_become_command_line_strings() {
        let table: toml::Table =
            "a = 3\nb = true\nc = \"x\"\nd = [\"10.0.0.0/8\", \"::1\"]\ne = 1.5"
                .parse()
                .unwrap();
        assert_eq!(toml_values(&table["a"]).unwrap(), ["3"]);
        assert_eq!(toml_values(&table["b"]).unwrap(), ["true"]);
        assert_eq!(toml_values(&table["c"]).unwrap(), ["x"]);
        assert_eq!(toml_values(&table["d"]).unwrap(), ["10.0.0.0/8", "::1"]);
        assert!(toml_values(&table["e"]).is_err());
    }
}
