-- Back to the schema before outbound webhooks, named leases and the email
-- cap: their rows are lost. Tasks forget their card; a notify_card_expiring
-- stays, under no rule.
DROP TABLE webhook_deliveries;

--bun:split

DROP TABLE webhook_endpoints;

--bun:split

DROP TABLE leases;

--bun:split

DROP TABLE email_reservations;

--bun:split

DROP INDEX tasks_one_card_expiring_per_month;

--bun:split

ALTER TABLE tasks DROP COLUMN stripe_payment_method_id;
