-- The gateway's schema. Times are milliseconds since the Unix epoch on the
-- gateway clock. Applied by `migrate` in order; each migration runs once.

CREATE TABLE merchants (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    receiver_email TEXT NOT NULL,
    api_key_hash   TEXT NOT NULL UNIQUE,
    created_at     INTEGER NOT NULL
);

CREATE TABLE endpoints (
    id                       TEXT PRIMARY KEY,
    merchant_id              TEXT NOT NULL REFERENCES merchants (id),
    url                      TEXT NOT NULL,
    dialect                  TEXT NOT NULL,
    events                   TEXT NOT NULL,  -- JSON array of filter entries
    ordered                  INTEGER NOT NULL,
    description              TEXT NOT NULL,
    secret                   TEXT NOT NULL,
    previous_secret          TEXT,
    previous_secret_expires  INTEGER,
    disabled_reason          TEXT,
    disabled_at              INTEGER,
    failing_since            INTEGER,
    created_at               INTEGER NOT NULL
);
CREATE INDEX endpoints_by_merchant ON endpoints (merchant_id);

-- `seq` orders events for cursors; `body` is the exact JSON delivered in the
-- standard dialect (the PayPal form is derived from it deterministically).
CREATE TABLE events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    merchant_id  TEXT NOT NULL REFERENCES merchants (id),
    type         TEXT NOT NULL,
    object_id    TEXT,
    sequence     INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    body         BLOB NOT NULL
);
CREATE INDEX events_by_merchant ON events (merchant_id, seq);
CREATE INDEX events_by_object ON events (merchant_id, object_id, sequence);

CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY,
    event_id        TEXT NOT NULL REFERENCES events (id),
    endpoint_id     TEXT NOT NULL REFERENCES endpoints (id),
    status          TEXT NOT NULL,          -- pending | delivered | failed
    attempts        INTEGER NOT NULL,       -- all attempts so far
    round_attempts  INTEGER NOT NULL,       -- attempts since the last (re)send: position in the schedule
    next_attempt_at INTEGER,                -- set while pending
    last_attempt_at INTEGER,
    UNIQUE (event_id, endpoint_id)
);
-- Only pending rows are indexed: start-up rebuilds the schedule from it.
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_by_endpoint ON deliveries (endpoint_id, status);

CREATE TABLE attempts (
    id              INTEGER PRIMARY KEY,
    delivery_id     INTEGER NOT NULL REFERENCES deliveries (id),
    number          INTEGER NOT NULL,
    status          TEXT NOT NULL,          -- succeeded | failed
    response_status INTEGER,
    duration_ms     INTEGER NOT NULL,
    error           TEXT,
    response_body   TEXT,
    attempted_at    INTEGER NOT NULL
);
CREATE INDEX attempts_by_delivery ON attempts (delivery_id, number);

-- A POST's first answer, replayed for a retry with the same Idempotency-Key.
CREATE TABLE idempotency_keys (
    scope         TEXT NOT NULL,            -- "admin" or a merchant id
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    status        INTEGER NOT NULL,
    body          BLOB NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
);
