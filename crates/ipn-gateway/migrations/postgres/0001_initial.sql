-- The gateway's schema on PostgreSQL: what SQLite's migrations 0001 to
-- 0009 built, in one change. Times are milliseconds since the Unix epoch
-- on the gateway clock (BIGINT). Each table holds what its SQLite twin
-- holds; the differences are PostgreSQL's types, `position` columns where
-- SQLite's lists use `rowid`, and what several writers need:
-- `object_sequences` and the gateway's own secrets made by the store.

CREATE TABLE merchants (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    receiver_email TEXT NOT NULL,
    api_key_hash   TEXT NOT NULL UNIQUE,
    created_at     BIGINT NOT NULL
);

CREATE TABLE endpoints (
    id                       TEXT PRIMARY KEY,
    merchant_id              TEXT NOT NULL REFERENCES merchants (id),
    url                      TEXT NOT NULL,
    dialect                  TEXT NOT NULL,
    events                   TEXT NOT NULL,  -- JSON array of filter entries
    ordered                  BOOLEAN NOT NULL,
    description              TEXT NOT NULL,
    secret                   TEXT NOT NULL,  -- sealed (enc1:…)
    previous_secret          TEXT,
    previous_secret_expires  BIGINT,
    disabled_reason          TEXT,
    disabled_at              BIGINT,
    failing_since            BIGINT,
    created_at               BIGINT NOT NULL
);
CREATE INDEX endpoints_by_merchant ON endpoints (merchant_id);

-- `seq` orders events for cursors (in commit order while one writer
-- writes); `body` is the exact JSON delivered in the standard dialect.
CREATE TABLE events (
    seq          BIGSERIAL PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    merchant_id  TEXT NOT NULL REFERENCES merchants (id),
    type         TEXT NOT NULL,
    object_id    TEXT,
    sequence     BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    body         BYTEA NOT NULL
);
CREATE INDEX events_by_merchant ON events (merchant_id, seq);
CREATE INDEX events_by_object ON events (merchant_id, object_id, sequence);

-- The last `sequence` given to each root object's events. Taken with
-- INSERT … ON CONFLICT DO UPDATE … RETURNING, whose row lock makes two
-- writers of one object wait for each other, where `MAX(sequence) + 1`
-- would give both the same number.
CREATE TABLE object_sequences (
    merchant_id TEXT NOT NULL,
    object_id   TEXT NOT NULL,
    last        BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, object_id)
);

CREATE TABLE deliveries (
    id              BIGSERIAL PRIMARY KEY,
    event_id        TEXT NOT NULL REFERENCES events (id),
    endpoint_id     TEXT NOT NULL REFERENCES endpoints (id),
    status          TEXT NOT NULL,          -- pending | delivered | failed
    attempts        INTEGER NOT NULL,       -- all attempts so far
    round_attempts  INTEGER NOT NULL,       -- attempts since the last (re)send
    next_attempt_at BIGINT,                 -- set while pending
    last_attempt_at BIGINT,
    UNIQUE (event_id, endpoint_id)
);
-- Only pending and failed deliveries are looked up by endpoint (disable,
-- recover, start-up), so only they are indexed: a delivered one leaves
-- both indexes and a retry changes neither.
CREATE INDEX deliveries_pending ON deliveries (endpoint_id) WHERE status = 'pending';
CREATE INDEX deliveries_failed ON deliveries (endpoint_id) WHERE status = 'failed';

CREATE TABLE attempts (
    id              BIGSERIAL PRIMARY KEY,
    delivery_id     BIGINT NOT NULL REFERENCES deliveries (id),
    number          INTEGER NOT NULL,
    status          TEXT NOT NULL,          -- succeeded | failed
    response_status INTEGER,
    duration_ms     BIGINT NOT NULL,
    error           TEXT,
    response_body   TEXT,
    attempted_at    BIGINT NOT NULL
);
CREATE INDEX attempts_by_delivery ON attempts (delivery_id, number);

-- A POST's first answer, replayed for a retry with the same
-- Idempotency-Key; a key is claimed by inserting it (ON CONFLICT).
CREATE TABLE idempotency_keys (
    scope         TEXT NOT NULL,            -- "admin" or a merchant id
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    status        INTEGER NOT NULL,
    body          BYTEA NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);

-- The test clock's offset, so time never goes back across a restart.
CREATE TABLE clock (id INTEGER PRIMARY KEY CHECK (id = 1), offset_ms BIGINT NOT NULL);

-- `object` is the payment as events carry it; the other columns are for
-- lookups. `subscription_id` is a column here (SQLite indexes an
-- expression on the JSON instead): it never changes once written, and a
-- plain column costs no JSON parse per write to keep its index.
CREATE TABLE payments (
    id              TEXT PRIMARY KEY,
    merchant_id     TEXT NOT NULL REFERENCES merchants (id),
    parent_id       TEXT REFERENCES payments (id),
    invoice         TEXT,
    status          TEXT NOT NULL,
    method          TEXT NOT NULL,
    object          TEXT NOT NULL,
    subscription_id TEXT,
    created_at      BIGINT NOT NULL,
    position        BIGSERIAL NOT NULL UNIQUE  -- the dashboard's order
);
CREATE INDEX payments_by_merchant ON payments (merchant_id, position);
CREATE INDEX payments_by_parent ON payments (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX payments_by_subscription ON payments (subscription_id)
    WHERE subscription_id IS NOT NULL;

-- `next_step_at` is when billing acts next (charge, retry, expire);
-- billing finds due subscriptions through its index, never a scan.
CREATE TABLE subscriptions (
    id              TEXT PRIMARY KEY,
    merchant_id     TEXT NOT NULL REFERENCES merchants (id),
    status          TEXT NOT NULL,
    method          TEXT NOT NULL,
    object          TEXT NOT NULL,
    failed_attempts INTEGER NOT NULL,
    next_step_at    BIGINT,
    created_at      BIGINT NOT NULL,
    position        BIGSERIAL NOT NULL UNIQUE
);
CREATE INDEX subscriptions_by_merchant ON subscriptions (merchant_id, position);
CREATE INDEX subscriptions_due ON subscriptions (next_step_at)
    WHERE next_step_at IS NOT NULL;

-- The order is fixed at creation; what paid it (`payment_id` or
-- `subscription_id`) and `paid_at` are set once. `plan` is the terms as
-- JSON in subscription mode.
CREATE TABLE checkout_sessions (
    id              TEXT PRIMARY KEY,
    merchant_id     TEXT NOT NULL REFERENCES merchants (id),
    invoice         TEXT,
    amount          BIGINT NOT NULL,
    currency        TEXT NOT NULL,
    items           TEXT NOT NULL,
    custom          TEXT,
    customer_email  TEXT,
    success_url     TEXT NOT NULL,
    cancel_url      TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    payment_id      TEXT UNIQUE REFERENCES payments (id),
    paid_at         BIGINT,
    plan            TEXT,
    subscription_id TEXT UNIQUE REFERENCES subscriptions (id)
);
CREATE INDEX checkout_sessions_by_merchant ON checkout_sessions (merchant_id, created_at);

-- Secrets the gateway makes for itself, and the key check. Unlike
-- SQLite's migration (a `randomblob` sealed at the next start), nothing
-- is inserted here: the store makes each missing secret at start, sealed
-- before it is written, so none is ever stored in plain text.
CREATE TABLE secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL);
