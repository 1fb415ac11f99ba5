-- What a payment notice claimed beyond its amount (who was paid, live or
-- test), so that a refund or reversal that arrived before its payment
-- (`checked` 0) is validated against the order once the payment comes,
-- exactly as if it had arrived after it.
ALTER TABLE payments ADD COLUMN receiver TEXT;
ALTER TABLE payments ADD COLUMN livemode INTEGER NOT NULL DEFAULT 0;
ALTER TABLE payments ADD COLUMN checked INTEGER NOT NULL DEFAULT 1;
CREATE INDEX orders_by_created ON orders (created_at, id);
