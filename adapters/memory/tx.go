package memory

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// tx is a unit of work: the shards it holds, what they were before it
// touched them, and the event locks it took.
type tx struct {
	s      *Store
	held   map[domain.MerchantID]*heldShard
	order  []*heldShard
	locks  []*eventLock
	closed bool
}

// heldShard is a shard a unit of work holds, with its undo log: the state
// of every task and ledger entry before the unit of work first changed it.
type heldShard struct {
	merchant domain.MerchantID
	sh       *shard
	tasks    map[domain.TaskID]priorTask
	ledger   map[string]priorLedger
}

type priorTask struct {
	rec taskRecord
	ok  bool
}

type priorLedger struct {
	e  ledgerEntry
	ok bool
}

var _ ports.Tx = (*tx)(nil)

func (s *Store) begin() *tx { return &tx{s: s, held: map[domain.MerchantID]*heldShard{}} }

// Events returns the event locker of the unit of work.
func (t *tx) Events() ports.EventLocker { return eventLocker{t: t} }

// Tasks returns the task repository inside the unit of work.
func (t *tx) Tasks() ports.TenantTaskRepository { return taskRepo{s: t.s, t: t} }

// Ledger returns the recovery ledger inside the unit of work.
func (t *tx) Ledger() ports.RecoveryLedger { return ledger{s: t.s, t: t} }

// shard takes the merchant's shard for the rest of the unit of work,
// waiting (as long as ctx allows) for a unit of work that holds it.
func (t *tx) shard(ctx context.Context, m domain.MerchantID) (*heldShard, error) {
	if err := validMerchant(m); err != nil {
		return nil, err
	}
	if h := t.held[m]; h != nil {
		return h, nil
	}
	sh := t.s.shardOf(m)
	select {
	case sh.sem <- struct{}{}:
	default:
		select {
		case sh.sem <- struct{}{}:
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for merchant %s: %w", m, ctx.Err())
		}
	}
	return t.hold(m, sh), nil
}

// tryShard takes the merchant's shard only if nobody holds it, as a
// worker's claim skips rows another transaction has locked.
func (t *tx) tryShard(m domain.MerchantID) (*heldShard, bool) {
	if h := t.held[m]; h != nil {
		return h, true
	}
	sh := t.s.shardOf(m)
	select {
	case sh.sem <- struct{}{}:
		return t.hold(m, sh), true
	default:
		return nil, false
	}
}

func (t *tx) hold(m domain.MerchantID, sh *shard) *heldShard {
	h := &heldShard{merchant: m, sh: sh, tasks: map[domain.TaskID]priorTask{}, ledger: map[string]priorLedger{}}
	t.held[m] = h
	t.order = append(t.order, h)
	return h
}

// setTask stores r in place of the task with its id (if any), remembering
// the task's state before this unit of work.
func (h *heldShard) setTask(r taskRecord) {
	h.saveTask(r.task.ID)
	h.sh.remove(r.task.ID)
	h.sh.put(r)
}

func (h *heldShard) deleteTask(id domain.TaskID) {
	h.saveTask(id)
	h.sh.remove(id)
}

func (h *heldShard) saveTask(id domain.TaskID) {
	if _, seen := h.tasks[id]; !seen {
		r, ok := h.sh.tasks[id]
		h.tasks[id] = priorTask{rec: r, ok: ok}
	}
}

func (h *heldShard) setLedger(invoice string, e ledgerEntry) {
	if _, seen := h.ledger[invoice]; !seen {
		old, ok := h.sh.ledger[invoice]
		h.ledger[invoice] = priorLedger{e: old, ok: ok}
	}
	h.sh.removeLedger(invoice)
	h.sh.putLedger(invoice, e)
}

// commit publishes the unit of work: the cross-merchant indexes learn its
// changes, its event locks become permanent, and its shards are released.
func (t *tx) commit() {
	t.closed = true
	t.s.globalMu.Lock()
	for _, h := range t.order {
		for id, prior := range h.tasks {
			cur, ok := h.sh.tasks[id]
			t.s.reindex(h.merchant, id, prior, priorTask{rec: cur, ok: ok})
		}
	}
	t.s.globalMu.Unlock()
	t.s.releaseEvents(t.locks, true)
	t.release()
}

// rollback restores every task and ledger entry the unit of work changed,
// drops its event locks (waking one waiter each) and releases its shards.
func (t *tx) rollback() {
	t.closed = true
	for _, h := range t.order {
		// Take out every changed task before putting any back, so the
		// unique indexes never see two versions at once.
		for id := range h.tasks {
			h.sh.remove(id)
		}
		for _, prior := range h.tasks {
			if prior.ok {
				h.sh.put(prior.rec)
			}
		}
		for inv, prior := range h.ledger {
			h.sh.removeLedger(inv)
			if prior.ok {
				h.sh.putLedger(inv, prior.e)
			}
		}
	}
	t.s.releaseEvents(t.locks, false)
	t.release()
}

func (t *tx) release() {
	for _, h := range t.order {
		<-h.sh.sem
	}
	t.order, t.held, t.locks = nil, nil, nil
}

// dueKey orders the worker's queue: by when a task becomes claimable (its
// RunAt while pending, its lease end while running), then id.
type dueKey struct {
	at       time.Time
	id       domain.TaskID
	merchant domain.MerchantID
	runAt    time.Time
	running  bool
}

func cmpDue(a, b dueKey) int {
	if c := a.at.Compare(b.at); c != 0 {
		return c
	}
	return strings.Compare(string(a.id), string(b.id))
}

func dueOf(m domain.MerchantID, r taskRecord) (dueKey, bool) {
	switch r.task.Status {
	case domain.StatusPending:
		return dueKey{at: r.task.RunAt, id: r.task.ID, merchant: m, runAt: r.task.RunAt}, true
	case domain.StatusRunning:
		return dueKey{at: r.leaseUntil, id: r.task.ID, merchant: m, runAt: r.task.RunAt, running: true}, true
	}
	return dueKey{}, false
}

// reindex moves one task's entries in the cross-merchant indexes from its
// state before a unit of work to its state after. Callers hold globalMu.
func (s *Store) reindex(m domain.MerchantID, id domain.TaskID, before, after priorTask) {
	if before.ok {
		if k, ok := dueOf(m, before.rec); ok {
			s.due.remove(k)
		}
		if !after.ok {
			delete(s.owners, id)
		}
	}
	if after.ok {
		if k, ok := dueOf(m, after.rec); ok {
			s.due.insert(k)
		}
		s.owners[id] = m
	}
}
