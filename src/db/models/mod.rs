//! One file per table: the row type, the insertable type, and the queries on that table.

pub mod access_token;
pub mod audit_event;
pub mod authorization_code;
pub mod client;
pub mod client_secret;
pub mod consent;
pub mod email_token;
pub mod login_attempt;
pub mod refresh_token;
pub mod scope;
pub mod session;
pub mod signing_key;
pub mod user;

pub use access_token::{AccessToken, NewAccessToken};
pub use audit_event::AuditEvent;
pub use authorization_code::{AuthorizationCode, NewAuthorizationCode};
pub use client::{Client, NewClient};
pub use client_secret::{ClientSecret, NewClientSecret};
pub use consent::Consent;
pub use email_token::{EmailToken, Purpose};
pub use login_attempt::LoginAttempt;
pub use refresh_token::{NewRefreshToken, RefreshToken};
pub use scope::Scope;
pub use session::SessionRow;
pub use signing_key::{NewSigningKey, SigningKeyRow};
pub use user::{NewUser, User};
