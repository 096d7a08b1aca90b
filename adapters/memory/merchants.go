package memory

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/recoupdev/recoup/domain"
)

// directory is the merchant directory. Its changes are single steps that
// log no inverse, so each call is a unit of work of its own.
type directory struct{ s *Store }

// apiKey is a stored API key. No port reads when it was revoked, so that
// is not kept.
type apiKey struct {
	domain.APIKey
	revoked bool
}

func (d directory) CreateMerchant(ctx context.Context, m domain.Merchant, key domain.APIKey) error {
	if err := m.Validate(); err != nil {
		return fmt.Errorf("create merchant: %w", err)
	}
	if key.MerchantID != m.ID || !domain.StorableText(m.Name, m.StripeAccountID) {
		return fmt.Errorf("create merchant: %w: a key of another merchant, or text with a NUL character", domain.ErrInvalid)
	}
	id, _ := domain.ParseUUID(string(m.ID))
	m.ID, m.CreatedAt, key.MerchantID = domain.MerchantID(id), norm(m.CreatedAt), domain.MerchantID(id)
	return d.s.run(ctx, func(u *unit) error {
		s := u.s
		if _, ok := s.merchants[m.ID]; ok {
			return fmt.Errorf("create merchant %s: %w: id already used", m.ID, domain.ErrConflict)
		}
		if _, ok := s.accounts[m.StripeAccountID]; ok {
			return fmt.Errorf("create merchant: %w: stripe account %s is already bound", domain.ErrConflict, m.StripeAccountID)
		}
		if err := s.addKey(key); err != nil {
			return err
		}
		s.merchants[m.ID], s.accounts[m.StripeAccountID] = m, m.ID
		return nil
	})
}

// addKey stores a key unless PostgreSQL would refuse it: no prefix, or a
// prefix or hash already stored.
func (s *Store) addKey(key domain.APIKey) error {
	if key.Prefix == "" || !domain.StorableText(key.Prefix) {
		return fmt.Errorf("api key: %w: empty prefix or one with a NUL character", domain.ErrInvalid)
	}
	if s.keys[key.Prefix] != nil || s.keyHashes[key.Hash] {
		return fmt.Errorf("api key %s: %w: prefix or hash taken", key.Prefix, domain.ErrConflict)
	}
	s.keys[key.Prefix], s.keyHashes[key.Hash] = &apiKey{APIKey: key}, true
	return nil
}

func (d directory) MerchantByID(ctx context.Context, id domain.MerchantID) (domain.Merchant, error) {
	return d.lookup(ctx, "merchant "+string(id), func(s *Store) (domain.Merchant, bool) {
		canon, err := domain.ParseUUID(string(id))
		m, ok := s.merchants[domain.MerchantID(canon)]
		return m, ok && err == nil
	})
}

func (d directory) MerchantByStripeAccount(ctx context.Context, account string) (domain.Merchant, error) {
	return d.lookup(ctx, "merchant for account "+account, func(s *Store) (domain.Merchant, bool) {
		m, ok := s.merchants[s.accounts[account]]
		return m, ok
	})
}

func (d directory) MerchantByAPIKey(ctx context.Context, prefix string, hash domain.APIKeyHash) (domain.Merchant, error) {
	return d.lookup(ctx, "api key "+prefix, func(s *Store) (domain.Merchant, bool) {
		if k := s.keys[prefix]; k != nil && !k.revoked && k.Hash.Equal(hash) { // Equal takes constant time
			m, ok := s.merchants[k.MerchantID]
			return m, ok
		}
		return domain.Merchant{}, false
	})
}

// lookup returns what find finds, or ErrNotFound about what.
func (d directory) lookup(ctx context.Context, what string, find func(s *Store) (domain.Merchant, bool)) (domain.Merchant, error) {
	var m domain.Merchant
	err := d.s.run(ctx, func(u *unit) error {
		var ok bool
		if m, ok = find(u.s); !ok {
			return fmt.Errorf("%s: %w", what, domain.ErrNotFound)
		}
		return nil
	})
	return m, err
}

func (d directory) AddAPIKey(ctx context.Context, key domain.APIKey) error {
	return d.s.run(ctx, func(u *unit) error {
		id, err := domain.ParseUUID(string(key.MerchantID))
		if _, ok := u.s.merchants[domain.MerchantID(id)]; err != nil || !ok {
			return fmt.Errorf("add api key: merchant %s: %w", key.MerchantID, domain.ErrNotFound)
		}
		key.MerchantID = domain.MerchantID(id)
		return u.s.addKey(key)
	})
}

func (d directory) RevokeAPIKey(ctx context.Context, merchant domain.MerchantID, prefix string, _ time.Time) error {
	return d.s.run(ctx, func(u *unit) error {
		id, _ := domain.ParseUUID(string(merchant))
		if k := u.s.keys[prefix]; k != nil && string(k.MerchantID) == id && !k.revoked {
			k.revoked = true
			return nil
		}
		return fmt.Errorf("revoke api key %s: %w", prefix, domain.ErrNotFound)
	})
}

// ListMerchants sorts the ids after `after` at each call: the directory
// is small, and pages of it are asked for now and then.
func (d directory) ListMerchants(ctx context.Context, after domain.MerchantID, limit int) ([]domain.Merchant, error) {
	if after != "" {
		canon, err := domain.ParseUUID(string(after))
		if err != nil {
			return nil, fmt.Errorf("list merchants after %s: %w", after, err)
		}
		after = domain.MerchantID(canon)
	}
	out := []domain.Merchant{}
	err := d.s.run(ctx, func(u *unit) error {
		var ids []domain.MerchantID
		for id := range u.s.merchants {
			if id > after { // canonical ids compare as PostgreSQL compares uuids
				ids = append(ids, id)
			}
		}
		slices.Sort(ids)
		for _, id := range ids[:min(max(limit, 0), len(ids))] {
			out = append(out, u.s.merchants[id])
		}
		return nil
	})
	return out, err
}
