-- The shop's orders. `id` is `ord_<ULID>`, the invoice at the gateway;
-- `total` and the line amounts are minor units of `currency`. A row is
-- written only with its checkout session, so both session columns are NOT
-- NULL. `status` has no CHECK, like the inbox's: the handler's states are
-- guarded in Rust. Lines keep the name and price the customer was shown.
CREATE TABLE orders (
    id                  TEXT PRIMARY KEY,
    status              TEXT NOT NULL,
    customer_email      TEXT NOT NULL,
    currency            TEXT NOT NULL,
    total               INTEGER NOT NULL CHECK (total > 0),
    checkout_session_id TEXT NOT NULL UNIQUE,
    checkout_url        TEXT NOT NULL,
    created_at          INTEGER NOT NULL
);
CREATE TABLE order_items (
    order_id    TEXT NOT NULL REFERENCES orders (id),
    line        INTEGER NOT NULL,
    sku         TEXT NOT NULL,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('physical', 'digital')),
    quantity    INTEGER NOT NULL CHECK (quantity > 0),
    unit_amount INTEGER NOT NULL,
    amount      INTEGER NOT NULL,
    PRIMARY KEY (order_id, line)
) WITHOUT ROWID;
