-- A key-based client (`private_key_jwt`, RFC 7523) proves itself with a JWT signed by one of its
-- public keys instead of a secret: its JWKS, as `domain::ClientKeys` stores it (a JSON array of
-- {"jwk", "added_at"}). NULL for a secret-based or public client; a client is one or the other.
ALTER TABLE clients ADD COLUMN jwks TEXT;

-- Identifiers that may be used once within their lifetime, whoever checks them (every instance
-- shares this table): a client assertion's `jti` until its `exp`. The id is the SHA-256 (hex)
-- of what kind of identifier it is, whose it is, and the identifier.
CREATE TABLE used_jtis (
    id TEXT PRIMARY KEY NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX used_jtis_expires_at_idx ON used_jtis (expires_at);
