package app

import (
	"context"
	"fmt"
	"strings"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// MerchantService administers merchants and their API keys, and resolves a
// presented API key to its merchant.
type MerchantService struct {
	dir   ports.MerchantDirectory
	clock ports.Clock
}

// NewMerchantService returns the merchant use cases.
func NewMerchantService(dir ports.MerchantDirectory, clock ports.Clock) *MerchantService {
	return &MerchantService{dir: dir, clock: clock}
}

// IssuedKey is a freshly made API key: Plain is shown once and never stored.
type IssuedKey struct {
	Plain  string
	Prefix string
}

// Create makes a merchant bound to a Stripe connected account, with its
// first API key. ErrInvalid on bad input, ErrConflict if the account is
// already bound.
func (s *MerchantService) Create(ctx context.Context, name, stripeAccount string) (domain.Merchant, IssuedKey, error) {
	now := s.clock.Now()
	m := domain.Merchant{
		ID: domain.MerchantID(domain.NewID()), Name: strings.TrimSpace(name),
		StripeAccountID: strings.TrimSpace(stripeAccount), CreatedAt: now,
	}
	if err := m.Validate(); err != nil {
		return domain.Merchant{}, IssuedKey{}, err
	}
	plain, key, err := domain.NewAPIKey(m.ID, now)
	if err != nil {
		return domain.Merchant{}, IssuedKey{}, err
	}
	// The directory's errors name the operation ("create merchant: …")
	// already: wrapping them again would say it twice.
	if err := s.dir.CreateMerchant(ctx, m, key); err != nil {
		return domain.Merchant{}, IssuedKey{}, err
	}
	return m, IssuedKey{Plain: plain, Prefix: key.Prefix}, nil
}

// IssueKey makes another API key for the merchant; earlier keys keep
// working. ErrNotFound if there is no such merchant.
func (s *MerchantService) IssueKey(ctx context.Context, id domain.MerchantID) (IssuedKey, error) {
	plain, key, err := domain.NewAPIKey(id, s.clock.Now())
	if err != nil {
		return IssuedKey{}, err
	}
	if err := s.dir.AddAPIKey(ctx, key); err != nil {
		return IssuedKey{}, fmt.Errorf("add api key: %w", err)
	}
	return IssuedKey{Plain: plain, Prefix: key.Prefix}, nil
}

// RevokeKey revokes the merchant's key with this prefix; ErrNotFound if it
// has none.
func (s *MerchantService) RevokeKey(ctx context.Context, id domain.MerchantID, prefix string) error {
	if err := s.dir.RevokeAPIKey(ctx, id, prefix, s.clock.Now()); err != nil {
		return fmt.Errorf("revoke api key: %w", err)
	}
	return nil
}

// Authenticate resolves a presented API key to its merchant. Any malformed,
// unknown or revoked key is ErrNotFound, so callers cannot tell them apart.
func (s *MerchantService) Authenticate(ctx context.Context, plainKey string) (domain.Merchant, error) {
	prefix, err := domain.ParseAPIKey(plainKey)
	if err != nil {
		return domain.Merchant{}, domain.ErrNotFound
	}
	return s.dir.MerchantByAPIKey(ctx, prefix, domain.HashAPIKey(plainKey))
}
