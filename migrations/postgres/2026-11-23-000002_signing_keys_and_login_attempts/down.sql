DROP TABLE login_attempts;
DROP TABLE signing_keys;
