package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/recoupdev/recoup/domain"
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
// end of the lease.
const claimDueSQL = `
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
	)
	UPDATE tasks
	SET status = 'running', attempts = tasks.attempts + 1, lease_until = $3, updated_at = $1
	FROM due
	WHERE tasks.id = due.id
	RETURNING ` + taskColumns

// ClaimDue locks up to limit due tasks, skipping those another worker is
// claiming at this moment, and marks them running, in one statement: no
// task goes to two workers, on any number of processes.
//
// Tasks whose lease expired come first (they have waited longest), then
// pending tasks by run_at. Each kind is read in the order of its partial
// index (tasks_running_lease_until, tasks_pending_run_at) and the scan
// stops after limit rows, so a claim costs the same with a backlog of a
// million due tasks as with ten; a single scan with OR would collect and
// sort the whole backlog on every claim. The second CTE only runs when the
// first one yields fewer than limit rows.
func (q taskQueue) ClaimDue(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]domain.Task, error) {
	if limit < 1 {
		return []domain.Task{}, nil
	}
	if lease <= 0 {
		return nil, fmt.Errorf("claim tasks: %w: lease must be positive", domain.ErrInvalid)
	}
	tasks, err := queryAll(ctx, q.db, scanTask, claimDueSQL, now, limit, now.Add(lease))
	if err != nil {
		return nil, interpretError("claim tasks", err)
	}
	if tasks == nil {
		tasks = []domain.Task{}
	}
	return tasks, nil
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
