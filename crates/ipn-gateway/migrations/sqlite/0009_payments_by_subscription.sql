-- A subscription's payments (the dashboard's subscription page,
-- refreshed every few seconds) without reading every payment of its
-- merchant. Only period payments and their refunds and reversals
-- have the field, so only they are indexed; a query uses the index
-- only when it writes this expression exactly.

CREATE INDEX payments_by_subscription ON payments (json_extract(object, '$.subscription_id'))
    WHERE json_extract(object, '$.subscription_id') IS NOT NULL;
