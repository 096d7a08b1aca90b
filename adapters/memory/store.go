package memory

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// Store keeps everything recoup stores, in memory. The zero value is not
// usable; make one with New.
type Store struct {
	clock ports.Clock

	shardsMu  sync.RWMutex
	shards    map[domain.MerchantID]*shard
	shardList []*shard // by shard.index

	// globalMu guards the committed cross-merchant indexes. It is only ever
	// taken after a shard (never the other way round) and held briefly.
	globalMu sync.Mutex
	due      *btree[dueKey]
	owners   map[taskKey]int32 // the index of the task's shard

	// claimMu serialises claimers so that concurrent workers take
	// different tasks instead of colliding on the same oldest ones.
	claimMu sync.Mutex

	eventsMu sync.Mutex
	// events holds the committed locks; inflight, the few whose unit of
	// work has not ended, so that the big map is written once per event.
	events    map[string]struct{}
	inflight  map[string]eventLock
	eventsAge []eventKey // committed locks, oldest first (cmpEventKey)

	dirMu     sync.RWMutex
	merchants map[domain.MerchantID]domain.Merchant
	accounts  map[string]domain.MerchantID
	keys      map[string]*keyRecord
	keyHashes map[domain.APIKeyHash]string
}

var _ ports.Storage = (*Store)(nil)

// New returns an empty store. The clock stamps event locks, for
// PruneEvents; nil means the system clock.
func New(clock ports.Clock) *Store {
	if clock == nil {
		clock = ports.SystemClock{}
	}
	return &Store{
		clock:     clock,
		shards:    map[domain.MerchantID]*shard{},
		due:       newBTree(cmpDue),
		owners:    map[taskKey]int32{},
		events:    map[string]struct{}{},
		inflight:  map[string]eventLock{},
		merchants: map[domain.MerchantID]domain.Merchant{},
		accounts:  map[string]domain.MerchantID{},
		keys:      map[string]*keyRecord{},
		keyHashes: map[domain.APIKeyHash]string{},
	}
}

// Ping always succeeds: memory is always reachable.
func (s *Store) Ping(ctx context.Context) error { return ctx.Err() }

// Tasks returns the task repository; each call is its own unit of work.
func (s *Store) Tasks() ports.TenantTaskRepository { return taskRepo{s: s} }

// Ledger returns the recovery ledger; each call is its own unit of work.
func (s *Store) Ledger() ports.RecoveryLedger { return ledger{s: s} }

// Queue returns the worker's view of tasks.
func (s *Store) Queue() ports.TaskQueue { return queue{s: s} }

// Merchants returns the merchant directory.
func (s *Store) Merchants() ports.MerchantDirectory { return directory{s: s} }

// InTx runs fn in one unit of work. If fn returns an error, everything it
// did is undone and the error returned. If fn panics, everything is undone
// and the panic goes on (InTx does not return). The Tx must not be used
// after fn returns, nor from several goroutines at once.
func (s *Store) InTx(ctx context.Context, fn func(ctx context.Context, tx ports.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("begin unit of work: %w", err)
	}
	return s.run(func(t *tx) error { return fn(ctx, t) })
}

// run runs fn in a fresh unit of work, committing if it returns nil and
// rolling back if it returns an error or panics.
func (s *Store) run(fn func(t *tx) error) error {
	t := s.begin()
	done := false
	defer func() {
		if !done {
			t.rollback()
		}
	}()
	err := fn(t)
	done = true
	if err != nil {
		t.rollback()
		return err
	}
	t.commit()
	return nil
}

// do runs one repository call: inside inTx when the call came through a
// Tx, else as a unit of work of its own.
func (s *Store) do(ctx context.Context, inTx *tx, fn func(t *tx) error) error {
	if inTx != nil {
		if inTx.closed {
			return fmt.Errorf("%w: unit of work already ended", domain.ErrInvalid)
		}
		return fn(inTx)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.run(fn)
}

// shardOf returns the merchant's shard, making it on first use.
func (s *Store) shardOf(m domain.MerchantID) *shard {
	s.shardsMu.RLock()
	sh := s.shards[m]
	s.shardsMu.RUnlock()
	if sh != nil {
		return sh
	}
	s.shardsMu.Lock()
	defer s.shardsMu.Unlock()
	if sh = s.shards[m]; sh == nil {
		sh = newShard(m, int32(len(s.shardList)))
		s.shards[m] = sh
		s.shardList = append(s.shardList, sh)
	}
	return sh
}

// shardAt returns the shard with this index.
func (s *Store) shardAt(i int32) *shard {
	s.shardsMu.RLock()
	defer s.shardsMu.RUnlock()
	return s.shardList[i]
}

// norm makes a time what Postgres would give back: UTC, microseconds, no
// monotonic reading (so == and map keys behave).
func norm(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func validMerchant(m domain.MerchantID) error {
	if strings.TrimSpace(string(m)) == "" {
		return fmt.Errorf("%w: empty merchant id", domain.ErrInvalid)
	}
	return nil
}
