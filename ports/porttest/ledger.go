package porttest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// recordFailure records Stripe's first failed attempt of an invoice.
func recordFailure(ctx context.Context, l ports.InvoiceLedger, m domain.MerchantID, inv string, amount int64, currency string, at time.Time) error {
	_, err := l.Record(ctx, m, domain.InvoiceFact{Kind: domain.FactFailed, InvoiceID: inv, AmountDue: amount, Currency: currency, At: at, AttemptCount: 1})
	return err
}

// recordPaid records that Stripe reported an invoice paid.
func recordPaid(ctx context.Context, l ports.InvoiceLedger, m domain.MerchantID, inv string, amount int64, currency string, at time.Time) error {
	_, err := l.Record(ctx, m, domain.InvoiceFact{Kind: domain.FactPaid, InvoiceID: inv, Amount: amount, Currency: currency, At: at, AttemptCount: 1})
	return err
}

// recordAll records facts of invoice inv, in order.
func recordAll(ctx context.Context, l ports.InvoiceLedger, m domain.MerchantID, inv string, facts ...domain.InvoiceFact) error {
	for _, f := range facts {
		f.InvoiceID = inv
		if _, err := l.Record(ctx, m, f); err != nil {
			return err
		}
	}
	return nil
}

// figDay is midnight UTC of the d-th of a month the figures cases use.
func figDay(d int) time.Time { return time.Date(2031, 5, d, 0, 0, 0, 0, time.UTC) }

// figDays is the span of the days from through to of May 2031, included.
func figDays(from, to int) domain.DayRange {
	return domain.DayRange{From: figDay(from), To: figDay(to)}
}

// failedAt is Stripe's first failed attempt of an invoice; paidAt is its
// payment, Stripe's attempt_count being attempts then; declinedAt tells a
// failure's decline code.
func failedAt(at time.Time, currency string, amount int64) domain.InvoiceFact {
	return domain.InvoiceFact{Kind: domain.FactFailed, At: at, Currency: currency, AmountDue: amount, AttemptCount: 1}
}

func paidAt(at time.Time, amount int64, attempts int) domain.InvoiceFact {
	return domain.InvoiceFact{Kind: domain.FactPaid, At: at, Amount: amount, AttemptCount: attempts}
}

func declinedAt(at time.Time, code string) domain.InvoiceFact {
	return domain.InvoiceFact{Kind: domain.FactDeclined, At: at, DeclineCode: code}
}

// noSources is BySource when nothing was recovered: every source, at zero.
var noSources = map[domain.RecoverySource]int{
	domain.RecoveredByRecoupRetry: 0, domain.RecoveredByStripeRetry: 0, domain.RecoveredByCardUpdate: 0, domain.RecoveredByCustomer: 0,
}

// canonRecord makes records comparable whatever location and precision
// the adapter gave their times.
func canonRecord(r domain.InvoiceRecord) domain.InvoiceRecord {
	c := func(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }
	r.FirstFailedAt, r.LastFailedAt, r.DeclinedAt = c(r.FirstFailedAt), c(r.LastFailedAt), c(r.DeclinedAt)
	r.CardUpdatedAt, r.ClosedAt = c(r.CardUpdatedAt), c(r.ClosedAt)
	if r.StripeRetryAt != nil {
		at := c(*r.StripeRetryAt)
		r.StripeRetryAt = &at
	}
	return r
}

