-- Clients the operator marked as resource servers may introspect every client's tokens
-- (RFC 7662 §4); any other client only those of its owner's clients.
ALTER TABLE clients ADD COLUMN is_resource_server BOOLEAN NOT NULL DEFAULT FALSE;
