-- The scope catalogue is cached with the clients (`db::client_cache`): the consent page and
-- the discovery document read it from memory. A change to it, by the CLI or anyone, bumps the
-- same counter, so every instance drops its copy within a second.
CREATE TRIGGER scopes_count_changes
AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON scopes
FOR EACH STATEMENT EXECUTE FUNCTION count_client_change();
