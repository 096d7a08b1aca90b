-- Two distinct Stripe events about one change make one email: at most one
-- notify_charge_failed per charge, and at most one notify_action_required
-- per invoice and attempt, as notify_payment_failed already was.
--
-- Tasks stored before these rules may break them (two events about one
-- charge made two emails): the earliest of each such set is kept, the
-- later ones are deleted, so that the indexes can be built.
DELETE FROM tasks AS later USING tasks AS earlier
WHERE later.type = 'notify_charge_failed' AND earlier.type = 'notify_charge_failed'
  AND later.stripe_charge_id <> ''
  AND later.merchant_id = earlier.merchant_id
  AND later.stripe_charge_id = earlier.stripe_charge_id
  AND (earlier.created_at, earlier.id) < (later.created_at, later.id);

--bun:split

DELETE FROM tasks AS later USING tasks AS earlier
WHERE later.type = 'notify_action_required' AND earlier.type = 'notify_action_required'
  AND later.merchant_id = earlier.merchant_id
  AND later.stripe_invoice_id = earlier.stripe_invoice_id
  AND later.invoice_attempt = earlier.invoice_attempt
  AND (earlier.created_at, earlier.id) < (later.created_at, later.id);

--bun:split

CREATE UNIQUE INDEX tasks_one_charge_notify ON tasks (merchant_id, stripe_charge_id)
    WHERE type = 'notify_charge_failed' AND stripe_charge_id <> '';

--bun:split

CREATE UNIQUE INDEX tasks_one_action_notify_per_attempt ON tasks (merchant_id, stripe_invoice_id, invoice_attempt)
    WHERE type = 'notify_action_required';
