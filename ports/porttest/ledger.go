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
// the recovery figures.
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
}

// RunPolicyContract checks the policy store: the default for a merchant
// that set none, a stored policy read back whole, policies per merchant,
// and an invalid policy refused with nothing changed.
func RunPolicyContract(t *testing.T, newStorage func(t *testing.T) ports.Storage) {
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
