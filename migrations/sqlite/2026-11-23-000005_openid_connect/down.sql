DELETE FROM scopes WHERE name IN ('openid', 'profile', 'email');
ALTER TABLE client_authorization_codes DROP COLUMN auth_time;
