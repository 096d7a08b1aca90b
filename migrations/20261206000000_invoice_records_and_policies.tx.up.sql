-- The recovery engine: tasks record how they ended and the decline they
-- are about; three new task types, two of them under an "at most one"
-- rule; recoup's record of each failed invoice, merged from facts, in
-- place of the recovery figures' rows; and each merchant's dunning policy.

-- The new columns' default is what a task stored before them means: no
-- decline code known, no reason recorded. A constant default rewrites no
-- row; the wider check constraint is checked against every row.
ALTER TABLE tasks
    ADD COLUMN decline_code text NOT NULL DEFAULT '',
    ADD COLUMN reason       text NOT NULL DEFAULT '',
    DROP CONSTRAINT tasks_type_check,
    ADD CONSTRAINT tasks_type_check CHECK (type IN (
        'retry_payment', 'notify_payment_failed', 'notify_action_required', 'notify_charge_failed',
        'notify_reminder', 'notify_card_expiring', 'end_dunning'));

--bun:split

-- At most one notify_reminder per invoice and reminder number (kept in
-- invoice_attempt).
CREATE UNIQUE INDEX tasks_one_reminder_per_number ON tasks (merchant_id, stripe_invoice_id, invoice_attempt)
    WHERE type = 'notify_reminder';

--bun:split

-- At most one end_dunning per invoice that is not cancelled: a pending one
-- is rescheduled (INSERT … ON CONFLICT … DO UPDATE), one that ran stays the
-- only one, and a cancelled one (the plan changed) leaves room for another.
CREATE UNIQUE INDEX tasks_one_end_dunning ON tasks (merchant_id, stripe_invoice_id)
    WHERE type = 'end_dunning' AND status <> 'cancelled';

--bun:split

-- recoup's record of one merchant's invoice (domain.InvoiceRecord), one
-- column per field. The adapter merges each fact into it in Go, under the
-- row's lock, so the rules of the merge live in one place, the domain.
-- Times not known yet are NULL; texts not known yet are ''.
CREATE TABLE invoices (
    merchant_id     uuid        NOT NULL,
    invoice_id      text        NOT NULL CHECK (invoice_id <> ''),
    customer_id     text        NOT NULL DEFAULT '',
    subscription_id text        NOT NULL DEFAULT '',
    currency        text        NOT NULL DEFAULT '',
    amount_due      bigint      NOT NULL DEFAULT 0,
    first_failed_at timestamptz,
    last_failed_at  timestamptz,
    stripe_attempts integer     NOT NULL DEFAULT 0,
    recoup_attempts integer     NOT NULL DEFAULT 0,
    -- NULL: Stripe will not retry on its own.
    stripe_retry_at timestamptz,
    decline_code    text        NOT NULL DEFAULT '',
    declined_at     timestamptz,
    card_updated_at timestamptz,
    recoup_paid     text        NOT NULL DEFAULT '',
    -- '' while the invoice is open; paid, void or uncollectible since
    -- closed_at.
    status          text        NOT NULL DEFAULT '',
    closed_at       timestamptz,
    paid_amount     bigint      NOT NULL DEFAULT 0,
    recovered_by    text        NOT NULL DEFAULT '',
    PRIMARY KEY (merchant_id, invoice_id)
);

--bun:split

-- The figures' rows become records: a failure of the row's amount at
-- failed_at, Stripe's first attempt; a recovered row was paid its
-- recovered amount at recovered_at. What paid it was not kept, so it
-- counts as the customer's payment. Stripe's next retry and decline codes
-- were not kept either: they stay unknown.
INSERT INTO invoices (merchant_id, invoice_id, currency, amount_due, first_failed_at, last_failed_at,
                      stripe_attempts, status, closed_at, paid_amount, recovered_by)
SELECT merchant_id, invoice_id, currency, failed_amount, failed_at, failed_at, 1,
       CASE WHEN recovered_at IS NULL THEN '' ELSE 'paid' END,
       recovered_at, recovered_amount,
       CASE WHEN recovered_at IS NULL THEN '' ELSE 'customer_paid' END
FROM invoice_recoveries;

--bun:split

DROP TABLE invoice_recoveries;

--bun:split

-- A customer's open failed invoices (OpenFailed): a small part of the
-- table, hence a partial index.
CREATE INDEX invoices_open_failed ON invoices (merchant_id, customer_id)
    WHERE first_failed_at IS NOT NULL AND status = '';

--bun:split

-- Each merchant's dunning policy, as the JSON of its fields; a merchant
-- without a row has the default policy.
CREATE TABLE merchant_policies (
    merchant_id uuid        PRIMARY KEY,
    policy      jsonb       NOT NULL,
    updated_at  timestamptz NOT NULL
);