// randomFacts returns n facts about one invoice, of every kind, at times
// drawn around base (microseconds, as storage keeps them).
func randomFacts(r *rand.Rand, inv string, n int, base time.Time) []domain.InvoiceFact {
	codes := []string{"", "insufficient_funds", "stolen_card", "generic_decline"}
	kinds := []domain.FactKind{domain.FactFailed, domain.FactFailed, domain.FactDeclined, domain.FactRecoupDeclined,
		domain.FactRecoupPaid, domain.FactPaid, domain.FactClosed, domain.FactCardUpdated}
	facts := make([]domain.InvoiceFact, n)
	for i := range facts {
		at := base.Add(time.Duration(r.IntN(100)) * time.Hour).Truncate(time.Microsecond)
		f := domain.InvoiceFact{Kind: kinds[r.IntN(len(kinds))], InvoiceID: inv, At: at, AttemptCount: r.IntN(5)}
		switch r.IntN(3) {
		case 0:
			f.CustomerID, f.Currency, f.AmountDue = "cus_"+inv, "eur", int64(100*(1+r.IntN(50)))
		case 1:
			f.SubscriptionID = "sub_" + inv
		}
		switch f.Kind {
		case domain.FactFailed:
			if r.IntN(2) == 0 {
				next := at.Add(72 * time.Hour)
				f.StripeRetryAt = &next
			}
		case domain.FactDeclined, domain.FactRecoupDeclined:
			f.DeclineCode = codes[r.IntN(len(codes))]
		case domain.FactPaid:
			f.Amount = int64(100 * (1 + r.IntN(50)))
		case domain.FactClosed:
			f.Status = []string{domain.InvoiceVoid, domain.InvoiceUncollectible}[r.IntN(2)]
		}
		facts[i] = f
	}
	return facts
}

