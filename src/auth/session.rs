//! A typed view of the browser session: who is signed in, since when, the CSRF token, the
//! re-authentication window, and one-shot flash messages.

use std::future::{Ready, ready};

use actix_session::{Session, SessionExt as _};
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use chrono::TimeDelta;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;

use super::session_store::{SEEN_AT_KEY as SEEN_AT, USER_ID_KEY};
use crate::crypto;
use crate::domain::UserId;

const SIGNED_IN_AT: &str = "signed_in_at";
const DEVICE: &str = "device";
const ADDRESS: &str = "address";
const MARK: &str = "mark";
const REAUTH_AT: &str = "reauth_at";
const CSRF: &str = "csrf";
const FLASH: &str = "flash";
/// Activity is written down at most this often. Each write is a session UPDATE, and the idle
/// timeout (two hours) needs no finer grain: extending the session on every request cost every
/// page view a write.
pub const ACTIVITY_GRAIN: TimeDelta = TimeDelta::minutes(1);
/// An authorization request waiting for the person to sign in and decide (see `oauth::authorize`),
/// when it is too big for its own cookie (`routes::authorize::waiting`).
pub const PENDING_AUTHORIZATION: &str = "pending_authorization";

/// A session older than this ends, however active (ASVS V7.3: absolute timeout).
pub const ABSOLUTE_TIMEOUT: TimeDelta = TimeDelta::hours(12);
/// How long re-entering the password unlocks sensitive actions (viewing a secret).
pub const REAUTH_WINDOW: TimeDelta = TimeDelta::minutes(10);

/// Someone who gave the right password for an account with a second factor, and has to give a
/// code from it before they are signed in (`routes::session::verify_form`).
const SECOND_FACTOR: &str = "second_factor";
/// A TOTP secret being set up, sealed (see `set_totp_enrolment`).
const TOTP_ENROLMENT: &str = "totp_enrolment";
/// A passkey being added (`routes::security`): webauthn-rs's registration state.
const PASSKEY_REGISTRATION: &str = "passkey_registration";
/// The passkey challenge of the last page that offered one (sign-in's second step, step-up).
const PASSKEY_CHALLENGE: &str = "passkey_challenge";
/// How long the password stays good for the second step.
pub const SECOND_FACTOR_WINDOW: TimeDelta = TimeDelta::minutes(10);

/// The half-finished sign-in: who, where to go after, and since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwaitingFactor {
    pub user_id: UserId,
    pub next: Option<String>,
    at: i64,
}

/// A message shown once, on the next page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flash {
    /// `success`, `info` or `error`: the CSS class.
    pub kind: String,
    pub message: String,
}

pub struct TypedSession(Session);

impl TypedSession {
    pub fn from_session(session: Session) -> Self {
        Self(session)
    }

    /// Signs `user_id` in: a new session id (no fixation, ASVS V7.2.4), a fresh CSRF token, and
    /// what the Security page lists of it: the device (from `user_agent`), the address, and a
    /// random mark by which the page knows this session among the account's.
    pub fn log_in(
        &self,
        user_id: UserId,
        user_agent: &str,
        address: &str,
    ) -> Result<(), actix_session::SessionInsertError> {
        self.restart()?;
        self.0.insert(USER_ID_KEY, user_id)?;
        self.0.insert(SIGNED_IN_AT, now())?;
        self.0.insert(DEVICE, describe_device(user_agent))?;
        self.0.insert(ADDRESS, address)?;
        self.0.insert(MARK, crypto::random_token(16))?;
        Ok(())
    }

    /// This session's mark (see [`Self::log_in`]).
    pub fn mark(&self) -> Option<String> {
        self.0.get::<String>(MARK).ok().flatten()
    }

    /// Signs out but keeps a pending authorization request, so another account can answer it.
    pub fn switch_account(&self) -> Result<(), actix_session::SessionInsertError> {
        self.restart()
    }

    /// A new session id and CSRF token, keeping only the flash message and a pending
    /// authorization request. clear + renew: the old key is deleted from the store and the state
    /// moves to a new one (`purge` would end the session for the rest of this request).
    fn restart(&self) -> Result<(), actix_session::SessionInsertError> {
        let flash = self.0.get::<Flash>(FLASH).ok().flatten();
        let pending = self
            .0
            .get::<serde_json::Value>(PENDING_AUTHORIZATION)
            .ok()
            .flatten();
        self.0.clear();
        self.0.renew();
        self.0.insert(CSRF, crypto::random_token(32))?;
        if let Some(flash) = flash {
            self.0.insert(FLASH, flash)?;
        }
        if let Some(pending) = pending {
            self.0.insert(PENDING_AUTHORIZATION, pending)?;
        }
        Ok(())
    }

