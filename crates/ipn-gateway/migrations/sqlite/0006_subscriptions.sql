-- `next_step_at` is when billing acts next (charge, retry, expire);
-- billing finds due subscriptions through its index, never a scan.

CREATE TABLE subscriptions (
    id              TEXT PRIMARY KEY,
    merchant_id     TEXT NOT NULL REFERENCES merchants (id),
    status          TEXT NOT NULL,
    method          TEXT NOT NULL,
    object          TEXT NOT NULL,
    failed_attempts INTEGER NOT NULL,
    next_step_at    INTEGER,
    created_at      INTEGER NOT NULL
);
CREATE INDEX subscriptions_due ON subscriptions (next_step_at)
    WHERE next_step_at IS NOT NULL;
