"""Loads N client_credentials token rows into a Latchkey SQLite database, as if N tokens had been
issued before: bench/run.sh and bench/profile.sh measure the token endpoint on a full table.

    python3 bench/rows.py DATABASE N ISSUER
"""
import hashlib
import sqlite3
import sys

db, rows, base = sys.argv[1], int(sys.argv[2]), sys.argv[3]
conn = sqlite3.connect(db, timeout=30)
cid, uid = conn.execute("SELECT id, user_id FROM clients LIMIT 1").fetchone()


def tokens():
    for n in range(rows):
        yield (cid, uid, hashlib.sha256(b"bench-%d" % n).hexdigest(), "client_credentials",
               "get_user_profile", base, "2999-01-01 00:00:00", "2026-01-01 00:00:00")


with conn:
    conn.executemany("INSERT INTO client_access_tokens (client_id, user_id, access_token, "
                     "grant_type, scope, audience, expired_at, created_at) VALUES (?,?,?,?,?,?,?,?)",
                     tokens())
# Measure a database that holds the rows, not one still checkpointing a bulk load's WAL.
conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
conn.close()
