-- The merchant's schema on PostgreSQL: what SQLite's migrations 0001 to
-- 0012 built, in one change. Each table holds what its SQLite twin holds,
-- with the same unique and partial indexes and the same CHECKs (their
-- comments, in migrations/sqlite/, say why each is there). The
-- differences are PostgreSQL's types:
--
-- - every integer is BIGINT (SQLite's are 64-bit, so whatever SQLite
--   takes fits), times are milliseconds since the Unix epoch, SQLite's
--   0/1 flags are BOOLEAN and raw bodies BYTEA;
-- - ids SQLite gives as `INTEGER PRIMARY KEY` are BIGSERIAL, and
--   `downloads.position` stands for SQLite's `rowid` (the order grants
--   were made in);
-- - the ids that pages and facts are sorted by (`orders.id`,
--   `payments.txn_id`) compare byte by byte (`COLLATE "C"`), as SQLite's
--   do, whatever the database's own collation;
-- - the download signing key is made by the store when it first opens the
--   database (32 bytes from the operating system's generator), not by the
--   schema: SQL here has no CSPRNG without an extension.

-- The inbox: every accepted message, exactly as it arrived. `status` has
-- no CHECK: the Rust enum is its guard, and later states need no rebuild.
CREATE TABLE inbox (
    id                BIGSERIAL PRIMARY KEY,
    received_at       BIGINT NOT NULL,
    dialect           TEXT NOT NULL CHECK (dialect IN ('standard', 'paypal')),
    webhook_id        TEXT,
    headers           TEXT NOT NULL,  -- a JSON object
    body              BYTEA NOT NULL,
    status            TEXT NOT NULL,
    verification      TEXT,
    verified_at       BIGINT,
    postback_attempts BIGINT NOT NULL DEFAULT 0,
    next_postback_at  BIGINT NOT NULL DEFAULT 0,
    postback_error    TEXT,
    outcome           TEXT,
    outcome_detail    TEXT,
    event_type        TEXT,
    order_id          TEXT,
    subscription_id   TEXT,
    processed_at      BIGINT,
    handler_attempts  BIGINT NOT NULL DEFAULT 0,
    handler_retry_at  BIGINT NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX inbox_by_webhook_id ON inbox (webhook_id)
    WHERE webhook_id IS NOT NULL;
CREATE INDEX inbox_waiting ON inbox (status, id)
    WHERE status IN ('received', 'unverified', 'verified');
CREATE INDEX inbox_ready ON inbox (id) WHERE status IN ('received', 'verified');
CREATE INDEX inbox_by_order ON inbox (order_id) WHERE order_id IS NOT NULL;
CREATE INDEX inbox_by_subscription ON inbox (subscription_id)
    WHERE subscription_id IS NOT NULL;

-- Where reconciliation has read the gateway's events up to: one row.
CREATE TABLE reconcile_cursor (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    after      TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- The shop's orders and their lines (`plan` is the billing terms as JSON).
CREATE TABLE orders (
    id                  TEXT COLLATE "C" PRIMARY KEY,
    status              TEXT NOT NULL,
    customer_email      TEXT NOT NULL,
    currency            TEXT NOT NULL,
    total               BIGINT NOT NULL CHECK (total > 0),
    checkout_session_id TEXT NOT NULL UNIQUE,
    checkout_url        TEXT NOT NULL,
    created_at          BIGINT NOT NULL,
    merchant_id         TEXT,
    paid_at             BIGINT,
    fulfilled_at        BIGINT,
    updated_at          BIGINT,
    plan                TEXT,
    subscription_id     TEXT
);
CREATE INDEX orders_by_created ON orders (created_at, id);
CREATE TABLE order_items (
    order_id    TEXT COLLATE "C" NOT NULL REFERENCES orders (id),
    line        BIGINT NOT NULL,
    sku         TEXT NOT NULL,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('physical', 'digital')),
    quantity    BIGINT NOT NULL CHECK (quantity > 0),
    unit_amount BIGINT NOT NULL,
    amount      BIGINT NOT NULL,
    PRIMARY KEY (order_id, line)
);

-- The notification handler's records: the keys of notices applied, every
-- payment fact heard of, the claims held for their payment, the flags.
CREATE TABLE applied_keys (
    key      TEXT PRIMARY KEY,
    inbox_id BIGINT NOT NULL
);
CREATE TABLE payments (
    txn_id          TEXT COLLATE "C" PRIMARY KEY,
    parent_id       TEXT,
    kind            TEXT NOT NULL
        CHECK (kind IN ('charge', 'refund', 'reversal', 'reversal_canceled')),
    status          TEXT NOT NULL,
    order_id        TEXT,
    subscription_id TEXT,
    amount          BIGINT NOT NULL,
    currency        TEXT NOT NULL,
    valid           BOOLEAN NOT NULL,
    inbox_id        BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    receiver        TEXT,
    livemode        BOOLEAN NOT NULL DEFAULT false,
    checked         BOOLEAN NOT NULL DEFAULT true
);
CREATE INDEX payments_by_order ON payments (order_id) WHERE order_id IS NOT NULL;
CREATE INDEX payments_by_parent ON payments (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX payments_by_subscription ON payments (subscription_id)
    WHERE subscription_id IS NOT NULL;
CREATE TABLE held_claims (
    inbox_id        BIGINT PRIMARY KEY,
    txn_id          TEXT NOT NULL,
    parent_id       TEXT NOT NULL,
    kind            TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    amount          BIGINT NOT NULL,
    currency        TEXT NOT NULL,
    receiver        TEXT,
    livemode        BOOLEAN NOT NULL,
    invoice         TEXT,
    subscription_id TEXT,
    payer_email     TEXT
);
CREATE INDEX held_claims_by_parent ON held_claims (parent_id);
CREATE TABLE flags (
    id          BIGSERIAL PRIMARY KEY,
    order_id    TEXT,
    inbox_id    BIGINT NOT NULL,
    reason      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    resolved_at BIGINT
);
CREATE INDEX flags_by_order ON flags (order_id) WHERE order_id IS NOT NULL;
CREATE INDEX flags_open ON flags (id) WHERE resolved_at IS NULL;

-- Subscriptions as the shop knows them from their notices (`object` is the
-- latest one a notice carried, as JSON).
CREATE TABLE subscriptions (
    id               TEXT PRIMARY KEY,
    status           TEXT NOT NULL,
    customer_email   TEXT,
    merchant_id      TEXT,
    object           TEXT,
    paid_through     BIGINT,
    cycles_paid      BIGINT NOT NULL DEFAULT 0,
    canceled_at      BIGINT,
    expired_at       BIGINT,
    last_payment_pos BIGINT,
    last_failure_pos BIGINT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    signed_up_at     BIGINT,
    order_id         TEXT,
    link_checked     BOOLEAN NOT NULL DEFAULT false
);

-- The customer email outbox. Due emails are read through `emails_due`,
-- which holds only `queued` rows.
CREATE TABLE emails (
    id              BIGSERIAL PRIMARY KEY,
    dedupe_key      TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL,
    to_address      TEXT NOT NULL,
    order_id        TEXT,
    subscription_id TEXT,
    subject         TEXT NOT NULL,
    text_body       TEXT NOT NULL,
    html_body       TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'queued',
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_try_at     BIGINT NOT NULL,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    sent_at         BIGINT
);
CREATE INDEX emails_due ON emails (next_try_at) WHERE status = 'queued';
CREATE INDEX emails_by_order ON emails (order_id) WHERE order_id IS NOT NULL;
CREATE INDEX emails_by_subscription ON emails (subscription_id)
    WHERE subscription_id IS NOT NULL;

-- Download grants, one per order and sku; `uses <= max_uses` is a CHECK
-- as well as a rule of the code that takes a use. The key links are
-- signed with is one row, made by the store.
CREATE TABLE downloads (
    id             TEXT PRIMARY KEY,
    order_id       TEXT COLLATE "C" NOT NULL REFERENCES orders (id),
    sku            TEXT NOT NULL,
    name           TEXT NOT NULL,
    file           TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    max_uses       BIGINT NOT NULL CHECK (max_uses > 0),
    uses           BIGINT NOT NULL DEFAULT 0 CHECK (uses BETWEEN 0 AND max_uses),
    revoked_at     BIGINT,
    revoked_reason TEXT,
    position       BIGSERIAL NOT NULL,
    CHECK ((revoked_at IS NULL) = (revoked_reason IS NULL)),
    UNIQUE (order_id, sku)
);
CREATE TABLE download_secret (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    key BYTEA NOT NULL CHECK (length(key) = 32)
);
