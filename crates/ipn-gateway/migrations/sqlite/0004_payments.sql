-- `object` is the payment as events carry it (the API's view adds
-- `payment_method`); the other columns are for lookups.

CREATE TABLE payments (
    id          TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    parent_id   TEXT REFERENCES payments (id),
    invoice     TEXT,
    status      TEXT NOT NULL,
    method      TEXT NOT NULL,
    object      TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX payments_by_merchant ON payments (merchant_id, created_at);
CREATE INDEX payments_by_parent ON payments (parent_id) WHERE parent_id IS NOT NULL;
