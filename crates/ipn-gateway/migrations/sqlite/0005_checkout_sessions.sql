-- The order is fixed at creation; `payment_id` and `paid_at` are set
-- once, by the payment that pays it. Expiry is not a column that
-- changes: a session is expired once the clock passes `expires_at`.

CREATE TABLE checkout_sessions (
    id             TEXT PRIMARY KEY,
    merchant_id    TEXT NOT NULL REFERENCES merchants (id),
    invoice        TEXT,
    amount         INTEGER NOT NULL,
    currency       TEXT NOT NULL,
    items          TEXT NOT NULL,
    custom         TEXT,
    customer_email TEXT,
    success_url    TEXT NOT NULL,
    cancel_url     TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    payment_id     TEXT UNIQUE REFERENCES payments (id),
    paid_at        INTEGER
);
CREATE INDEX checkout_sessions_by_merchant ON checkout_sessions (merchant_id, created_at);
