-- The customer email outbox. `dedupe_key` is unique: an email the handler
-- queues twice (a message handled again after a crash) is stored once. The
-- rendered subject and bodies are stored, not the variables, so what is
-- sent is what was decided in the transaction, even if the templates change
-- before it goes out. `status` ('queued', 'sent', 'failed') has no CHECK,
-- like the inbox's: the Rust enum is its guard. Times are milliseconds
-- since the Unix epoch; `next_try_at` is when a queued email is due (its
-- `created_at` at first).
--
-- Due emails are read through the `emails_due` partial index
-- (`next_try_at`), which holds only `queued` rows, so the mail worker's
-- scan never walks the sent history.
CREATE TABLE emails (
    id              INTEGER PRIMARY KEY,
    dedupe_key      TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL,
    to_address      TEXT NOT NULL,
    order_id        TEXT,
    subscription_id TEXT,
    subject         TEXT NOT NULL,
    text_body       TEXT NOT NULL,
    html_body       TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'queued',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_try_at     INTEGER NOT NULL,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER
);
CREATE INDEX emails_due ON emails (next_try_at) WHERE status = 'queued';
CREATE INDEX emails_by_order ON emails (order_id) WHERE order_id IS NOT NULL;
CREATE INDEX emails_by_subscription ON emails (subscription_id)
    WHERE subscription_id IS NOT NULL;
