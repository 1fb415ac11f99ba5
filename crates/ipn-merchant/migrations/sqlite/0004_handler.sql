-- The notification handler's tables. Verified PayPal messages now wait for
-- it too, so the waiting index takes `verified` rows. A handled message is
-- `processed` with its `outcome` (applied, held, duplicate, flagged,
-- ignored, rejected) or, after repeated storage errors, `failed`.
-- `applied_keys` holds each notice's key once (event id; PayPal
-- `txn_id:payment_status`). `payments` is every payment fact heard of,
-- valid or not: an order's state is derived from its valid ones. `flags`
-- are reasons for review, on an order or (unknown order) only on the
-- message. Orders keep the gateway merchant they were made with, to check
-- the receiver.
DROP INDEX inbox_waiting;
CREATE INDEX inbox_waiting ON inbox (status, id)
    WHERE status IN ('received', 'unverified', 'verified');
ALTER TABLE inbox ADD COLUMN outcome TEXT;
ALTER TABLE inbox ADD COLUMN outcome_detail TEXT;
ALTER TABLE inbox ADD COLUMN event_type TEXT;
ALTER TABLE inbox ADD COLUMN order_id TEXT;
ALTER TABLE inbox ADD COLUMN subscription_id TEXT;
ALTER TABLE inbox ADD COLUMN processed_at INTEGER;
ALTER TABLE inbox ADD COLUMN handler_attempts INTEGER NOT NULL DEFAULT 0;
CREATE INDEX inbox_by_order ON inbox (order_id) WHERE order_id IS NOT NULL;
CREATE INDEX inbox_by_subscription ON inbox (subscription_id)
    WHERE subscription_id IS NOT NULL;
CREATE TABLE applied_keys (
    key      TEXT PRIMARY KEY,
    inbox_id INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE payments (
    txn_id          TEXT PRIMARY KEY,
    parent_id       TEXT,
    kind            TEXT NOT NULL
        CHECK (kind IN ('charge', 'refund', 'reversal', 'reversal_canceled')),
    status          TEXT NOT NULL,
    order_id        TEXT,
    subscription_id TEXT,
    amount          INTEGER NOT NULL,
    currency        TEXT NOT NULL,
    valid           INTEGER NOT NULL,
    inbox_id        INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX payments_by_order ON payments (order_id) WHERE order_id IS NOT NULL;
CREATE INDEX payments_by_parent ON payments (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX payments_by_subscription ON payments (subscription_id)
    WHERE subscription_id IS NOT NULL;
CREATE TABLE flags (
    id          INTEGER PRIMARY KEY,
    order_id    TEXT,
    inbox_id    INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    resolved_at INTEGER
);
CREATE INDEX flags_by_order ON flags (order_id) WHERE order_id IS NOT NULL;
ALTER TABLE orders ADD COLUMN merchant_id TEXT;
ALTER TABLE orders ADD COLUMN paid_at INTEGER;
ALTER TABLE orders ADD COLUMN fulfilled_at INTEGER;
ALTER TABLE orders ADD COLUMN updated_at INTEGER;
CREATE TABLE subscriptions (
    id                TEXT PRIMARY KEY,
    status            TEXT NOT NULL,
    customer_email    TEXT,
    merchant_id       TEXT,
    object            TEXT,
    paid_through      INTEGER,
    cycles_paid       INTEGER NOT NULL DEFAULT 0,
    canceled_at       INTEGER,
    expired_at        INTEGER,
    last_payment_pos  INTEGER,
    last_failure_pos  INTEGER,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
) WITHOUT ROWID;
