//! actix-session's `SessionStore` on our own database, so that sessions outlive a restart, are
//! shared by every instance, and logout really ends them on the server.
//!
//! A signed-in session's cookie carries a 256-bit random session key (inside actix-session's
//! encrypted cookie); the table stores only its SHA-256, so a database dump cannot be replayed
//! as a cookie.
//!
//! A visitor who has not signed in has nothing to revoke: their state (the login form's CSRF
//! token, a flash message) travels in the cookie itself, which actix-session encrypts and authenticates with the server key
//! (`CookieContentSecurity::Private`), so it can be neither read nor forged. Such a session
//! costs no statement at all: the login page of the authorization-code flow used to cost an
//! INSERT, two SELECTs and the DELETE at sign-in. The state is stamped when written and refused
//! once it is older than the idle timeout, so a copied cookie does not live forever. Signing in
//! moves the state to a new row (`TypedSession::log_in` renews the session); a state too big
//! for a cookie goes to the table as before. An authorization request waiting for the person
//! travels in a sealed cookie of its own (`routes::authorize::waiting`), signed in or not.

use std::collections::HashMap;

use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use actix_web::cookie::time::Duration;
use chrono::TimeDelta;

use crate::crypto;
use crate::db::models::SessionRow;
use crate::db::{self, DbError, Pool};
use crate::domain::UserId;

/// The state key under which the signed-in user's id is kept (see `auth::session`).
pub const USER_ID_KEY: &str = "user_id";
/// The state key recording when the session was last written, as seconds since the epoch: every
/// write is activity, so `auth::session` need not write again within its activity grain.
pub const SEEN_AT_KEY: &str = "seen_at";

fn stamp(state: &mut State) {
    state.insert(
        SEEN_AT_KEY.to_owned(),
        chrono::Utc::now().timestamp().to_string(),
    );
}

#[derive(Clone)]
pub struct DbSessionStore {
    pool: Pool,
    /// How long an unchanged session lives: the cookie's max-age, and the age at which a state
    /// carried in the cookie is refused.
    idle: TimeDelta,
}

impl DbSessionStore {
    pub fn new(pool: Pool, idle: &Duration) -> Self {
        Self {
            pool,
            idle: TimeDelta::seconds(idle.whole_seconds().max(0)),
        }
    }
}

type State = HashMap<String, String>;

/// The largest anonymous state, as JSON, carried in the cookie: encrypted and base64-encoded it
/// grows by a third plus 38 bytes, well inside the 4,096 bytes a browser keeps per cookie. A
/// bigger one (an authorization request with a very long `state`) goes to the table.
const MAX_INLINE_STATE: usize = 2048;

/// Whether `key` is a state carried in the cookie: random keys are base64url, which never
/// starts with `{`.
fn is_inline(key: &str) -> bool {
    key.starts_with('{')
}

/// The state carried in a cookie, if it is one we wrote (the cookie is authenticated, so it is),
/// still within the idle timeout and anonymous: a signed-in session always lives in the table,
/// where logout can end it.
fn inline_state(key: &str, idle: TimeDelta) -> Option<State> {
    let state: State = serde_json::from_str(key).ok()?;
    let written: i64 = state.get(SEEN_AT_KEY)?.parse().ok()?;
    let fresh = chrono::Utc::now().timestamp() - written <= idle.num_seconds();
    (fresh && user_id_of(&state).is_none()).then_some(state)
}

/// actix-session stores each value as JSON text; the user id is a JSON number.
fn user_id_of(state: &State) -> Option<UserId> {
    state.get(USER_ID_KEY).and_then(|v| v.parse().ok())
}

fn expiry(ttl: &Duration) -> chrono::NaiveDateTime {
    db::now() + TimeDelta::seconds(ttl.whole_seconds().max(0))
}

impl SessionStore for DbSessionStore {
    async fn load(&self, session_key: &SessionKey) -> Result<Option<State>, LoadError> {
        if is_inline(session_key.as_ref()) {
            return Ok(inline_state(session_key.as_ref(), self.idle));
        }
        let digest = crypto::token_digest(session_key.as_ref());
        let row = db::run(&self.pool, move |conn| {
            SessionRow::find_live(conn, &digest, db::now()).map_err(DbError::from)
        })
        .await
        .map_err(|e| LoadError::Other(anyhow::Error::new(e)))?;
        match row {
            None => Ok(None),
            Some(row) => serde_json::from_str(&row.state)
                .map(Some)
                .map_err(|e| LoadError::Deserialization(anyhow::Error::new(e))),
        }
    }

