-- A client_credentials access token (most of the rows, under load) has no refresh token and
-- no authorization code: indexing its two NULLs cost every such INSERT two B-tree insertions
-- out of seven, on the one SQLite writer's thread. The lookups by these columns (revoking a
-- family, a replayed code's tokens, ON DELETE SET NULL) all ask for a value, which a partial
-- index on the non-NULL rows answers as before.
DROP INDEX client_access_tokens_refresh_idx;
CREATE INDEX client_access_tokens_refresh_idx ON client_access_tokens (client_refresh_token_id)
    WHERE client_refresh_token_id IS NOT NULL;
DROP INDEX client_access_tokens_code_idx;
CREATE INDEX client_access_tokens_code_idx ON client_access_tokens (client_authorization_code_id)
    WHERE client_authorization_code_id IS NOT NULL;
DROP INDEX client_refresh_tokens_code_idx;
CREATE INDEX client_refresh_tokens_code_idx ON client_refresh_tokens (client_authorization_code_id)
    WHERE client_authorization_code_id IS NOT NULL;
