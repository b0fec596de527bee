//! `latchkey scope create | list`.

use anyhow::bail;
use clap::Subcommand;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use serde_json::json;

use crate::config::Settings;
use crate::db;
use crate::db::models::Scope;
use crate::db::models::scope::NewScope;
use crate::domain::ScopeName;

#[derive(Debug, Subcommand)]
pub enum ScopeCommand {
    /// Register a scope that clients may request.
    Create {
        /// Scope name: lowercase letters, digits and _ . : -
        #[arg(value_parser = |s: &str| ScopeName::parse(s).map_err(|e| e.to_string()))]
        name: ScopeName,
        /// What it lets an application do, as end users read it on the consent page
        /// ("Read your user profile").
        #[arg(long)]
        description: String,
    },
    /// List the registered scopes.
    List {
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Longest description shown on the consent page.
const MAX_DESCRIPTION: usize = 200;

pub fn run(settings: &Settings, cmd: ScopeCommand) -> anyhow::Result<()> {
    match cmd {
        ScopeCommand::Create { name, description } => {
            let description = description.trim();
            if description.is_empty() || description.chars().count() > MAX_DESCRIPTION {
                bail!("--description must be 1 to {MAX_DESCRIPTION} characters long");
            }
            if description.chars().any(char::is_control) {
                bail!("--description must be on one line");
            }
            let (_key, mut conn) = super::connect(settings)?;
            let new = NewScope {
                name: name.as_str(),
                description,
                created_at: db::now(),
            };
            match Scope::insert(&mut conn, &new) {
                Ok(scope) => {
                    eprintln!("Created scope {}.", scope.name);
                    Ok(())
                }
                Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                    bail!("scope `{name}` already exists")
                }
                Err(e) => Err(e.into()),
            }
        }
        ScopeCommand::List { json } => {
            let (_key, mut conn) = super::connect(settings)?;
            let scopes = Scope::all(&mut conn)?;
            if json {
                let list: Vec<_> = scopes
                    .iter()
                    .map(|s| json!({ "name": s.name, "description": s.description }))
                    .collect();
                println!("{}", serde_json::Value::Array(list));
            } else {
                let width = scopes
                    .iter()
                    .map(|s| s.name.len())
                    .max()
                    .unwrap_or(4)
                    .max(4);
                println!("{:<width$}  DESCRIPTION", "NAME");
                for s in &scopes {
                    println!("{:<width$}  {}", s.name, s.description);
                }
            }
            Ok(())
        }
    }
}