    /// The signed-in user, unless the session has passed its absolute timeout.
    pub fn user_id(&self) -> Option<UserId> {
        let user_id = self.0.get::<UserId>(USER_ID_KEY).ok().flatten()?;
        let signed_in_at = self.0.get::<i64>(SIGNED_IN_AT).ok().flatten()?;
        if now() - signed_in_at > ABSOLUTE_TIMEOUT.num_seconds() {
            self.0.purge();
            return None;
        }
        Some(user_id)
    }

    /// When the signed-in person entered their password (seconds since the epoch).
    pub fn signed_in_at(&self) -> Option<i64> {
        self.0.get::<i64>(SIGNED_IN_AT).ok().flatten()
    }

    pub fn log_out(&self) {
        self.0.purge();
    }

    /// The password was right for an account with a second factor: the session is not signed
    /// in yet, but remembers whose code it waits for.
    pub fn await_second_factor(
        &self,
        user_id: UserId,
        next: Option<String>,
    ) -> Result<(), actix_session::SessionInsertError> {
        self.0.insert(
            SECOND_FACTOR,
            AwaitingFactor {
                user_id,
                next,
                at: now(),
            },
        )
    }

    /// The sign-in waiting for its second factor, if the password was given within
    /// [`SECOND_FACTOR_WINDOW`].
    pub fn awaiting_second_factor(&self) -> Option<AwaitingFactor> {
        self.0
            .get::<AwaitingFactor>(SECOND_FACTOR)
            .ok()
            .flatten()
            .filter(|a| now() - a.at <= SECOND_FACTOR_WINDOW.num_seconds())
    }

    /// Forgets a half-finished sign-in (the person went back to the password page).
    pub fn forget_second_factor(&self) {
        self.0.remove(SECOND_FACTOR);
    }

    /// A TOTP secret being set up, sealed under the server key (`routes::security`): kept
    /// until a first code from it is right.
    pub fn set_totp_enrolment(
        &self,
        sealed: &str,
    ) -> Result<(), actix_session::SessionInsertError> {
        self.0.insert(TOTP_ENROLMENT, sealed)
    }

    pub fn totp_enrolment(&self) -> Option<String> {
        self.0.get::<String>(TOTP_ENROLMENT).ok().flatten()
    }

    pub fn forget_totp_enrolment(&self) {
        self.0.remove(TOTP_ENROLMENT);
    }

    /// Keeps a passkey registration until its form comes back.
    pub fn keep_passkey_registration(
        &self,
        ceremony: &crate::passkeys::Registration,
    ) -> Result<(), actix_session::SessionInsertError> {
        self.0.insert(PASSKEY_REGISTRATION, ceremony)
    }

    /// Takes the passkey registration out: it is answered once.
    pub fn take_passkey_registration(&self) -> Option<crate::passkeys::Registration> {
        self.0.remove_as(PASSKEY_REGISTRATION).and_then(Result::ok)
    }

    /// Keeps the passkey challenge a page offered, replacing any earlier one.
    pub fn keep_passkey_challenge(
        &self,
        ceremony: &crate::passkeys::Authentication,
    ) -> Result<(), actix_session::SessionInsertError> {
        self.0.insert(PASSKEY_CHALLENGE, ceremony)
    }

    /// Takes the passkey challenge out: it is answered once.
    pub fn take_passkey_challenge(&self) -> Option<crate::passkeys::Authentication> {
        self.0.remove_as(PASSKEY_CHALLENGE).and_then(Result::ok)
    }

    /// Records that the password was just re-entered.
    pub fn reauthenticated(&self) -> Result<(), actix_session::SessionInsertError> {
        self.0.insert(REAUTH_AT, now())
    }

    /// Whether the password was entered within the re-authentication window.
    pub fn recently_authenticated(&self) -> bool {
        self.0
            .get::<i64>(REAUTH_AT)
            .ok()
            .flatten()
            .is_some_and(|at| now() - at <= REAUTH_WINDOW.num_seconds())
    }

