-- recoup's initial schema. Money is integer minor units (bigint), times are
-- timestamptz, and the rules that must hold across processes are
-- constraints, not application checks.

-- A merchant is bound to exactly one Stripe connected account.
CREATE TABLE merchants (
    id                uuid        PRIMARY KEY,
    name              text        NOT NULL CHECK (name <> ''),
    stripe_account_id text        NOT NULL CONSTRAINT merchants_stripe_account_id_key UNIQUE,
    created_at        timestamptz NOT NULL
);

--bun:split

-- API keys are stored only as their SHA-256; the prefix names a key without
-- revealing it.
CREATE TABLE api_keys (
    prefix      text        PRIMARY KEY,
    merchant_id uuid        NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    hash        bytea       NOT NULL CONSTRAINT api_keys_hash_key UNIQUE CHECK (length(hash) = 32),
    created_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);

--bun:split

CREATE INDEX api_keys_merchant_id ON api_keys (merchant_id);

--bun:split

-- The idempotency lock: one row per Stripe event processed, written in the
-- transaction that applies the event's effects. The primary key makes a
-- concurrent duplicate wait for the first transaction's outcome.
CREATE TABLE processed_events (
    event_id     text        PRIMARY KEY,
    processed_at timestamptz NOT NULL
);

--bun:split

-- Retention deletes the oldest locks in batches.
CREATE INDEX processed_events_processed_at ON processed_events (processed_at);

--bun:split

-- Tasks carry no foreign key to merchants: the merchant is part of every
-- task query, and the webhook only schedules for merchants it has just
-- looked up.
CREATE TABLE tasks (
    id                     uuid        PRIMARY KEY,
    merchant_id            uuid        NOT NULL,
    type                   text        NOT NULL CONSTRAINT tasks_type_check CHECK (type IN (
                                           'retry_payment', 'notify_payment_failed',
                                           'notify_action_required', 'notify_charge_failed')),
    status                 text        NOT NULL CONSTRAINT tasks_status_check CHECK (status IN (
                                           'pending', 'running', 'succeeded', 'failed', 'cancelled')),
    stripe_event_id        text        NOT NULL DEFAULT '',
    stripe_customer_id     text        NOT NULL DEFAULT '',
    stripe_invoice_id      text        NOT NULL DEFAULT '',
    stripe_subscription_id text        NOT NULL DEFAULT '',
    stripe_charge_id       text        NOT NULL DEFAULT '',
    customer_email         text        NOT NULL DEFAULT '',
    amount_due             bigint      NOT NULL DEFAULT 0,
    currency               text        NOT NULL DEFAULT '',
    hosted_invoice_url     text        NOT NULL DEFAULT '',
    invoice_attempt        integer     NOT NULL DEFAULT 0,
    attempts               integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    run_at                 timestamptz NOT NULL,
    -- Set while running: until then the claim is the worker's; after it,
    -- another worker may take the task over (its worker died).
    lease_until            timestamptz,
    last_error             text        NOT NULL DEFAULT '',
    created_at             timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL
);

--bun:split

-- At most one pending retry_payment per invoice: a newer failed attempt
-- replaces its schedule (INSERT … ON CONFLICT … DO UPDATE).
CREATE UNIQUE INDEX tasks_one_pending_retry ON tasks (merchant_id, stripe_invoice_id)
    WHERE type = 'retry_payment' AND status = 'pending';

--bun:split

-- At most one notify_payment_failed per invoice and attempt.
CREATE UNIQUE INDEX tasks_one_notify_per_attempt ON tasks (merchant_id, stripe_invoice_id, invoice_attempt)
    WHERE type = 'notify_payment_failed';

--bun:split

-- The task list: newest first, keyset on (created_at, id), with and without
-- a status filter.
CREATE INDEX tasks_merchant_created ON tasks (merchant_id, created_at DESC, id DESC);

--bun:split

CREATE INDEX tasks_merchant_status_created ON tasks (merchant_id, status, created_at DESC, id DESC);

--bun:split

-- The worker's claim: due pending tasks, and running tasks whose lease
-- expired. Both sets are small next to the table, hence partial indexes.
CREATE INDEX tasks_pending_run_at ON tasks (run_at) WHERE status = 'pending';

--bun:split

CREATE INDEX tasks_running_lease_until ON tasks (lease_until) WHERE status = 'running';

--bun:split

-- Cancelling an invoice's or a subscription's pending tasks.
CREATE INDEX tasks_pending_invoice ON tasks (merchant_id, stripe_invoice_id) WHERE status = 'pending';

--bun:split

CREATE INDEX tasks_pending_subscription ON tasks (merchant_id, stripe_subscription_id) WHERE status = 'pending';

--bun:split

-- The recovery figures: an invoice counts as failed from its first failed
-- payment and as recovered when it is paid after that.
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
