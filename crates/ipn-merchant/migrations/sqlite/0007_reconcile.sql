-- Where reconciliation has read the gateway's events up to: the id of the
-- last event it stored, one row.
CREATE TABLE reconcile_cursor (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    after      TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
