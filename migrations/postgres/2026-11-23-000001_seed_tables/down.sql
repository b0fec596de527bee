DROP TABLE client_access_tokens;
DROP TABLE client_refresh_tokens;
DROP TABLE client_authorization_codes;
DROP TABLE client_secrets;
DROP TABLE clients;
DROP TABLE scopes;
DROP TABLE users;
