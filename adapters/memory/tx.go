package memory

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// tx is a unit of work: the shards it holds, what they were before it
// touched them, and the event locks it took.
//
// A tx is small and made fresh for every unit of work, so that a Tx kept
// past its end stays closed; what grows with the work (the held shards and
// their undo logs) comes from a pool and goes back to it at the end.
type tx struct {
	s      *Store
	w      *txWork
	closed bool
	// The repositories handed out by Tasks and Ledger, kept here so that
	// handing them out allocates nothing.
	tasks  taskRepo
	ledger ledger
}

// txWork is the reusable part of a unit of work.
type txWork struct {
	// held lists the shards in the order the unit of work took them. Most
	// units of work hold one, so a short list beats a map; byMerchant is
	// made only once a unit of work holds many.
	held       []*heldShard
	byMerchant map[domain.MerchantID]*heldShard
	locks      []string // ids of the event locks taken
	spare      []*heldShard
}

// heldManyShards is when a unit of work starts indexing its held shards.
const heldManyShards = 8

// heldShard is a shard a unit of work holds, with its undo log: the state
// of every task and ledger entry before the unit of work first changed it,
// in the order first changed.
type heldShard struct {
	merchant domain.MerchantID
	sh       *shard
	tasks    []priorTask
	ledger   []priorLedger
	// seen indexes tasks by id once the log is long (a big claim).
	seen map[domain.TaskID]struct{}
}

// undoManyTasks is when an undo log starts indexing its task ids.
const undoManyTasks = 16

type priorTask struct {
	id  domain.TaskID
	key taskKey // of id, for commit's index updates
	rec taskRecord
	ok  bool
}

type priorLedger struct {
	invoice string
	e       ledgerEntry
	ok      bool
}

var _ ports.Tx = (*tx)(nil)

var txWorkPool = sync.Pool{New: func() any { return new(txWork) }}

func (s *Store) begin() *tx {
	t := &tx{s: s, w: txWorkPool.Get().(*txWork)}
	t.tasks = taskRepo{s: s, t: t}
	t.ledger = ledger{s: s, t: t}
	return t
}

// Events returns the event locker of the unit of work.
func (t *tx) Events() ports.EventLocker { return eventLocker{t: t} }

// Tasks returns the task repository inside the unit of work.
func (t *tx) Tasks() ports.TenantTaskRepository { return &t.tasks }

// Ledger returns the recovery ledger inside the unit of work.
func (t *tx) Ledger() ports.RecoveryLedger { return &t.ledger }

// heldBy returns the held shard of the merchant, or nil.
func (t *tx) heldBy(m domain.MerchantID) *heldShard {
	w := t.w
	if w.byMerchant != nil {
		return w.byMerchant[m]
	}
	for _, h := range w.held {
		if h.merchant == m {
			return h
		}
	}
	return nil
}

// shard takes the merchant's shard for the rest of the unit of work,
// waiting (as long as ctx allows) for a unit of work that holds it.
func (t *tx) shard(ctx context.Context, m domain.MerchantID) (*heldShard, error) {
	if err := validMerchant(m); err != nil {
		return nil, err
	}
	if h := t.heldBy(m); h != nil {
		return h, nil
	}
	sh := t.s.shardOf(m)
	if err := sh.lock.lock(ctx); err != nil {
		return nil, fmt.Errorf("wait for merchant %s: %w", m, err)
	}
	return t.hold(m, sh), nil
}

// tryShard takes the merchant's shard only if nobody holds it, as a
// worker's claim skips rows another transaction has locked.
func (t *tx) tryShard(m domain.MerchantID) (*heldShard, bool) {
	if h := t.heldBy(m); h != nil {
		return h, true
	}
	sh := t.s.shardOf(m)
	if !sh.lock.tryLock() {
		return nil, false
	}
	return t.hold(m, sh), true
}

func (t *tx) hold(m domain.MerchantID, sh *shard) *heldShard {
	w := t.w
	var h *heldShard
	if n := len(w.spare); n > 0 {
		h = w.spare[n-1]
		w.spare = w.spare[:n-1]
	} else {
		h = new(heldShard)
	}
	h.merchant, h.sh = m, sh
	w.held = append(w.held, h)
	switch {
	case w.byMerchant != nil:
		w.byMerchant[m] = h
	case len(w.held) > heldManyShards:
		w.byMerchant = make(map[domain.MerchantID]*heldShard, 2*len(w.held))
		for _, x := range w.held {
			w.byMerchant[x.merchant] = x
		}
	}
	return h
}

// setTask stores r in place of the task with its id (if any), remembering
// the task's state before this unit of work.
func (h *heldShard) setTask(r taskRecord) {
	if h.firstChange(r.task.ID) {
		k := mustKeyOf(r.task.ID)
		old, ok := h.sh.getKey(k)
		h.tasks = append(h.tasks, priorTask{id: r.task.ID, key: k, rec: old, ok: ok})
	}
	h.sh.set(r)
}

// addTask stores r, whose id (k) the shard does not hold.
func (h *heldShard) addTask(r taskRecord, k taskKey) {
	if h.firstChange(r.task.ID) {
		h.tasks = append(h.tasks, priorTask{id: r.task.ID, key: k})
	}
	h.sh.putKey(r, k)
}

// holdsOwn reports whether a shard the unit of work holds has a task with
// key k that the unit of work stored or changed, whichever merchant's: ids
// are unique across merchants. Committed tasks are for Store.owned to
// find.
func (t *tx) holdsOwn(k taskKey) bool {
	return slices.ContainsFunc(t.w.held, func(h *heldShard) bool { return h.holdsOwn(k) })
}

