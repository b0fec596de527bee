ALTER TABLE client_refresh_tokens DROP COLUMN dpop_jkt;
ALTER TABLE clients DROP COLUMN fapi2;
ALTER TABLE clients DROP COLUMN dpop_bound;
