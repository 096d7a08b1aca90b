package app

import (
	"context"
	"sync"
	"time"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// merchantCache remembers merchants found by Stripe account or by id, so
// that the webhook and the worker do not pay a storage round trip per event
// or task for a fact that does not change: a merchant's id, name and
// account are never updated. Entries expire after a while all the same, so
// a change made behind recoup's back is seen eventually. Misses are not
// remembered (a merchant created a moment ago is found at once), and API
// keys are never cached (a revocation holds at once).
type merchantCache struct {
	dir ports.MerchantDirectory
	ttl time.Duration
	now func() time.Time

	mu        sync.Mutex
	byAccount map[string]cachedMerchant
	byID      map[domain.MerchantID]cachedMerchant
}

type cachedMerchant struct {
	m       domain.Merchant
	expires time.Time
}

// Bounds of the cache: entries live a minute, and a full map is emptied
// rather than managed entry by entry (refilling costs one lookup each).
const (
	merchantCacheTTL  = time.Minute
	merchantCacheSize = 10_000
)

func newMerchantCache(dir ports.MerchantDirectory) *merchantCache {
	return &merchantCache{
		dir: dir, ttl: merchantCacheTTL, now: time.Now,
		byAccount: map[string]cachedMerchant{}, byID: map[domain.MerchantID]cachedMerchant{},
	}
}

// byStripeAccount is MerchantDirectory.MerchantByStripeAccount, cached.
func (c *merchantCache) byStripeAccount(ctx context.Context, account string) (domain.Merchant, error) {
	return cachedLookup(c, c.byAccount, account, func() (domain.Merchant, error) {
		return c.dir.MerchantByStripeAccount(ctx, account)
	})
}

// byMerchantID is MerchantDirectory.MerchantByID, cached.
func (c *merchantCache) byMerchantID(ctx context.Context, id domain.MerchantID) (domain.Merchant, error) {
	return cachedLookup(c, c.byID, id, func() (domain.Merchant, error) {
		return c.dir.MerchantByID(ctx, id)
	})
}

func cachedLookup[K comparable](c *merchantCache, entries map[K]cachedMerchant, key K, load func() (domain.Merchant, error)) (domain.Merchant, error) {
	now := c.now()
	c.mu.Lock()
	e, ok := entries[key]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.m, nil
	}
	m, err := load()
	if err != nil {
		return domain.Merchant{}, err
	}
	c.mu.Lock()
	if len(entries) >= merchantCacheSize {
		clear(entries)
	}
	entries[key] = cachedMerchant{m: m, expires: now.Add(c.ttl)}
	c.mu.Unlock()
	return m, nil
}
