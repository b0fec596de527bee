//! Humans: password hashing now; sessions, login throttling and CSRF join as the portal grows.

pub mod password;
pub mod throttle;
