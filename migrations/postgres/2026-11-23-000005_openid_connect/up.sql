-- OpenID Connect: when the person signed in (the id_token's auth_time), and the standard scopes.
ALTER TABLE client_authorization_codes ADD COLUMN auth_time TIMESTAMP;

INSERT INTO scopes (name, description) VALUES
    ('openid', 'Sign you in with your Latchkey account'),
    ('profile', 'See your name and username'),
    ('email', 'See your email address');
