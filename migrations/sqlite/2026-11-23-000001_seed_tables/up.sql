-- The seed's five tables (shared/seeds/000), made portable, plus `scopes` and `client_secrets`.
-- Portable types only: BIGINT ids, TEXT, BOOLEAN, TIMESTAMP (always UTC). The seed's `[]string`
-- columns (clients.redirect_uri, client_authorization_codes.scope) are space-separated TEXT:
-- neither a URI nor a scope token may contain a space (RFC 3986, RFC 6749 §3.3).
-- The seed's clients.client_secret moves to the child table client_secrets, because a client
-- holds two secrets while one is being rotated; no secret is stored in clear.

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    name TEXT NOT NULL,
    username TEXT NOT NULL UNIQUE,
    -- argon2id PHC string, never the password
    password TEXT NOT NULL,
    email TEXT UNIQUE,
    email_verified_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE scopes (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

INSERT INTO scopes (name, description) VALUES ('get_user_profile', 'Read your user profile');

CREATE TABLE clients (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    client_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    home_page_url TEXT,
    logo_url TEXT,
    privacy_policy_url TEXT,
    -- the owner (the seed's merchant user)
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    is_live BOOLEAN NOT NULL DEFAULT FALSE,
    -- registered redirect URIs, space separated, each matched byte for byte
    redirect_uri TEXT NOT NULL DEFAULT '',
    -- allowed grant types and scopes, space separated
    grant_types TEXT NOT NULL,
    scopes TEXT NOT NULL,
    is_confidential BOOLEAN NOT NULL DEFAULT TRUE,
    is_enabled BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX clients_user_id_idx ON clients (user_id);

CREATE TABLE client_secrets (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    client_id BIGINT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    -- HMAC-SHA256 of the secret under a key derived from the server secret
    secret_digest TEXT NOT NULL UNIQUE,
    -- XChaCha20-Poly1305 under the server secret, so the portal can show it again
    secret_encrypted TEXT NOT NULL,
    -- last four characters, to tell secrets apart in the portal
    secret_hint TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    -- set when the secret is rotated out; NULL while it is current
    expires_at TIMESTAMP,
    last_used_at TIMESTAMP
);
CREATE INDEX client_secrets_client_id_idx ON client_secrets (client_id);

CREATE TABLE client_authorization_codes (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    client_id BIGINT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- SHA-256 of the code
    code TEXT NOT NULL UNIQUE,
    scope TEXT NOT NULL,
    is_used BOOLEAN NOT NULL DEFAULT FALSE,
    redirect_uri TEXT NOT NULL,
    code_challenge TEXT,
    code_challenge_method TEXT,
    nonce TEXT,
    expired_at TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE client_refresh_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    client_id BIGINT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- SHA-256 of the token
    refresh_token TEXT NOT NULL UNIQUE,
    grant_type TEXT NOT NULL,
    scope TEXT NOT NULL,
    audience TEXT NOT NULL,
    -- every token of one rotation chain shares a family; reuse of a rotated token revokes it
    family_id TEXT NOT NULL,
    client_authorization_code_id BIGINT REFERENCES client_authorization_codes (id) ON DELETE SET NULL,
    expired_at TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    -- set when rotated (exchanged for a new one)
    used_at TIMESTAMP,
    revoked_at TIMESTAMP
);
CREATE INDEX client_refresh_tokens_family_id_idx ON client_refresh_tokens (family_id);
CREATE INDEX client_refresh_tokens_client_user_idx ON client_refresh_tokens (client_id, user_id);
CREATE INDEX client_refresh_tokens_code_idx ON client_refresh_tokens (client_authorization_code_id);

CREATE TABLE client_access_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    client_id BIGINT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_refresh_token_id BIGINT REFERENCES client_refresh_tokens (id) ON DELETE SET NULL,
    -- SHA-256 of the JWT
    access_token TEXT NOT NULL UNIQUE,
    grant_type TEXT NOT NULL,
    scope TEXT NOT NULL,
    audience TEXT NOT NULL,
    client_authorization_code_id BIGINT REFERENCES client_authorization_codes (id) ON DELETE SET NULL,
    expired_at TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    revoked_at TIMESTAMP
);
CREATE INDEX client_access_tokens_refresh_idx ON client_access_tokens (client_refresh_token_id);
CREATE INDEX client_access_tokens_code_idx ON client_access_tokens (client_authorization_code_id);
CREATE INDEX client_access_tokens_client_user_idx ON client_access_tokens (client_id, user_id);
CREATE INDEX client_access_tokens_expired_at_idx ON client_access_tokens (expired_at);
CREATE INDEX client_access_tokens_client_created_idx ON client_access_tokens (client_id, created_at);
