-- Pushed authorization requests (RFC 9126): a client posts its authorization parameters to
-- /oauth/par, they are checked as /oauth/authorize checks them and kept here for 60 seconds, and
-- /oauth/authorize then takes them, once, by their request_uri.
CREATE TABLE pushed_requests (
    -- SHA-256 (hex) of the request_uri: like every other bearer reference, not kept in clear
    id TEXT PRIMARY KEY NOT NULL,
    client_id BIGINT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    -- the checked request, as `oauth::authorize::Pending` (JSON)
    request TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX pushed_requests_expires_at_idx ON pushed_requests (expires_at);
CREATE INDEX pushed_requests_client_id_idx ON pushed_requests (client_id);

-- A client that must push its authorization requests: /oauth/authorize refuses it any other way.
ALTER TABLE clients ADD COLUMN require_par BOOLEAN NOT NULL DEFAULT FALSE;
