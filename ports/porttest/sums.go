package porttest

import (
	"context"
	"errors"
	"maps"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// RunSumsContract checks that the recovery figures and the task counts are
// exact after every kind of change, whether or not storage that keeps them
// as running sums (ports.SumFolder) folded them in between, and under
// concurrent writers and folds. On other storage it checks the same reads
// without folds.
func RunSumsContract(t *testing.T, newStorage func(t *testing.T) ports.Storage) {
	t.Run("figures follow every change of a record, folded or not", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		m, other := newMerchant(t, st), newMerchant(t, st)
		r := rand.New(rand.NewPCG(11, uint64(time.Now().UnixNano())))
		base := now()
		days := domain.DayRange{From: domain.Day(base).AddDate(0, 0, -1), To: domain.Day(base).AddDate(0, 0, 8)}
		want := map[string]domain.InvoiceRecord{}
		check := func() {
			t.Helper()
			got, err := st.Ledger().Figures(ctx, m, days)
			is.NoErr(err)
			expect := domain.FiguresOf(maps.Values(want), days.From, days.End())
			is.Equal(got, expect) // the figures of the records as they are now
			all, err := st.Ledger().Recovery(ctx, m)
			is.NoErr(err)
			is.Equal(all, sumsByCurrency(expect.Series)) // and the all-time sums
		}
		for range 40 {
			inv := newInvoiceID()
			rec := domain.InvoiceRecord{MerchantID: m, InvoiceID: inv}
			for _, f := range randomFacts(r, inv, 1+r.IntN(8), base) {
				switch r.IntN(4) {
				case 0: // a fact recorded and rolled back changes nothing
					err := st.InTx(ctx, func(ctx context.Context, tx ports.Tx) error {
						if _, err := tx.Ledger().Record(ctx, m, f); err != nil {
							return err
						}
						return errRollback
					})
					is.True(errors.Is(err, errRollback))
				case 1: // in a unit of work that commits
					is.NoErr(st.InTx(ctx, func(ctx context.Context, tx ports.Tx) error {
						_, err := tx.Ledger().Record(ctx, m, f)
						return err
					}))
					rec = rec.Apply(f)
				default:
					_, err := st.Ledger().Record(ctx, m, f)
					is.NoErr(err)
					rec = rec.Apply(f)
				}
				want[inv] = rec
				// The other merchant's copy of each fact counts for it only.
				_, err := st.Ledger().Record(ctx, other, f)
				is.NoErr(err)
				if r.IntN(3) == 0 {
					foldSums(t, st)
				}
				if r.IntN(4) == 0 {
					check()
				}
			}
		}
		check()
		foldSums(t, st)
		check()
	})

	t.Run("task counts follow every change, folded or not", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		m, other := newMerchant(t, st), newMerchant(t, st)
		check := func() {
			t.Helper()
			got, err := st.Tasks().CountByStatus(ctx, m)
			is.NoErr(err)
			want := map[domain.TaskStatus]int{}
			for _, s := range domain.TaskStatuses {
				if n := len(listAll(t, st, m, s, domain.MaxPageSize)); n > 0 {
					want[s] = n
				}
			}
			is.Equal(got, want) // the counts of the tasks as they are now
		}
		t0 := now().Add(-2 * time.Hour)
		var tasks []domain.Task
		for i := range 12 {
			tasks = append(tasks, unruledTask(m))
			tasks[i].RunAt = t0.Add(time.Duration(i) * time.Minute)
		}
		schedule(t, st, m, tasks...)
		schedule(t, st, other, unruledTask(other))
		check()
		foldSums(t, st)
		check()

		claims, err := st.Queue().ClaimDue(ctx, now(), time.Minute, 6) // 6 running
		is.NoErr(err)
		is.Equal(len(claims), 6)
		check()
		for i, c := range claims[:4] {
			status := []domain.TaskStatus{domain.StatusSucceeded, domain.StatusFailed}[i%2]
			is.NoErr(st.Queue().Finish(ctx, m, c.Task.ID, c.Task.Attempts, domain.TaskResult{Status: status, At: now()}))
			if i == 1 {
				foldSums(t, st)
			}
		}
		check()
		_, err = st.Tasks().Retry(ctx, m, claims[1].Task.ID, now()) // failed, pending again
		is.NoErr(err)
		is.NoErr(st.Tasks().Delete(ctx, m, claims[0].Task.ID)) // a succeeded task deleted
		check()
		foldSums(t, st)
		is.NoErr(st.Tasks().Delete(ctx, m, tasks[11].ID)) // a pending task deleted
		err = st.InTx(ctx, func(ctx context.Context, tx ports.Tx) error {
			if _, err := tx.Tasks().Schedule(ctx, m, []domain.Task{unruledTask(m)}); err != nil {
				return err
			}
			return errRollback
		})
		is.True(errors.Is(err, errRollback)) // a rolled-back task is not counted
		check()
		foldSums(t, st)
		check()
	})

	t.Run("concurrent writers and folds lose nothing", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		m := newMerchant(t, st)
		const writers, each = 8, 15
		at := now()
		done := make(chan struct{})
		var folds sync.WaitGroup
		for range 2 { // two folders at once, as two worker processes
			folds.Go(func() {
				for {
					select {
					case <-done:
						return
					default:
						foldSums(t, st)
					}
				}
			})
		}
		var wg sync.WaitGroup
		errs := make(chan error, 2*writers*each)
		for range writers {
			wg.Go(func() {
				for range each {
					inv := newInvoiceID()
					errs <- recordAll(ctx, st.Ledger(), m, inv, failedAt(at, "usd", 100), declinedAt(at, "insufficient_funds"))
					_, err := st.Tasks().Schedule(ctx, m, []domain.Task{unruledTask(m)})
					errs <- err
				}
			})
		}
		wg.Wait()
		close(done)
		folds.Wait()
		close(errs)
		for err := range errs {
			is.NoErr(err)
		}
		for _, fold := range []bool{false, true} {
			if fold {
				foldSums(t, st)
			}
			got, err := st.Ledger().Figures(ctx, m, domain.DayRange{From: domain.Day(at), To: domain.Day(at)})
			is.NoErr(err)
			is.Equal(got.Series, []domain.DayFigures{{Date: domain.Day(at).Format(domain.DateLayout), Currency: "usd", FailedAmount: 100 * writers * each}})
			is.Equal(got.ByDeclineCode, map[string]domain.DeclineFigures{"insufficient_funds": {FailedInvoices: writers * each}})
			counts, err := st.Tasks().CountByStatus(ctx, m)
			is.NoErr(err)
			is.Equal(counts, map[domain.TaskStatus]int{domain.StatusPending: writers * each}) // every write counted once
		}
	})
}

// foldSums folds the running sums of storage that keeps them.
func foldSums(t *testing.T, st ports.Storage) {
	t.Helper()
	if f, ok := st.(ports.SumFolder); ok {
		if err := f.FoldSums(t.Context()); err != nil {
			t.Errorf("fold sums: %v", err)
		}
	}
}

// sumsByCurrency adds up a series' rows by currency: over every day with
// figures, what InvoiceLedger.Recovery returns.
func sumsByCurrency(series []domain.DayFigures) map[string]domain.CurrencyRecovery {
	sums := map[string]domain.CurrencyRecovery{}
	for _, row := range series {
		c := sums[row.Currency]
		c.FailedAmount += row.FailedAmount
		c.RecoveredAmount += row.RecoveredAmount
		sums[row.Currency] = c
	}
	return sums
}
