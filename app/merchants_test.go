package app_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/app"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/stripetest"
)

func TestMerchantServiceCreate(t *testing.T) {
	ctx := context.Background()
	u := newUseCases(t, nil)
	dir := u.mem.Merchants()

	t.Run("created", func(t *testing.T) {
		is := is.New(t)
		account := stripetest.NewID("acct_")
		m, key, err := u.merchants.Create(ctx, "  Acme Books ", " "+account+" ")
		is.NoErr(err)
		_, err = domain.ParseUUID(string(m.ID))
		is.NoErr(err)                                         // a UUID
		is.Equal(m.Name, "Acme Books")                        // trimmed
		is.Equal(m.StripeAccountID, account)                  // trimmed
		is.True(m.CreatedAt.Equal(u.clock.Now()))             // now
		is.True(strings.HasPrefix(key.Prefix, "rk_"))         // a recoup key
		is.True(strings.HasPrefix(key.Plain, key.Prefix+"_")) // that its prefix names

		stored, err := dir.MerchantByStripeAccount(ctx, account)
		is.NoErr(err)
		is.Equal(stored, m) // bound to its account
		stored, err = dir.MerchantByID(ctx, m.ID)
		is.NoErr(err)
		is.Equal(stored, m)
		got, err := u.merchants.Authenticate(ctx, key.Plain)
		is.NoErr(err)
		is.Equal(got, m) // and its first key works
	})

	t.Run("a name of 200 characters", func(t *testing.T) {
		is := is.New(t)
		_, _, err := u.merchants.Create(ctx, strings.Repeat("n", 200), stripetest.NewID("acct_"))
		is.NoErr(err)
	})

	for _, tc := range []struct {
		name, merchant, account string
	}{
		{"empty name", "", "acct_empty"},
		{"blank name", "   ", "acct_blank"},
		{"name over 200 characters", strings.Repeat("n", 201), "acct_long"},
		{"no account", "X", ""},
		{"the account prefix alone", "X", "acct_"},
		{"a customer, not an account", "X", "cus_123"},
		{"an account with a dash", "X", "acct_a-b"},
		{"an account with a space inside", "X", "acct_a b"},
		{"an account over 255 characters", "X", "acct_" + strings.Repeat("a", 251)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			_, key, err := u.merchants.Create(ctx, tc.merchant, tc.account)
			is.True(errors.Is(err, domain.ErrInvalid)) // refused as invalid
			is.Equal(key, app.IssuedKey{})             // without a key
			_, err = dir.MerchantByStripeAccount(ctx, strings.TrimSpace(tc.account))
			is.True(errors.Is(err, domain.ErrNotFound)) // and no merchant bound
		})
	}

	t.Run("an account already bound", func(t *testing.T) {
		is := is.New(t)
		account := stripetest.NewID("acct_")
		first, firstKey, err := u.merchants.Create(ctx, "First", account)
		is.NoErr(err)
		_, key, err := u.merchants.Create(ctx, "Copycat", " "+account)
		is.True(errors.Is(err, domain.ErrConflict)) // refused as a conflict
		is.Equal(key, app.IssuedKey{})              // without a key
		bound, err := dir.MerchantByStripeAccount(ctx, account)
		is.NoErr(err)
		is.Equal(bound, first) // the account stays the first merchant's
		got, err := u.merchants.Authenticate(ctx, firstKey.Plain)
		is.NoErr(err)
		is.Equal(got, first) // whose key still works
	})
}

