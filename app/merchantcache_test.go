package app

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// countingDirectory answers lookups of one merchant and counts them.
type countingDirectory struct {
	ports.MerchantDirectory
	m       domain.Merchant
	lookups int
}

func (d *countingDirectory) MerchantByStripeAccount(_ context.Context, account string) (domain.Merchant, error) {
	d.lookups++
	if account != d.m.StripeAccountID {
		return domain.Merchant{}, domain.ErrNotFound
	}
	return d.m, nil
}

func (d *countingDirectory) MerchantByID(_ context.Context, id domain.MerchantID) (domain.Merchant, error) {
	d.lookups++
	if id != d.m.ID {
		return domain.Merchant{}, domain.ErrNotFound
	}
	return d.m, nil
}

func TestMerchantCache(t *testing.T) {
	is := is.New(t)
	ctx := context.Background()
	dir := &countingDirectory{m: domain.Merchant{ID: "m1", Name: "Acme", StripeAccountID: "acct_1"}}
	c := newMerchantCache(dir)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c.now = func() time.Time { return now }

	for range 3 {
		m, err := c.byStripeAccount(ctx, "acct_1")
		is.NoErr(err)
		is.Equal(m, dir.m)
	}
	is.Equal(dir.lookups, 1) // found once, then remembered

	_, err := c.byStripeAccount(ctx, "acct_unknown")
	is.True(errors.Is(err, domain.ErrNotFound))
	_, err = c.byStripeAccount(ctx, "acct_unknown")
	is.True(errors.Is(err, domain.ErrNotFound))
	is.Equal(dir.lookups, 3) // misses are not remembered

	m, err := c.byMerchantID(ctx, "m1")
	is.NoErr(err)
	is.Equal(m.Name, "Acme")
	is.Equal(dir.lookups, 4) // by id is its own entry

	now = now.Add(merchantCacheTTL + time.Second)
	_, err = c.byStripeAccount(ctx, "acct_1")
	is.NoErr(err)
	is.Equal(dir.lookups, 5) // expired entries are looked up again
}
