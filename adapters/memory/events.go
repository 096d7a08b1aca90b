package memory

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/recoupdev/recoup/domain"
)

// eventLock is one event's idempotency lock: in flight while owner is set,
// permanent once owner is nil.
type eventLock struct {
	id    string
	owner *tx
	at    time.Time
	done  chan struct{} // closed when the owner commits or rolls back
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
		e := s.events[eventID]
		if e == nil {
			e = &eventLock{id: eventID, owner: t, at: norm(s.clock.Now()), done: make(chan struct{})}
			s.events[eventID] = e
			s.eventsMu.Unlock()
			t.locks = append(t.locks, e)
			return true, nil
		}
		if e.owner == nil || e.owner == t {
			s.eventsMu.Unlock()
			return false, nil
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
func (s *Store) releaseEvents(locks []*eventLock, commit bool) {
	if len(locks) == 0 {
		return
	}
	s.eventsMu.Lock()
	defer s.eventsMu.Unlock()
	for _, e := range locks {
		if commit {
			e.owner = nil
			s.eventsAge.insert(eventKey{at: e.at, id: e.id})
		} else {
			delete(s.events, e.id)
		}
		close(e.done)
	}
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
	var old []eventKey
	for n := s.eventsAge.first(); n != nil && len(old) < batch && n.key.at.Before(cutoff); n = n.next[0] {
		old = append(old, n.key)
	}
	for _, k := range old {
		s.eventsAge.remove(k)
		delete(s.events, k.id)
	}
	return len(old), nil
}