// RunLedgerContract checks the invoice ledger: facts merged exactly as
// domain.InvoiceRecord.Apply merges them, records per merchant, concurrent
// facts of one invoice all kept, a customer's open failed invoices, and
// the recovery figures, all-time and over a span of days.
func RunLedgerContract(t *testing.T, newStorage func(t *testing.T) ports.Storage) {
	t.Run("facts merge as the domain merges them", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		m := newMerchant(t, st)
		r := rand.New(rand.NewPCG(7, uint64(time.Now().UnixNano())))
		base := now()
		for i := range 30 {
			inv := newInvoiceID()
			want := domain.InvoiceRecord{MerchantID: m, InvoiceID: inv}
			for j, f := range randomFacts(r, inv, 1+r.IntN(8), base) {
				want = want.Apply(f)
				l := st.Ledger()
				var got domain.InvoiceRecord
				var err error
				if (i+j)%2 == 0 { // outside and inside units of work alike
					got, err = l.Record(ctx, m, f)
				} else {
					err = st.InTx(ctx, func(ctx context.Context, tx ports.Tx) error {
						got, err = tx.Ledger().Record(ctx, m, f)
						return err
					})
				}
				is.NoErr(err)
				is.Equal(canonRecord(got), canonRecord(want)) // Record returns the merged record
			}
			got, err := st.Ledger().Invoice(ctx, m, inv)
			is.NoErr(err)
			is.Equal(canonRecord(got), canonRecord(want)) // which Invoice reads back
		}
	})

	t.Run("records are per merchant", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		a, b := newMerchant(t, st), newMerchant(t, st)
		inv := newInvoiceID()
		is.NoErr(recordFailure(ctx, st.Ledger(), a, inv, 5000, "usd", now()))
		_, err := st.Ledger().Invoice(ctx, b, inv)
		is.True(errors.Is(err, domain.ErrNotFound)) // another merchant has no record of it
		got, err := st.Ledger().Record(ctx, b, domain.InvoiceFact{Kind: domain.FactPaid, InvoiceID: inv, Amount: 5000, At: now()})
		is.NoErr(err)
		is.True(!got.Failed()) // its own record of the same id starts empty
		mine, err := st.Ledger().Invoice(ctx, a, inv)
		is.NoErr(err)
		is.Equal(mine.Status, "") // and the first merchant's stays open
		_, err = st.Ledger().Invoice(ctx, a, newInvoiceID())
		is.True(errors.Is(err, domain.ErrNotFound)) // no record of an unknown invoice
		_, err = st.Ledger().Record(ctx, a, domain.InvoiceFact{Kind: domain.FactFailed, At: now()})
		is.True(errors.Is(err, domain.ErrInvalid)) // a fact needs an invoice
		_, err = st.Ledger().Record(ctx, "", domain.InvoiceFact{Kind: domain.FactFailed, InvoiceID: inv, At: now()})
		is.True(errors.Is(err, domain.ErrInvalid)) // and a merchant
	})

	t.Run("concurrent facts of one invoice are all kept", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		m := newMerchant(t, st)
		inv := newInvoiceID()
		is.NoErr(recordFailure(ctx, st.Ledger(), m, inv, 5000, "usd", now()))
		const n = 12
		start := make(chan struct{})
		errs := make(chan error, n)
		for i := range n {
			go func() {
				<-start
				errs <- st.InTx(ctx, func(ctx context.Context, tx ports.Tx) error {
					_, err := tx.Ledger().Record(ctx, m, domain.InvoiceFact{Kind: domain.FactRecoupDeclined, InvoiceID: inv,
						At: now().Add(time.Duration(i) * time.Second), DeclineCode: fmt.Sprintf("code_%d", i)})
					return err
				})
			}()
		}
		close(start)
		for range n {
			is.NoErr(<-errs) // no unit of work fails
		}
		got, err := st.Ledger().Invoice(ctx, m, inv)
		is.NoErr(err)
		is.Equal(got.RecoupAttempts, n) // no fact was lost to another
	})

	t.Run("a customer's open failed invoices", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		a, b := newMerchant(t, st), newMerchant(t, st)
		l := st.Ledger()
		cus := "cus_" + token()
		fact := func(m domain.MerchantID, inv, customer string, at time.Time) {
			_, err := l.Record(ctx, m, domain.InvoiceFact{Kind: domain.FactFailed, InvoiceID: inv, CustomerID: customer, At: at, AttemptCount: 1})
			is.NoErr(err)
		}
		t0 := now()
		older, newer, paid, voided, other := newInvoiceID(), newInvoiceID(), newInvoiceID(), newInvoiceID(), newInvoiceID()
		fact(a, newer, cus, t0.Add(time.Hour))
		fact(a, older, cus, t0)
		fact(a, paid, cus, t0)
		is.NoErr(recordPaid(ctx, l, a, paid, 100, "usd", t0.Add(time.Hour)))
		fact(a, voided, cus, t0)
		_, err := l.Record(ctx, a, domain.InvoiceFact{Kind: domain.FactClosed, InvoiceID: voided, Status: domain.InvoiceVoid, At: t0.Add(time.Hour)})
		is.NoErr(err)
		fact(a, other, "cus_"+token(), t0)
		_, err = l.Record(ctx, a, domain.InvoiceFact{Kind: domain.FactDeclined, InvoiceID: newInvoiceID(), CustomerID: cus, DeclineCode: "x", At: t0})
		is.NoErr(err) // a decline alone is no failure yet
		fact(b, newInvoiceID(), cus, t0)

		open, err := l.OpenFailed(ctx, a, cus)
		is.NoErr(err)
		var got []string
		for _, r := range open {
			got = append(got, r.InvoiceID)
		}
		is.Equal(got, []string{older, newer}) // failed and open, oldest first, of this merchant's customer only
		open, err = l.OpenFailed(ctx, b, "cus_"+token())
		is.NoErr(err)
		is.Equal(len(open), 0)
	})

	t.Run("failures and recoveries sum per currency and merchant", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		a, b := newMerchant(t, st), newMerchant(t, st)
		l := st.Ledger()
		usd, eur, neverFailed := newInvoiceID(), newInvoiceID(), newInvoiceID()

		is.NoErr(recordFailure(ctx, l, a, usd, 5000, "usd", now()))
		is.NoErr(recordFailure(ctx, l, a, eur, 700, "eur", now()))
		is.NoErr(recordPaid(ctx, l, a, neverFailed, 1234, "usd", now())) // paid without a failure
		is.NoErr(recordPaid(ctx, l, b, usd, 5000, "usd", now()))         // another merchant's payment
		rec, err := l.Recovery(ctx, a)
		is.NoErr(err)
		is.Equal(rec["usd"], domain.CurrencyRecovery{FailedAmount: 5000}) // nothing recovered yet
		is.Equal(rec["eur"], domain.CurrencyRecovery{FailedAmount: 700})

		is.NoErr(recordPaid(ctx, l, a, usd, 2000, "usd", now().Add(time.Second)))
		is.NoErr(recordPaid(ctx, l, a, usd, 3000, "usd", now().Add(time.Second))) // a second payment changes nothing
		rec, err = l.Recovery(ctx, a)
		is.NoErr(err)
		is.Equal(rec["usd"], domain.CurrencyRecovery{FailedAmount: 5000, RecoveredAmount: 2000}) // recovered with the paid amount, once
		is.Equal(rec["eur"], domain.CurrencyRecovery{FailedAmount: 700})
		is.Equal(len(rec), 2) // only currencies with figures

		rec, err = l.Recovery(ctx, b)
		is.NoErr(err)
		is.Equal(len(rec), 0) // another merchant has no figures
		is.NoErr(recordFailure(ctx, l, b, usd, 100, "usd", now()))
		rec, err = l.Recovery(ctx, b)
		is.NoErr(err)
		is.Equal(rec["usd"], domain.CurrencyRecovery{FailedAmount: 100}) // invoices are per merchant
	})

	runFiguresContract(t, newStorage)
}

