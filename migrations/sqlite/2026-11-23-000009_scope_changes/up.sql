-- The scope catalogue is cached with the clients (`db::client_cache`): the consent page and
-- the discovery document read it from memory. A change to it, by the CLI or anyone, bumps the
-- same counter, so every instance drops its copy within a second.
CREATE TRIGGER scopes_inserted_count AFTER INSERT ON scopes
BEGIN
    UPDATE client_changes SET counter = counter + 1 WHERE id = 1;
END;
CREATE TRIGGER scopes_updated_count AFTER UPDATE ON scopes
BEGIN
    UPDATE client_changes SET counter = counter + 1 WHERE id = 1;
END;
CREATE TRIGGER scopes_deleted_count AFTER DELETE ON scopes
BEGIN
    UPDATE client_changes SET counter = counter + 1 WHERE id = 1;
END;
