-- A counter of changes to clients and client secrets, bumped by triggers in the transaction of
-- the change, whoever makes it (this server, the CLI, another instance, SQL typed by hand).
-- Each instance caches clients and their secrets' digests (`db::client_cache`) and reads this
-- one row at most once a second: a new value drops its cache. One row, id 1.
CREATE TABLE client_changes (
    id BIGINT PRIMARY KEY NOT NULL,
    counter BIGINT NOT NULL
);
INSERT INTO client_changes (id, counter) VALUES (1, 0);

CREATE FUNCTION count_client_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE client_changes SET counter = counter + 1 WHERE id = 1;
    RETURN NULL;
END
$$;

-- Any change to a client row, including a delete cascaded from its owner's account and a
-- TRUNCATE. Once per statement: one statement is one change however many rows it touches.
CREATE TRIGGER clients_count_changes
AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON clients
FOR EACH STATEMENT EXECUTE FUNCTION count_client_change();

-- Any change to a secret except `last_used_at`, which the token endpoint writes every few
-- minutes per secret and no cache needs to agree on: counting it would drop every instance's
-- cache each time.
CREATE TRIGGER client_secrets_count_changes
AFTER INSERT OR DELETE OR TRUNCATE
    OR UPDATE OF id, client_id, secret_digest, secret_encrypted, secret_hint, created_at, expires_at
ON client_secrets
FOR EACH STATEMENT EXECUTE FUNCTION count_client_change();
