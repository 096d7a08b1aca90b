package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// taskQueue is the worker's view of the tasks, across merchants, on the
// connection pool or in a unit of work.
type taskQueue struct {
	db querier
	// now is the store's clock, which stamps the deliveries of a
	// Finish's messages.
	now func() time.Time
}

// claimDueSQL is ClaimDue's statement: $1 is now, $2 the limit, $3 the
// end of the lease. It returns each claimed task with its merchant's
// policy (NULL: the default) and its invoice's record (claimInvoiceColumns).
var claimDueSQL = `
	WITH expired AS (
		SELECT id FROM tasks
		WHERE status = 'running' AND lease_until < $1
		ORDER BY lease_until
		LIMIT $2
		FOR UPDATE SKIP LOCKED
	), pending AS (
		SELECT id FROM tasks
		WHERE status = 'pending' AND run_at <= $1
		ORDER BY run_at
		LIMIT $2
		FOR UPDATE SKIP LOCKED
	), due AS (
		SELECT id FROM expired
		UNION ALL
		SELECT id FROM pending
		LIMIT $2
	), claimed AS (
		UPDATE tasks
		SET status = 'running', attempts = tasks.attempts + 1, lease_until = $3, updated_at = $1
		FROM due
		WHERE tasks.id = due.id
		RETURNING tasks.*
	)
	SELECT ` + taskColumns + `, merchant_policies.policy, ` + claimInvoiceColumns + `
	FROM claimed AS tasks
	LEFT JOIN merchant_policies ON merchant_policies.merchant_id = tasks.merchant_id
	LEFT JOIN invoices ON invoices.merchant_id = tasks.merchant_id AND invoices.invoice_id = tasks.stripe_invoice_id`

// claimInvoiceColumns are invoiceColumns where a claimed task's invoice
// may have no row: invoices.invoice_id tells (NULL: no record), and the
// columns that are never NULL in a row read as their zero values.
var claimInvoiceColumns = `invoices.invoice_id IS NOT NULL, COALESCE(invoices.merchant_id, tasks.merchant_id),
	COALESCE(invoices.invoice_id, ''), COALESCE(invoices.customer_id, ''),
	COALESCE(invoices.subscription_id, ''), COALESCE(invoices.currency, ''), COALESCE(invoices.amount_due, 0),
	invoices.first_failed_at, invoices.last_failed_at, COALESCE(invoices.stripe_attempts, 0),
	COALESCE(invoices.recoup_attempts, 0), invoices.stripe_retry_at, COALESCE(invoices.decline_code, ''),
	invoices.declined_at, invoices.card_updated_at, COALESCE(invoices.recoup_paid, ''),
	COALESCE(invoices.status, ''), invoices.closed_at, COALESCE(invoices.paid_amount, 0),
	COALESCE(invoices.recovered_by, '')`

// scanClaim reads a row of claimDueSQL.
func scanClaim(rows *sql.Rows) (ports.Claim, error) {
	var t taskRow
	var policy []byte
	var hasInvoice bool
	var inv invoiceRow
	if err := rows.Scan(append(append(t.dest(), &policy, &hasInvoice), inv.dest()...)...); err != nil {
		return ports.Claim{}, err
	}
	c := ports.Claim{Task: t.task(), Policy: domain.DefaultDunningPolicy()}
	if policy != nil {
		p, err := decodePolicy(policy)
		if err != nil {
			return ports.Claim{}, fmt.Errorf("policy of merchant %s: %w", c.MerchantID, err)
		}
		c.Policy = p
	}
	if hasInvoice {
		r := inv.record()
		c.Invoice = &r
	}
	return c, nil
}

// ClaimDue locks up to limit due tasks, skipping those another worker is
// claiming at this moment, and marks them running, in one statement: no
// task goes to two workers, on any number of processes. The same
// statement reads each task's policy and invoice record.
//
// Tasks whose lease expired come first (they have waited longest), then
// pending tasks by run_at. Each kind is read in the order of its partial
// index (tasks_running_lease_until, tasks_pending_run_at) and the scan
// stops after limit rows, so a claim costs the same with a backlog of a
// million due tasks as with ten; a single scan with OR would collect and
// sort the whole backlog on every claim. The second CTE only runs when the
// first one yields fewer than limit rows.
func (q taskQueue) ClaimDue(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]ports.Claim, error) {
	if limit < 1 {
		return []ports.Claim{}, nil
	}
	if lease <= 0 {
		return nil, fmt.Errorf("claim tasks: %w: lease must be positive", domain.ErrInvalid)
	}
	claims, err := queryAll(ctx, q.db, scanClaim, claimDueSQL, now, limit, now.Add(lease))
	if err != nil {
		return nil, interpretError("claim tasks", err)
	}
	if claims == nil {
		claims = []ports.Claim{}
	}
	return claims, nil
}

