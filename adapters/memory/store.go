package memory

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// Store keeps everything recoup stores, in memory. Make one with New.
type Store struct {
	clock ports.Clock
	// sem is the store's one lock: a channel rather than a sync.Mutex, so
	// that a wait can end with its context.
	sem chan struct{}

	tasks   map[domain.TaskID]*domain.Task // every merchant's, by canonical id
	tenants map[domain.MerchantID]*tenant
	// What the worker may claim: pending tasks, and running ones with the
	// end of their lease.
	pending map[*domain.Task]struct{}
	running map[*domain.Task]time.Time

	events   map[string]time.Time // the event locks taken, and when
	eventLog []string             // their ids, in the order taken

	sent   map[sentKey][]time.Time // the emails reserved, in no order
	leases map[string]lease        // by name

	endpoints  map[domain.EndpointID]*endpoint // every merchant's, by canonical id
	deliveries map[domain.DeliveryID]*delivery
	outbox     map[*delivery]struct{} // the pending deliveries: what delivery workers may claim

	merchants map[domain.MerchantID]domain.Merchant
	accounts  map[string]domain.MerchantID
	keys      map[string]*apiKey // by prefix
	keyHashes map[domain.APIKeyHash]bool

	sessions map[domain.SessionHash]domain.Session
}

var _ ports.Storage = (*Store)(nil)

// New returns an empty store. The clock stamps event locks, whose age
// PruneEvents judges, and deliveries as they are enqueued; nil means the
// system clock.
func New(clock ports.Clock) *Store {
	if clock == nil {
		clock = ports.SystemClock{}
	}
	return &Store{
		clock: clock, sem: make(chan struct{}, 1),
		tasks: map[domain.TaskID]*domain.Task{}, tenants: map[domain.MerchantID]*tenant{},
		pending: map[*domain.Task]struct{}{}, running: map[*domain.Task]time.Time{}, events: map[string]time.Time{},
		sent: map[sentKey][]time.Time{}, leases: map[string]lease{},
		endpoints: map[domain.EndpointID]*endpoint{}, deliveries: map[domain.DeliveryID]*delivery{}, outbox: map[*delivery]struct{}{},
		merchants: map[domain.MerchantID]domain.Merchant{}, accounts: map[string]domain.MerchantID{},
		keys: map[string]*apiKey{}, keyHashes: map[domain.APIKeyHash]bool{},
		sessions: map[domain.SessionHash]domain.Session{},
	}
}

// Ping succeeds while ctx lasts: memory is always reachable.
func (s *Store) Ping(ctx context.Context) error { return ctx.Err() }

// Tasks returns the task repository; each call commits on its own.
func (s *Store) Tasks() ports.TenantTaskRepository { return scope{s, nil} }

// Ledger returns the invoice ledger; each call commits on its own.
func (s *Store) Ledger() ports.InvoiceLedger { return scope{s, nil} }

// Policies returns the policy store; each call commits on its own.
func (s *Store) Policies() ports.PolicyStore { return scope{s, nil} }

// Queue returns the worker's view of tasks; each call commits on its own.
func (s *Store) Queue() ports.TaskQueue { return scope{s, nil} }

// Emails returns the email log; each call commits on its own.
func (s *Store) Emails() ports.EmailLog { return scope{s, nil} }

// Leases returns the named leases; each call commits on its own.
func (s *Store) Leases() ports.Leases { return scope{s, nil} }

// Endpoints returns the webhook endpoints; each call commits on its own.
func (s *Store) Endpoints() ports.WebhookEndpoints { return scope{s, nil} }

// Outbox returns the outbox; each call commits on its own.
func (s *Store) Outbox() ports.Outbox { return scope{s, nil} }

// Merchants returns the merchant directory; each call commits on its own.
func (s *Store) Merchants() ports.MerchantDirectory { return directory{s} }

// InTx runs fn as one unit of work, holding the store's lock until fn's
// work is committed, or rolled back if fn returns an error or panics.
func (s *Store) InTx(ctx context.Context, fn func(ctx context.Context, tx ports.Tx) error) error {
	return s.run(ctx, func(u *unit) error { return fn(context.WithValue(ctx, insideKey{s}, u), u) })
}

// insideKey marks the context a unit of work hands to fn.
type insideKey struct{ s *Store }

// unit is a unit of work and the undo log of its changes. mu serialises
// the calls made through it, and its end.
type unit struct {
	s    *Store
	mu   sync.Mutex
	done bool
	undo []func()
}

func (u *unit) Events() ports.EventLocker         { return scope{u.s, u} }
func (u *unit) Tasks() ports.TenantTaskRepository { return scope{u.s, u} }
func (u *unit) Ledger() ports.InvoiceLedger       { return scope{u.s, u} }
func (u *unit) Policies() ports.PolicyStore       { return scope{u.s, u} }
func (u *unit) Queue() ports.TaskQueue            { return scope{u.s, u} }
func (u *unit) Outbox() ports.Outbox              { return scope{u.s, u} }

