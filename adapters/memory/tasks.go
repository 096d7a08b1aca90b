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

// tenant is one merchant's indexes, invoice records and policy.
type tenant struct {
	id        domain.MerchantID
	list      []*domain.Task // by age: the task list's order, reversed
	byInvoice map[string][]*domain.Task
	bySub     map[string][]*domain.Task
	byCharge  map[string]*domain.Task         // notify_charge_failed tasks, by charge
	byCard    map[cardMonth]*domain.Task      // notify_card_expiring tasks, by card and month
	invoices  map[string]domain.InvoiceRecord // by invoice
	open      map[string][]string             // the open failed invoices, by customer
	policy    *domain.DunningPolicy           // nil: the default
	hooks     []*endpoint                     // webhook endpoints, in no order
}

// cardMonth keys the rule of notify_card_expiring: its payment method and
// the expiry month, kept in InvoiceAttempt.
type cardMonth struct {
	card  string
	month int
}

// ruled reports whether t, in its present status, counts for an "at most
// one" rule, and what the rule keys it by besides its type and invoice (or
// charge, or card): a notify task's invoice attempt (or expiry month) or
// charge, whatever its status; an invoice's retry_payment while pending;
// an invoice's end_dunning until it is cancelled.
func ruled(t *domain.Task) (attempt int, ok bool) {
	switch t.Type {
	case domain.TypeNotifyPaymentFailed, domain.TypeNotifyActionRequired, domain.TypeNotifyReminder, domain.TypeNotifyCardExpiring:
		return t.InvoiceAttempt, true
	case domain.TypeNotifyChargeFailed:
		return 0, t.StripeChargeID != ""
	case domain.TypeRetryPayment:
		return 0, t.Status == domain.StatusPending
	case domain.TypeEndDunning:
		return 0, t.Status != domain.StatusCancelled
	}
	return 0, false
}

// rival returns the stored task beside which the "at most one" rules do
// not let t be, if any, as PostgreSQL's partial unique indexes find it. An
// invoice has few tasks, so they are searched; a charge's and a card's are
// indexed, as they belong to no invoice.
func (ten *tenant) rival(t *domain.Task) *domain.Task {
	attempt, ok := ruled(t)
	switch {
	case !ok:
		return nil
	case t.Type == domain.TypeNotifyChargeFailed:
		return ten.byCharge[t.StripeChargeID]
	case t.Type == domain.TypeNotifyCardExpiring:
		return ten.byCard[cardMonth{t.StripePaymentMethodID, attempt}]
	}
	among := ten.byInvoice[t.StripeInvoiceID]
	if t.StripeInvoiceID == "" { // not indexed, but a key to PostgreSQL; no plan makes such tasks
		among = ten.list
	}
	for _, o := range among {
		if a, ok := ruled(o); ok && o.Type == t.Type && a == attempt && o.StripeInvoiceID == t.StripeInvoiceID {
			return o
		}
	}
	return nil
}

func (s *Store) tenant(m domain.MerchantID) *tenant {
	t := s.tenants[m]
	if t == nil {
		t = &tenant{id: m, byInvoice: map[string][]*domain.Task{}, bySub: map[string][]*domain.Task{},
			byCharge: map[string]*domain.Task{}, byCard: map[cardMonth]*domain.Task{}, invoices: map[string]domain.InvoiceRecord{}, open: map[string][]string{}}
		s.tenants[m] = t
	}
	return t
}

// byAge orders the task list by CreatedAt, then id. Canonical ids compare
// as PostgreSQL compares uuids.
func byAge(a, b *domain.Task) int {
	return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(string(a.ID), string(b.ID)))
}

// add, remove and update are the only changes made to tasks; each logs its
// inverse. A stored task never changes in what the indexes are keyed by
// (its id, invoice, subscription, charge, card, a notify_card_expiring's
// month and CreatedAt), so update leaves them alone.

func (u *unit) add(t *domain.Task) {
	u.s.index(t)
	u.onUndo(func() { u.s.unindex(t) })
}

