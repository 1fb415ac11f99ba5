-- Secrets the gateway makes for itself, once; `seal_secrets`
-- encrypts each at the next start (a migration cannot).

CREATE TABLE secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL);
INSERT INTO secrets (name, value) VALUES ('idempotency_hash_key', randomblob(32));
