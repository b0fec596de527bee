-- A second factor for merchant accounts (src/mfa.rs).
-- TOTP (RFC 6238): the shared secret, encrypted under the server key like client secrets (its
-- context is the user's id), and the last time step a code was accepted for: a code of that step
-- or an earlier one is refused, so a code works once, on every instance.
CREATE TABLE user_totp (
    user_id BIGINT PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    secret_encrypted TEXT NOT NULL,
    last_step BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL
);

-- Ten single-use recovery codes per account with a factor, by their keyed digest (the codes are
-- random and shown once; never kept in clear). Regenerating them deletes the old ones.
CREATE TABLE recovery_codes (
    code_digest TEXT PRIMARY KEY NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    used_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX recovery_codes_user_id_idx ON recovery_codes (user_id);
