-- Token requests of a known client, counted per UTC day and outcome (src/oauth/outcomes.rs):
-- `outcome` is `issued` or the RFC 6749 error code; `detail` is the grant type for tokens
-- issued, and for failures the reason the client's owner may read: the error's description,
-- or for client authentication failures (which all answer the caller the same) a fixed
-- phrase; never a credential. Each instance adds what it counted every few seconds, so a
-- request costs a counter in memory, not a row; the activity page reads these (access tokens'
-- own rows go when they expire).
CREATE TABLE token_requests (
    client_id BIGINT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    day TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    count BIGINT NOT NULL,
    last_at TIMESTAMP NOT NULL,
    PRIMARY KEY (client_id, day, outcome, detail)
);
