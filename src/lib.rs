//! Latchkey: an OAuth 2.0 authorization server with a merchant developer portal, in one binary.
//!
//! Start at [`startup::Application`] for the server, and [`cli`] for the command line.

pub mod accounts;
pub mod auth;
pub mod authorizations;
pub mod cleanup;
pub mod cli;
pub mod clients;
pub mod config;
pub mod crypto;
pub mod db;
pub mod domain;
pub mod email;
pub mod error;
pub mod metrics;
pub mod mfa;
pub mod notices;
pub mod oauth;
pub mod passkeys;
pub mod rekey;
pub mod routes;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod templates;