// holdsOwn is tx.holdsOwn for one shard: the tasks in its undo log.
func (h *heldShard) holdsOwn(k taskKey) bool {
	if h.seen == nil && !slices.ContainsFunc(h.tasks, func(p priorTask) bool { return p.key == k }) {
		return false
	}
	_, ok := h.sh.ids[k]
	return ok
}

func (h *heldShard) deleteTask(id domain.TaskID) {
	if h.firstChange(id) {
		k := mustKeyOf(id)
		old, ok := h.sh.getKey(k)
		h.tasks = append(h.tasks, priorTask{id: id, key: k, rec: old, ok: ok})
	}
	h.sh.remove(id)
}

// firstChange reports whether the unit of work changes the task for the
// first time, that is, whether its prior state still has to be logged.
func (h *heldShard) firstChange(id domain.TaskID) bool {
	if h.seen != nil {
		if _, ok := h.seen[id]; ok {
			return false
		}
		h.seen[id] = struct{}{}
		return true
	}
	for i := range h.tasks {
		if h.tasks[i].id == id {
			return false
		}
	}
	if len(h.tasks) >= undoManyTasks {
		h.seen = make(map[domain.TaskID]struct{}, 4*undoManyTasks)
		for i := range h.tasks {
			h.seen[h.tasks[i].id] = struct{}{}
		}
		h.seen[id] = struct{}{}
	}
	return true
}

// setLedger stores e as the invoice's entry, in place of old (ok: there
// was one), which the caller has just read.
func (h *heldShard) setLedger(invoice string, old ledgerEntry, ok bool, e ledgerEntry) {
	seen := false
	for i := range h.ledger {
		if h.ledger[i].invoice == invoice {
			seen = true
			break
		}
	}
	if !seen {
		h.ledger = append(h.ledger, priorLedger{invoice: invoice, e: old, ok: ok})
	}
	h.sh.replaceLedger(invoice, old, ok, e)
}

// commit publishes the unit of work: the cross-merchant indexes learn its
// changes, its event locks become permanent, and its shards are released.
func (t *tx) commit() {
	t.closed = true
	s := t.s
	s.globalMu.Lock()
	for _, h := range t.w.held {
		for i := range h.tasks {
			p := &h.tasks[i]
			cur, ok := h.sh.getKey(p.key)
			s.reindex(h.sh.index, p.key, p.rec, p.ok, cur, ok)
		}
	}
	s.globalMu.Unlock()
	s.releaseEvents(t, true)
	t.release()
}

// rollback restores every task and ledger entry the unit of work changed,
// drops its event locks (waking their waiters) and releases its shards.
func (t *tx) rollback() {
	t.closed = true
	for _, h := range t.w.held {
		// Take out every changed task before putting any back, so the
		// unique indexes never see two versions at once.
		for i := range h.tasks {
			h.sh.remove(h.tasks[i].id)
		}
		for i := range h.tasks {
			if p := &h.tasks[i]; p.ok {
				h.sh.put(p.rec)
			}
		}
		for i := range h.ledger {
			p := &h.ledger[i]
			h.sh.removeLedger(p.invoice)
			if p.ok {
				h.sh.putLedger(p.invoice, p.e)
			}
		}
	}
	t.s.releaseEvents(t, false)
	t.release()
}

// release gives the shards back and the reusable state to the pool,
// emptied so that the pool keeps no task alive.
func (t *tx) release() {
	w := t.w
	for _, h := range w.held {
		h.sh.lock.unlock()
		clear(h.tasks)
		clear(h.ledger)
		*h = heldShard{tasks: h.tasks[:0], ledger: h.ledger[:0]}
		w.spare = append(w.spare, h)
	}
	clear(w.held)
	w.held = w.held[:0]
	w.byMerchant = nil
	clear(w.locks)
	w.locks = w.locks[:0]
	t.w = nil
	txWorkPool.Put(w)
}

// dueKey orders the worker's queue: by when a task becomes claimable (its
// RunAt while pending, its lease end while running), then id. Times are
// Unix microseconds, which stored times are exactly.
type dueKey struct {
	at      int64
	id      taskKey
	runAt   int64
	shard   int32 // the index of the task's shard
	running bool
}

func cmpDue(a, b dueKey) int {
	if a.at != b.at {
		if a.at < b.at {
			return -1
		}
		return 1
	}
	return cmpKey(a.id, b.id)
}

func dueOf(shard int32, id taskKey, r *taskRecord) (dueKey, bool) {
	switch r.task.Status {
	case domain.StatusPending:
		at := r.task.RunAt.UnixMicro()
		return dueKey{at: at, id: id, shard: shard, runAt: at}, true
	case domain.StatusRunning:
		return dueKey{at: r.leaseUntil.UnixMicro(), id: id, shard: shard, runAt: r.task.RunAt.UnixMicro(), running: true}, true
	}
	return dueKey{}, false
}

// fromMicros turns a key's time back into the stored time.
func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// reindex moves one task's entries in the cross-merchant indexes from its
// state before a unit of work to its state after. Callers hold globalMu.
func (s *Store) reindex(shard int32, id taskKey, before taskRecord, wasStored bool, after taskRecord, isStored bool) {
	var bk, ak dueKey
	var bDue, aDue bool
	if wasStored {
		bk, bDue = dueOf(shard, id, &before)
	}
	if isStored {
		ak, aDue = dueOf(shard, id, &after)
	}
	if bDue && aDue && bk == ak {
		bDue, aDue = false, false // the task did not move in the queue
	}
	if bDue {
		s.due.remove(bk)
	}
	if aDue {
		s.due.insert(ak)
	}
	switch {
	case isStored && !wasStored:
		s.owners[id] = shard
	case wasStored && !isStored:
		delete(s.owners, id)
	}
}
