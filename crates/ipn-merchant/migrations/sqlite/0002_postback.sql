-- The PayPal postback's outcome (`verification` is the gateway's word,
-- `verified_at` when it was had) and its retries: attempts that did not
-- reach an answer, when the next is due and why the last failed.
-- `next_postback_at` 0 means "now", so a new row is due at once without
-- the receiver setting it.
ALTER TABLE inbox ADD COLUMN verification TEXT;
ALTER TABLE inbox ADD COLUMN verified_at INTEGER;
ALTER TABLE inbox ADD COLUMN postback_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE inbox ADD COLUMN next_postback_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE inbox ADD COLUMN postback_error TEXT;
