package porttest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// RunMerchantDirectoryContract checks merchants and their API keys.
func RunMerchantDirectoryContract(t *testing.T, newStorage func(t *testing.T) ports.Storage) {
	newMerchantWithKey := func(t *testing.T) (domain.Merchant, domain.APIKey) {
		t.Helper()
		m := domain.Merchant{
			ID: domain.MerchantID(domain.NewID()), Name: "Porttest " + token()[:8],
			StripeAccountID: "acct_" + token(), CreatedAt: now(),
		}
		_, key, err := domain.NewAPIKey(m.ID, now())
		if err != nil {
			t.Fatalf("new api key: %v", err)
		}
		return m, key
	}
	newKey := func(t *testing.T, m domain.MerchantID) domain.APIKey {
		t.Helper()
		_, key, err := domain.NewAPIKey(m, now())
		if err != nil {
			t.Fatalf("new api key: %v", err)
		}
		return key
	}
	same := func(is *is.I, got, want domain.Merchant) {
		is.Helper()
		is.Equal(got.ID, want.ID)
		is.Equal(got.Name, want.Name)
		is.Equal(got.StripeAccountID, want.StripeAccountID)
		is.True(got.CreatedAt.Equal(want.CreatedAt)) // CreatedAt
	}

	t.Run("a merchant is found by id, account and key", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		dir := newStorage(t).Merchants()
		m, key := newMerchantWithKey(t)
		is.NoErr(dir.CreateMerchant(ctx, m, key))

		got, err := dir.MerchantByID(ctx, m.ID)
		is.NoErr(err)
		same(is, got, m)
		got, err = dir.MerchantByStripeAccount(ctx, m.StripeAccountID)
		is.NoErr(err)
		same(is, got, m)
		got, err = dir.MerchantByAPIKey(ctx, key.Prefix, key.Hash)
		is.NoErr(err)
		same(is, got, m)

		_, err = dir.MerchantByID(ctx, domain.MerchantID(domain.NewID()))
		is.True(errors.Is(err, domain.ErrNotFound)) // unknown id
		_, err = dir.MerchantByStripeAccount(ctx, "acct_"+token())
		is.True(errors.Is(err, domain.ErrNotFound)) // unknown account
		wrong := key.Hash
		wrong[0] ^= 1
		_, err = dir.MerchantByAPIKey(ctx, key.Prefix, wrong)
		is.True(errors.Is(err, domain.ErrNotFound)) // wrong hash
		_, err = dir.MerchantByAPIKey(ctx, "rk_"+token(), key.Hash)
		is.True(errors.Is(err, domain.ErrNotFound)) // unknown prefix
	})

	t.Run("a Stripe account is bound to one merchant", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		dir := newStorage(t).Merchants()
		m, key := newMerchantWithKey(t)
		is.NoErr(dir.CreateMerchant(ctx, m, key))
		twin, twinKey := newMerchantWithKey(t)
		twin.StripeAccountID = m.StripeAccountID
		err := dir.CreateMerchant(ctx, twin, twinKey)
		is.True(errors.Is(err, domain.ErrConflict)) // the account is taken
		_, err = dir.MerchantByID(ctx, twin.ID)
		is.True(errors.Is(err, domain.ErrNotFound)) // and the twin was not stored
		_, err = dir.MerchantByAPIKey(ctx, twinKey.Prefix, twinKey.Hash)
		is.True(errors.Is(err, domain.ErrNotFound)) // nor its key
		got, err := dir.MerchantByStripeAccount(ctx, m.StripeAccountID)
		is.NoErr(err)
		same(is, got, m) // the account still names the first merchant
	})

	t.Run("merchants are listed in pages by id", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		dir := newStorage(t).Merchants()
		var want []domain.MerchantID
		for range 7 {
			m, key := newMerchantWithKey(t)
			is.NoErr(dir.CreateMerchant(ctx, m, key))
			want = append(want, m.ID)
		}
		slices.Sort(want)
		var got []domain.MerchantID
		after := domain.MerchantID("")
		for {
			page, err := dir.ListMerchants(ctx, after, 3)
			is.NoErr(err)
			is.True(len(page) <= 3) // at most the limit
			for _, m := range page {
				got = append(got, m.ID)
				is.True(m.Name != "" && m.StripeAccountID != "") // whole merchants
			}
			if len(page) < 3 {
				break
			}
			after = page[len(page)-1].ID
		}
		is.Equal(got, want) // every merchant once, in id order
	})

	t.Run("a name with a NUL is refused", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		dir := newStorage(t).Merchants()
		m, key := newMerchantWithKey(t)
		m.Name = "Acme\x00"
		err := dir.CreateMerchant(ctx, m, key)
		is.True(errors.Is(err, domain.ErrInvalid)) // PostgreSQL's text cannot hold it
		_, err = dir.MerchantByID(ctx, m.ID)
		is.True(errors.Is(err, domain.ErrNotFound)) // and nothing was stored
	})

	t.Run("keys are added and revoked one by one", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		dir := newStorage(t).Merchants()
		m, first := newMerchantWithKey(t)
		is.NoErr(dir.CreateMerchant(ctx, m, first))
		other, otherKey := newMerchantWithKey(t)
		is.NoErr(dir.CreateMerchant(ctx, other, otherKey))

		second := newKey(t, m.ID)
		is.NoErr(dir.AddAPIKey(ctx, second))
		for _, k := range []domain.APIKey{first, second} {
			got, err := dir.MerchantByAPIKey(ctx, k.Prefix, k.Hash)
			is.NoErr(err)
			is.Equal(got.ID, m.ID) // every key works
		}
		err := dir.AddAPIKey(ctx, newKey(t, domain.MerchantID(domain.NewID())))
		is.True(errors.Is(err, domain.ErrNotFound)) // no key for an unknown merchant
		taken := newKey(t, m.ID)
		taken.Prefix = second.Prefix
		err = dir.AddAPIKey(ctx, taken)
		is.True(errors.Is(err, domain.ErrConflict)) // a prefix names one key

		is.NoErr(dir.RevokeAPIKey(ctx, m.ID, first.Prefix, now()))
		_, err = dir.MerchantByAPIKey(ctx, first.Prefix, first.Hash)
		is.True(errors.Is(err, domain.ErrNotFound)) // a revoked key no longer resolves
		got, err := dir.MerchantByAPIKey(ctx, second.Prefix, second.Hash)
		is.NoErr(err)
		is.Equal(got.ID, m.ID) // the other key still does

		err = dir.RevokeAPIKey(ctx, m.ID, first.Prefix, now())
		is.True(errors.Is(err, domain.ErrNotFound)) // a key is revoked once
		err = dir.RevokeAPIKey(ctx, m.ID, "rk_"+token(), now())
		is.True(errors.Is(err, domain.ErrNotFound)) // unknown prefix
		err = dir.RevokeAPIKey(ctx, m.ID, otherKey.Prefix, now().Add(time.Second))
		is.True(errors.Is(err, domain.ErrNotFound)) // another merchant's key
		got, err = dir.MerchantByAPIKey(ctx, otherKey.Prefix, otherKey.Hash)
		is.NoErr(err)
		is.Equal(got.ID, other.ID) // which keeps working
	})
}
