-- DPoP (RFC 9449) and the FAPI 2.0 switch, per client.
-- dpop_bound: RFC 9449 §5.2's dpop_bound_access_tokens: every token request must carry a proof.
ALTER TABLE clients ADD COLUMN dpop_bound BOOLEAN NOT NULL DEFAULT FALSE;
-- fapi2: the FAPI 2.0 Security Profile: pushed requests, PKCE S256, private_key_jwt, DPoP,
-- codes of at most 60 seconds, refresh tokens not rotated (see oauth::fapi).
ALTER TABLE clients ADD COLUMN fapi2 BOOLEAN NOT NULL DEFAULT FALSE;
-- A public client's refresh token is bound to the DPoP key its first tokens were bound to
-- (RFC 9449 §5): the key's RFC 7638 thumbprint, or NULL for an unbound token.
ALTER TABLE client_refresh_tokens ADD COLUMN dpop_jkt TEXT;
