//! Humans: password hashing, sign-in throttling, and the browser session (store, typed view,
//! CSRF token).

pub mod password;
pub mod session;
pub mod session_store;
pub mod throttle;
