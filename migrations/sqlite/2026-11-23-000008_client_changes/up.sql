-- A counter of changes to clients and client secrets, bumped by triggers in the transaction of
-- the change, whoever makes it (this server, the CLI, another instance, SQL typed by hand).
-- Each instance caches clients and their secrets' digests (`db::client_cache`) and reads this
-- one row at most once a second: a new value drops its cache. One row, id 1.
CREATE TABLE client_changes (
    id INTEGER PRIMARY KEY NOT NULL,
    counter BIGINT NOT NULL
);
INSERT INTO client_changes (id, counter) VALUES (1, 0);

-- Any change to a client row, including a delete cascaded from its owner's account.
CREATE TRIGGER clients_inserted_count AFTER INSERT ON clients
BEGIN
    UPDATE client_changes SET counter = counter + 1 WHERE id = 1;
END;
CREATE TRIGGER clients_updated_count AFTER UPDATE ON clients
BEGIN
    UPDATE client_changes SET counter = counter + 1 WHERE id = 1;
END;
CREATE TRIGGER clients_deleted_count AFTER DELETE ON clients
BEGIN
    UPDATE client_changes SET counter = counter + 1 WHERE id = 1;
END;

-- Any change to a secret except `last_used_at`, which the token endpoint writes every few
-- minutes per secret and no cache needs to agree on: counting it would drop every instance's
-- cache each time.
CREATE TRIGGER client_secrets_inserted_count AFTER INSERT ON client_secrets
BEGIN
    UPDATE client_changes SET counter = counter + 1 WHERE id = 1;
END;
CREATE TRIGGER client_secrets_updated_count
AFTER UPDATE OF id, client_id, secret_digest, secret_encrypted, secret_hint, created_at, expires_at
ON client_secrets
BEGIN
    UPDATE client_changes SET counter = counter + 1 WHERE id = 1;
END;
CREATE TRIGGER client_secrets_deleted_count AFTER DELETE ON client_secrets
BEGIN
    UPDATE client_changes SET counter = counter + 1 WHERE id = 1;
END;