// runFiguresContract checks the ledger's recovery figures over a span:
// amounts by UTC day and currency, invoices by decline code and by what
// recovered them, the span's bounds, merchants apart, and empty spans.
func runFiguresContract(t *testing.T, newStorage func(t *testing.T) ports.Storage) {
	t.Run("figures: amounts by UTC day and currency", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		m := newMerchant(t, st)
		l := st.Ledger()
		rec := func(facts ...domain.InvoiceFact) {
			t.Helper()
			is.NoErr(recordAll(ctx, l, m, newInvoiceID(), facts...))
		}
		rec(failedAt(figDay(1).Add(23*time.Hour+59*time.Minute), "usd", 5000), paidAt(figDay(3).Add(time.Hour), 4000, 1))            // failed late on the 1st, recovered on the 3rd with less than was due
		rec(failedAt(time.Date(2031, 5, 2, 1, 0, 0, 0, time.FixedZone("UTC+3", 3*3600)), "usd", 50))                                 // 22:00 on the 1st, UTC
		rec(failedAt(figDay(2), "usd", 300))                                                                                         // midnight begins the 2nd
		rec(failedAt(figDay(2).Add(time.Hour), "usd", 200))                                                                          // the same day and currency: summed
		rec(failedAt(figDay(2).Add(2*time.Hour), "eur", 700))                                                                        // another currency: a row of its own
		rec(paidAt(figDay(2), 999, 1))                                                                                               // paid without a failure: no figure
		rec(failedAt(figDay(3), "usd", 100), domain.InvoiceFact{Kind: domain.FactClosed, At: figDay(3), Status: domain.InvoiceVoid}) // voided: a failure, no recovery

		got, err := l.Figures(ctx, m, figDays(1, 9))
		is.NoErr(err)
		is.Equal(got.Series, []domain.DayFigures{
			{Date: "2031-05-01", Currency: "usd", FailedAmount: 5050},
			{Date: "2031-05-02", Currency: "eur", FailedAmount: 700},
			{Date: "2031-05-02", Currency: "usd", FailedAmount: 500},
			{Date: "2031-05-03", Currency: "usd", FailedAmount: 100, RecoveredAmount: 4000},
		}) // a row per UTC day and currency with figures, by day then currency

		// The span holds every time recorded, so its rows add up to the
		// all-time sums.
		all, err := l.Recovery(ctx, m)
		is.NoErr(err)
		is.Equal(sumsByCurrency(got.Series), all)
	})

	t.Run("figures: invoices by decline code", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		m := newMerchant(t, st)
		l := st.Ledger()
		rec := func(facts ...domain.InvoiceFact) {
			t.Helper()
			is.NoErr(recordAll(ctx, l, m, newInvoiceID(), facts...))
		}
		at := figDay(2)
		rec(failedAt(at, "usd", 100), declinedAt(at, "insufficient_funds"), paidAt(at.Add(time.Hour), 100, 1))
		rec(failedAt(at, "usd", 100), declinedAt(at, "insufficient_funds"))
		rec(failedAt(at, "usd", 100), domain.InvoiceFact{Kind: domain.FactRecoupDeclined, At: at.Add(time.Hour), DeclineCode: "generic_decline"})
		rec(failedAt(at, "usd", 100), paidAt(at.Add(time.Hour), 100, 1)) // no decline code known
		rec(failedAt(at, "usd", 100))
		rec(declinedAt(at, "do_not_honor")) // a decline code, but no failure yet

		got, err := l.Figures(ctx, m, figDays(1, 9))
		is.NoErr(err)
		is.Equal(got.ByDeclineCode, map[string]domain.DeclineFigures{
			"insufficient_funds":      {FailedInvoices: 2, RecoveredInvoices: 1},
			"generic_decline":         {FailedInvoices: 1},
			domain.UnknownDeclineCode: {FailedInvoices: 2, RecoveredInvoices: 1},
		}) // failed and recovered invoices by code, the unknown ones under their own key
	})

	t.Run("figures: recovered invoices by source", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		m := newMerchant(t, st)
		l := st.Ledger()
		rec := func(facts ...domain.InvoiceFact) {
			t.Helper()
			is.NoErr(recordAll(ctx, l, m, newInvoiceID(), facts...))
		}
		at := figDay(2)
		rec(failedAt(at, "usd", 100), domain.InvoiceFact{Kind: domain.FactRecoupPaid, At: at.Add(time.Hour)}, paidAt(at.Add(time.Hour), 100, 1))
		rec(failedAt(at, "usd", 100), paidAt(at.Add(time.Hour), 100, 2)) // Stripe's second attempt paid it
		rec(failedAt(at, "usd", 100), domain.InvoiceFact{Kind: domain.FactCardUpdated, At: at.Add(time.Hour)}, paidAt(at.Add(2*time.Hour), 100, 1))
		rec(failedAt(at, "usd", 100), paidAt(at.Add(time.Hour), 100, 1))
		rec(failedAt(at, "eur", 100), paidAt(at.Add(time.Hour), 100, 1))
		rec(failedAt(at, "usd", 100), domain.InvoiceFact{Kind: domain.FactClosed, At: at.Add(time.Hour), Status: domain.InvoiceUncollectible})
		rec(failedAt(at, "usd", 100))
		rec(paidAt(at, 100, 1))

		got, err := l.Figures(ctx, m, figDays(1, 9))
		is.NoErr(err)
		is.Equal(got.BySource, map[domain.RecoverySource]int{
			domain.RecoveredByRecoupRetry: 1, domain.RecoveredByStripeRetry: 1, domain.RecoveredByCardUpdate: 1, domain.RecoveredByCustomer: 2,
		}) // only recovered invoices, by what recovered them
	})

	t.Run("figures: the span is its first day through its last, whole", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		m := newMerchant(t, st)
		l := st.Ledger()
		rec := func(facts ...domain.InvoiceFact) {
			t.Helper()
			is.NoErr(recordAll(ctx, l, m, newInvoiceID(), facts...))
		}
		from, to := figDay(2), figDay(4) // the span is the 2nd and the 3rd
		before, last := from.Add(-time.Microsecond), to.Add(-time.Microsecond)
		rec(failedAt(before, "usd", 1))
		rec(failedAt(from, "usd", 2))
		rec(failedAt(last, "usd", 4))
		rec(failedAt(to, "usd", 8))
		rec(failedAt(figDay(1), "usd", 0), paidAt(before, 16, 1))
		rec(failedAt(figDay(1), "usd", 0), paidAt(from, 32, 1))
		rec(failedAt(figDay(1), "usd", 0), paidAt(last, 64, 1))
		rec(failedAt(figDay(1), "usd", 0), paidAt(to, 128, 1))

		got, err := l.Figures(ctx, m, figDays(2, 3))
		is.NoErr(err)
		is.Equal(got.Series, []domain.DayFigures{
			{Date: "2031-05-02", Currency: "usd", FailedAmount: 2, RecoveredAmount: 32},
			{Date: "2031-05-03", Currency: "usd", FailedAmount: 4, RecoveredAmount: 64},
		}) // the first day's first instant counts, the next day's after the last does not
		is.Equal(got.ByDeclineCode, map[string]domain.DeclineFigures{domain.UnknownDeclineCode: {FailedInvoices: 2, RecoveredInvoices: 2}})
		is.Equal(got.BySource[domain.RecoveredByCustomer], 2)
	})

	t.Run("figures: per merchant", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		a, b := newMerchant(t, st), newMerchant(t, st)
		l := st.Ledger()
		inv := newInvoiceID()
		is.NoErr(recordAll(ctx, l, a, inv, failedAt(figDay(2), "usd", 5000), declinedAt(figDay(2), "insufficient_funds"), paidAt(figDay(3), 5000, 2)))

		got, err := l.Figures(ctx, b, figDays(1, 9))
		is.NoErr(err)
		is.Equal(len(got.Series), 0) // another merchant sees none of it
		is.Equal(len(got.ByDeclineCode), 0)
		is.Equal(got.BySource, noSources)

		is.NoErr(recordAll(ctx, l, b, inv, failedAt(figDay(2), "usd", 100))) // the same invoice id at the other merchant
		got, err = l.Figures(ctx, b, figDays(1, 9))
		is.NoErr(err)
		is.Equal(got.Series, []domain.DayFigures{{Date: "2031-05-02", Currency: "usd", FailedAmount: 100}}) // its own record only
		is.Equal(got.ByDeclineCode, map[string]domain.DeclineFigures{domain.UnknownDeclineCode: {FailedInvoices: 1}})
		is.Equal(got.BySource, noSources)

		got, err = l.Figures(ctx, a, figDays(1, 9))
		is.NoErr(err)
		is.Equal(got.Series, []domain.DayFigures{
			{Date: "2031-05-02", Currency: "usd", FailedAmount: 5000},
			{Date: "2031-05-03", Currency: "usd", RecoveredAmount: 5000},
		}) // and the first merchant's stay its own
		is.Equal(got.BySource[domain.RecoveredByStripeRetry], 1)

		_, err = l.Figures(ctx, "", figDays(1, 9))
		is.True(errors.Is(err, domain.ErrInvalid)) // figures need a merchant
	})

	t.Run("figures: empty spans", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		m := newMerchant(t, st)
		l := st.Ledger()
		is.NoErr(recordAll(ctx, l, m, newInvoiceID(), failedAt(figDay(2), "usd", 100), paidAt(figDay(2), 100, 1)))
		for _, span := range []domain.DayRange{
			figDays(3, 2), // to the day before from
			figDays(3, 1), // to before from
			figDays(3, 9), // no invoice in it
		} {
			got, err := l.Figures(ctx, m, span)
			is.NoErr(err)
			is.Equal(len(got.Series), 0)        // no rows
			is.Equal(len(got.ByDeclineCode), 0) // no codes
			is.Equal(got.BySource, noSources)   // every source, at zero
		}
		got, err := l.Figures(ctx, newMerchant(t, st), figDays(1, 9))
		is.NoErr(err)
		is.Equal(len(got.Series)+len(got.ByDeclineCode), 0) // a merchant without invoices
		is.Equal(got.BySource, noSources)
	})
}

