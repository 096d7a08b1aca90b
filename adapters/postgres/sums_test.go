package postgres_test

import (
	"maps"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/adapters/postgres"
	"github.com/recoupdev/recoup/domain"
)

// TestMigrateRunningSums fills the schema before the running sums with
// invoices and tasks, migrates, and checks that the sums it computed give
// the figures and counts of those rows, before and after a fold; that a
// TRUNCATE empties them with its table; and that the migration rolls back
// and applies again.
func TestMigrateRunningSums(t *testing.T) {
	is := is.New(t)
	ctx := ctxTimeout(t)
	db := newSchemaDBUnmigrated(t)
	is.NoErr(postgres.MigrateBefore(ctx, db, "20261210000000"))
	st := postgres.New(db)
	m := domain.MerchantID(domain.NewID())

	at := now().Add(-48 * time.Hour)
	facts := map[string][]domain.InvoiceFact{
		"in_open": {{Kind: domain.FactFailed, At: at, Currency: "usd", AmountDue: 5000, AttemptCount: 1},
			{Kind: domain.FactDeclined, At: at, DeclineCode: "insufficient_funds"}},
		"in_paid": {{Kind: domain.FactFailed, At: at, Currency: "eur", AmountDue: 700, AttemptCount: 1},
			{Kind: domain.FactRecoupPaid, At: at.Add(25 * time.Hour)},
			{Kind: domain.FactPaid, At: at.Add(25 * time.Hour), Amount: 650, AttemptCount: 1}},
		"in_void": {{Kind: domain.FactFailed, At: at.Add(time.Hour), Currency: "usd", AmountDue: 100, AttemptCount: 1},
			{Kind: domain.FactClosed, At: at.Add(30 * time.Hour), Status: domain.InvoiceVoid}},
		"in_never_failed": {{Kind: domain.FactPaid, At: at, Currency: "usd", Amount: 99}},
	}
	records := map[string]domain.InvoiceRecord{}
	for inv, fs := range facts {
		for _, f := range fs {
			f.InvoiceID = inv
			rec, err := st.Ledger().Record(ctx, m, f)
			is.NoErr(err)
			records[inv] = rec
		}
	}
	tasks := []domain.Task{
		newTask(m, domain.TypeRetryPayment, "in_open", 1),
		newTask(m, domain.TypeNotifyPaymentFailed, "in_open", 1),
		newTask(m, domain.TypeNotifyPaymentFailed, "in_void", 1),
	}
	_, err := st.Tasks().Schedule(ctx, m, tasks)
	is.NoErr(err)
	_, err = st.Tasks().CancelPending(ctx, m, domain.CancelSelector{InvoiceID: "in_void"}, now())
	is.NoErr(err)

	is.NoErr(postgres.Migrate(ctx, db))
	days := domain.DayRange{From: domain.Day(at), To: domain.Day(at).AddDate(0, 0, 3)}
	want := domain.FiguresOf(maps.Values(records), days.From, days.End())
	is.True(len(want.Series) > 0) // the rows have figures to compute
	wantCounts := map[domain.TaskStatus]int{domain.StatusPending: 2, domain.StatusCancelled: 1}
	for _, fold := range []bool{false, true} {
		if fold {
			is.NoErr(st.FoldSums(ctx))
		}
		got, err := st.Ledger().Figures(ctx, m, days)
		is.NoErr(err)
		is.Equal(got, want) // the sums of the rows that were there
		all, err := st.Ledger().Recovery(ctx, m)
		is.NoErr(err)
		is.Equal(all, map[string]domain.CurrencyRecovery{
			"usd": {FailedAmount: 5100}, "eur": {FailedAmount: 700, RecoveredAmount: 650}})
		counts, err := st.Tasks().CountByStatus(ctx, m)
		is.NoErr(err)
		is.Equal(counts, wantCounts) // and their tasks' counts
	}

	_, err = db.ExecContext(ctx, "TRUNCATE invoices, tasks")
	is.NoErr(err)
	got, err := st.Ledger().Figures(ctx, m, days)
	is.NoErr(err)
	is.Equal(len(got.Series)+len(got.ByDeclineCode), 0) // a TRUNCATE empties the sums too
	counts, err := st.Tasks().CountByStatus(ctx, m)
	is.NoErr(err)
	is.Equal(len(counts), 0)

	is.NoErr(postgres.Rollback(ctx, db))
	_, pending, err := postgres.MigrationStatus(ctx, db)
	is.NoErr(err)
	is.Equal(pending, migrationsFrom("20261210000000")) // rolled back
	is.NoErr(postgres.Migrate(ctx, db))                 // and up again
}
