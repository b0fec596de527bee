-- Revenue Monster's documented scopes, so that an integration written against RM asks for
-- scopes that exist here on a fresh start (`get_user_profile` is seeded since the first
-- migration). An operator who made one of these names already keeps their description.
INSERT INTO scopes (name, description)
SELECT 'manage_payment', 'Take and refund payments for your business'
WHERE NOT EXISTS (SELECT 1 FROM scopes WHERE name = 'manage_payment');
INSERT INTO scopes (name, description)
SELECT 'get_merchant_profile', 'Read your business profile'
WHERE NOT EXISTS (SELECT 1 FROM scopes WHERE name = 'get_merchant_profile');
INSERT INTO scopes (name, description)
SELECT 'manage_store', 'Manage your stores'
WHERE NOT EXISTS (SELECT 1 FROM scopes WHERE name = 'manage_store');