// RunPolicyContract checks the policy store: the default for a merchant
// that set none, a stored policy read back whole, policies per merchant,
// and an invalid policy refused with nothing changed.
func RunPolicyContract(t *testing.T, newStorage func(t *testing.T) ports.Storage) {
	t.Run("a rolled-back policy and record leave no trace", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		m := newMerchant(t, st)
		failed := func(inv, cus string, at time.Time) domain.InvoiceFact {
			return domain.InvoiceFact{Kind: domain.FactFailed, InvoiceID: inv, CustomerID: cus, At: at, AttemptCount: 1}
		}
		t0 := now()
		for _, inv := range []string{"in_b", "in_a"} { // the same first failure: ordered by id
			_, err := st.Ledger().Record(ctx, m, failed(inv, "cus_1", t0))
			is.NoErr(err)
		}
		changed := domain.DefaultDunningPolicy()
		changed.MaxAttempts = 2
		err := st.InTx(ctx, func(ctx context.Context, tx ports.Tx) error {
			if err := tx.Policies().SetPolicy(ctx, m, changed); err != nil {
				return err
			}
			if _, err := tx.Ledger().Record(ctx, m, failed("in_c", "cus_1", t0.Add(-time.Hour))); err != nil {
				return err
			}
			_, err := tx.Ledger().Record(ctx, m, domain.InvoiceFact{Kind: domain.FactPaid, InvoiceID: "in_a", At: t0.Add(time.Hour)})
			if err != nil {
				return err
			}
			open, err := tx.Ledger().OpenFailed(ctx, m, "cus_1")
			if err != nil || len(open) != 2 || open[0].InvoiceID != "in_c" || open[1].InvoiceID != "in_b" {
				return fmt.Errorf("open in the unit of work: %v, %v", open, err)
			}
			return errors.New("roll back")
		})
		is.Equal(err.Error(), "roll back") // the unit of work saw its own changes
		p, err := st.Policies().Policy(ctx, m)
		is.NoErr(err)
		is.Equal(p, domain.DefaultDunningPolicy()) // the policy it set is gone
		_, err = st.Ledger().Invoice(ctx, m, "in_c")
		is.True(errors.Is(err, domain.ErrNotFound)) // and the record it made
		open, err := st.Ledger().OpenFailed(ctx, m, "cus_1")
		is.NoErr(err)
		is.Equal(len(open), 2)
		is.Equal(open[0].InvoiceID, "in_a") // and the one it closed is open again, in its place
		is.Equal(open[1].InvoiceID, "in_b")
	})

	t.Run("a merchant's policy is its own", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		a, b := newMerchant(t, st), newMerchant(t, st)
		got, err := st.Policies().Policy(ctx, a)
		is.NoErr(err)
		is.Equal(got, domain.DefaultDunningPolicy()) // the default until it sets one

		mine := domain.DefaultDunningPolicy()
		mine.RetryDelaysHours = []int{1, 2, 3}
		mine.DelaysByDeclineCode = map[string][]int{"insufficient_funds": {48}, "generic_decline": {6, 12}}
		mine.HardDeclineCodes = []string{"stolen_card"}
		mine.MaxAttempts, mine.RetryWindowDays = 4, 10
		mine.Emails = domain.EmailPolicy{PaymentFailed: true, ReminderHours: []int{24}}
		mine.MaxEmailsPerCustomerPerWeek, mine.OnExhausted = 2, domain.ExhaustedCancelSubscription
		is.NoErr(st.Policies().SetPolicy(ctx, a, mine))
		got, err = st.Policies().Policy(ctx, a)
		is.NoErr(err)
		is.Equal(got, mine) // read back whole
		got, err = st.Policies().Policy(ctx, b)
		is.NoErr(err)
		is.Equal(got, domain.DefaultDunningPolicy()) // the other merchant's is untouched

		err = st.InTx(ctx, func(ctx context.Context, tx ports.Tx) error {
			got, err := tx.Policies().Policy(ctx, a)
			if err == nil && got.MaxAttempts != 4 {
				err = fmt.Errorf("in a unit of work: max attempts %d", got.MaxAttempts)
			}
			return err
		})
		is.NoErr(err) // a unit of work reads it too

		mine.MaxAttempts = 9
		is.NoErr(st.Policies().SetPolicy(ctx, a, mine))
		got, err = st.Policies().Policy(ctx, a)
		is.NoErr(err)
		is.Equal(got.MaxAttempts, 9) // a new policy replaces the old

		bad := mine
		bad.RetryWindowDays = 0
		err = st.Policies().SetPolicy(ctx, a, bad)
		var pe *domain.PolicyError
		is.True(errors.As(err, &pe)) // an invalid policy is refused
		is.Equal(pe.Field, "retry_window_days")
		got, err = st.Policies().Policy(ctx, a)
		is.NoErr(err)
		is.Equal(got, mine)                                                           // and nothing changed
		is.True(errors.Is(st.Policies().SetPolicy(ctx, "", mine), domain.ErrInvalid)) // a policy needs a merchant
	})
}
