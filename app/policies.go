package app

import (
	"context"
	"fmt"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// PolicyService reads and changes each merchant's dunning policy. Like the
// task use cases, it takes the merchant, and reaches only that one's
// policy.
type PolicyService struct {
	policies ports.PolicyStore
}

// NewPolicyService returns the policy use cases.
func NewPolicyService(policies ports.PolicyStore) *PolicyService {
	return &PolicyService{policies: policies}
}

// Get returns the merchant's policy: domain.DefaultDunningPolicy until it
// sets one.
func (s *PolicyService) Get(ctx context.Context, m domain.Merchant) (domain.DunningPolicy, error) {
	p, err := s.policies.Policy(ctx, m.ID)
	if err != nil {
		return domain.DunningPolicy{}, fmt.Errorf("read policy: %w", err)
	}
	return p, nil
}

// Set replaces the merchant's policy with p and returns it as stored. An
// invalid p is a *domain.PolicyError naming its first bad field
// (ErrInvalid), and nothing changes. The policy applies to events
// processed and tasks run after it is stored: tasks already scheduled keep
// their run_at.
func (s *PolicyService) Set(ctx context.Context, m domain.Merchant, p domain.DunningPolicy) (domain.DunningPolicy, error) {
	if err := p.Validate(); err != nil {
		return domain.DunningPolicy{}, err
	}
	if err := s.policies.SetPolicy(ctx, m.ID, p); err != nil {
		return domain.DunningPolicy{}, fmt.Errorf("store policy: %w", err)
	}
	return s.Get(ctx, m)
}
