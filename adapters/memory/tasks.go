package memory

import (
	"context"
	"fmt"
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
	stored := make([]domain.Task, 0, len(tasks))
	err := r.s.do(ctx, r.t, func(t *tx) error {
		h, err := t.shard(ctx, merchant)
		if err != nil {
			return err
		}
		if len(tasks) == 0 {
			return nil
		}
		var checkedBuf [2]checkedTask
		checked := checkedBuf[:0]
		for _, in := range tasks {
			task, k, err := checkNewTask(merchant, in)
			if err != nil {
				return err
			}
			checked = append(checked, checkedTask{task, k})
		}
		// One look at the committed ids (canonical, as stored) for the
		// whole batch, so that globalMu is taken once and not held while
		// the shard is written.
		var ownedBuf [2]bool
		owned := r.s.owned(checked, ownedBuf[:0])
		for i, c := range checked {
			task, k := c.task, c.key
			// Every task a shard held before this unit of work changed it
			// is committed, so owned covers it; only tasks this unit of
			// work stored (for any merchant) need a look at the shards.
			if owned[i] || t.holdsOwn(k) {
				return fmt.Errorf("schedule task %s: %w: id already used", task.ID, domain.ErrConflict)
			}
			switch task.Type {
			case domain.TypeNotifyPaymentFailed:
				if h.sh.notified(task.StripeInvoiceID, task.InvoiceAttempt) {
					continue
				}
			case domain.TypeRetryPayment:
				if task.Status != domain.StatusPending {
					break
				}
				if cur, ok := h.sh.pendingRetry(task.StripeInvoiceID); ok {
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
			h.addTask(taskRecord{task: task}, k)
			stored = append(stored, task)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return stored, nil
}

// checkNewTask returns the task as it is stored, and its id's key.
func checkNewTask(merchant domain.MerchantID, t domain.Task) (domain.Task, taskKey, error) {
	if t.MerchantID != merchant {
		return t, taskKey{}, fmt.Errorf("%w: task %s belongs to merchant %q, not %q", domain.ErrInvalid, t.ID, t.MerchantID, merchant)
	}
	k, ok := keyOf(t.ID)
	if !ok {
		// Stored as PostgreSQL's uuid column gives it back: lowercase.
		id, err := domain.ParseTaskID(string(t.ID))
		if err != nil {
			return t, taskKey{}, err
		}
		t.ID, k = id, mustKeyOf(id)
	}
	if statusIndex(t.Status) < 0 {
		return t, taskKey{}, fmt.Errorf("%w: task status %q", domain.ErrInvalid, t.Status)
	}
	switch t.Type {
	case domain.TypeRetryPayment, domain.TypeNotifyPaymentFailed, domain.TypeNotifyActionRequired, domain.TypeNotifyChargeFailed:
	default:
		return t, taskKey{}, fmt.Errorf("%w: task type %q", domain.ErrInvalid, t.Type)
	}
	t.RunAt, t.CreatedAt, t.UpdatedAt = norm(t.RunAt), norm(t.CreatedAt), norm(t.UpdatedAt)
	return t, k, nil
}

// checkedTask is a task as Schedule stores it, with its id's key.
type checkedTask struct {
	task domain.Task
	key  taskKey
}

// owned appends to out, for each task, whether a committed task has its
// id.
func (s *Store) owned(tasks []checkedTask, out []bool) []bool {
	s.globalMu.Lock()
	defer s.globalMu.Unlock()
	for _, t := range tasks {
		_, ok := s.owners[t.key]
		out = append(out, ok)
	}
	return out
}

// taskOwned reports whether a committed task has this id.
func (s *Store) taskOwned(id domain.TaskID) bool {
	k, ok := lookupKey(id)
	if !ok {
		return false
	}
	s.globalMu.Lock()
	defer s.globalMu.Unlock()
	_, ok = s.owners[k]
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
		var matched []domain.TaskID
		if sel.SubscriptionID != "" {
			matched = h.sh.subscriptionTasks(sel.SubscriptionID)
		} else {
			matched = h.sh.invoiceTasks(sel.InvoiceID)
		}
		slices.Sort(matched)
		for _, id := range matched {
			rec, _ := h.sh.get(id)
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
			index = h.sh.byStatus[statusIndex(f.Status)]
		}
		p := index.first()
		if f.After != nil {
			id, ok := lookupKey(f.After.ID)
			if !ok {
				return fmt.Errorf("%w: cursor task id %q is not a UUID", domain.ErrInvalid, f.After.ID)
			}
			p = index.after(newListKey(norm(f.After.CreatedAt), id, 0))
		}
		for ; p.valid() && len(page.Tasks) < limit; p = p.next() {
			page.Tasks = append(page.Tasks, h.sh.slot(p.key().slot).rec.task)
		}
		if p.valid() && len(page.Tasks) > 0 {
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
		_, rec, err := t.merchantTask(ctx, merchant, id)
		if err != nil {
			return err
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
		h, rec, err := t.merchantTask(ctx, merchant, id)
		if err != nil {
			return err
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
	if other, ok := h.sh.pendingRetry(task.StripeInvoiceID); ok && other.task.ID != task.ID {
		return fmt.Errorf("task %s: %w: invoice %s already has a pending retry", task.ID, domain.ErrConflict, task.StripeInvoiceID)
	}
	return nil
}

// Delete removes the merchant's task unless it is running.
func (r taskRepo) Delete(ctx context.Context, merchant domain.MerchantID, id domain.TaskID) error {
	return r.s.do(ctx, r.t, func(t *tx) error {
		h, rec, err := t.merchantTask(ctx, merchant, id)
		if err != nil {
			return err
		}
		if rec.task.Status == domain.StatusRunning {
			return fmt.Errorf("delete task %s: %w: it is running", id, domain.ErrConflict)
		}
		h.deleteTask(rec.task.ID)
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
		out = h.sh.countsMap()
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
		for _, h := range r.t.w.held {
			if h.sh.has(id) {
				return true, nil
			}
			if r.s.ownerIs(id, h.sh) {
				return false, nil // deleted by this unit of work
			}
		}
	}
	return r.s.taskOwned(id), nil
}

func (s *Store) ownerIs(id domain.TaskID, sh *shard) bool {
	k, ok := lookupKey(id)
	if !ok {
		return false
	}
	s.globalMu.Lock()
	defer s.globalMu.Unlock()
	i, ok := s.owners[k]
	return ok && i == sh.index
}

// merchantTask takes the merchant's shard and finds the task in it: the
// task is reached only through its merchant, and ErrNotFound when that
// merchant has no such task.
func (t *tx) merchantTask(ctx context.Context, merchant domain.MerchantID, id domain.TaskID) (*heldShard, taskRecord, error) {
	h, err := t.shard(ctx, merchant)
	if err != nil {
		return nil, taskRecord{}, err
	}
	rec, ok := h.sh.get(id)
	if !ok {
		return nil, taskRecord{}, fmt.Errorf("task %s: %w", id, domain.ErrNotFound)
	}
	return h, rec, nil
}
