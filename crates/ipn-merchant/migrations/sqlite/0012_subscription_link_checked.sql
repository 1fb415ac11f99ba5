-- Whether a subscription's tie to an order was decided (made or refused),
-- so that it is decided once.
ALTER TABLE subscriptions ADD COLUMN link_checked INTEGER NOT NULL DEFAULT 0;
