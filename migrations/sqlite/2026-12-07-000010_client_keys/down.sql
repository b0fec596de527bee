DROP TABLE used_jtis;
ALTER TABLE clients DROP COLUMN jwks;
