// Package cachingstore is a small storage adapter for recoup, written the
// way a third party would write one: it wraps any ports.Storage and keeps
// merchant lookups in memory, so that the webhook intake (one lookup by
// Stripe account per delivery) and the worker (one lookup by id per task)
// stop asking the database for merchants they have already seen. It passes
// recoup's storage contract suites, run by a one-function test.
//
// # Why the cache is safe
//
// Through the ports, a merchant is never changed or deleted once stored
// (ports.MerchantDirectory has no such method), so a merchant found once
// stays true, also for other processes sharing the database. Misses are
// not cached: a merchant not found now may be created a moment later.
// Lookups by API key are not cached either, since a revoked key must stop
// working at once. Wrap storage that outlives transactions (a *bun.DB, not
// a bun.Tx that may roll back a merchant the cache has seen).
//
// # Writing an adapter of your own
//
// An adapter implements the interfaces of package ports (for storage,
// ports.Storage: the unit of work with its event lock, tenant-scoped tasks,
// merchants, the recovery ledger, the worker's queue, retention, Ping) with
// the error contract their docs give in terms of the domain errors
// (domain.ErrNotFound, ErrConflict, ErrUnavailable…). What each method must
// do, concurrency included, is pinned down by the contract suites in
// package porttest; an adapter is done when its test runs them and passes:
//
//	func TestStorageContract(t *testing.T) {
//		porttest.RunStorageContract(t, func(t *testing.T) ports.Storage {
//			return yourstore.New(…) // fresh, empty storage per call
//		})
//	}
//
// The factory must return storage that no other test touches (a fresh
// database schema, a fresh in-memory store), stamp event locks with the
// wall clock, and stay usable until t ends (close it in t.Cleanup). The
// suites run their cases in parallel; run them with -race. A wrapper like
// this one needs nothing more than its inner adapter: embed ports.Storage,
// override what changes, and pass through the optional interfaces the
// embedded one hides (ports.SumFolder).
//
// Hand the adapter to recoup.New as Options.Storage.
package cachingstore

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// MaxEntries bounds each of the cache's indexes; when one is full it is
// emptied and fills again with the merchants in use. Merchants are few
// next to tasks, so this rarely happens.
const MaxEntries = 10_000

// Store is a ports.Storage whose merchant lookups are cached. Everything
// but Merchants passes through to the wrapped storage.
type Store struct {
	ports.Storage
	dir *directory
}

var _ ports.Storage = (*Store)(nil)

// New wraps inner.
func New(inner ports.Storage) *Store {
	return &Store{Storage: inner, dir: &directory{
		MerchantDirectory: inner.Merchants(),
		byID:              map[domain.MerchantID]domain.Merchant{},
		byAccount:         map[string]domain.Merchant{},
	}}
}

// Merchants returns the wrapped directory with cached lookups by id and by
// Stripe account.
func (s *Store) Merchants() ports.MerchantDirectory { return s.dir }

// FoldSums passes through to the wrapped storage when it keeps running sums
// (ports.SumFolder, as the PostgreSQL adapter does): an embedded interface
// hides the methods it does not name, and unfolded sums would make the
// figures slower every day. With other storage it does nothing.
func (s *Store) FoldSums(ctx context.Context) error {
	if f, ok := s.Storage.(ports.SumFolder); ok {
		return f.FoldSums(ctx)
	}
	return nil
}

// Stats counts the cached lookups answered from memory (Hits) and from the
// wrapped storage (Misses).
type Stats struct {
	Hits, Misses int64
}

// Stats returns the counts so far, for metrics.
func (s *Store) Stats() Stats {
	return Stats{Hits: s.dir.hits.Load(), Misses: s.dir.misses.Load()}
}

// directory caches MerchantByID and MerchantByStripeAccount; every other
// method is the wrapped directory's.
type directory struct {
	ports.MerchantDirectory

	hits, misses atomic.Int64

	mu        sync.RWMutex
	byID      map[domain.MerchantID]domain.Merchant
	byAccount map[string]domain.Merchant
}

// MerchantByID answers from the cache, or asks the wrapped directory and
// remembers what it found.
func (d *directory) MerchantByID(ctx context.Context, id domain.MerchantID) (domain.Merchant, error) {
	d.mu.RLock()
	m, ok := d.byID[id]
	d.mu.RUnlock()
	if ok {
		d.hits.Add(1)
		return m, nil
	}
	d.misses.Add(1)
	m, err := d.MerchantDirectory.MerchantByID(ctx, id)
	if err != nil {
		return domain.Merchant{}, err
	}
	d.remember(m)
	return m, nil
}

// MerchantByStripeAccount answers from the cache, or asks the wrapped
// directory and remembers what it found.
func (d *directory) MerchantByStripeAccount(ctx context.Context, account string) (domain.Merchant, error) {
	d.mu.RLock()
	m, ok := d.byAccount[account]
	d.mu.RUnlock()
	if ok {
		d.hits.Add(1)
		return m, nil
	}
	d.misses.Add(1)
	m, err := d.MerchantDirectory.MerchantByStripeAccount(ctx, account)
	if err != nil {
		return domain.Merchant{}, err
	}
	d.remember(m)
	return m, nil
}

// remember caches m under both of its keys.
func (d *directory) remember(m domain.Merchant) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.byID) >= MaxEntries {
		clear(d.byID)
	}
	if len(d.byAccount) >= MaxEntries {
		clear(d.byAccount)
	}
	d.byID[m.ID] = m
	d.byAccount[m.StripeAccountID] = m
}
