-- The inbox: every accepted message, exactly as it arrived.
--
-- `id` orders messages by arrival, for the handler that walks them.
-- `webhook_id` is set only when a signature vouched for it, and is unique
-- then: a retried delivery cannot make a second row, and a forged one
-- cannot claim an id and shadow the real message. `status` has no CHECK so
-- that later changes can add states without rebuilding the table; the
-- Rust enum is its guard. `headers` is a JSON object.
CREATE TABLE inbox (
    id          INTEGER PRIMARY KEY,
    received_at INTEGER NOT NULL,
    dialect     TEXT NOT NULL CHECK (dialect IN ('standard', 'paypal')),
    webhook_id  TEXT,
    headers     TEXT NOT NULL,
    body        BLOB NOT NULL,
    status      TEXT NOT NULL
);
CREATE UNIQUE INDEX inbox_by_webhook_id ON inbox (webhook_id)
    WHERE webhook_id IS NOT NULL;
CREATE INDEX inbox_waiting ON inbox (status, id)
    WHERE status IN ('received', 'unverified');
