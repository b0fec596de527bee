-- Token signing keys, kept in the database so every instance signs and verifies with the same
-- ones. The private half is encrypted under the server secret key.
CREATE TABLE signing_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    -- the JWS `kid`
    kid TEXT NOT NULL UNIQUE,
    -- RS256, ES256 or EdDSA
    algorithm TEXT NOT NULL,
    -- PKCS#8 DER, XChaCha20-Poly1305 under the server key, bound to the kid
    private_key TEXT NOT NULL,
    -- the public key as a JWK (RFC 7517), as published at /.well-known/jwks.json
    public_jwk TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    -- set when another key takes over signing; the key still verifies until its tokens expire
    retired_at TIMESTAMP
);

-- Failed sign-in counters, shared by the password grant and the login page, and by every
-- instance. One row per throttled key (`account:<username>` or `address:<ip>`).
CREATE TABLE login_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    throttle_key TEXT NOT NULL UNIQUE,
    failures BIGINT NOT NULL,
    first_failure_at TIMESTAMP NOT NULL,
    last_failure_at TIMESTAMP NOT NULL,
    locked_until TIMESTAMP
);
