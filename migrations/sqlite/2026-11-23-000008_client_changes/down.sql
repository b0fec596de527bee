DROP TRIGGER client_secrets_deleted_count;
DROP TRIGGER client_secrets_updated_count;
DROP TRIGGER client_secrets_inserted_count;
DROP TRIGGER clients_deleted_count;
DROP TRIGGER clients_updated_count;
DROP TRIGGER clients_inserted_count;
DROP TABLE client_changes;
