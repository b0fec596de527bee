DROP TABLE audit_events;
DROP TABLE email_tokens;
DROP TABLE sessions;
