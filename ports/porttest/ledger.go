package porttest

import (
	"testing"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// RunLedgerContract checks the recovery ledger: first failure counts, a
// payment counts once and only after a failure, sums per currency and
// merchant.
func RunLedgerContract(t *testing.T, newStorage func(t *testing.T) ports.Storage) {
	t.Run("failures and recoveries sum per currency and merchant", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		a, b := newMerchant(t, st), newMerchant(t, st)
		l := st.Ledger()
		usd, eur, neverFailed := newInvoiceID(), newInvoiceID(), newInvoiceID()
		amount := func(inv string, n int64, cur string) domain.InvoiceAmount {
			return domain.InvoiceAmount{InvoiceID: inv, Amount: n, Currency: cur}
		}

		is.NoErr(l.RecordFailure(ctx, a, amount(usd, 5000, "usd"), now()))
		is.NoErr(l.RecordFailure(ctx, a, amount(usd, 9999, "usd"), now())) // a later failure changes nothing
		is.NoErr(l.RecordFailure(ctx, a, amount(eur, 700, "eur"), now()))
		is.NoErr(l.RecordPaid(ctx, a, amount(neverFailed, 1234, "usd"), now())) // paid without a failure
		is.NoErr(l.RecordPaid(ctx, b, amount(usd, 5000, "usd"), now()))         // another merchant's payment
		rec, err := l.Recovery(ctx, a)
		is.NoErr(err)
		is.Equal(rec["usd"], domain.CurrencyRecovery{FailedAmount: 5000}) // the first failure counts, nothing recovered
		is.Equal(rec["eur"], domain.CurrencyRecovery{FailedAmount: 700})

		is.NoErr(l.RecordPaid(ctx, a, amount(usd, 2000, "usd"), now()))
		is.NoErr(l.RecordPaid(ctx, a, amount(usd, 3000, "usd"), now())) // a second payment changes nothing
		rec, err = l.Recovery(ctx, a)
		is.NoErr(err)
		is.Equal(rec["usd"], domain.CurrencyRecovery{FailedAmount: 5000, RecoveredAmount: 2000}) // recovered with the paid amount, once
		is.Equal(rec["eur"], domain.CurrencyRecovery{FailedAmount: 700})
		is.Equal(len(rec), 2) // only currencies with figures

		rec, err = l.Recovery(ctx, b)
		is.NoErr(err)
		is.Equal(len(rec), 0) // another merchant has no figures
		is.NoErr(l.RecordFailure(ctx, b, amount(usd, 100, "usd"), now()))
		rec, err = l.Recovery(ctx, b)
		is.NoErr(err)
		is.Equal(rec["usd"], domain.CurrencyRecovery{FailedAmount: 100}) // invoices are per merchant
	})
}
