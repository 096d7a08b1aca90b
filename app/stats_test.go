package app_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/stripetest"
)

// march is midnight UTC of 2026-03-d (the use cases' clock reads noon on
// the 1st); d may run over into April, or back into February.
func march(d int) time.Time { return time.Date(2026, 3, d, 0, 0, 0, 0, time.UTC) }

func TestTaskServiceStatsRange(t *testing.T) {
	is := is.New(t)
	u := newUseCases(t, nil)
	ctx := context.Background()
	m := u.merchant(t, "A")
	at := func(t time.Time) *time.Time { return &t }

	st, err := u.tasks.Stats(ctx, m, nil, nil)
	is.NoErr(err)
	is.Equal(st.Range, domain.DayRange{From: march(-28), To: march(1)}) // the last 30 days: January 31st through today
	st, err = u.tasks.Stats(ctx, m, nil, at(march(20)))
	is.NoErr(err)
	is.Equal(st.Range, domain.DayRange{From: march(-9), To: march(20)}) // the 30 days up to to
	st, err = u.tasks.Stats(ctx, m, at(march(-100)), nil)
	is.NoErr(err)
	is.Equal(st.Range, domain.DayRange{From: march(-100), To: march(1)}) // from to today
	st, err = u.tasks.Stats(ctx, m, at(march(5)), at(march(5)))
	is.NoErr(err)
	is.Equal(st.Range.Days(), 1) // a single day
	st, err = u.tasks.Stats(ctx, m, at(march(1)), at(march(366)))
	is.NoErr(err)
	is.Equal(st.Range.Days(), domain.MaxStatsDays) // the longest span
	plus3 := time.FixedZone("UTC+3", 3*3600)
	st, err = u.tasks.Stats(ctx, m, at(time.Date(2026, 3, 1, 3, 0, 0, 0, plus3)), at(time.Date(2026, 3, 5, 3, 0, 0, 0, plus3)))
	is.NoErr(err)
	is.Equal(st.Range, domain.DayRange{From: march(1), To: march(5)}) // midnight UTC told in another zone is midnight UTC
	is.Equal(st.Range.From.Location(), time.UTC)
	is.Equal(st.Range.To.Location(), time.UTC)

	for _, bad := range []struct {
		name     string
		from, to *time.Time
	}{
		{"from after to", at(march(6)), at(march(5))},
		{"from after today", at(march(2)), nil},
		{"a day too long", at(march(1)), at(march(367))},
		{"centuries", at(time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)), at(time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC))},
		{"from not a midnight", at(march(1).Add(time.Hour)), nil},
		{"to not a UTC midnight", nil, at(time.Date(2026, 3, 1, 0, 0, 0, 0, time.FixedZone("UTC+3", 3*3600)))},
	} {
		_, err := u.tasks.Stats(ctx, m, bad.from, bad.to)
		if !errors.Is(err, domain.ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", bad.name, err)
		}
	}
}

func TestTaskServiceStatsFigures(t *testing.T) {
	is := is.New(t)
	u := newUseCases(t, nil)
	ctx := context.Background()
	a, b := u.merchant(t, "A"), u.merchant(t, "B")
	on := func(ev domain.Event, at time.Time) domain.Event {
		ev.Created = at
		return ev
	}
	old, recent := stripetest.NewID("in_"), stripetest.NewID("in_")
	u.handle(t, on(paymentFailedEvent(a.StripeAccountID, old, "sub_1", 1), march(-40)))                    // long before the last 30 days
	u.handle(t, on(invoiceEvent(domain.EventInvoicePaid, a.StripeAccountID, old, "sub_1"), march(-10)))    // paid within them, by Stripe's second attempt
	u.handle(t, on(paymentFailedEvent(a.StripeAccountID, recent, "sub_2", 1), march(1).Add(time.Hour)))    // today
	u.handle(t, on(paymentFailedEvent(b.StripeAccountID, stripetest.NewID("in_"), "sub_3", 1), march(-5))) // another merchant's

	st, err := u.tasks.Stats(ctx, a, nil, nil)
	is.NoErr(err)
	is.Equal(st.Figures.Series, []domain.DayFigures{
		{Date: "2026-02-18", Currency: "usd", RecoveredAmount: 2000},
		{Date: "2026-03-01", Currency: "usd", FailedAmount: 2000},
	}) // the default span's days, the other merchant's left out
	is.Equal(st.Figures.ByDeclineCode, map[string]domain.DeclineFigures{domain.UnknownDeclineCode: {FailedInvoices: 1, RecoveredInvoices: 1}})
	is.Equal(st.Figures.BySource[domain.RecoveredByStripeRetry], 1)
	is.Equal(st.ByCurrency["usd"], domain.CurrencyRecovery{FailedAmount: 4000, RecoveredAmount: 2000}) // all time, whatever the span

	day := march(-40)
	st, err = u.tasks.Stats(ctx, a, &day, &day)
	is.NoErr(err)
	is.Equal(st.Figures.Series, []domain.DayFigures{{Date: "2026-01-19", Currency: "usd", FailedAmount: 2000}}) // that day alone
	is.Equal(st.ByCurrency["usd"], domain.CurrencyRecovery{FailedAmount: 4000, RecoveredAmount: 2000})          // the sums stay all-time

	u.clock.Add(24 * time.Hour)
	st, err = u.tasks.Stats(ctx, b, nil, nil)
	is.NoErr(err)
	is.Equal(st.Range.To, march(2)) // today moves with the clock
	is.Equal(st.Figures.Series, []domain.DayFigures{{Date: "2026-02-23", Currency: "usd", FailedAmount: 2000}})
	is.Equal(st.Figures.BySource[domain.RecoveredByStripeRetry], 0) // A's recovery is not B's
}
