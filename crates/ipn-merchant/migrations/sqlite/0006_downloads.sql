-- Download grants and the key their links are signed with.
--
-- `order_id` references `orders`, so a grant cannot outlive or precede its
-- order. `(order_id, sku)` is unique: one grant per digital line, which is
-- what makes a grant idempotent. Times are milliseconds since the Unix
-- epoch, like the other tables. `uses <= max_uses` is a CHECK as well as a
-- rule of the code that takes a use, so no bug can hand out an extra use.
--
-- The key is made by SQLite's `randomblob(32)` (a CSPRNG) in the migration
-- itself, so every database gets its own from the start and no operator
-- has to supply one. It lives in the database because the rows it vouches
-- for do: a copy of one without the other is useless, and a new database
-- invalidates the old links along with their rows.
CREATE TABLE downloads (
    id             TEXT PRIMARY KEY,
    order_id       TEXT NOT NULL REFERENCES orders (id),
    sku            TEXT NOT NULL,
    name           TEXT NOT NULL,
    file           TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    max_uses       INTEGER NOT NULL CHECK (max_uses > 0),
    uses           INTEGER NOT NULL DEFAULT 0 CHECK (uses BETWEEN 0 AND max_uses),
    revoked_at     INTEGER,
    revoked_reason TEXT,
    CHECK ((revoked_at IS NULL) = (revoked_reason IS NULL)),
    UNIQUE (order_id, sku)
);
CREATE TABLE download_secret (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    key BLOB NOT NULL CHECK (length(key) = 32)
);
INSERT INTO download_secret (id, key) VALUES (1, randomblob(32));
