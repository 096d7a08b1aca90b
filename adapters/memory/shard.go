package memory

import (
	"strings"
	"time"

	"github.com/recoupdev/recoup/domain"
)

// shard is one merchant's tasks and recovery ledger with their indexes.
// Whoever holds sem (one unit of work at a time) may read and write it.
type shard struct {
	sem chan struct{}

	tasks    map[domain.TaskID]taskRecord
	all      *skipList[listKey]
	byStatus map[domain.TaskStatus]*skipList[listKey]
	counts   map[domain.TaskStatus]int

	byInvoice      map[string]map[domain.TaskID]struct{}
	bySubscription map[string]map[domain.TaskID]struct{}
	// The "at most one" rules: a notify_payment_failed per (invoice,
	// attempt), whatever its status, and a pending retry_payment per invoice.
	notified     map[notifyKey]domain.TaskID
	pendingRetry map[string]domain.TaskID

	ledger map[string]ledgerEntry
	sums   map[string]domain.CurrencyRecovery
}

// taskRecord is a stored task and what only storage knows of it.
type taskRecord struct {
	task       domain.Task
	leaseUntil time.Time // while running: when another worker may take it over
}

type notifyKey struct {
	invoice string
	attempt int
}

// listKey orders the task list: newest first, ties broken by id
// descending (domain.NewerFirst).
type listKey struct {
	created time.Time
	id      domain.TaskID
}

func cmpList(a, b listKey) int {
	if c := b.created.Compare(a.created); c != 0 {
		return c
	}
	return strings.Compare(string(b.id), string(a.id))
}

func newShard() *shard {
	sh := &shard{
		sem:            make(chan struct{}, 1),
		tasks:          map[domain.TaskID]taskRecord{},
		all:            newSkipList(cmpList),
		byStatus:       map[domain.TaskStatus]*skipList[listKey]{},
		counts:         map[domain.TaskStatus]int{},
		byInvoice:      map[string]map[domain.TaskID]struct{}{},
		bySubscription: map[string]map[domain.TaskID]struct{}{},
		notified:       map[notifyKey]domain.TaskID{},
		pendingRetry:   map[string]domain.TaskID{},
		ledger:         map[string]ledgerEntry{},
		sums:           map[string]domain.CurrencyRecovery{},
	}
	for _, st := range domain.TaskStatuses {
		sh.byStatus[st] = newSkipList(cmpList)
	}
	return sh
}

// put adds a task that is not stored, to the map and every index.
func (sh *shard) put(r taskRecord) {
	t := r.task
	sh.tasks[t.ID] = r
	k := listKey{created: t.CreatedAt, id: t.ID}
	sh.all.insert(k)
	if l := sh.byStatus[t.Status]; l != nil {
		l.insert(k)
	}
	sh.counts[t.Status]++
	addToSet(sh.byInvoice, t.StripeInvoiceID, t.ID)
	addToSet(sh.bySubscription, t.StripeSubscriptionID, t.ID)
	switch {
	case t.Type == domain.TypeNotifyPaymentFailed:
		sh.notified[notifyKey{t.StripeInvoiceID, t.InvoiceAttempt}] = t.ID
	case t.Type == domain.TypeRetryPayment && t.Status == domain.StatusPending:
		sh.pendingRetry[t.StripeInvoiceID] = t.ID
	}
}

// remove takes a task out of the map and every index; absent is a no-op.
func (sh *shard) remove(id domain.TaskID) {
	r, ok := sh.tasks[id]
	if !ok {
		return
	}
	t := r.task
	delete(sh.tasks, id)
	k := listKey{created: t.CreatedAt, id: t.ID}
	sh.all.remove(k)
	if l := sh.byStatus[t.Status]; l != nil {
		l.remove(k)
	}
	if sh.counts[t.Status]--; sh.counts[t.Status] == 0 {
		delete(sh.counts, t.Status)
	}
	removeFromSet(sh.byInvoice, t.StripeInvoiceID, t.ID)
	removeFromSet(sh.bySubscription, t.StripeSubscriptionID, t.ID)
	nk := notifyKey{t.StripeInvoiceID, t.InvoiceAttempt}
	if t.Type == domain.TypeNotifyPaymentFailed && sh.notified[nk] == id {
		delete(sh.notified, nk)
	}
	if t.Type == domain.TypeRetryPayment && sh.pendingRetry[t.StripeInvoiceID] == id {
		delete(sh.pendingRetry, t.StripeInvoiceID)
	}
}

func addToSet(m map[string]map[domain.TaskID]struct{}, key string, id domain.TaskID) {
	if key == "" {
		return
	}
	set := m[key]
	if set == nil {
		set = map[domain.TaskID]struct{}{}
		m[key] = set
	}
	set[id] = struct{}{}
}

func removeFromSet(m map[string]map[domain.TaskID]struct{}, key string, id domain.TaskID) {
	if set := m[key]; set != nil {
		delete(set, id)
		if len(set) == 0 {
			delete(m, key)
		}
	}
}

// ledgerEntry is one invoice's recovery record.
type ledgerEntry struct {
	currency  string
	failed    int64
	failedAt  time.Time
	recovered int64
	paid      bool
	paidAt    time.Time
}

func (sh *shard) putLedger(invoice string, e ledgerEntry) {
	sh.ledger[invoice] = e
	s := sh.sums[e.currency]
	s.FailedAmount += e.failed
	s.RecoveredAmount += e.recovered
	sh.sums[e.currency] = s
}

func (sh *shard) removeLedger(invoice string) {
	e, ok := sh.ledger[invoice]
	if !ok {
		return
	}
	delete(sh.ledger, invoice)
	s := sh.sums[e.currency]
	s.FailedAmount -= e.failed
	s.RecoveredAmount -= e.recovered
	if s == (domain.CurrencyRecovery{}) {
		delete(sh.sums, e.currency)
		return
	}
	sh.sums[e.currency] = s
}