// scope is where a call runs: in the unit of work u, or, if u is nil, in
// one of its own. The methods of the ports whose changes log their
// inverses are scope's; the directory's are not.
type scope struct {
	s *Store
	u *unit
}

// run takes the lock and runs fn as a unit of work of its own.
func (s *Store) run(ctx context.Context, fn func(u *unit) error) (err error) {
	if u, ok := ctx.Value(insideKey{s}).(*unit); ok && !u.ended() {
		return fmt.Errorf("%w: called outside the unit of work while it runs; use its Tx", domain.ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("wait for the memory store: %w", err)
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("wait for the memory store: %w", ctx.Err())
	}
	u := &unit{s: s}
	commit := false
	defer func() { // deferred, so that a panic rolls back too
		u.end(commit)
		<-s.sem
	}()
	err = fn(u)
	commit = err == nil
	return err
}

// do runs one call in its scope. Either way a call that fails changes
// nothing.
func (c scope) do(ctx context.Context, fn func(u *unit) error) error {
	u := c.u
	if u == nil {
		return c.s.run(ctx, fn)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done {
		return fmt.Errorf("%w: the unit of work has ended", domain.ErrInvalid)
	}
	mark := len(u.undo)
	err := fn(u)
	if err != nil {
		u.rollback(mark)
	}
	return err
}

// doFor is do on the merchant's tasks and ledger.
func (c scope) doFor(ctx context.Context, merchant domain.MerchantID, fn func(u *unit, ten *tenant) error) error {
	if merchant == "" {
		return fmt.Errorf("%w: empty merchant", domain.ErrInvalid)
	}
	m, err := domain.ParseUUID(string(merchant))
	if err != nil {
		return fmt.Errorf("merchant id: %w", err)
	}
	return c.do(ctx, func(u *unit) error { return fn(u, u.s.tenant(domain.MerchantID(m))) })
}

func (u *unit) ended() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.done
}

// onUndo logs how to reverse a change just made.
func (u *unit) onUndo(f func()) { u.undo = append(u.undo, f) }

// setIn sets m[k] to v, or deletes it if !keep, logging how to restore it.
func setIn[K comparable, V any](u *unit, m map[K]V, k K, v V, keep bool) {
	old, had := m[k]
	put(m, k, v, keep)
	u.onUndo(func() { put(m, k, old, had) })
}

func put[K comparable, V any](m map[K]V, k K, v V, keep bool) {
	if keep {
		m[k] = v
	} else {
		delete(m, k)
	}
}

// rollback reverses the changes logged after mark, newest first, so that
// each inverse finds the store as its change left it.
func (u *unit) rollback(mark int) {
	for i := len(u.undo) - 1; i >= mark; i-- {
		u.undo[i]()
	}
	u.undo = u.undo[:mark]
}

func (u *unit) end(commit bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if !commit {
		u.rollback(0)
	}
	u.done, u.undo = true, nil
}

// AttemptEventLock needs no waiting: no other unit of work runs meanwhile,
// so a lock found here is committed, or this unit of work's own.
func (c scope) AttemptEventLock(ctx context.Context, eventID string) (bool, error) {
	if eventID == "" || !domain.StorableText(eventID) {
		return false, fmt.Errorf("event lock: %w: empty event id or one with a NUL character", domain.ErrInvalid)
	}
	won := false
	err := c.do(ctx, func(u *unit) error {
		s := u.s
		if _, taken := s.events[eventID]; taken {
			return nil
		}
		s.events[eventID], won = norm(s.clock.Now()), true
		s.eventLog = append(s.eventLog, eventID)
		u.onUndo(func() { // it is last again: what came after is undone first
			delete(s.events, eventID)
			s.eventLog = s.eventLog[:len(s.eventLog)-1]
		})
		return nil
	})
	return won, err
}

// PruneEvents deletes up to batch locks taken before cutoff, in the order
// taken: the clock's, unless it was set back, and then the locks behind a
// newer one wait until it is old enough too.
func (s *Store) PruneEvents(ctx context.Context, cutoff time.Time, batch int) (int, error) {
	if batch < 1 {
		return 0, fmt.Errorf("prune events: %w: batch must be positive", domain.ErrInvalid)
	}
	n := 0
	err := scope{s, nil}.do(ctx, func(*unit) error {
		for ; n < batch && n < len(s.eventLog) && s.events[s.eventLog[n]].Before(norm(cutoff)); n++ {
			delete(s.events, s.eventLog[n])
		}
		clear(s.eventLog[:n]) // let go of the ids; append reallocates the rest
		s.eventLog = s.eventLog[n:]
		return nil
	})
	return n, err
}

// norm makes a time what PostgreSQL gives back: UTC, whole microseconds,
// no monotonic reading.
func norm(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }
