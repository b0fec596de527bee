-- The scopes go unless an application still lists one.
DELETE FROM scopes
WHERE name IN ('manage_payment', 'get_merchant_profile', 'manage_store')
  AND NOT EXISTS (SELECT 1 FROM clients WHERE (' ' || clients.scopes || ' ') LIKE ('% ' || scopes.name || ' %'));
