-- Subscription-mode sessions: `plan` is the terms as JSON (`null`
-- in payment mode), `subscription_id` is set once, by the signup
-- that pays it. SQLite cannot add a UNIQUE column, hence the index.

ALTER TABLE checkout_sessions ADD COLUMN plan TEXT;
ALTER TABLE checkout_sessions ADD COLUMN subscription_id TEXT REFERENCES subscriptions (id);
CREATE UNIQUE INDEX checkout_sessions_by_subscription ON checkout_sessions (subscription_id)
    WHERE subscription_id IS NOT NULL;
