package memory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// due is a task a claim may take, claimable since since.
type due struct {
	t     *domain.Task
	rank  int // 0 for a lease that expired, 1 for a pending task
	since time.Time
}

// dueAt lists the tasks due at now, in the order PostgreSQL's claim takes
// them: expired leases first, as they have waited longest, then pending
// tasks by RunAt.
func (s *Store) dueAt(now time.Time) []due {
	var out []due
	for t, lease := range s.running {
		if lease.Before(now) {
			out = append(out, due{t, 0, lease})
		}
	}
	for t := range s.pending {
		if !t.RunAt.After(now) {
			out = append(out, due{t, 1, t.RunAt})
		}
	}
	slices.SortFunc(out, func(a, b due) int {
		return cmp.Or(cmp.Compare(a.rank, b.rank), a.since.Compare(b.since), strings.Compare(string(a.t.ID), string(b.t.ID)))
	})
	return out
}

// ClaimDue hands out no task twice: the store's lock serialises claims.
func (c scope) ClaimDue(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]ports.Claim, error) {
	if limit < 1 {
		return []ports.Claim{}, nil
	}
	if lease <= 0 {
		return nil, fmt.Errorf("claim tasks: %w: lease must be positive", domain.ErrInvalid)
	}
	now = norm(now)
	claimed := []ports.Claim{}
	err := c.do(ctx, func(u *unit) error {
		due := u.s.dueAt(now)
		for _, d := range due[:min(limit, len(due))] {
			next := *d.t
			next.Status, next.Attempts, next.UpdatedAt = domain.StatusRunning, next.Attempts+1, now
			u.update(d.t, next, norm(now.Add(lease)))
			claimed = append(claimed, u.s.claim(next))
		}
		return nil
	})
	return claimed, err
}

// Finish changes nothing unless the claim of this attempt still holds: the
// task is running, and no later claim took it over. Then it enqueues the
// outcome's messages with it.
func (c scope) Finish(ctx context.Context, merchant domain.MerchantID, id domain.TaskID, attempt int, res domain.TaskResult) error {
	if !slices.Contains([]domain.TaskStatus{domain.StatusPending, domain.StatusSucceeded, domain.StatusFailed, domain.StatusCancelled}, res.Status) ||
		!domain.StorableText(res.LastError, res.Reason, res.DeclineCode) {
		return fmt.Errorf("finish task %s: %w: a run cannot end %q, nor with a NUL character in its text", id, domain.ErrInvalid, res.Status)
	}
	if err := checkMessages(res.Messages...); err != nil {
		return fmt.Errorf("finish task %s: %w", id, err)
	}
	return c.doFor(ctx, merchant, func(u *unit, ten *tenant) error {
		t, err := u.s.find(ten, id)
		if err != nil {
			return err
		}
		if t.Status != domain.StatusRunning || t.Attempts != attempt {
			return fmt.Errorf("finish task %s: %w: the claim of attempt %d no longer holds", id, domain.ErrConflict, attempt)
		}
		next := *t
		next.Status, next.LastError, next.Reason = res.Status, res.LastError, res.Reason
		next.DeclineCode = cmp.Or(res.DeclineCode, next.DeclineCode)
		if !res.RunAt.IsZero() { // a zero time leaves the task's as it is
			next.RunAt = norm(res.RunAt)
		}
		if !res.At.IsZero() {
			next.UpdatedAt = norm(res.At)
		}
		if err := u.change(ten, t, next); err != nil {
			return err
		}
		for _, msg := range res.Messages {
			u.enqueue(ten, msg)
		}
		return nil
	})
}

func (c scope) Backlog(ctx context.Context, now time.Time) (count int, oldest time.Time, err error) {
	err = c.do(ctx, func(u *unit) error {
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

// claim is t with its merchant's policy and its invoice's record, as
// ClaimDue returns it.
func (s *Store) claim(t domain.Task) ports.Claim {
	c := ports.Claim{Task: t, Policy: domain.DefaultDunningPolicy()}
	ten := s.tenants[t.MerchantID]
	if ten.policy != nil {
		c.Policy = clonePolicy(*ten.policy)
	}
	if r, ok := ten.invoices[t.StripeInvoiceID]; ok && t.StripeInvoiceID != "" {
		r = detached(r)
		c.Invoice = &r
	}
	return c
}
