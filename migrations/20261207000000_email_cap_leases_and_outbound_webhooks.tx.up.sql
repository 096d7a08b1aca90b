-- The customer loop, reconciliation and outbound webhooks: a
-- notify_card_expiring names its card and is stored once per card and
-- expiry month; the emails reserved under a merchant's weekly cap per
-- customer; named leases; merchants' webhook endpoints, and the outbox of
-- the messages sent to them.

-- A constant default rewrites no row: a task stored before names no card.
ALTER TABLE tasks ADD COLUMN stripe_payment_method_id text NOT NULL DEFAULT '';

--bun:split

-- The notify_card_expiring tasks stored before this migration name no
-- card, so those of one merchant and expiry month (kept in
-- invoice_attempt) would break the rule below: the earliest of each such
-- set is kept, the later ones are deleted, so that the index can be built.
DELETE FROM tasks AS later USING tasks AS earlier
WHERE later.type = 'notify_card_expiring' AND earlier.type = 'notify_card_expiring'
  AND later.merchant_id = earlier.merchant_id
  AND later.stripe_payment_method_id = earlier.stripe_payment_method_id
  AND later.invoice_attempt = earlier.invoice_attempt
  AND (earlier.created_at, earlier.id) < (later.created_at, later.id);

--bun:split

-- At most one notify_card_expiring per card and expiry month, whatever
-- its status. (The type itself is allowed since 20261206000000.)
CREATE UNIQUE INDEX tasks_one_card_expiring_per_month ON tasks (merchant_id, stripe_payment_method_id, invoice_attempt)
    WHERE type = 'notify_card_expiring';

--bun:split

-- The emails reserved under the weekly cap, counted per merchant, customer
-- (its id, or its address) and instant: the primary key is the index of
-- the count over a window. A reservation and a release take a transaction
-- advisory lock on the merchant and customer first, so that concurrent
-- ones count one after the other.
CREATE TABLE email_reservations (
    merchant_id uuid        NOT NULL,
    customer    text        NOT NULL,
    reserved_at timestamptz NOT NULL,
    emails      integer     NOT NULL CHECK (emails > 0),
    PRIMARY KEY (merchant_id, customer, reserved_at)
);

--bun:split

-- Named leases (a merchant's reconciliation): one holder until held_until.
-- INSERT … ON CONFLICT … DO UPDATE … WHERE takes or renews one in a single
-- statement, under the row's lock.
CREATE TABLE leases (
    name       text        PRIMARY KEY,
    holder     text        NOT NULL,
    held_until timestamptz NOT NULL
);

--bun:split

-- A merchant's outbound webhook endpoints (at most 20 each, counted under
-- a transaction advisory lock on the merchant when one is created). Events
-- lists the message types sent, '*' for all; disabled_at is set by a 410.
CREATE TABLE webhook_endpoints (
    id          uuid        PRIMARY KEY,
    merchant_id uuid        NOT NULL,
    url         text        NOT NULL,
    events      text[]      NOT NULL,
    secret      bytea       NOT NULL,
    created_at  timestamptz NOT NULL,
    disabled_at timestamptz
);

--bun:split

-- A merchant's endpoints, oldest first.
CREATE INDEX webhook_endpoints_merchant_created ON webhook_endpoints (merchant_id, created_at, id);

--bun:split

-- The outbox: one row per message and subscribed endpoint, inserted in the
-- transaction of the change the message reports, and carrying the message
-- (type and payload) itself. Delivery workers claim due rows as the worker
-- claims tasks: pending with next_attempt_at passed and no lease, or with
-- a lease that expired. endpoint_disabled marks the pending rows of an
-- endpoint a 410 disabled, which are never handed out again, so that the
-- claim's partial indexes leave them out.
CREATE TABLE webhook_deliveries (
    id                uuid        PRIMARY KEY,
    merchant_id       uuid        NOT NULL,
    endpoint_id       uuid        NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_type        text        NOT NULL,
    payload           bytea       NOT NULL,
    status            text        NOT NULL CONSTRAINT webhook_deliveries_status_check CHECK (status IN (
                                      'pending', 'delivered', 'failed')),
    attempts          integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_status_code  integer     NOT NULL DEFAULT 0,
    last_error        text        NOT NULL DEFAULT '',
    next_attempt_at   timestamptz NOT NULL,
    -- Set while a claim holds the delivery for an attempt.
    lease_until       timestamptz,
    endpoint_disabled boolean     NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL,
    delivered_at      timestamptz
);

--bun:split

-- An endpoint's deliveries, newest first, keyset on (created_at, id); also
-- the index of the cascade when an endpoint is deleted.
CREATE INDEX webhook_deliveries_endpoint_created ON webhook_deliveries (endpoint_id, created_at DESC, id DESC);

--bun:split

-- The delivery workers' claim: pending deliveries due for their next
-- attempt, and those whose claim's lease expired. Both sets are small next
-- to the table, hence partial indexes.
CREATE INDEX webhook_deliveries_waiting ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending' AND lease_until IS NULL AND NOT endpoint_disabled;

--bun:split

CREATE INDEX webhook_deliveries_in_flight ON webhook_deliveries (lease_until)
    WHERE status = 'pending' AND lease_until IS NOT NULL AND NOT endpoint_disabled;
