DROP TRIGGER client_secrets_count_changes ON client_secrets;
DROP TRIGGER clients_count_changes ON clients;
DROP FUNCTION count_client_change();
DROP TABLE client_changes;
