-- An order for a subscription product keeps its billing terms (`plan`,
-- JSON) and, once the gateway says it started, the subscription it bought;
-- the subscription points back.
ALTER TABLE orders ADD COLUMN plan TEXT;
ALTER TABLE orders ADD COLUMN subscription_id TEXT;
ALTER TABLE subscriptions ADD COLUMN order_id TEXT;
