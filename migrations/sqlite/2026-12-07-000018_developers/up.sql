-- Whether an account builds applications (the portal's Developer pages in its navigation and
-- the merchant banners) or only uses them: set when it signs up from the portal rather than
-- during an authorization request, and when it registers an application. Accounts that own
-- an application already are developers.
ALTER TABLE users ADD COLUMN is_developer BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE users SET is_developer = TRUE WHERE id IN (SELECT user_id FROM clients);
