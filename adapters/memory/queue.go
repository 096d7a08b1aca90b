package memory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/recoupdev/recoup/domain"
)

// queue is the worker's view of tasks, across merchants.
type queue struct{ s *Store }

// due is a task a claim may take: pending since RunAt, or running with a
// lease that expired at since.
type due struct {
	t       *domain.Task
	expired bool
	since   time.Time
}

// dueAt lists the tasks due at now, in no order.
func (s *Store) dueAt(now time.Time) []due {
	var out []due
	for t, lease := range s.running {
		if lease.Before(now) {
			out = append(out, due{t, true, lease})
		}
	}
	for t := range s.pending {
		if !t.RunAt.After(now) {
			out = append(out, due{t, false, t.RunAt})
		}
	}
	return out
}

// claimOrder is the order of PostgreSQL's claim: expired leases first, as
// they have waited longest, then pending tasks by RunAt.
func claimOrder(a, b due) int {
	if a.expired != b.expired {
		if a.expired {
			return -1
		}
		return 1
	}
	return cmp.Or(a.since.Compare(b.since), strings.Compare(string(a.t.ID), string(b.t.ID)))
}

// ClaimDue claims the first limit due tasks. The store's lock serialises
// claims, so no task is handed out twice.
func (q queue) ClaimDue(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]domain.Task, error) {
	if limit < 1 {
		return []domain.Task{}, nil
	}
	if lease <= 0 {
		return nil, fmt.Errorf("claim tasks: %w: lease must be positive", domain.ErrInvalid)
	}
	now = norm(now)
	claimed := []domain.Task{}
	err := q.s.run(ctx, func(u *unit) error {
		due := u.s.dueAt(now)
		slices.SortFunc(due, claimOrder)
		for _, d := range due[:min(limit, len(due))] {
			next := *d.t
			next.Status, next.Attempts, next.UpdatedAt = domain.StatusRunning, next.Attempts+1, now
			u.update(d.t, next, norm(now.Add(lease)))
			claimed = append(claimed, next)
		}
		return nil
	})
	return claimed, err
}

// Finish records the end of the run that claimed the task with this
// attempt, if that claim still holds.
func (q queue) Finish(ctx context.Context, merchant domain.MerchantID, id domain.TaskID, attempt int, res domain.TaskResult) error {
	switch res.Status {
	case domain.StatusPending, domain.StatusSucceeded, domain.StatusFailed, domain.StatusCancelled:
	default:
		return fmt.Errorf("finish task %s: %w: a run cannot end %q", id, domain.ErrInvalid, res.Status)
	}
	if !domain.StorableText(res.LastError) {
		return fmt.Errorf("finish task %s: %w: last error with a NUL character", id, domain.ErrInvalid)
	}
	return q.s.doFor(ctx, nil, merchant, func(u *unit, ten *tenant) error {
		t, err := u.s.find(ten, id)
		if err != nil {
			return err
		}
		if t.Status != domain.StatusRunning || t.Attempts != attempt {
			return fmt.Errorf("finish task %s: %w: the claim of attempt %d no longer holds", id, domain.ErrConflict, attempt)
		}
		next := *t
		next.Status, next.LastError = res.Status, res.LastError
		if !res.RunAt.IsZero() { // a zero time leaves the task's as it is
			next.RunAt = norm(res.RunAt)
		}
		if !res.At.IsZero() {
			next.UpdatedAt = norm(res.At)
		}
		return u.change(ten, t, next)
	})
}

// Backlog counts the tasks due at now and finds the oldest due RunAt.
func (q queue) Backlog(ctx context.Context, now time.Time) (count int, oldest time.Time, err error) {
	err = q.s.run(ctx, func(u *unit) error {
		for _, d := range u.s.dueAt(norm(now)) {
			if count == 0 || d.t.RunAt.Before(oldest) {
				oldest = d.t.RunAt
			}
			count++
		}
		return nil
	})
	return count, oldest, err
}
