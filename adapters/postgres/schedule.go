package postgres

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// Conflict clauses of Schedule's inserts, one per "at most one" rule; each
// names its partial unique index by columns and predicate.
const (
	notifyOnConflict = `ON CONFLICT (merchant_id, stripe_invoice_id, invoice_attempt)
		WHERE type = 'notify_payment_failed' DO NOTHING`
	actionOnConflict = `ON CONFLICT (merchant_id, stripe_invoice_id, invoice_attempt)
		WHERE type = 'notify_action_required' DO NOTHING`
	reminderOnConflict = `ON CONFLICT (merchant_id, stripe_invoice_id, invoice_attempt)
		WHERE type = 'notify_reminder' DO NOTHING`
	chargeOnConflict = `ON CONFLICT (merchant_id, stripe_charge_id)
		WHERE type = 'notify_charge_failed' AND stripe_charge_id <> '' DO NOTHING`
	cardOnConflict = `ON CONFLICT (merchant_id, stripe_payment_method_id, invoice_attempt)
		WHERE type = 'notify_card_expiring' DO NOTHING`
	// The pending retry takes the new plan's schedule, event, attempt and
	// decline code, whatever its attempt (a plan is made from the
	// invoice's whole record), and keeps its id and place in the list.
	retryOnConflict = `ON CONFLICT (merchant_id, stripe_invoice_id)
		WHERE type = 'retry_payment' AND status = 'pending' DO UPDATE
		SET run_at = EXCLUDED.run_at, stripe_event_id = EXCLUDED.stripe_event_id,
			invoice_attempt = EXCLUDED.invoice_attempt, decline_code = EXCLUDED.decline_code,
			updated_at = EXCLUDED.updated_at`
	// A pending end_dunning takes the new schedule; one that is running or
	// ran stays as it is, and then nothing is returned.
	endOnConflict = `ON CONFLICT (merchant_id, stripe_invoice_id)
		WHERE type = 'end_dunning' AND status <> 'cancelled' DO UPDATE
		SET run_at = EXCLUDED.run_at, updated_at = EXCLUDED.updated_at
		WHERE tasks.status = 'pending'`
)

// Layout of Schedule's parameters: $1 is the merchant, then
// taskParamCount parameters per task.
const (
	taskParamCount = 22
	// maxScheduleBatch bounds the statement of one batch (and its
	// parameters, which PostgreSQL limits to 65535).
	maxScheduleBatch = 64
)

// Schedule inserts the tasks with the ON CONFLICT clause of each one's
// rule, so that concurrent events for one invoice neither fail nor
// duplicate: the partial unique index decides, and an insert that meets an
// uncommitted conflicting row waits for its transaction.
//
// The tasks go in batches, one statement each, every task an INSERT of its
// own in a WITH clause (the webhook's notify and retry: one round trip).
// The inserts of one statement do not see each other's rows, so a batch
// holds no two tasks that one rule could match against each other (or that
// share an id): those go in order into successive batches, and the outcome
// is that of one statement per task. Outside a unit of work, several
// batches go in one transaction, so that the call keeps all or nothing.
func (r taskRepo) Schedule(ctx context.Context, merchant domain.MerchantID, tasks []domain.Task) ([]domain.Task, error) {
	mid, err := merchantParam(merchant)
	if err != nil {
		return nil, fmt.Errorf("schedule tasks: %w", err)
	}
	for _, t := range tasks {
		if err := checkNewTask(t, merchant); err != nil {
			return nil, fmt.Errorf("schedule task %s: %w", t.ID, err)
		}
	}
	batches := scheduleBatches(tasks)
	if len(batches) > 1 && r.store != nil {
		var stored []domain.Task
		err := r.store.InTx(ctx, func(ctx context.Context, tx ports.Tx) error {
			var err error
			stored, err = insertBatches(ctx, tx.(txScope).db, mid, batches)
			return err
		})
		return stored, err
	}
	return insertBatches(ctx, r.db, mid, batches)
}

// insertBatches runs the statement of each batch on db, in order, and
// returns the tasks stored, in the order of the tasks.
func insertBatches(ctx context.Context, db querier, mid string, batches [][]domain.Task) ([]domain.Task, error) {
	stored := []domain.Task{}
	for _, batch := range batches {
		got, err := queryAll(ctx, db, scanScheduled, scheduleSQL(batch), scheduleArgs(mid, batch)...)
		if err != nil {
			return nil, interpretError(fmt.Sprintf("schedule %d tasks from %s", len(batch), batch[0].ID), err)
		}
		// Statement order is the order of the tasks.
		slices.SortFunc(got, func(a, b scheduled) int { return cmp.Compare(a.ord, b.ord) })
		for _, s := range got {
			stored = append(stored, s.task)
		}
	}
	return stored, nil
}

// scheduled is a task Schedule stored, with its place in the batch.
type scheduled struct {
	ord  int
	task domain.Task
}

func scanScheduled(rows *sql.Rows) (scheduled, error) {
	var s scheduled
	var r taskRow
	if err := rows.Scan(append([]any{&s.ord}, r.dest()...)...); err != nil {
		return scheduled{}, err
	}
	s.task = r.task()
	return s, nil
}

