-- Browser sessions (actix-session's store), kept in the database so that logout ends a session
-- on the server, sessions survive a restart, and every instance shares them.
CREATE TABLE sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    -- SHA-256 of the session key in the cookie
    session_key TEXT NOT NULL UNIQUE,
    -- the signed-in user, copied out of the state so all of a user's sessions can be ended
    user_id BIGINT REFERENCES users (id) ON DELETE CASCADE,
    -- the session state, a JSON object
    state TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);

-- Single-use tokens sent by email: address verification and password reset.
CREATE TABLE email_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- verify_email or reset_password
    purpose TEXT NOT NULL,
    -- SHA-256 of the token
    token TEXT NOT NULL UNIQUE,
    -- the address being verified (verify_email)
    email TEXT,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX email_tokens_user_id_idx ON email_tokens (user_id);

-- What happened to an application and who did it, for the portal's activity page.
CREATE TABLE audit_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    user_id BIGINT REFERENCES users (id) ON DELETE SET NULL,
    client_id BIGINT REFERENCES clients (id) ON DELETE CASCADE,
    action TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    ip TEXT,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX audit_events_client_idx ON audit_events (client_id, created_at);