// finishSQL is Finish's statement. An empty decline code ($9) keeps the
// task's own.
const finishSQL = `
	UPDATE tasks
	SET status = $4, last_error = $5, reason = $8, decline_code = COALESCE(NULLIF($9::text, ''), decline_code),
		lease_until = NULL, run_at = COALESCE($6::timestamptz, run_at), updated_at = COALESCE($7::timestamptz, updated_at)
	WHERE merchant_id = $1 AND id = $2 AND status = 'running' AND attempts = $3`

// finishWithMessagesSQL is Finish's statement when res has k messages:
// finishSQL, and the messages' deliveries stored in the same statement
// only if it changed the task (enqueueSQL). $10 is the store's now, the
// messages' parameters follow. The texts of one and two messages (a
// task's outcome, and dunning.exhausted) are made once.
func finishWithMessagesSQL(k int) string {
	if k < len(finishWithMessagesSQLs) {
		return finishWithMessagesSQLs[k]
	}
	return enqueueSQL(k, finishSQL, 10, 11)
}

var finishWithMessagesSQLs = [...]string{1: enqueueSQL(1, finishSQL, 10, 11), 2: enqueueSQL(2, finishSQL, 10, 11)}

// Finish records the end of a run only while the claim still holds: the
// task is running with the attempt number its claim gave it. A worker whose
// lease expired and whose task another worker claimed finds attempts moved
// on and changes nothing.
//
// The outcome's messages go in the same statement as the task's update,
// and are stored only if it changed the task: one round trip on the
// worker's path, and a message is never stored without its change, nor a
// change without its message (see enqueueSQL).
func (q taskQueue) Finish(ctx context.Context, merchant domain.MerchantID, id domain.TaskID, attempt int, res domain.TaskResult) error {
	mid, err := merchantParam(merchant)
	if err != nil {
		return fmt.Errorf("finish task: %w", err)
	}
	tid, ok := taskIDParam(id)
	if !ok {
		return fmt.Errorf("finish task %s: %w", id, domain.ErrNotFound)
	}
	switch res.Status {
	case domain.StatusPending, domain.StatusSucceeded, domain.StatusFailed, domain.StatusCancelled:
	default:
		return fmt.Errorf("finish task %s: %w: a run cannot end %q", id, domain.ErrInvalid, res.Status)
	}
	if !domain.StorableText(res.LastError, res.Reason, res.DeclineCode) {
		return fmt.Errorf("finish task %s: %w: text with a NUL character", id, domain.ErrInvalid)
	}
	if err := checkMessages(res.Messages...); err != nil {
		return fmt.Errorf("finish task %s: %w", id, err)
	}
	// A zero RunAt or At leaves the column as it is.
	var runAt, at any
	if !res.RunAt.IsZero() {
		runAt = res.RunAt
	}
	if !res.At.IsZero() {
		at = res.At
	}
	args := []any{mid, tid, attempt, string(res.Status), res.LastError, runAt, at, res.Reason, res.DeclineCode}
	var n int64
	if len(res.Messages) == 0 {
		n, err = rowsAffected(ctx, q.db, finishSQL, args...)
	} else {
		args = messageArgs(append(args, q.now()), res.Messages)
		err = q.db.QueryRowContext(ctx, finishWithMessagesSQL(len(res.Messages)), args...).Scan(&n)
	}
	if err != nil {
		// A unique violation: a retry_payment going back to pending
		// while its invoice got another pending retry meanwhile.
		return interpretError("finish task "+string(id), err)
	}
	if n == 1 {
		return nil
	}
	return explainNoChange(ctx, q.db, mid, id, tid, "finish", fmt.Sprintf("the claim of attempt %d no longer holds", attempt))
}

// Backlog counts the tasks due at now and finds the oldest due run_at, one
// partial index per kind of due task.
func (q taskQueue) Backlog(ctx context.Context, now time.Time) (int, time.Time, error) {
	var count int
	var oldest *time.Time
	err := q.db.QueryRowContext(ctx, `
		SELECT p.n + r.n, LEAST(p.oldest, r.oldest)
		FROM (SELECT count(*) AS n, min(run_at) AS oldest FROM tasks
		      WHERE status = 'pending' AND run_at <= $1) AS p,
		     (SELECT count(*) AS n, min(run_at) AS oldest FROM tasks
		      WHERE status = 'running' AND lease_until < $1) AS r`, now).Scan(&count, &oldest)
	if err != nil {
		return 0, time.Time{}, interpretError("task backlog", err)
	}
	if oldest == nil {
		return count, time.Time{}, nil
	}
	return count, oldest.UTC(), nil
}
