package memory

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/recoupdev/recoup/domain"
)

// sentKey is whose emails a list of Store.sent holds.
type sentKey struct {
	merchant domain.MerchantID
	customer string
}

// ReserveEmail counts the customer's reservations at each call: a
// customer gets a few emails a week. None is forgotten until PruneEmails
// is told it can be, as no window given later can be known. Reservations
// later than at count too: made out of order, by concurrent callers that
// read their clocks before taking the lock, they would otherwise pass the
// cap (the contract's concurrent case). Every window of that length then
// holds at most max.
func (c scope) ReserveEmail(ctx context.Context, merchant domain.MerchantID, customer string, at time.Time, window time.Duration, max int) (bool, error) {
	if !domain.StorableText(customer) {
		return false, fmt.Errorf("reserve email: %w: a customer with a NUL character", domain.ErrInvalid)
	}
	at = norm(at)
	from := at.Add(-window)
	ok := false
	err := c.doFor(ctx, merchant, func(u *unit, ten *tenant) error {
		k := sentKey{ten.id, customer}
		n := 0
		for _, t := range u.s.sent[k] {
			if t.After(from) {
				n++
			}
		}
		if ok = n < max; ok {
			setIn(u, u.s.sent, k, append(u.s.sent[k], at), true) // an append leaves the old list as it was
		}
		return nil
	})
	return ok, err
}

func (c scope) ReleaseEmail(ctx context.Context, merchant domain.MerchantID, customer string, at time.Time) error {
	at = norm(at)
	return c.doFor(ctx, merchant, func(u *unit, ten *tenant) error {
		k := sentKey{ten.id, customer}
		sent := u.s.sent[k]
		if i := slices.IndexFunc(sent, at.Equal); i >= 0 {
			rest := slices.Delete(slices.Clone(sent), i, i+1) // a clone: the undo log keeps the old list
			setIn(u, u.s.sent, k, rest, len(rest) > 0)
		}
		return nil
	})
}

func (c scope) PruneEmails(ctx context.Context, cutoff time.Time, batch int) (int, error) {
	if batch < 1 {
		return 0, fmt.Errorf("prune email reservations: %w: batch must be positive", domain.ErrInvalid)
	}
	n := 0
	err := c.do(ctx, func(u *unit) error {
		for k, sent := range u.s.sent {
			if n == batch {
				break
			}
			rest := slices.DeleteFunc(slices.Clone(sent), func(at time.Time) bool { // a clone: the undo log keeps the old list
				if n < batch && at.Before(cutoff) {
					n++
					return true
				}
				return false
			})
			if len(rest) < len(sent) {
				setIn(u, u.s.sent, k, rest, len(rest) > 0)
			}
		}
		return nil
	})
	return n, err
}
