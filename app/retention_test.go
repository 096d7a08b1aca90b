package app_test

import (
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/adapters/memory"
	"github.com/recoupdev/recoup/app"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/clocktest"
)

// The pruner forgets email reservations two weeks old, which no weekly
// cap counts any more, and keeps the newer ones, whatever the retention
// of idempotency locks.
func TestPrunerForgetsOldEmailReservations(t *testing.T) {
	is := is.New(t)
	ctx := t.Context()
	clock := clocktest.New(time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC))
	st := memory.New(clock)
	m := domain.MerchantID(domain.NewID())
	week := 7 * 24 * time.Hour
	for _, age := range []time.Duration{30 * 24 * time.Hour, 15 * 24 * time.Hour, 13 * 24 * time.Hour, time.Hour} {
		ok, err := st.Emails().ReserveEmail(ctx, m, "cus_1", clock.Now().Add(-age), week, 10)
		is.NoErr(err)
		is.True(ok)
	}
	p := app.NewEventPruner(st, -1, clock, nil) // locks never pruned

	n, err := p.PruneEmails(ctx)
	is.NoErr(err)
	is.Equal(n, 2) // the 30- and 15-day-old ones
	n, err = st.Emails().PruneEmails(ctx, clock.Now(), 10)
	is.NoErr(err)
	is.Equal(n, 2) // the 13-day-old and the recent one were kept
}
