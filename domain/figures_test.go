package domain_test

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/domain"
)

// day is midnight UTC of 2026-03-d.
func day(d int) time.Time { return time.Date(2026, 3, d, 0, 0, 0, 0, time.UTC) }

// applied is the record that facts make of invoice inv.
func applied(inv string, facts ...domain.InvoiceFact) domain.InvoiceRecord {
	r := domain.InvoiceRecord{InvoiceID: inv}
	for _, f := range facts {
		f.InvoiceID = inv
		r = r.Apply(f)
	}
	return r
}

func failure(at time.Time, currency string, amount int64) domain.InvoiceFact {
	return domain.InvoiceFact{Kind: domain.FactFailed, At: at, Currency: currency, AmountDue: amount, AttemptCount: 1}
}

func payment(at time.Time, amount int64, attempts int) domain.InvoiceFact {
	return domain.InvoiceFact{Kind: domain.FactPaid, At: at, Amount: amount, AttemptCount: attempts}
}

func TestFiguresOf(t *testing.T) {
	is := is.New(t)
	records := []domain.InvoiceRecord{
		// Failed on the 2nd, recovered by a Stripe retry on the 4th.
		applied("in_a", failure(day(2).Add(hours(23)), "usd", 5000),
			domain.InvoiceFact{Kind: domain.FactDeclined, At: day(2), DeclineCode: "insufficient_funds"},
			payment(day(4), 4500, 2)),
		// Failed at the range's first instant, in euros, never paid, no
		// decline code.
		applied("in_b", failure(day(1), "eur", 700)),
		// Failed before the range, recovered by recoup on its first day.
		applied("in_c", failure(day(1).Add(-time.Microsecond), "usd", 900),
			domain.InvoiceFact{Kind: domain.FactRecoupDeclined, At: day(1), DeclineCode: "generic_decline"},
			domain.InvoiceFact{Kind: domain.FactRecoupPaid, At: day(3)},
			payment(day(3), 900, 1)),
		// Failed on the range's last day, paid just after it.
		applied("in_d", failure(day(5).Add(-time.Microsecond), "usd", 100), payment(day(5), 100, 1)),
		// Paid without a failure; failed, then voided: no recovery.
		applied("in_e", payment(day(2), 300, 1)),
		applied("in_f", failure(day(3), "usd", 200), domain.InvoiceFact{Kind: domain.FactClosed, At: day(3), Status: domain.InvoiceVoid}),
	}
	got := domain.FiguresOf(slices.Values(records), day(1), day(5))
	is.Equal(got.Series, []domain.DayFigures{
		{Date: "2026-03-01", Currency: "eur", FailedAmount: 700},
		{Date: "2026-03-02", Currency: "usd", FailedAmount: 5000},
		{Date: "2026-03-03", Currency: "usd", FailedAmount: 200, RecoveredAmount: 900},
		{Date: "2026-03-04", Currency: "usd", RecoveredAmount: 4500, FailedAmount: 100},
	}) // by day, then currency; each side on its own day
	is.Equal(got.ByDeclineCode, map[string]domain.DeclineFigures{
		"insufficient_funds":      {FailedInvoices: 1, RecoveredInvoices: 1},
		"generic_decline":         {RecoveredInvoices: 1}, // its failure was before the range
		domain.UnknownDeclineCode: {FailedInvoices: 3},    // in_b, in_d and in_f
	})
	is.Equal(got.BySource, map[domain.RecoverySource]int{
		domain.RecoveredByRecoupRetry: 1, domain.RecoveredByStripeRetry: 1,
		domain.RecoveredByCardUpdate: 0, domain.RecoveredByCustomer: 0,
	}) // every source, zeros included

	empty := domain.FiguresOf(slices.Values(records), day(5), day(5))
	is.Equal(empty, domain.NewRecoveryFigures()) // nothing counts in an empty span
	is.Equal(len(empty.BySource), 4)
	is.Equal(domain.FiguresOf(slices.Values(records), day(5), day(1)), domain.NewRecoveryFigures()) // nor in a reversed one
}

