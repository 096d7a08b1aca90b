-- Back to endpoints without idempotency keys.
DROP INDEX webhook_endpoints_idempotency_key;

--bun:split

ALTER TABLE webhook_endpoints DROP COLUMN idempotency_key;
