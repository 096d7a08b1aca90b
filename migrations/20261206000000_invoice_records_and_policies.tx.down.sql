-- Back to the recovery figures' rows, as well as they can hold the
-- records: an invoice with a known failure becomes a row of its first
-- failure and amount due, recovered (with its paid amount, when it was
-- paid) if a payment after that failure recovered it. The rest of the
-- records, and the policies, are lost.
DROP TABLE merchant_policies;

--bun:split

CREATE TABLE invoice_recoveries (
    merchant_id      uuid        NOT NULL,
    invoice_id       text        NOT NULL,
    currency         text        NOT NULL,
    failed_amount    bigint      NOT NULL,
    recovered_amount bigint      NOT NULL DEFAULT 0,
    failed_at        timestamptz NOT NULL,
    recovered_at     timestamptz,
    PRIMARY KEY (merchant_id, invoice_id),
    CONSTRAINT invoice_recoveries_recovered_check CHECK (recovered_at IS NOT NULL OR recovered_amount = 0)
);

--bun:split

INSERT INTO invoice_recoveries (merchant_id, invoice_id, currency, failed_amount, recovered_amount,
                                failed_at, recovered_at)
SELECT merchant_id, invoice_id, currency, amount_due,
       CASE WHEN recovered THEN paid_amount ELSE 0 END,
       first_failed_at,
       CASE WHEN recovered THEN COALESCE(closed_at, last_failed_at) END
FROM (SELECT *, status = 'paid' AND recovered_by <> '' AS recovered FROM invoices) AS records
WHERE first_failed_at IS NOT NULL;

--bun:split

DROP TABLE invoices;

--bun:split

-- The earlier schema knows no reminder, card-expiry or end-of-dunning
-- task, and the code that ran them is gone with it.
DELETE FROM tasks WHERE type IN ('notify_reminder', 'notify_card_expiring', 'end_dunning');

--bun:split

DROP INDEX tasks_one_end_dunning;

--bun:split

DROP INDEX tasks_one_reminder_per_number;

--bun:split

ALTER TABLE tasks
    DROP CONSTRAINT tasks_type_check,
    ADD CONSTRAINT tasks_type_check CHECK (type IN (
        'retry_payment', 'notify_payment_failed', 'notify_action_required', 'notify_charge_failed')),
    DROP COLUMN reason,
    DROP COLUMN decline_code;