    /// The session's CSRF token, created on first use.
    pub fn csrf_token(&self) -> String {
        if let Some(token) = self.0.get::<String>(CSRF).ok().flatten() {
            return token;
        }
        let token = crypto::random_token(32);
        // If the insert fails the form simply fails its CSRF check later: safe.
        let _ = self.0.insert(CSRF, &token);
        token
    }

    /// Compares a submitted token with the session's, in constant time.
    pub fn check_csrf(&self, submitted: &str) -> bool {
        match self.0.get::<String>(CSRF).ok().flatten() {
            Some(expected) if !submitted.is_empty() => {
                expected.as_bytes().ct_eq(submitted.as_bytes()).into()
            }
            _ => false,
        }
    }

    pub fn flash(&self, kind: &str, message: impl Into<String>) {
        let _ = self.0.insert(
            FLASH,
            Flash {
                kind: kind.to_owned(),
                message: message.into(),
            },
        );
    }

    /// Records that an existing session is in use, at most once per [`ACTIVITY_GRAIN`] (the
    /// store stamps every write): the change makes the store extend the session's expiry, the
    /// idle timeout (ASVS V7.3.1). Visitors without a session get none from this.
    fn note_activity(&self) {
        if self.0.entries().is_empty() {
            return;
        }
        let now = now();
        let seen = self.0.get::<i64>(SEEN_AT).ok().flatten();
        if seen.is_none_or(|at| now - at >= ACTIVITY_GRAIN.num_seconds()) {
            let _ = self.0.insert(SEEN_AT, now);
        }
    }

    /// The flash message, removed. actix-session marks a session changed on any `remove`, even
    /// of a key it lacks, which would cost every page view a session write: look first.
    pub fn take_flash(&self) -> Option<Flash> {
        self.0.get::<Flash>(FLASH).ok().flatten()?;
        self.0.remove_as::<Flash>(FLASH).and_then(Result::ok)
    }

    /// Stores any serialisable value under `key` (for example a pending authorization request).
    pub fn put<T: Serialize>(
        &self,
        key: &str,
        value: &T,
    ) -> Result<(), actix_session::SessionInsertError> {
        self.0.insert(key, value)
    }

    pub fn get<T: serde::de::DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.0.get::<T>(key).ok().flatten()
    }

    /// Removes `key`, writing the session only if it was there (see [`Self::take_flash`]).
    pub fn remove(&self, key: &str) {
        if self
            .0
            .get::<serde_json::Value>(key)
            .ok()
            .flatten()
            .is_some()
        {
            self.0.remove(key);
        }
    }
}

/// "Firefox on Linux", from a `User-Agent` header (the `woothee` crate's reading).
pub fn describe_device(user_agent: &str) -> String {
    let parsed = woothee::parser::Parser::new().parse(user_agent);
    let known = |s: &str| !s.is_empty() && s != "UNKNOWN";
    match parsed {
        Some(p) if known(p.name) && known(p.os) => format!("{} on {}", p.name, p.os),
        Some(p) if known(p.name) => p.name.to_owned(),
        _ => "Unknown device".to_owned(),
    }
}

/// A signed-in session as the Security page lists it, read from its stored state.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub id: i64,
    pub device: String,
    pub address: String,
    pub signed_in: String,
    pub last_seen: String,
    /// The session looking at the page.
    pub current: bool,
}

impl Listed {
    /// Reads a stored session's state (actix-session keeps each value as JSON text); the
    /// session whose mark is `current` is the one looking.
    pub fn from_row(row: &crate::db::models::SessionRow, current: Option<&str>) -> Self {
        let state: std::collections::HashMap<String, String> =
            serde_json::from_str(&row.state).unwrap_or_default();
        let text = |key: &str| {
            state
                .get(key)
                .and_then(|v| serde_json::from_str::<String>(v).ok())
        };
        let when = |key: &str| {
            state
                .get(key)
                .and_then(|v| v.trim_matches('"').parse::<i64>().ok())
                .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
                .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_else(|| "unknown".to_owned())
        };
        let mark = text(MARK);
        Self {
            id: row.id,
            device: text(DEVICE).unwrap_or_else(|| "Unknown device".to_owned()),
            address: text(ADDRESS).unwrap_or_else(|| "unknown".to_owned()),
            signed_in: when(SIGNED_IN_AT),
            last_seen: when(SEEN_AT),
            current: mark.is_some() && mark.as_deref() == current,
        }
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl FromRequest for TypedSession {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let session = Self(req.get_session());
        session.note_activity();
        ready(Ok(session))
    }
}
