package memory

import (
	"context"
	"maps"
	"slices"

	"github.com/recoupdev/recoup/domain"
)

// Policy returns a copy: the caller may change it as it likes.
func (c scope) Policy(ctx context.Context, merchant domain.MerchantID) (domain.DunningPolicy, error) {
	var p domain.DunningPolicy
	err := c.doFor(ctx, merchant, func(_ *unit, ten *tenant) error {
		if ten.policy == nil {
			p = domain.DefaultDunningPolicy()
		} else {
			p = clonePolicy(*ten.policy)
		}
		return nil
	})
	return p, err
}

// SetPolicy stores a copy: what the caller does with p afterwards changes
// nothing stored.
func (c scope) SetPolicy(ctx context.Context, merchant domain.MerchantID, p domain.DunningPolicy) error {
	if err := p.Validate(); err != nil {
		return err
	}
	p = clonePolicy(p)
	return c.doFor(ctx, merchant, func(u *unit, ten *tenant) error {
		old := ten.policy
		ten.policy = &p
		u.onUndo(func() { ten.policy = old })
		return nil
	})
}

// clonePolicy copies p's slices and map, keeping nil ones nil and empty
// ones empty, so that the copy is reflect.DeepEqual to p.
func clonePolicy(p domain.DunningPolicy) domain.DunningPolicy {
	p.RetryDelaysHours = slices.Clone(p.RetryDelaysHours)
	p.DelaysByDeclineCode = maps.Clone(p.DelaysByDeclineCode)
	for code, hours := range p.DelaysByDeclineCode {
		p.DelaysByDeclineCode[code] = slices.Clone(hours)
	}
	p.HardDeclineCodes = slices.Clone(p.HardDeclineCodes)
	p.Emails.ReminderHours = slices.Clone(p.Emails.ReminderHours)
	return p
}
