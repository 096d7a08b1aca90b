package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/recoupdev/recoup/domain"
)

// taskQueue is the worker's view of the tasks, across merchants.
type taskQueue struct {
	db bun.IDB
}

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
	var rows []taskRow
	err := q.db.NewRaw(`
		WITH expired AS (
			SELECT id FROM tasks
			WHERE status = 'running' AND lease_until < ?0
			ORDER BY lease_until
			LIMIT ?1
			FOR UPDATE SKIP LOCKED
		), pending AS (
			SELECT id FROM tasks
			WHERE status = 'pending' AND run_at <= ?0
			ORDER BY run_at
			LIMIT ?1
			FOR UPDATE SKIP LOCKED
		), due AS (
			SELECT id FROM expired
			UNION ALL
			SELECT id FROM pending
			LIMIT ?1
		)
		UPDATE tasks
		SET status = 'running', attempts = tasks.attempts + 1, lease_until = ?2, updated_at = ?0
		FROM due
		WHERE tasks.id = due.id
		RETURNING `+taskColumns, now, limit, now.Add(lease)).Scan(ctx, &rows)
	if err != nil {
		return nil, interpretError("claim tasks", err)
	}
	return tasksFromRows(rows), nil
}

// Finish records the end of a run only while the claim still holds: the
// task is running with the attempt number its claim gave it. A worker whose
// lease expired and whose task another worker claimed finds attempts moved
// on and changes nothing.
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
	upd := q.db.NewUpdate().Model((*taskRow)(nil)).
		Set("status = ?", res.Status).
		Set("last_error = ?", res.LastError).
		Set("lease_until = NULL")
	if !res.RunAt.IsZero() {
		upd = upd.Set("run_at = ?", res.RunAt)
	}
	if !res.At.IsZero() {
		upd = upd.Set("updated_at = ?", res.At)
	}
	result, err := upd.
		Where("merchant_id = ?", mid).Where("id = ?", tid).
		Where("status = ?", domain.StatusRunning).Where("attempts = ?", attempt).
		Exec(ctx)
	if err != nil {
		// A unique violation: a retry_payment going back to pending
		// while its invoice got another pending retry meanwhile.
		return interpretError("finish task "+string(id), err)
	}
	n, err := result.RowsAffected()
	if err != nil {
		return interpretError("finish task "+string(id), err)
	}
	if n == 1 {
		return nil
	}
	exists, err := q.db.NewSelect().TableExpr("tasks").
		Where("merchant_id = ?", mid).Where("id = ?", tid).Exists(ctx)
	if err != nil {
		return interpretError("finish task "+string(id), err)
	}
	if !exists {
		return fmt.Errorf("finish task %s: %w", id, domain.ErrNotFound)
	}
	return fmt.Errorf("finish task %s: %w: the claim of attempt %d no longer holds", id, domain.ErrConflict, attempt)
}

// Backlog counts the tasks due at now and finds the oldest due run_at, one
// partial index per kind of due task.
func (q taskQueue) Backlog(ctx context.Context, now time.Time) (int, time.Time, error) {
	var count int
	var oldest *time.Time
	err := q.db.NewRaw(`
		SELECT p.n + r.n, LEAST(p.oldest, r.oldest)
		FROM (SELECT count(*) AS n, min(run_at) AS oldest FROM tasks
		      WHERE status = 'pending' AND run_at <= ?0) AS p,
		     (SELECT count(*) AS n, min(run_at) AS oldest FROM tasks
		      WHERE status = 'running' AND lease_until < ?0) AS r`, now).Scan(ctx, &count, &oldest)
	if err != nil {
		return 0, time.Time{}, interpretError("task backlog", err)
	}
	if oldest == nil {
		return count, time.Time{}, nil
	}
	return count, oldest.UTC(), nil
}
