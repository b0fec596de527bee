//! The integration suite: one binary, real servers on free ports, SQLite by default and
//! PostgreSQL when `TEST_DATABASE_URL` is set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod accounts;
mod activity;
mod attacks;
mod authorize;
mod chrome;
mod cli;
mod client_cache;
mod code_grant;
mod config;
mod confirmations;
mod crash;
mod dpop;
mod fapi;
mod faults;
mod health;
mod helpers;
mod limits;
mod mfa;
mod oidc;
mod openapi;
mod par;
mod passkeys;
mod portal;
mod private_key_jwt;
mod profile;
mod resource;
mod scale;
mod schema;
mod smtp;
mod token;
mod waiting_request;
