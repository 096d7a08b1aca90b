package memory

import (
	"context"
	"fmt"
	"time"

	"github.com/recoupdev/recoup/domain"
)

// lease is who holds a named lease, and until when.
type lease struct {
	holder string
	until  time.Time
}

// AcquireLease treats a lease as a task's: held until it expires before
// now.
func (c scope) AcquireLease(ctx context.Context, name, holder string, now, until time.Time) (bool, error) {
	if name == "" || holder == "" || !domain.StorableText(name, holder) {
		return false, fmt.Errorf("acquire lease: %w: empty name or holder, or one with a NUL character", domain.ErrInvalid)
	}
	now, until = norm(now), norm(until)
	won := false
	err := c.do(ctx, func(u *unit) error {
		if cur, ok := u.s.leases[name]; ok && cur.holder != holder && !cur.until.Before(now) {
			return nil
		}
		setIn(u, u.s.leases, name, lease{holder, until}, true)
		won = true
		return nil
	})
	return won, err
}

func (c scope) ReleaseLease(ctx context.Context, name, holder string) error {
	return c.do(ctx, func(u *unit) error {
		if cur, ok := u.s.leases[name]; ok && cur.holder == holder {
			setIn(u, u.s.leases, name, lease{}, false)
		}
		return nil
	})
}
