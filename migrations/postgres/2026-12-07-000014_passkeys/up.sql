-- Passkeys (WebAuthn) as a second factor for merchant accounts (src/passkeys.rs).
-- `credential` is webauthn-rs's record of the credential (its public key, algorithm and
-- signature counter) as JSON: nothing in it signs anything, so it is not a secret. `user_handle`
-- is the random WebAuthn user id the account's passkeys share (not the account's row id).
CREATE TABLE passkeys (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id TEXT NOT NULL UNIQUE,
    user_handle TEXT NOT NULL,
    name TEXT NOT NULL,
    credential TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP
);
CREATE INDEX passkeys_user_id_idx ON passkeys (user_id);
