//! One file per table: the row type, the insertable type, and the queries on that table.

pub mod client;
pub mod client_secret;
pub mod scope;
pub mod user;

pub use client::{Client, NewClient};
pub use client_secret::{ClientSecret, NewClientSecret};
pub use scope::Scope;
pub use user::{NewUser, User};
