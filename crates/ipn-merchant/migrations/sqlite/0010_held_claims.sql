-- A refund or reversal that comes before its payment is kept as its
-- message claimed it, one row per message (two copies of one transaction
-- cannot overwrite each other), until the payment comes and each claim is
-- checked; `payments.checked` is 1 from here on. `inbox_ready` is the
-- handler's scan in id order without a sort; `flags_open` the dashboard's;
-- `signed_up_at` tells a subscription's first payment from its renewals.
CREATE TABLE held_claims (
    inbox_id        INTEGER PRIMARY KEY,
    txn_id          TEXT NOT NULL,
    parent_id       TEXT NOT NULL,
    kind            TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    amount          INTEGER NOT NULL,
    currency        TEXT NOT NULL,
    receiver        TEXT,
    livemode        INTEGER NOT NULL,
    invoice         TEXT,
    subscription_id TEXT,
    payer_email     TEXT
);
CREATE INDEX held_claims_by_parent ON held_claims (parent_id);
CREATE INDEX inbox_ready ON inbox (id) WHERE status IN ('received', 'verified');
CREATE INDEX flags_open ON flags (id) WHERE resolved_at IS NULL;
ALTER TABLE subscriptions ADD COLUMN signed_up_at INTEGER;
