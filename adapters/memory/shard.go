package memory

import (
	"iter"
	"time"

	"github.com/recoupdev/recoup/domain"
)

// shard is one merchant's tasks and recovery ledger with their indexes.
// Whoever holds lock (one unit of work at a time) may read and write it.
//
// Tasks live by value in chunks of slots, found by id through
// one small map (id to slot number), so that storing a task neither
// allocates it on its own nor moves the others. The invoice and
// subscription indexes are chains threaded through the slots, not sets,
// so adding a task to them costs no allocation at all.
type shard struct {
	lock     shardLock
	merchant domain.MerchantID
	index    int32 // in Store.shardList

	ids    map[taskKey]int32
	chunks [][]slot // full ones hold chunkSize slots; only the last grows
	free   []int32  // slots emptied by deletes, reused first
	used   int32    // slots ever handed out

	all      *btree[listKey]
	byStatus [statusCount]*btree[listKey]
	counts   [statusCount]int

	// heads hold the first slot of each chain, by invoice and by
	// subscription. The invoice chains also serve the "at most one" rules
	// (a notify_payment_failed per invoice and attempt, whatever its
	// status; one pending retry_payment per invoice) by a walk over the
	// invoice's few tasks, which is cheaper than keeping two more maps up
	// to date.
	heads [2]map[string]int32 // by chain: invoiceChain, subscriptionChain

	ledger map[string]ledgerEntry
	sums   map[string]domain.CurrencyRecovery
}

// chunkBits sizes the slot chunks (128 slots each). The first chunk
// starts small and grows by copying, so that a merchant with a few tasks
// takes little room; later ones are made whole and never move.
const (
	chunkBits      = 7
	chunkSize      = 1 << chunkBits
	firstChunkSize = 4
)

// slot holds one task and its links in the invoice and subscription
// chains (slot numbers, noSlot at the ends).
type slot struct {
	rec   taskRecord
	links [2]chainLink // by chain: invoiceChain, subscriptionChain
}

// chainLink is a slot's place in one chain.
type chainLink struct{ prev, next int32 }

// The chains a slot can be in.
const (
	invoiceChain = iota
	subscriptionChain
)

const noSlot int32 = -1

// statusCount is len(domain.TaskStatuses).
const statusCount = 5

// statusIndex numbers the statuses for the arrays above; -1 for an unknown
// one (never stored: Schedule refuses it).
func statusIndex(s domain.TaskStatus) int {
	switch s {
	case domain.StatusPending:
		return 0
	case domain.StatusRunning:
		return 1
	case domain.StatusSucceeded:
		return 2
	case domain.StatusFailed:
		return 3
	case domain.StatusCancelled:
		return 4
	}
	return -1
}

// taskRecord is a stored task and what only storage knows of it.
type taskRecord struct {
	task       domain.Task
	leaseUntil time.Time // while running: when another worker may take it over
}

// listKey orders the task list: newest first, ties broken by id
// descending (domain.NewerFirst). created is in Unix microseconds (stored
// times are whole microseconds); slot is where the task lives, so that a
// page reads tasks without looking their ids up, and takes no part in the
// order.
type listKey struct {
	created int64
	id      taskKey
	slot    int32
}

func newListKey(created time.Time, id taskKey, slot int32) listKey {
	return listKey{created: created.UnixMicro(), id: id, slot: slot}
}

func cmpList(a, b listKey) int {
	if a.created != b.created {
		if a.created > b.created {
			return -1
		}
		return 1
	}
	return cmpKey(b.id, a.id)
}

func newShard(m domain.MerchantID, index int32) *shard {
	sh := &shard{
		lock:     newShardLock(),
		merchant: m,
		index:    index,
		ids:      map[taskKey]int32{},
		all:      newBTree(cmpList),
		heads:    [2]map[string]int32{{}, {}},
		ledger:   map[string]ledgerEntry{},
		sums:     map[string]domain.CurrencyRecovery{},
	}
	for i := range sh.byStatus {
		sh.byStatus[i] = newBTree(cmpList)
	}
	return sh
}

func (sh *shard) slot(i int32) *slot {
	return &sh.chunks[i>>chunkBits][i&(chunkSize-1)]
}

// get returns the stored task with this id.
func (sh *shard) get(id domain.TaskID) (taskRecord, bool) {
	k, ok := lookupKey(id)
	if !ok {
		return taskRecord{}, false
	}
	return sh.getKey(k)
}