func TestMerchantServiceKeys(t *testing.T) {
	is := is.New(t)
	ctx := context.Background()
	u := newUseCases(t, nil)
	m, firstKey, err := u.merchants.Create(ctx, "Keys", stripetest.NewID("acct_"))
	is.NoErr(err)
	other, otherKey, err := u.merchants.Create(ctx, "Bystander", stripetest.NewID("acct_"))
	is.NoErr(err)
	authenticates := func(key string, want domain.Merchant) bool {
		got, err := u.merchants.Authenticate(ctx, key)
		return err == nil && got == want
	}

	second, err := u.merchants.IssueKey(ctx, m.ID)
	is.NoErr(err)
	is.True(strings.HasPrefix(second.Plain, second.Prefix+"_")) // the prefix names the key
	is.True(second.Prefix != firstKey.Prefix)                   // a key of its own
	is.True(authenticates(second.Plain, m))                     // it works
	is.True(authenticates(firstKey.Plain, m))                   // and the first still does

	_, err = u.merchants.IssueKey(ctx, domain.MerchantID(domain.NewID()))
	is.True(errors.Is(err, domain.ErrNotFound)) // no key for a merchant that does not exist

	is.NoErr(u.merchants.RevokeKey(ctx, m.ID, firstKey.Prefix))
	is.True(!authenticates(firstKey.Plain, m)) // the revoked key no longer works
	is.True(authenticates(second.Plain, m))    // the other key still does
	is.True(authenticates(otherKey.Plain, other))

	err = u.merchants.RevokeKey(ctx, m.ID, firstKey.Prefix)
	is.True(errors.Is(err, domain.ErrNotFound)) // revoking twice: no such key
	err = u.merchants.RevokeKey(ctx, m.ID, otherKey.Prefix)
	is.True(errors.Is(err, domain.ErrNotFound))   // another merchant's key cannot be revoked through m
	is.True(authenticates(otherKey.Plain, other)) // and still works
	err = u.merchants.RevokeKey(ctx, domain.MerchantID(domain.NewID()), second.Prefix)
	is.True(errors.Is(err, domain.ErrNotFound)) // nor through a merchant that does not exist
	is.True(authenticates(second.Plain, m))
	err = u.merchants.RevokeKey(ctx, m.ID, "rk_nosuchkey")
	is.True(errors.Is(err, domain.ErrNotFound)) // nor a key that does not exist
}

func TestMerchantServiceAuthenticate(t *testing.T) {
	ctx := context.Background()
	u := newUseCases(t, nil)
	m, key, err := u.merchants.Create(ctx, "Auth", stripetest.NewID("acct_"))
	if err != nil {
		t.Fatal(err)
	}
	revoked, err := u.merchants.IssueKey(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.merchants.RevokeKey(ctx, m.ID, revoked.Prefix); err != nil {
		t.Fatal(err)
	}
	unknown, _, err := domain.NewAPIKey(m.ID, u.clock.Now()) // well formed, never stored
	if err != nil {
		t.Fatal(err)
	}
	_, secret, _ := strings.Cut(strings.TrimPrefix(unknown, "rk_"), "_")
	wrongSecret := key.Prefix + "_" + secret // a real prefix with another secret

	t.Run("the key works", func(t *testing.T) {
		is := is.New(t)
		got, err := u.merchants.Authenticate(ctx, key.Plain)
		is.NoErr(err)
		is.Equal(got, m)
	})

	// Keys that name a key id: whatever the reason they fail, the error is
	// the same but for the prefix the caller itself sent.
	wellFormed := map[string]string{"unknown": unknown, "revoked": revoked.Plain, "wrong secret": wrongSecret}
	malformed := map[string]string{
		"empty":            "",
		"garbage":          "garbage",
		"scheme only":      "rk_",
		"no secret":        "rk_abc",
		"empty secret":     "rk_abc_",
		"empty key id":     "rk__secret",
		"three parts":      "rk_a_b_c",
		"with its scheme":  "Bearer " + key.Plain,
		"another scheme":   "sk_" + strings.TrimPrefix(key.Plain, "rk_"),
		"over 128 bytes":   key.Plain + strings.Repeat("x", 129-len(key.Plain)),
		"a trailing space": key.Plain + " ",
	}
	var masked []string
	for name, plain := range wellFormed {
		t.Run(name, func(t *testing.T) {
			is := is.New(t)
			got, err := u.merchants.Authenticate(ctx, plain)
			is.True(errors.Is(err, domain.ErrNotFound)) // not found
			is.Equal(got, domain.Merchant{})            // and no merchant
			prefix, perr := domain.ParseAPIKey(plain)
			is.NoErr(perr)
			masked = append(masked, strings.ReplaceAll(err.Error(), prefix, "<prefix>"))
		})
	}
	t.Run("indistinguishable", func(t *testing.T) {
		is := is.New(t)
		is.Equal(len(masked), len(wellFormed))
		for _, msg := range masked {
			is.Equal(msg, masked[0]) // unknown, revoked and wrong secret read the same
		}
	})
	for name, plain := range malformed {
		t.Run(name, func(t *testing.T) {
			is := is.New(t)
			got, err := u.merchants.Authenticate(ctx, plain)
			is.True(errors.Is(err, domain.ErrNotFound)) // not found, like an unknown key
			is.Equal(got, domain.Merchant{})
		})
	}
}
