ALTER TABLE clients DROP COLUMN is_resource_server;