// getKey returns the stored task with this key.
func (sh *shard) getKey(k taskKey) (taskRecord, bool) {
	i, ok := sh.ids[k]
	if !ok {
		return taskRecord{}, false
	}
	return sh.slot(i).rec, true
}

func (sh *shard) has(id domain.TaskID) bool {
	k, ok := lookupKey(id)
	if !ok {
		return false
	}
	_, ok = sh.ids[k]
	return ok
}

func (sh *shard) newSlot() int32 {
	if n := len(sh.free); n > 0 {
		i := sh.free[n-1]
		sh.free = sh.free[:n-1]
		return i
	}
	// No *slot is held across this call, so the last chunk may move.
	i := sh.used
	c := int(i >> chunkBits)
	switch {
	case c == len(sh.chunks) && c == 0:
		sh.chunks = append(sh.chunks, make([]slot, 0, firstChunkSize))
	case c == len(sh.chunks):
		sh.chunks = append(sh.chunks, make([]slot, 0, chunkSize))
	}
	sh.chunks[c] = append(sh.chunks[c], slot{})
	sh.used++
	return i
}

// set stores r, in place of the task with its id if there is one, keeping
// every index right. An update touches only the indexes whose keys moved.
func (sh *shard) set(r taskRecord) {
	id := mustKeyOf(r.task.ID)
	i, ok := sh.ids[id]
	if !ok {
		sh.put(r)
		return
	}
	s := sh.slot(i)
	old, t := s.rec.task, r.task
	if old.CreatedAt != t.CreatedAt || old.Status != t.Status {
		oldKey := newListKey(old.CreatedAt, id, i)
		newKey := newListKey(t.CreatedAt, id, i)
		if old.CreatedAt != t.CreatedAt {
			sh.all.remove(oldKey)
			sh.all.insert(newKey)
		}
		if si := statusIndex(old.Status); si >= 0 {
			sh.byStatus[si].remove(oldKey)
			sh.counts[si]--
		}
		if si := statusIndex(t.Status); si >= 0 {
			sh.byStatus[si].insert(newKey)
			sh.counts[si]++
		}
	}
	if old.StripeInvoiceID != t.StripeInvoiceID || inInvoiceChain(old) != inInvoiceChain(t) {
		sh.unlinkInvoice(i, old)
		sh.linkInvoice(i, t)
	}
	if old.StripeSubscriptionID != t.StripeSubscriptionID {
		sh.unlinkSubscription(i, old.StripeSubscriptionID)
		sh.linkSubscription(i, t.StripeSubscriptionID)
	}
	s.rec = r
}

// put adds a task that is not stored, to a free slot and every index.
func (sh *shard) put(r taskRecord) { sh.putKey(r, mustKeyOf(r.task.ID)) }

// putKey is put of a task whose id's key is id.
func (sh *shard) putKey(r taskRecord, id taskKey) {
	t := r.task
	i := sh.newSlot()
	sh.ids[id] = i
	s := sh.slot(i)
	s.rec = r
	k := newListKey(t.CreatedAt, id, i)
	sh.all.insert(k)
	if si := statusIndex(t.Status); si >= 0 {
		sh.byStatus[si].insert(k)
		sh.counts[si]++
	}
	sh.linkInvoice(i, t)
	sh.linkSubscription(i, t.StripeSubscriptionID)
}

// remove takes a task out of its slot and every index; absent is a no-op.
func (sh *shard) remove(id domain.TaskID) {
	key, ok := lookupKey(id)
	if !ok {
		return
	}
	i, ok := sh.ids[key]
	if !ok {
		return
	}
	s := sh.slot(i)
	t := s.rec.task
	delete(sh.ids, key)
	k := newListKey(t.CreatedAt, key, i)
	sh.all.remove(k)
	if si := statusIndex(t.Status); si >= 0 {
		sh.byStatus[si].remove(k)
		sh.counts[si]--
	}
	sh.unlinkInvoice(i, t)
	sh.unlinkSubscription(i, t.StripeSubscriptionID)
	*s = slot{} // let go of the task's strings
	sh.free = append(sh.free, i)
}

// The chains: a task joins at the front, so each link and unlink is O(1).

// inInvoiceChain reports whether t is in its invoice's chain: every task
// with an invoice, and the two types the "at most one" rules are about
// even without one.
func inInvoiceChain(t domain.Task) bool {
	return t.StripeInvoiceID != "" || t.Type == domain.TypeNotifyPaymentFailed || t.Type == domain.TypeRetryPayment
}

