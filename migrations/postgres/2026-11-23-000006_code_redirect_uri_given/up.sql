-- Whether the authorization request named its redirect_uri: if it did, the token request must
-- name the same one (RFC 6749 §4.1.3). Codes issued before this column existed are treated as
-- having named it, the stricter reading.
ALTER TABLE client_authorization_codes ADD COLUMN redirect_uri_given BOOLEAN NOT NULL DEFAULT TRUE;
