-- What each person agreed to let each application do: remembered so the consent page is not
-- shown again for the same (or fewer) scopes, and listed under Authorized apps.
CREATE TABLE consents (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id BIGINT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    -- granted scopes, space separated
    scope TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    UNIQUE (user_id, client_id)
);
CREATE INDEX consents_client_id_idx ON consents (client_id);
