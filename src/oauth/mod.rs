//! The OAuth 2.0 protocol, without HTTP: plain functions over typed inputs, so every rule can be
//! tested without a server. `routes/` turns requests into these types and results into
//! responses, and decides nothing itself.
//!
//! One module per endpoint, each with one entry point: [`token::exchange`] (grants in
//! [`grants`], issuing through [`issue`]), [`authorize::start`] / [`authorize::resume`] /
//! [`authorize::answer`], [`introspect::answer`] (introspection and revocation),
//! [`resource`] (the profile and userinfo resources, over [`bearer`]), and [`metadata`].
//! Every endpoint reads its parameters through [`params`]; [`context::OAuthContext`] is the
//! configuration they share. Queries are the models' (`db::models`), not these modules'.

pub mod assertion;
pub mod authorize;
pub mod bearer;
pub mod client_auth;
pub mod context;
pub mod dpop;
pub mod error;
pub mod fapi;
pub mod grants;
pub mod introspect;
pub mod issue;
pub mod jwt;
pub mod keys;
pub mod metadata;
pub mod outcomes;
pub mod par;
pub mod params;
pub mod pkce;
pub mod prompt;
pub mod request;
pub mod resource;
pub mod token;