func (u *unit) remove(t *domain.Task) {
	u.s.unindex(t)
	u.onUndo(func() { u.s.index(t) })
}

// update stores next in place of t; lease ends a running task's claim.
func (u *unit) update(t *domain.Task, next domain.Task, lease time.Time) {
	old, oldLease := *t, u.s.running[t]
	u.s.setState(t, next, lease)
	u.onUndo(func() { u.s.setState(t, old, oldLease) })
}

func (s *Store) index(t *domain.Task) {
	ten := s.tenants[t.MerchantID]
	s.tasks[t.ID] = t
	i, _ := slices.BinarySearchFunc(ten.list, t, byAge)
	ten.list = slices.Insert(ten.list, i, t)
	addTo(ten.byInvoice, t.StripeInvoiceID, t)
	addTo(ten.bySub, t.StripeSubscriptionID, t)
	if t.Type == domain.TypeNotifyChargeFailed && t.StripeChargeID != "" {
		ten.byCharge[t.StripeChargeID] = t
	}
	if t.Type == domain.TypeNotifyCardExpiring {
		ten.byCard[cardMonth{t.StripePaymentMethodID, t.InvoiceAttempt}] = t
	}
	s.file(t, time.Time{}) // stored as running, it has no worker: its lease has expired
}

func (s *Store) unindex(t *domain.Task) {
	ten := s.tenants[t.MerchantID]
	s.unfile(t)
	if ten.byCharge[t.StripeChargeID] == t {
		delete(ten.byCharge, t.StripeChargeID)
	}
	if k := (cardMonth{t.StripePaymentMethodID, t.InvoiceAttempt}); ten.byCard[k] == t {
		delete(ten.byCard, k)
	}
	dropFrom(ten.bySub, t.StripeSubscriptionID, t)
	dropFrom(ten.byInvoice, t.StripeInvoiceID, t)
	i, _ := slices.BinarySearchFunc(ten.list, t, byAge)
	ten.list = slices.Delete(ten.list, i, i+1)
	delete(s.tasks, t.ID)
}

func addTo(index map[string][]*domain.Task, key string, t *domain.Task) {
	if key != "" {
		index[key] = append(index[key], t)
	}
}

func dropFrom(index map[string][]*domain.Task, key string, t *domain.Task) {
	if rest := slices.DeleteFunc(index[key], func(x *domain.Task) bool { return x == t }); len(rest) > 0 {
		index[key] = rest
	} else {
		delete(index, key)
	}
}

func (s *Store) setState(t *domain.Task, next domain.Task, lease time.Time) {
	s.unfile(t)
	*t = next
	s.file(t, lease)
}

// file puts t in the queue its status calls for.
func (s *Store) file(t *domain.Task, lease time.Time) {
	switch t.Status {
	case domain.StatusRunning:
		s.running[t] = lease
	case domain.StatusPending:
		s.pending[t] = struct{}{}
	}
}

func (s *Store) unfile(t *domain.Task) {
	delete(s.pending, t)
	delete(s.running, t)
}

// change stores next in place of t unless that breaks an "at most one"
// rule (a second pending retry_payment or end_dunning not cancelled of the
// invoice), as PostgreSQL's unique indexes refuse it.
func (u *unit) change(ten *tenant, t *domain.Task, next domain.Task) error {
	if r := ten.rival(&next); r != nil && r != t {
		return fmt.Errorf("task %s: %w: invoice %s has a %s already", t.ID, domain.ErrConflict, t.StripeInvoiceID, t.Type)
	}
	u.update(t, next, time.Time{})
	return nil
}

// find returns the tenant's task with this id, in any spelling. Ids are
// unique across merchants, so one map holds every task; the merchant must
// match.
func (s *Store) find(ten *tenant, id domain.TaskID) (*domain.Task, error) {
	if canon, err := domain.ParseTaskID(string(id)); err == nil {
		if t := s.tasks[canon]; t != nil && t.MerchantID == ten.id {
			return t, nil
		}
	}
	return nil, fmt.Errorf("task %s: %w", id, domain.ErrNotFound)
}

