package memory

import (
	"context"
	"fmt"
	"time"

	"github.com/recoupdev/recoup/domain"
)

// queue is the worker's view of tasks, across merchants, driven by the
// committed due index.
type queue struct{ s *Store }

// claimScan is how many more due entries than still wanted one pass reads,
// so that a few skipped (busy) merchants do not end a claim early.
const claimScan = 16

// ClaimDue claims the oldest due tasks. A merchant whose shard a unit of
// work holds is skipped for this call, as Postgres's SKIP LOCKED skips
// locked rows; its tasks are claimed by a later call.
func (q queue) ClaimDue(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]domain.Task, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	claimed := []domain.Task{}
	if limit < 1 {
		return claimed, nil
	}
	if lease <= 0 {
		return nil, fmt.Errorf("claim tasks: %w: lease must be positive", domain.ErrInvalid)
	}
	s := q.s
	now = norm(now)
	s.claimMu.Lock()
	defer s.claimMu.Unlock()
	var from *dueKey
	for len(claimed) < limit {
		cands := s.dueCandidates(from, now, limit-len(claimed)+claimScan)
		if len(cands) == 0 {
			break
		}
		from = &cands[len(cands)-1]
		err := s.run(func(t *tx) error {
			for _, c := range cands {
				if len(claimed) == limit {
					break
				}
				h, ok := t.tryShard(s.shardAt(c.shard).merchant)
				if !ok {
					continue
				}
				rec, ok := h.sh.getKey(c.id)
				if !ok || !claimable(rec, now) {
					continue
				}
				rec.task.Status = domain.StatusRunning
				rec.task.Attempts++
				rec.task.UpdatedAt = now
				rec.leaseUntil = norm(now.Add(lease))
				h.setTask(rec)
				claimed = append(claimed, rec.task)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return claimed, nil
}

func claimable(r taskRecord, now time.Time) bool {
	switch r.task.Status {
	case domain.StatusPending:
		return !r.task.RunAt.After(now)
	case domain.StatusRunning:
		return r.leaseUntil.Before(now)
	}
	return false
}

// dueCandidates reads up to n entries of the due index, after from (or
// from the start), that are due at now.
func (s *Store) dueCandidates(from *dueKey, now time.Time, n int) []dueKey {
	s.globalMu.Lock()
	defer s.globalMu.Unlock()
	p := s.due.first()
	if from != nil {
		p = s.due.after(*from)
	}
	var out []dueKey
	for nowUs := now.UnixMicro(); p.valid() && len(out) < n && p.key().at <= nowUs; p = p.next() {
		out = append(out, p.key())
	}
	return out
}

// Finish records the end of a run if the claim with this attempt still
// holds.
func (q queue) Finish(ctx context.Context, merchant domain.MerchantID, id domain.TaskID, attempt int, res domain.TaskResult) error {
	switch res.Status {
	case domain.StatusSucceeded, domain.StatusFailed, domain.StatusCancelled, domain.StatusPending:
	default:
		return fmt.Errorf("%w: a run cannot end %q", domain.ErrInvalid, res.Status)
	}
	return q.s.do(ctx, nil, func(t *tx) error {
		h, rec, err := t.merchantTask(ctx, merchant, id)
		if err != nil {
			return err
		}
		if rec.task.Status != domain.StatusRunning || rec.task.Attempts != attempt {
			return fmt.Errorf("finish task %s attempt %d: %w: the claim no longer holds", id, attempt, domain.ErrConflict)
		}
		rec.task.Status, rec.task.LastError = res.Status, res.LastError
		if !res.RunAt.IsZero() {
			rec.task.RunAt = norm(res.RunAt)
		}
		if !res.At.IsZero() {
			rec.task.UpdatedAt = norm(res.At)
		}
		rec.leaseUntil = time.Time{}
		if res.Status == domain.StatusPending {
			if err := h.checkPendingRetry(rec.task); err != nil {
				return err
			}
		}
		h.setTask(rec)
		return nil
	})
}

// Backlog counts the due tasks; it costs O(due tasks).
func (q queue) Backlog(ctx context.Context, now time.Time) (int, time.Time, error) {
	if err := ctx.Err(); err != nil {
		return 0, time.Time{}, err
	}
	s := q.s
	now = norm(now)
	s.globalMu.Lock()
	defer s.globalMu.Unlock()
	count, oldest := 0, time.Time{}
	nowUs, oldestUs := now.UnixMicro(), int64(0)
	for p := s.due.first(); p.valid() && p.key().at <= nowUs; p = p.next() {
		k := p.key()
		if k.running && k.at >= nowUs {
			continue
		}
		if count == 0 || k.runAt < oldestUs {
			oldestUs = k.runAt
		}
		count++
	}
	if count > 0 {
		oldest = fromMicros(oldestUs)
	}
	return count, oldest, nil
}
