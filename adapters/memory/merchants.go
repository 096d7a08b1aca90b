package memory

import (
	"context"
	"fmt"
	"time"

	"github.com/recoupdev/recoup/domain"
)

// keyRecord is a stored API key and whether it was revoked.
type keyRecord struct {
	key       domain.APIKey
	revokedAt time.Time // zero while the key works
}

// directory is the merchant directory. Its writes are single steps, so it
// needs no unit of work, only the directory's own lock.
type directory struct{ s *Store }

// CreateMerchant stores the merchant and its first key.
func (d directory) CreateMerchant(ctx context.Context, m domain.Merchant, key domain.APIKey) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := m.Validate(); err != nil {
		return fmt.Errorf("create merchant: %w", err)
	}
	if key.MerchantID != m.ID {
		return fmt.Errorf("create merchant: %w: the key belongs to another merchant", domain.ErrInvalid)
	}
	s := d.s
	s.dirMu.Lock()
	defer s.dirMu.Unlock()
	if _, ok := s.merchants[m.ID]; ok {
		return fmt.Errorf("create merchant %s: %w: id already used", m.ID, domain.ErrConflict)
	}
	if _, ok := s.accounts[m.StripeAccountID]; ok {
		return fmt.Errorf("create merchant: %w: stripe account %s is already bound", domain.ErrConflict, m.StripeAccountID)
	}
	if err := s.checkNewKey(key); err != nil {
		return err
	}
	m.CreatedAt = norm(m.CreatedAt)
	s.merchants[m.ID] = m
	s.accounts[m.StripeAccountID] = m.ID
	s.storeKey(key)
	return nil
}

// checkNewKey refuses a key whose prefix or hash is taken (both are unique
// on Postgres). Callers hold dirMu.
func (s *Store) checkNewKey(key domain.APIKey) error {
	if key.Prefix == "" {
		return fmt.Errorf("%w: empty api key prefix", domain.ErrInvalid)
	}
	if _, ok := s.keys[key.Prefix]; ok {
		return fmt.Errorf("api key %s: %w: prefix taken", key.Prefix, domain.ErrConflict)
	}
	if _, ok := s.keyHashes[key.Hash]; ok {
		return fmt.Errorf("api key %s: %w: hash taken", key.Prefix, domain.ErrConflict)
	}
	return nil
}

func (s *Store) storeKey(key domain.APIKey) {
	key.CreatedAt = norm(key.CreatedAt)
	s.keys[key.Prefix] = &keyRecord{key: key}
	s.keyHashes[key.Hash] = key.Prefix
}

// MerchantByID returns the merchant with this id.
func (d directory) MerchantByID(ctx context.Context, id domain.MerchantID) (domain.Merchant, error) {
	if err := ctx.Err(); err != nil {
		return domain.Merchant{}, err
	}
	d.s.dirMu.RLock()
	defer d.s.dirMu.RUnlock()
	m, ok := d.s.merchants[id]
	if !ok {
		return domain.Merchant{}, fmt.Errorf("merchant %s: %w", id, domain.ErrNotFound)
	}
	return m, nil
}

// MerchantByStripeAccount returns the merchant bound to the account.
func (d directory) MerchantByStripeAccount(ctx context.Context, account string) (domain.Merchant, error) {
	if err := ctx.Err(); err != nil {
		return domain.Merchant{}, err
	}
	d.s.dirMu.RLock()
	defer d.s.dirMu.RUnlock()
	id, ok := d.s.accounts[account]
	if !ok {
		return domain.Merchant{}, fmt.Errorf("merchant for account %s: %w", account, domain.ErrNotFound)
	}
	return d.s.merchants[id], nil
}

// MerchantByAPIKey returns the owner of the unrevoked key, comparing the
// hash in constant time.
func (d directory) MerchantByAPIKey(ctx context.Context, prefix string, hash domain.APIKeyHash) (domain.Merchant, error) {
	if err := ctx.Err(); err != nil {
		return domain.Merchant{}, err
	}
	d.s.dirMu.RLock()
	defer d.s.dirMu.RUnlock()
	k, ok := d.s.keys[prefix]
	if !ok || !k.revokedAt.IsZero() || !k.key.Hash.Equal(hash) {
		return domain.Merchant{}, fmt.Errorf("api key %s: %w", prefix, domain.ErrNotFound)
	}
	m, ok := d.s.merchants[k.key.MerchantID]
	if !ok {
		return domain.Merchant{}, fmt.Errorf("api key %s: %w", prefix, domain.ErrNotFound)
	}
	return m, nil
}

// AddAPIKey stores another key for an existing merchant.
func (d directory) AddAPIKey(ctx context.Context, key domain.APIKey) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s := d.s
	s.dirMu.Lock()
	defer s.dirMu.Unlock()
	if _, ok := s.merchants[key.MerchantID]; !ok {
		return fmt.Errorf("add api key: merchant %s: %w", key.MerchantID, domain.ErrNotFound)
	}
	if err := s.checkNewKey(key); err != nil {
		return err
	}
	s.storeKey(key)
	return nil
}

// RevokeAPIKey revokes the merchant's unrevoked key with this prefix.
func (d directory) RevokeAPIKey(ctx context.Context, merchant domain.MerchantID, prefix string, at time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s := d.s
	s.dirMu.Lock()
	defer s.dirMu.Unlock()
	k, ok := s.keys[prefix]
	if !ok || k.key.MerchantID != merchant || !k.revokedAt.IsZero() {
		return fmt.Errorf("revoke api key %s: %w", prefix, domain.ErrNotFound)
	}
	if at = norm(at); at.IsZero() {
		at = norm(s.clock.Now())
	}
	k.revokedAt = at
	return nil
}