// Schedule applies the "at most one" rules to each task in turn, as the
// tasks before it left them.
func (c scope) Schedule(ctx context.Context, merchant domain.MerchantID, tasks []domain.Task) ([]domain.Task, error) {
	checked := make([]domain.Task, len(tasks))
	for i, t := range tasks {
		var err error
		if checked[i], err = checkNewTask(t, merchant); err != nil {
			return nil, fmt.Errorf("schedule task %s: %w", t.ID, err)
		}
	}
	stored := make([]domain.Task, 0, len(tasks))
	err := c.doFor(ctx, merchant, func(u *unit, ten *tenant) error {
		for _, t := range checked {
			t.MerchantID = ten.id
			if cur := ten.rival(&t); cur != nil {
				// The stored task stays. A retry_payment (a rival only
				// while pending) takes the new plan, a pending end_dunning
				// the new schedule; any other is left as it is.
				if t.Type == domain.TypeRetryPayment || t.Type == domain.TypeEndDunning && cur.Status == domain.StatusPending {
					next := *cur
					next.RunAt, next.UpdatedAt = t.RunAt, t.UpdatedAt
					if t.Type == domain.TypeRetryPayment {
						next.StripeEventID, next.InvoiceAttempt, next.DeclineCode = t.StripeEventID, t.InvoiceAttempt, t.DeclineCode
					}
					u.update(cur, next, time.Time{})
					stored = append(stored, next)
				}
				continue
			}
			if u.s.tasks[t.ID] != nil {
				return fmt.Errorf("schedule task %s: %w: id already used", t.ID, domain.ErrConflict)
			}
			u.add(&t)
			stored = append(stored, t)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return stored, nil
}

// checkNewTask returns the task as it is stored: a canonical id, times as
// PostgreSQL keeps them.
func checkNewTask(t domain.Task, merchant domain.MerchantID) (domain.Task, error) {
	id, err := domain.ParseTaskID(string(t.ID))
	switch {
	case t.MerchantID != merchant:
		return t, fmt.Errorf("%w: task belongs to merchant %q, not %q", domain.ErrInvalid, t.MerchantID, merchant)
	case err != nil:
		return t, err
	case !t.Type.Valid() || !t.Status.Valid():
		return t, fmt.Errorf("%w: task type %q or status %q", domain.ErrInvalid, t.Type, t.Status)
	}
	t.ID, t.RunAt, t.CreatedAt, t.UpdatedAt = id, norm(t.RunAt), norm(t.CreatedAt), norm(t.UpdatedAt)
	return t, t.CheckText()
}

func (c scope) CancelPending(ctx context.Context, merchant domain.MerchantID, sel domain.CancelSelector, now time.Time) ([]domain.TaskID, error) {
	if (sel.InvoiceID == "") == (sel.SubscriptionID == "") || !domain.StorableText(sel.Reason) {
		return nil, fmt.Errorf("cancel tasks: %w: name exactly one of invoice and subscription, and a reason without a NUL character", domain.ErrInvalid)
	}
	ids := []domain.TaskID{}
	err := c.doFor(ctx, merchant, func(u *unit, ten *tenant) error {
		matched := ten.byInvoice[sel.InvoiceID]
		if sel.SubscriptionID != "" {
			matched = ten.bySub[sel.SubscriptionID]
		}
		for _, t := range matched {
			if t.Status == domain.StatusPending && (len(sel.Types) == 0 || slices.Contains(sel.Types, t.Type)) {
				next := *t
				next.Status, next.Reason, next.UpdatedAt = domain.StatusCancelled, sel.Reason, norm(now)
				u.update(t, next, time.Time{})
				ids = append(ids, t.ID)
			}
		}
		return nil
	})
	slices.Sort(ids) // the same answer whatever the order of the index
	return ids, err
}

// List walks the merchant's tasks back from the cursor, found by binary
// search.
func (c scope) List(ctx context.Context, merchant domain.MerchantID, f domain.TaskFilter) (domain.TaskPage, error) {
	if f.Status != "" && !f.Status.Valid() {
		return domain.TaskPage{}, fmt.Errorf("list tasks: %w: unknown status %q", domain.ErrInvalid, f.Status)
	}
	var after *domain.Task
	if f.After != nil {
		id, err := domain.ParseTaskID(string(f.After.ID))
		if err != nil {
			return domain.TaskPage{}, fmt.Errorf("list tasks: %w: bad cursor", domain.ErrInvalid)
		}
		after = &domain.Task{ID: id, CreatedAt: norm(f.After.CreatedAt)}
	}
	// The use case validates the limit; here it only bounds the work.
	limit := min(cmp.Or(max(f.Limit, 0), domain.DefaultPageSize), domain.MaxPageSize)
	var page domain.TaskPage
	err := c.doFor(ctx, merchant, func(_ *unit, ten *tenant) error {
		i := len(ten.list)
		if after != nil {
			i, _ = slices.BinarySearchFunc(ten.list, after, byAge)
		}
		// Sized once: a store's live heap makes every collection dear.
		page.Tasks = make([]domain.Task, 0, min(limit, i))
		for i--; i >= 0; i-- {
			if t := ten.list[i]; f.Status == "" || t.Status == f.Status {
				if len(page.Tasks) == limit {
					page.Next = &domain.TaskCursor{CreatedAt: page.Tasks[limit-1].CreatedAt, ID: page.Tasks[limit-1].ID}
					break
				}
				page.Tasks = append(page.Tasks, *t)
			}
		}
		return nil
	})
	return page, err
}

func (c scope) Get(ctx context.Context, merchant domain.MerchantID, id domain.TaskID) (domain.Task, error) {
	var out domain.Task
	err := c.doFor(ctx, merchant, func(u *unit, ten *tenant) error {
		t, err := u.s.find(ten, id)
		if err == nil {
			out = *t
		}
		return err
	})
	return out, err
}

func (c scope) Retry(ctx context.Context, merchant domain.MerchantID, id domain.TaskID, now time.Time) (domain.Task, error) {
	var out domain.Task
	err := c.doFor(ctx, merchant, func(u *unit, ten *tenant) error {
		t, err := u.s.find(ten, id)
		if err != nil {
			return err
		}
		if !t.Status.Retryable() {
			return fmt.Errorf("retry task %s: %w: it is %s", id, domain.ErrConflict, t.Status)
		}
		next := *t
		next.Status, next.RunAt, next.UpdatedAt, next.Reason = domain.StatusPending, norm(now), norm(now), ""
		out = next
		return u.change(ten, t, next)
	})
	if err != nil {
		return domain.Task{}, err
	}
	return out, nil
}

func (c scope) Delete(ctx context.Context, merchant domain.MerchantID, id domain.TaskID) error {
	return c.doFor(ctx, merchant, func(u *unit, ten *tenant) error {
		t, err := u.s.find(ten, id)
		switch {
		case err != nil:
			return err
		case t.Status == domain.StatusRunning:
			return fmt.Errorf("delete task %s: %w: it is running", id, domain.ErrConflict)
		}
		u.remove(t)
		return nil
	})
}

func (c scope) CountByStatus(ctx context.Context, merchant domain.MerchantID) (map[domain.TaskStatus]int, error) {
	counts := map[domain.TaskStatus]int{}
	err := c.doFor(ctx, merchant, func(_ *unit, ten *tenant) error {
		for _, t := range ten.list {
			counts[t.Status]++
		}
		return nil
	})
	return counts, err
}

func (c scope) Exists(ctx context.Context, id domain.TaskID) (bool, error) {
	var ok bool
	err := c.do(ctx, func(u *unit) error {
		canon, err := domain.ParseTaskID(string(id))
		ok = err == nil && u.s.tasks[canon] != nil
		return nil
	})
	return ok, err
}
