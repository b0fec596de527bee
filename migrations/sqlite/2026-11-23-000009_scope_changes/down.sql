DROP TRIGGER scopes_deleted_count;
DROP TRIGGER scopes_updated_count;
DROP TRIGGER scopes_inserted_count;
