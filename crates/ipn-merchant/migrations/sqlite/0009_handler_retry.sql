-- When a message whose handling failed (not on storage: on itself) is
-- tried again; 0 means now.
ALTER TABLE inbox ADD COLUMN handler_retry_at INTEGER NOT NULL DEFAULT 0;
