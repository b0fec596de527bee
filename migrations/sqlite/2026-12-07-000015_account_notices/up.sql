-- Reminders sent to an account, by kind, and when (src/notices.rs): one instance claims a
-- reminder by writing its row, so a fleet sends it once.
CREATE TABLE account_notices (
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    sent_at TIMESTAMP NOT NULL,
    PRIMARY KEY (user_id, kind)
);