// randomRecords returns n records made of random facts around day(1).
func randomRecords(r *rand.Rand, n int) []domain.InvoiceRecord {
	kinds := []domain.FactKind{domain.FactFailed, domain.FactFailed, domain.FactDeclined, domain.FactRecoupDeclined,
		domain.FactRecoupPaid, domain.FactPaid, domain.FactClosed, domain.FactCardUpdated}
	out := make([]domain.InvoiceRecord, n)
	for i := range out {
		var facts []domain.InvoiceFact
		for range 1 + r.IntN(6) {
			facts = append(facts, domain.InvoiceFact{
				Kind: kinds[r.IntN(len(kinds))], At: day(1).Add(time.Duration(r.IntN(10*24)) * time.Hour), // hours, so that some fall on the cut
				Currency: []string{"usd", "eur"}[r.IntN(2)], AmountDue: int64(1 + r.IntN(100)), Amount: int64(1 + r.IntN(100)),
				AttemptCount: r.IntN(4), DeclineCode: []string{"", "insufficient_funds", "stolen_card"}[r.IntN(3)],
				Status: domain.InvoiceVoid,
			})
		}
		out[i] = applied(fmt.Sprintf("in_%d", i), facts...)
	}
	return out
}

// add merges b's counts into a's.
func add(a, b domain.RecoveryFigures) domain.RecoveryFigures {
	out := domain.NewRecoveryFigures()
	for _, f := range []domain.RecoveryFigures{a, b} {
		for _, row := range f.Series {
			i := slices.IndexFunc(out.Series, func(o domain.DayFigures) bool { return o.Date == row.Date && o.Currency == row.Currency })
			if i < 0 {
				out.Series = append(out.Series, domain.DayFigures{Date: row.Date, Currency: row.Currency})
				i = len(out.Series) - 1
			}
			out.Series[i].FailedAmount += row.FailedAmount
			out.Series[i].RecoveredAmount += row.RecoveredAmount
		}
		for code, d := range f.ByDeclineCode {
			sum := out.ByDeclineCode[code]
			sum.FailedInvoices += d.FailedInvoices
			sum.RecoveredInvoices += d.RecoveredInvoices
			out.ByDeclineCode[code] = sum
		}
		for s, n := range f.BySource {
			out.BySource[s] += n
		}
	}
	slices.SortFunc(out.Series, func(a, b domain.DayFigures) int {
		return cmp.Or(cmp.Compare(a.Date, b.Date), cmp.Compare(a.Currency, b.Currency))
	})
	return out
}

func TestFiguresOfSpansAdd(t *testing.T) {
	is := is.New(t)
	r := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	for range 50 {
		records := randomRecords(r, 1+r.IntN(20))
		cut := day(1).Add(time.Duration(r.IntN(10*24)) * time.Hour)
		whole := domain.FiguresOf(slices.Values(records), day(1), day(12))
		is.Equal(add(domain.FiguresOf(slices.Values(records), day(1), cut), domain.FiguresOf(slices.Values(records), cut, day(12))), whole) // two spans count what their union counts

		// The whole span holds every time, so it counts what the
		// all-time sums count.
		failed, recovered := map[string]int64{}, map[string]int64{}
		for _, rec := range records {
			if rec.Failed() {
				failed[rec.Currency] += rec.AmountDue
			}
			if rec.Recovered() {
				recovered[rec.Currency] += rec.PaidAmount
			}
		}
		for _, row := range whole.Series {
			failed[row.Currency] -= row.FailedAmount
			recovered[row.Currency] -= row.RecoveredAmount
		}
		for cur := range failed {
			is.Equal(failed[cur], int64(0))
			is.Equal(recovered[cur], int64(0))
		}
	}
}

func TestDayRange(t *testing.T) {
	is := is.New(t)
	at := time.Date(2026, 3, 1, 23, 30, 0, 0, time.FixedZone("UTC-2", -2*3600)) // 01:30 on the 2nd, UTC
	is.Equal(domain.Day(at), day(2))
	r := domain.DayRange{From: day(2), To: day(2)}
	is.Equal(r.Days(), 1)     // one day
	is.Equal(r.End(), day(3)) // which ends at the next midnight
	r.To = day(31)
	is.Equal(r.Days(), 30)
	r.From = day(3)
	r.To = day(2)
	is.Equal(r.Days(), 0) // reversed
	leap := domain.DayRange{From: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2024, 12, 31, 0, 0, 0, 0, time.UTC)}
	is.Equal(leap.Days(), 366)
}
