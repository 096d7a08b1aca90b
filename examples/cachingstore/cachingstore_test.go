package cachingstore_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"testing"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup"
	"github.com/recoupdev/recoup/adapters/memory"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/examples/cachingstore"
	"github.com/recoupdev/recoup/ports"
	"github.com/recoupdev/recoup/ports/porttest"
)

// TestStorageContract is all an adapter needs to prove itself: recoup's
// contract suites, over fresh storage for every case.
func TestStorageContract(t *testing.T) {
	porttest.RunStorageContract(t, func(t *testing.T) ports.Storage {
		return cachingstore.New(memory.New(ports.SystemClock{}))
	})
}

// TestCachesFoundMerchantsOnly: found merchants are served from memory;
// misses and API keys always reach the wrapped storage.
func TestCachesFoundMerchantsOnly(t *testing.T) {
	is := is.New(t)
	ctx := t.Context()
	inner := memory.New(nil)
	store := cachingstore.New(inner)
	merchants := recoupMerchants(t, store)

	_, err := store.Merchants().MerchantByStripeAccount(ctx, "acct_later")
	is.True(errors.Is(err, domain.ErrNotFound)) // not there yet
	m, key := merchants("acct_later")
	got, err := store.Merchants().MerchantByStripeAccount(ctx, "acct_later")
	is.NoErr(err) // a miss is not cached: the new merchant is found
	is.Equal(got.ID, m.ID)
	is.Equal(store.Stats(), cachingstore.Stats{Hits: 0, Misses: 2})

	got, err = store.Merchants().MerchantByID(ctx, m.ID)
	is.NoErr(err)
	is.Equal(got.StripeAccountID, "acct_later")
	_, err = store.Merchants().MerchantByStripeAccount(ctx, "acct_later")
	is.NoErr(err)
	is.Equal(store.Stats(), cachingstore.Stats{Hits: 2, Misses: 2}) // both lookups served from the cache

	prefix, err := domain.ParseAPIKey(key)
	is.NoErr(err)
	_, err = store.Merchants().MerchantByAPIKey(ctx, prefix, domain.HashAPIKey(key))
	is.NoErr(err) // the key works
	is.NoErr(store.Merchants().RevokeAPIKey(ctx, m.ID, prefix, m.CreatedAt))
	_, err = store.Merchants().MerchantByAPIKey(ctx, prefix, domain.HashAPIKey(key))
	is.True(errors.Is(err, domain.ErrNotFound)) // a revoked key stops working at once
}

// recoupMerchants returns a function that onboards a merchant through
// recoup's own use case over store.
func recoupMerchants(t *testing.T, store ports.Storage) func(account string) (domain.Merchant, string) {
	svc, err := recoup.New(recoup.Options{Storage: store, WebhookSecrets: []string{"whsec_test"}})
	if err != nil {
		t.Fatal(err)
	}
	return func(account string) (domain.Merchant, string) {
		m, key, err := svc.Merchants().Create(t.Context(), "Shop", account)
		if err != nil {
			t.Fatal(err)
		}
		return m, key.Plain
	}
}

// Example_contractSuite shows the one test function that runs recoup's
// storage contract suites against an adapter. It belongs in the adapter's
// _test.go file as a top-level func TestStorageContract(t *testing.T).
func Example_contractSuite() {
	testStorageContract := func(t *testing.T) {
		porttest.RunStorageContract(t, func(t *testing.T) ports.Storage {
			return cachingstore.New(memory.New(ports.SystemClock{}))
		})
	}
	_ = testStorageContract
}

// Example runs recoup on the caching adapter: the webhook's lookups by
// Stripe account are served from memory after the first.
func Example() {
	ctx := context.Background()
	store := cachingstore.New(memory.New(nil)) // or postgres.New(db)
	billing, err := recoup.New(recoup.Options{Storage: store, WebhookSecrets: []string{"whsec_example"}})
	if err != nil {
		log.Fatal(err)
	}
	if _, _, err := billing.Merchants().Create(ctx, "Jenny's shop", "acct_jenny"); err != nil {
		log.Fatal(err)
	}
	for range 3 {
		if _, err := store.Merchants().MerchantByStripeAccount(ctx, "acct_jenny"); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Printf("%+v\n", store.Stats())
	// Output: {Hits:2 Misses:1}
}

// folding is memory storage that keeps running sums, for all a wrapper can
// tell: it counts its folds.
type folding struct {
	ports.Storage
	folds int
}

func (f *folding) FoldSums(context.Context) error { f.folds++; return nil }

// TestFoldsPassThrough: the wrapper folds the running sums of storage that
// keeps them (RunWorker asks it every few seconds), and nothing else.
func TestFoldsPassThrough(t *testing.T) {
	is := is.New(t)
	inner := &folding{Storage: memory.New(nil)}
	var st ports.Storage = cachingstore.New(inner)
	f, ok := st.(ports.SumFolder)
	is.True(ok) // the wrapper is a SumFolder
	is.NoErr(f.FoldSums(t.Context()))
	is.Equal(inner.folds, 1)                                          // which reaches the wrapped storage
	is.NoErr(cachingstore.New(memory.New(nil)).FoldSums(t.Context())) // storage without sums: nothing to do
}
