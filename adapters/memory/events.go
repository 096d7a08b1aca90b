package memory

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/recoupdev/recoup/domain"
)

// eventLock is an idempotency lock in flight: taken by owner, which has
// not ended yet.
type eventLock struct {
	owner *tx
	at    time.Time
	// done is made only when a unit of work has to wait for the owner, and
	// closed when the owner commits or rolls back.
	done chan struct{}
}

// eventKey orders committed locks by when they were taken, for retention.
type eventKey struct {
	at time.Time
	id string
}

func cmpEventKey(a, b eventKey) int {
	if c := a.at.Compare(b.at); c != 0 {
		return c
	}
	return strings.Compare(a.id, b.id)
}

type eventLocker struct{ t *tx }

// AttemptEventLock takes the event's lock for the unit of work, waiting for
// a unit of work that holds it in flight: false if that one commits; if it
// rolls back, the waiters race again and exactly one wins.
func (l eventLocker) AttemptEventLock(ctx context.Context, eventID string) (bool, error) {
	t, s := l.t, l.t.s
	if t.closed {
		return false, fmt.Errorf("%w: unit of work already ended", domain.ErrInvalid)
	}
	if eventID == "" {
		return false, fmt.Errorf("%w: empty event id", domain.ErrInvalid)
	}
	for {
		if err := ctx.Err(); err != nil {
			return false, fmt.Errorf("event lock %s: %w", eventID, err)
		}
		s.eventsMu.Lock()
		if _, done := s.events[eventID]; done {
			s.eventsMu.Unlock()
			return false, nil
		}
		e, ok := s.inflight[eventID]
		if !ok {
			s.inflight[eventID] = eventLock{owner: t, at: norm(s.clock.Now())}
			s.eventsMu.Unlock()
			t.w.locks = append(t.w.locks, eventID)
			return true, nil
		}
		if e.owner == t {
			s.eventsMu.Unlock()
			return false, nil
		}
		if e.done == nil {
			e.done = make(chan struct{})
			s.inflight[eventID] = e
		}
		done := e.done
		s.eventsMu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return false, fmt.Errorf("wait for event lock %s: %w", eventID, ctx.Err())
		}
	}
}

// releaseEvents ends a unit of work's event locks: kept on commit, dropped
// on rollback. Either way their waiters wake up and look again.
func (s *Store) releaseEvents(t *tx, commit bool) {
	if len(t.w.locks) == 0 {
		return
	}
	s.eventsMu.Lock()
	defer s.eventsMu.Unlock()
	for _, id := range t.w.locks {
		e := s.inflight[id]
		delete(s.inflight, id)
		if commit {
			s.events[id] = struct{}{}
			s.addEventAge(eventKey{at: e.at, id: id})
		}
		if e.done != nil {
			close(e.done)
		}
	}
}

// addEventAge files a committed lock in the retention order. Locks are
// taken in clock order, so the new one almost always goes last.
func (s *Store) addEventAge(k eventKey) {
	n := len(s.eventsAge)
	if n == 0 || cmpEventKey(s.eventsAge[n-1], k) < 0 {
		s.eventsAge = append(s.eventsAge, k)
		return
	}
	i, _ := slices.BinarySearchFunc(s.eventsAge, k, cmpEventKey)
	s.eventsAge = slices.Insert(s.eventsAge, i, k)
}

// PruneEvents deletes up to batch committed locks taken before cutoff,
// oldest first. A pruned event can be locked (processed) again.
func (s *Store) PruneEvents(ctx context.Context, cutoff time.Time, batch int) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if batch <= 0 {
		return 0, nil
	}
	s.eventsMu.Lock()
	defer s.eventsMu.Unlock()
	n := 0
	for n < len(s.eventsAge) && n < batch && s.eventsAge[n].at.Before(cutoff) {
		delete(s.events, s.eventsAge[n].id)
		n++
	}
	clear(s.eventsAge[:n])
	s.eventsAge = s.eventsAge[n:]
	return n, nil
}