    async fn save(
        &self,
        mut session_state: State,
        ttl: &Duration,
    ) -> Result<SessionKey, SaveError> {
        stamp(&mut session_state);
        let state = serde_json::to_string(&session_state)
            .map_err(|e| SaveError::Serialization(anyhow::Error::new(e)))?;
        let user_id = user_id_of(&session_state);
        if user_id.is_none() && state.len() <= MAX_INLINE_STATE {
            return SessionKey::try_from(state)
                .map_err(|e| SaveError::Other(anyhow::Error::new(e)));
        }
        let key = crypto::random_token(32);
        let digest = crypto::token_digest(&key);
        let expires_at = expiry(ttl);
        // Expired sessions are swept by `cleanup`, not here, so a new visitor costs one INSERT.
        db::run(&self.pool, move |conn| {
            SessionRow::insert(conn, &digest, user_id, &state, db::now(), expires_at)
                .map_err(DbError::from)
        })
        .await
        .map_err(|e| SaveError::Other(anyhow::Error::new(e)))?;
        SessionKey::try_from(key).map_err(|e| SaveError::Other(anyhow::Error::new(e)))
    }

    async fn update(
        &self,
        session_key: SessionKey,
        mut session_state: State,
        ttl: &Duration,
    ) -> Result<SessionKey, UpdateError> {
        if is_inline(session_key.as_ref()) {
            // The cookie is the state: a new state is a new cookie (or a row, once too big).
            return self.save(session_state, ttl).await.map_err(|e| match e {
                SaveError::Serialization(e) => UpdateError::Serialization(e),
                SaveError::Other(e) => UpdateError::Other(e),
            });
        }
        stamp(&mut session_state);
        let state = serde_json::to_string(&session_state)
            .map_err(|e| UpdateError::Serialization(anyhow::Error::new(e)))?;
        let digest = crypto::token_digest(session_key.as_ref());
        let user_id = user_id_of(&session_state);
        let expires_at = expiry(ttl);
        let updated = db::run(&self.pool, move |conn| {
            SessionRow::update(conn, &digest, user_id, &state, db::now(), expires_at)
                .map_err(DbError::from)
        })
        .await
        .map_err(|e| UpdateError::Other(anyhow::Error::new(e)))?;
        if updated {
            Ok(session_key)
        } else {
            // The session ended meanwhile (logged out elsewhere, expired): start a new one
            // rather than bring the old key back to life.
            self.save(session_state, ttl).await.map_err(|e| match e {
                SaveError::Serialization(e) => UpdateError::Serialization(e),
                SaveError::Other(e) => UpdateError::Other(e),
            })
        }
    }

    async fn update_ttl(
        &self,
        session_key: &SessionKey,
        ttl: &Duration,
    ) -> Result<(), anyhow::Error> {
        if is_inline(session_key.as_ref()) {
            return Ok(());
        }
        let digest = crypto::token_digest(session_key.as_ref());
        let expires_at = expiry(ttl);
        db::run(&self.pool, move |conn| {
            SessionRow::touch(conn, &digest, expires_at).map_err(DbError::from)
        })
        .await
        .map_err(anyhow::Error::new)
    }

    async fn delete(&self, session_key: &SessionKey) -> Result<(), anyhow::Error> {
        if is_inline(session_key.as_ref()) {
            return Ok(());
        }
        let digest = crypto::token_digest(session_key.as_ref());
        db::run(&self.pool, move |conn| {
            SessionRow::delete(conn, &digest).map_err(DbError::from)
        })
        .await
        .map_err(anyhow::Error::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(ago: i64, user: Option<&str>) -> String {
        let mut state = State::new();
        state.insert("csrf".into(), "\"token\"".into());
        let at = chrono::Utc::now().timestamp() - ago;
        state.insert(SEEN_AT_KEY.into(), at.to_string());
        if let Some(user) = user {
            state.insert(USER_ID_KEY.into(), user.into());
        }
        serde_json::to_string(&state).unwrap()
    }

    #[test]
    fn a_state_in_the_cookie_lives_as_long_as_the_idle_timeout_and_never_signs_anyone_in() {
        let idle = TimeDelta::hours(2);
        let fresh = written(60, None);
        assert!(is_inline(&fresh));
        assert_eq!(inline_state(&fresh, idle).unwrap()["csrf"], "\"token\"");
        assert!(inline_state(&written(2 * 3600 + 1, None), idle).is_none());
        assert!(inline_state(&written(60, Some("1")), idle).is_none());
        assert!(inline_state("{not json", idle).is_none());
        assert!(inline_state("{}", idle).is_none(), "unstamped");
        assert!(!is_inline(&crypto::random_token(32)));
    }
}
