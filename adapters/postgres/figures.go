package postgres

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// The recovery figures and the counts of ended tasks are running sums
// (migration 20261210000000): triggers on invoices and tasks append what
// each change adds or takes away to figure_changes and task_count_changes,
// FoldSums folds those into figure_sums and task_counts, and each read adds
// the sums and the changes not folded yet in one statement, so that it is
// exact whether or not a fold ran.

// figuresSQL reads a merchant's figure sums over the days $2 through $3:
// by currency per day (kind 'c', which the series is), and by decline
// code and by source over the whole span. Groups that count no invoice
// (what a changed record took back) are left out.
const figuresSQL = `
	SELECT kind, CASE WHEN kind = 'c' THEN to_char(day, 'YYYY-MM-DD') ELSE '' END, key,
		sum(failed_invoices)::bigint, sum(failed_amount)::bigint, sum(recovered_invoices)::bigint, sum(recovered_amount)::bigint
	FROM (
		SELECT day, kind, key, failed_invoices, failed_amount, recovered_invoices, recovered_amount
		FROM figure_sums WHERE merchant_id = $1 AND day BETWEEN $2::date AND $3::date
		UNION ALL
		SELECT day, kind, key, failed_invoices, failed_amount, recovered_invoices, recovered_amount
		FROM figure_changes WHERE merchant_id = $1 AND day BETWEEN $2::date AND $3::date
	) AS f
	GROUP BY 1, 2, 3
	HAVING sum(failed_invoices) <> 0 OR sum(recovered_invoices) <> 0`

// Figures reads the sums and folds the groups as domain.FiguresOf does.
func (l ledger) Figures(ctx context.Context, merchant domain.MerchantID, days domain.DayRange) (domain.RecoveryFigures, error) {
	mid, err := merchantParam(merchant)
	if err != nil {
		return domain.RecoveryFigures{}, fmt.Errorf("recovery figures: %w", err)
	}
	f := domain.NewRecoveryFigures()
	if days.Days() < 1 {
		return f, nil
	}
	type group struct {
		kind, day, key             string
		failed, failedAmount       int64
		recovered, recoveredAmount int64
	}
	groups, err := queryAll(ctx, l.db, func(rows *sql.Rows) (group, error) {
		var g group
		err := rows.Scan(&g.kind, &g.day, &g.key, &g.failed, &g.failedAmount, &g.recovered, &g.recoveredAmount)
		return g, err
	}, figuresSQL, mid, days.From.Format(domain.DateLayout), days.To.Format(domain.DateLayout))
	if err != nil {
		return domain.RecoveryFigures{}, interpretError("recovery figures", err)
	}
	for _, g := range groups {
		switch g.kind {
		case "c":
			f.Series = append(f.Series, domain.DayFigures{
				Date: g.day, Currency: g.key, FailedAmount: g.failedAmount, RecoveredAmount: g.recoveredAmount,
			})
		case "d":
			code := cmp.Or(g.key, domain.UnknownDeclineCode)
			d := f.ByDeclineCode[code]
			d.FailedInvoices += int(g.failed)
			d.RecoveredInvoices += int(g.recovered)
			f.ByDeclineCode[code] = d
		case "s":
			f.BySource[domain.RecoverySource(g.key)] += int(g.recovered)
		}
	}
	slices.SortFunc(f.Series, func(a, b domain.DayFigures) int {
		return cmp.Or(cmp.Compare(a.Date, b.Date), cmp.Compare(a.Currency, b.Currency))
	})
	return f, nil
}

// recoverySQL sums a merchant's figures by currency over all its days.
const recoverySQL = `
	SELECT key, sum(failed_amount)::bigint, sum(recovered_amount)::bigint
	FROM (
		SELECT key, failed_invoices, failed_amount, recovered_invoices, recovered_amount
		FROM figure_sums WHERE merchant_id = $1 AND kind = 'c'
		UNION ALL
		SELECT key, failed_invoices, failed_amount, recovered_invoices, recovered_amount
		FROM figure_changes WHERE merchant_id = $1 AND kind = 'c'
	) AS f
	GROUP BY key
	HAVING sum(failed_invoices) <> 0 OR sum(recovered_invoices) <> 0`

