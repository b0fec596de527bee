DROP TRIGGER scopes_count_changes ON scopes;
