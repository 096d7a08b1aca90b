-- A webhook endpoint keeps the idempotency key of the request that created
-- it ('' for none), so that the same request again gets it back instead of
-- a second endpoint.
ALTER TABLE webhook_endpoints ADD COLUMN idempotency_key text NOT NULL DEFAULT '';

--bun:split

CREATE UNIQUE INDEX webhook_endpoints_idempotency_key ON webhook_endpoints (merchant_id, idempotency_key)
    WHERE idempotency_key <> '';
