-- An index over every delivery by (endpoint, status) cost a third of
-- the writer's time: each delivery moved within it when delivered.
-- Only pending and failed deliveries are looked up by endpoint
-- (disable, recover, start-up), so only they are indexed; a retry
-- changes neither index.

DROP INDEX deliveries_by_endpoint;
DROP INDEX deliveries_due;
CREATE INDEX deliveries_pending ON deliveries (endpoint_id) WHERE status = 'pending';
CREATE INDEX deliveries_failed ON deliveries (endpoint_id) WHERE status = 'failed';