func (sh *shard) linkInvoice(i int32, t domain.Task) {
	if inInvoiceChain(t) {
		sh.link(invoiceChain, i, t.StripeInvoiceID)
	}
}

func (sh *shard) unlinkInvoice(i int32, t domain.Task) {
	if inInvoiceChain(t) {
		sh.unlink(invoiceChain, i, t.StripeInvoiceID)
	}
}

func (sh *shard) linkSubscription(i int32, sub string) {
	if sub != "" {
		sh.link(subscriptionChain, i, sub)
	}
}

func (sh *shard) unlinkSubscription(i int32, sub string) {
	if sub != "" {
		sh.unlink(subscriptionChain, i, sub)
	}
}

// link puts slot i at the front of chain c's list for key.
func (sh *shard) link(c int, i int32, key string) {
	l := &sh.slot(i).links[c]
	*l = chainLink{prev: noSlot, next: noSlot}
	if h, ok := sh.heads[c][key]; ok {
		l.next = h
		sh.slot(h).links[c].prev = i
	}
	sh.heads[c][key] = i
}

// unlink takes slot i out of chain c's list for key.
func (sh *shard) unlink(c int, i int32, key string) {
	l := &sh.slot(i).links[c]
	switch {
	case l.prev != noSlot:
		sh.slot(l.prev).links[c].next = l.next
	case l.next != noSlot:
		sh.heads[c][key] = l.next
	default:
		delete(sh.heads[c], key)
	}
	if l.next != noSlot {
		sh.slot(l.next).links[c].prev = l.prev
	}
	*l = chainLink{prev: noSlot, next: noSlot}
}

// chain yields the tasks of chain c's list for key.
func (sh *shard) chain(c int, key string) iter.Seq[*taskRecord] {
	return func(yield func(*taskRecord) bool) {
		h, ok := sh.heads[c][key]
		for i := h; ok && i != noSlot; i = sh.slot(i).links[c].next {
			if !yield(&sh.slot(i).rec) {
				return
			}
		}
	}
}

// notified reports whether the invoice has a notify_payment_failed for
// this attempt.
func (sh *shard) notified(invoice string, attempt int) bool {
	for r := range sh.chain(invoiceChain, invoice) {
		if r.task.Type == domain.TypeNotifyPaymentFailed && r.task.InvoiceAttempt == attempt {
			return true
		}
	}
	return false
}

// pendingRetry returns the invoice's pending retry_payment, if it has one.
func (sh *shard) pendingRetry(invoice string) (taskRecord, bool) {
	for r := range sh.chain(invoiceChain, invoice) {
		if r.task.Type == domain.TypeRetryPayment && r.task.Status == domain.StatusPending {
			return *r, true
		}
	}
	return taskRecord{}, false
}

// invoiceTasks returns the ids of the invoice's tasks (any order).
func (sh *shard) invoiceTasks(invoice string) []domain.TaskID {
	return sh.chainIDs(invoiceChain, invoice)
}

// subscriptionTasks returns the ids of the subscription's tasks (any
// order).
func (sh *shard) subscriptionTasks(sub string) []domain.TaskID {
	return sh.chainIDs(subscriptionChain, sub)
}

func (sh *shard) chainIDs(c int, key string) []domain.TaskID {
	var out []domain.TaskID
	for r := range sh.chain(c, key) {
		out = append(out, r.task.ID)
	}
	return out
}

// countsMap returns the counts of the statuses that have tasks.
func (sh *shard) countsMap() map[domain.TaskStatus]int {
	out := map[domain.TaskStatus]int{}
	for i, st := range domain.TaskStatuses {
		if sh.counts[i] > 0 {
			out[st] = sh.counts[i]
		}
	}
	return out
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

// replaceLedger stores e in place of old (ok: there was one) with one map
// write, moving the sums by the difference.
func (sh *shard) replaceLedger(invoice string, old ledgerEntry, ok bool, e ledgerEntry) {
	if ok && old.currency != e.currency {
		sh.removeLedger(invoice)
		sh.putLedger(invoice, e)
		return
	}
	sh.ledger[invoice] = e
	s := sh.sums[e.currency]
	s.FailedAmount += e.failed
	s.RecoveredAmount += e.recovered
	if ok {
		s.FailedAmount -= old.failed
		s.RecoveredAmount -= old.recovered
	}
	sh.sums[e.currency] = s // kept even at zero, as putLedger keeps it
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