// Recovery sums, by currency, the amount due of the merchant's invoices
// with a known failure and the amount paid of those of them recovered (a
// recovered invoice is always one that failed).
func (l ledger) Recovery(ctx context.Context, merchant domain.MerchantID) (map[string]domain.CurrencyRecovery, error) {
	mid, err := merchantParam(merchant)
	if err != nil {
		return nil, fmt.Errorf("recovery figures: %w", err)
	}
	type sums struct {
		currency          string
		failed, recovered int64
	}
	rows, err := queryAll(ctx, l.db, func(rows *sql.Rows) (sums, error) {
		var s sums
		err := rows.Scan(&s.currency, &s.failed, &s.recovered)
		return s, err
	}, recoverySQL, mid)
	if err != nil {
		return nil, interpretError("recovery figures", err)
	}
	out := make(map[string]domain.CurrencyRecovery, len(rows))
	for _, r := range rows {
		out[r.currency] = domain.CurrencyRecovery{FailedAmount: r.failed, RecoveredAmount: r.recovered}
	}
	return out, nil
}

// Folding: the changes are moved into the sums in batches of foldBatch,
// each in a transaction that holds the advisory lock foldLock, so that
// one fold runs at a time (another waits for nothing: it finds the lock
// taken and leaves the work to the one that holds it).
const (
	foldBatch = 10_000
	foldLock  = 0x7265636f75700001 // "recoup" and 1, an advisory lock key of recoup's own
)

const (
	foldFiguresSQL = `
		WITH moved AS (
			DELETE FROM figure_changes WHERE ctid IN (SELECT ctid FROM figure_changes LIMIT $1)
			RETURNING *
		), folded AS (
			INSERT INTO figure_sums AS s
			SELECT merchant_id, day, kind, key, sum(failed_invoices), sum(failed_amount),
				sum(recovered_invoices), sum(recovered_amount)
			FROM moved GROUP BY 1, 2, 3, 4
			ON CONFLICT (merchant_id, day, kind, key) DO UPDATE SET
				failed_invoices = s.failed_invoices + EXCLUDED.failed_invoices,
				failed_amount = s.failed_amount + EXCLUDED.failed_amount,
				recovered_invoices = s.recovered_invoices + EXCLUDED.recovered_invoices,
				recovered_amount = s.recovered_amount + EXCLUDED.recovered_amount
		)
		SELECT count(*) FROM moved`
	foldTaskCountsSQL = `
		WITH moved AS (
			DELETE FROM task_count_changes WHERE ctid IN (SELECT ctid FROM task_count_changes LIMIT $1)
			RETURNING *
		), folded AS (
			INSERT INTO task_counts AS c
			SELECT merchant_id, status, sum(n) FROM moved GROUP BY 1, 2
			ON CONFLICT (merchant_id, status) DO UPDATE SET n = c.n + EXCLUDED.n
		)
		SELECT count(*) FROM moved`
)

// FoldSums folds the changes appended so far into the figure sums and the
// task counts (ports.SumFolder). Reads are exact before and after; folding
// keeps them fast.
func (s *Store) FoldSums(ctx context.Context) error {
	for _, fold := range []struct{ what, query string }{
		{"fold figure changes", foldFiguresSQL},
		{"fold task count changes", foldTaskCountsSQL},
	} {
		for {
			var moved int
			err := s.InTx(ctx, func(ctx context.Context, tx ports.Tx) error {
				db := tx.(txScope).db
				var mine bool
				err := db.QueryRowContext(ctx, `SELECT pg_try_advisory_xact_lock($1)`, int64(foldLock)).Scan(&mine)
				if err == nil && mine {
					err = db.QueryRowContext(ctx, fold.query, foldBatch).Scan(&moved)
				}
				return interpretError(fold.what, err)
			})
			if err != nil {
				return err
			}
			if moved < foldBatch {
				break
			}
		}
	}
	return nil
}
