//! actix-session's `SessionStore` on our own database, so that sessions outlive a restart, are
//! shared by every instance, and logout really ends them on the server.
//!
//! The cookie carries a 256-bit random session key (inside actix-session's encrypted cookie);
//! the table stores only its SHA-256, so a database dump cannot be replayed as a cookie.

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
}

impl DbSessionStore {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

type State = HashMap<String, String>;

/// actix-session stores each value as JSON text; the user id is a JSON number.
fn user_id_of(state: &State) -> Option<UserId> {
    state.get(USER_ID_KEY).and_then(|v| v.parse().ok())
}

fn expiry(ttl: &Duration) -> chrono::NaiveDateTime {
    db::now() + TimeDelta::seconds(ttl.whole_seconds().max(0))
}

impl SessionStore for DbSessionStore {
    async fn load(&self, session_key: &SessionKey) -> Result<Option<State>, LoadError> {
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
        let key = crypto::random_token(32);
        let digest = crypto::token_digest(&key);
        let user_id = user_id_of(&session_state);
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
        let digest = crypto::token_digest(session_key.as_ref());
        let expires_at = expiry(ttl);
        db::run(&self.pool, move |conn| {
            SessionRow::touch(conn, &digest, expires_at).map_err(DbError::from)
        })
        .await
        .map_err(anyhow::Error::new)
    }

    async fn delete(&self, session_key: &SessionKey) -> Result<(), anyhow::Error> {
        let digest = crypto::token_digest(session_key.as_ref());
        db::run(&self.pool, move |conn| {
            SessionRow::delete(conn, &digest).map_err(DbError::from)
        })
        .await
        .map_err(anyhow::Error::new)
    }
}