// onConflict returns the conflict clause of the task's rule, and the key
// two tasks of one merchant share when that rule matches them against each
// other; both empty for a task no rule covers.
func onConflict(t domain.Task) (clause, key string) {
	switch {
	case t.Type == domain.TypeNotifyPaymentFailed:
		return notifyOnConflict, "notify " + strconv.Itoa(t.InvoiceAttempt) + " " + t.StripeInvoiceID
	case t.Type == domain.TypeNotifyActionRequired:
		return actionOnConflict, "action " + strconv.Itoa(t.InvoiceAttempt) + " " + t.StripeInvoiceID
	case t.Type == domain.TypeNotifyReminder:
		return reminderOnConflict, "reminder " + strconv.Itoa(t.InvoiceAttempt) + " " + t.StripeInvoiceID
	case t.Type == domain.TypeNotifyChargeFailed && t.StripeChargeID != "":
		return chargeOnConflict, "charge " + t.StripeChargeID
	case t.Type == domain.TypeNotifyCardExpiring:
		return cardOnConflict, "card " + strconv.Itoa(t.InvoiceAttempt) + " " + t.StripePaymentMethodID
	case t.Type == domain.TypeRetryPayment && t.Status == domain.StatusPending:
		return retryOnConflict, "retry " + t.StripeInvoiceID
	case t.Type == domain.TypeEndDunning && t.Status != domain.StatusCancelled:
		return endOnConflict, "end " + t.StripeInvoiceID
	}
	return "", ""
}

// scheduleBatches splits tasks, in order, into batches of tasks that
// neither share an id nor meet under one rule.
func scheduleBatches(tasks []domain.Task) [][]domain.Task {
	var batches [][]domain.Task
	start := 0
	seen := map[string]bool{}
	for i, t := range tasks {
		_, key := onConflict(t)
		if i-start == maxScheduleBatch || seen["id "+string(t.ID)] || (key != "" && seen[key]) {
			batches = append(batches, tasks[start:i])
			start = i
			clear(seen)
		}
		seen["id "+string(t.ID)] = true
		if key != "" {
			seen[key] = true
		}
	}
	if start < len(tasks) {
		batches = append(batches, tasks[start:])
	}
	return batches
}

// scheduleSQL is the statement of one batch:
//
//	WITH t0 AS (INSERT … ON CONFLICT … RETURNING 0, …),
//	     t1 AS (INSERT … RETURNING 1, …)
//	SELECT * FROM t0 UNION ALL SELECT * FROM t1
//
// Its text depends only on the rules of the batch's tasks, so a connection
// prepares it once.
func scheduleSQL(batch []domain.Task) string {
	var b strings.Builder
	b.WriteString("WITH ")
	for i, t := range batch {
		if i > 0 {
			b.WriteString(", ")
		}
		p := 2 + i*taskParamCount
		ph := func(k int) string { return "$" + strconv.Itoa(p+k) }
		clause, _ := onConflict(t)
		fmt.Fprintf(&b, `t%d AS (
		INSERT INTO tasks AS tasks (id, merchant_id, type, status, stripe_event_id, stripe_customer_id,
			stripe_invoice_id, stripe_subscription_id, stripe_charge_id, stripe_payment_method_id,
			customer_email, amount_due, currency, hosted_invoice_url, invoice_attempt, attempts, run_at,
			lease_until, last_error, decline_code, reason, created_at, updated_at)
		VALUES (%s::uuid, $1::uuid, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
			%s::timestamptz, %s::timestamptz, %s, %s, %s, %s::timestamptz, %s::timestamptz)
		%s
		RETURNING %d AS ord, %s
	)`, i, ph(0), ph(1), ph(2), ph(3), ph(4), ph(5), ph(6), ph(7), ph(8), ph(9), ph(10), ph(11), ph(12), ph(13),
			ph(14), ph(15), ph(16), ph(17), ph(18), ph(19), ph(20), ph(21), clause, i, taskColumns)
	}
	for i := range batch {
		if i > 0 {
			b.WriteString(" UNION ALL")
		}
		fmt.Fprintf(&b, "\n\tSELECT * FROM t%d", i)
	}
	return b.String()
}

// scheduleArgs are the parameters of scheduleSQL(batch).
func scheduleArgs(mid string, batch []domain.Task) []any {
	args := make([]any, 0, 1+len(batch)*taskParamCount)
	args = append(args, mid)
	for _, t := range batch {
		var leaseUntil any // NULL
		if t.Status == domain.StatusRunning {
			// A task stored as running has no worker: its lease has
			// always expired, so the next claim takes it over.
			leaseUntil = time.Time{}
		}
		args = append(args, string(t.ID), string(t.Type), string(t.Status), t.StripeEventID,
			t.StripeCustomerID, t.StripeInvoiceID, t.StripeSubscriptionID, t.StripeChargeID,
			t.StripePaymentMethodID, t.CustomerEmail, t.AmountDue, t.Currency, t.HostedInvoiceURL, t.InvoiceAttempt, t.Attempts,
			t.RunAt, leaseUntil, t.LastError, t.DeclineCode, t.Reason, t.CreatedAt, t.UpdatedAt)
	}
	return args
}
