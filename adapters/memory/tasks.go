package memory

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/recoupdev/recoup/domain"
)

// taskRepo is the tenant task repository, inside a unit of work (t set) or
// with each call a unit of work of its own. Every method but Exists works
// in the merchant's shard only, so another merchant's tasks are out of
// reach by construction.
type taskRepo struct {
	s *Store
	t *tx
}

// Schedule stores the tasks, applying the "at most one" rules in order.
func (r taskRepo) Schedule(ctx context.Context, merchant domain.MerchantID, tasks []domain.Task) ([]domain.Task, error) {
	stored := []domain.Task{}
	err := r.s.do(ctx, r.t, func(t *tx) error {
		h, err := t.shard(ctx, merchant)
		if err != nil {
			return err
		}
		for _, in := range tasks {
			task, err := checkNewTask(merchant, in)
			if err != nil {
				return err
			}
			if _, taken := h.sh.tasks[task.ID]; taken || r.s.taskOwned(task.ID) {
				return fmt.Errorf("schedule task %s: %w: id already used", task.ID, domain.ErrConflict)
			}
			switch task.Type {
			case domain.TypeNotifyPaymentFailed:
				if _, dup := h.sh.notified[notifyKey{task.StripeInvoiceID, task.InvoiceAttempt}]; dup {
					continue
				}
			case domain.TypeRetryPayment:
				if task.Status != domain.StatusPending {
					break
				}
				if id, ok := h.sh.pendingRetry[task.StripeInvoiceID]; ok {
					cur := h.sh.tasks[id]
					if task.InvoiceAttempt <= cur.task.InvoiceAttempt {
						continue
					}
					cur.task.RunAt, cur.task.StripeEventID = task.RunAt, task.StripeEventID
					cur.task.InvoiceAttempt, cur.task.UpdatedAt = task.InvoiceAttempt, task.UpdatedAt
					h.setTask(cur)
					stored = append(stored, cur.task)
					continue
				}
			}
			h.setTask(taskRecord{task: task})
			stored = append(stored, task)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return stored, nil
}

func checkNewTask(merchant domain.MerchantID, t domain.Task) (domain.Task, error) {
	if t.MerchantID != merchant {
		return t, fmt.Errorf("%w: task %s belongs to merchant %q, not %q", domain.ErrInvalid, t.ID, t.MerchantID, merchant)
	}
	if _, err := domain.ParseTaskID(string(t.ID)); err != nil {
		return t, err
	}
	if !t.Status.Valid() {
		return t, fmt.Errorf("%w: task status %q", domain.ErrInvalid, t.Status)
	}
	switch t.Type {
	case domain.TypeRetryPayment, domain.TypeNotifyPaymentFailed, domain.TypeNotifyActionRequired, domain.TypeNotifyChargeFailed:
	default:
		return t, fmt.Errorf("%w: task type %q", domain.ErrInvalid, t.Type)
	}
	t.RunAt, t.CreatedAt, t.UpdatedAt = norm(t.RunAt), norm(t.CreatedAt), norm(t.UpdatedAt)
	return t, nil
}

// taskOwned reports whether a committed task has this id.
func (s *Store) taskOwned(id domain.TaskID) bool {
	s.globalMu.Lock()
	defer s.globalMu.Unlock()
	_, ok := s.owners[id]
	return ok
}

// CancelPending cancels the merchant's pending tasks of one invoice or one
// subscription.
func (r taskRepo) CancelPending(ctx context.Context, merchant domain.MerchantID, sel domain.CancelSelector, now time.Time) ([]domain.TaskID, error) {
	if (sel.InvoiceID == "") == (sel.SubscriptionID == "") {
		return nil, fmt.Errorf("%w: cancel needs exactly one of invoice and subscription", domain.ErrInvalid)
	}
	ids := []domain.TaskID{}
	err := r.s.do(ctx, r.t, func(t *tx) error {
		h, err := t.shard(ctx, merchant)
		if err != nil {
			return err
		}
		set := h.sh.byInvoice[sel.InvoiceID]
		if sel.SubscriptionID != "" {
			set = h.sh.bySubscription[sel.SubscriptionID]
		}
		for _, id := range slices.Sorted(maps.Keys(set)) {
			rec := h.sh.tasks[id]
			if rec.task.Status != domain.StatusPending {
				continue
			}
			rec.task.Status, rec.task.UpdatedAt = domain.StatusCancelled, norm(now)
			h.setTask(rec)
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}

// List walks the merchant's (or the status's) ordered index from the
// cursor: O(log n + limit) in the merchant's tasks.
func (r taskRepo) List(ctx context.Context, merchant domain.MerchantID, f domain.TaskFilter) (domain.TaskPage, error) {
	if f.Status != "" && !f.Status.Valid() {
		return domain.TaskPage{}, fmt.Errorf("%w: unknown status %q", domain.ErrInvalid, f.Status)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = domain.DefaultPageSize
	}
	limit = min(limit, domain.MaxPageSize)
	page := domain.TaskPage{Tasks: make([]domain.Task, 0, limit)}
	err := r.s.do(ctx, r.t, func(t *tx) error {
		h, err := t.shard(ctx, merchant)
		if err != nil {
			return err
		}
		index := h.sh.all
		if f.Status != "" {
			index = h.sh.byStatus[f.Status]
		}
		n := index.first()
		if f.After != nil {
			n = index.after(listKey{created: norm(f.After.CreatedAt), id: f.After.ID})
		}
		for ; n != nil && len(page.Tasks) < limit; n = n.next[0] {
			page.Tasks = append(page.Tasks, h.sh.tasks[n.key.id].task)
		}
		if n != nil && len(page.Tasks) > 0 {
			last := page.Tasks[len(page.Tasks)-1]
			page.Next = &domain.TaskCursor{CreatedAt: last.CreatedAt, ID: last.ID}
		}
		return nil
	})
	return page, err
}

// Get returns a copy of the merchant's task.
func (r taskRepo) Get(ctx context.Context, merchant domain.MerchantID, id domain.TaskID) (domain.Task, error) {
	var out domain.Task
	err := r.s.do(ctx, r.t, func(t *tx) error {
		h, err := t.shard(ctx, merchant)
		if err != nil {
			return err
		}
		rec, ok := h.sh.tasks[id]
		if !ok {
			return fmt.Errorf("task %s: %w", id, domain.ErrNotFound)
		}
		out = rec.task
		return nil
	})
	return out, err
}

// Retry makes a failed or cancelled task pending again, due at now. As on
// Postgres, a retry_payment cannot become pending beside another pending
// retry_payment of its invoice (ErrConflict).
func (r taskRepo) Retry(ctx context.Context, merchant domain.MerchantID, id domain.TaskID, now time.Time) (domain.Task, error) {
	var out domain.Task
	err := r.s.do(ctx, r.t, func(t *tx) error {
		h, err := t.shard(ctx, merchant)
		if err != nil {
			return err
		}
		rec, ok := h.sh.tasks[id]
		if !ok {
			return fmt.Errorf("task %s: %w", id, domain.ErrNotFound)
		}
		if !rec.task.Status.Retryable() {
			return fmt.Errorf("retry task %s: %w: it is %s", id, domain.ErrConflict, rec.task.Status)
		}
		if err := h.checkPendingRetry(rec.task); err != nil {
			return err
		}
		now = norm(now)
		rec.task.Status, rec.task.RunAt, rec.task.UpdatedAt = domain.StatusPending, now, now
		rec.leaseUntil = time.Time{}
		h.setTask(rec)
		out = rec.task
		return nil
	})
	return out, err
}

// checkPendingRetry refuses to make task a second pending retry_payment of
// its invoice.
func (h *heldShard) checkPendingRetry(task domain.Task) error {
	if task.Type != domain.TypeRetryPayment {
		return nil
	}
	if other, ok := h.sh.pendingRetry[task.StripeInvoiceID]; ok && other != task.ID {
		return fmt.Errorf("task %s: %w: invoice %s already has a pending retry", task.ID, domain.ErrConflict, task.StripeInvoiceID)
	}
	return nil
}

// Delete removes the merchant's task unless it is running.
func (r taskRepo) Delete(ctx context.Context, merchant domain.MerchantID, id domain.TaskID) error {
	return r.s.do(ctx, r.t, func(t *tx) error {
		h, err := t.shard(ctx, merchant)
		if err != nil {
			return err
		}
		rec, ok := h.sh.tasks[id]
		if !ok {
			return fmt.Errorf("task %s: %w", id, domain.ErrNotFound)
		}
		if rec.task.Status == domain.StatusRunning {
			return fmt.Errorf("delete task %s: %w: it is running", id, domain.ErrConflict)
		}
		h.deleteTask(id)
		return nil
	})
}

// CountByStatus returns the merchant's counts; statuses without tasks are
// absent.
func (r taskRepo) CountByStatus(ctx context.Context, merchant domain.MerchantID) (map[domain.TaskStatus]int, error) {
	var out map[domain.TaskStatus]int
	err := r.s.do(ctx, r.t, func(t *tx) error {
		h, err := t.shard(ctx, merchant)
		if err != nil {
			return err
		}
		out = maps.Clone(h.sh.counts)
		return nil
	})
	return out, err
}

// Exists looks the id up among committed tasks, or, inside a unit of work,
// as that unit of work sees them.
func (r taskRepo) Exists(ctx context.Context, id domain.TaskID) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if r.t != nil {
		if r.t.closed {
			return false, fmt.Errorf("%w: unit of work already ended", domain.ErrInvalid)
		}
		for m, h := range r.t.held {
			if _, ok := h.sh.tasks[id]; ok {
				return true, nil
			}
			if r.s.ownerIs(id, m) {
				return false, nil // deleted by this unit of work
			}
		}
	}
	return r.s.taskOwned(id), nil
}

func (s *Store) ownerIs(id domain.TaskID, m domain.MerchantID) bool {
	s.globalMu.Lock()
	defer s.globalMu.Unlock()
	return s.owners[id] == m
}
