package postgres

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"github.com/recoupdev/recoup/domain"
)

// figuresSQL counts a merchant's invoices that failed and those recovered
// in [$2, $3), grouped by what the figures tell apart: side (f: failed, r:
// recovered), UTC day, currency, decline code and source. Each side reads
// its own partial index (invoices_failed_at, invoices_recovered_at); a
// year of a large merchant's invoices folds into a few thousand groups.
const figuresSQL = `
	SELECT side, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), currency, decline_code, source,
		count(*), sum(amount)::bigint
	FROM (
		SELECT 'f' AS side, first_failed_at AS at, currency, amount_due AS amount, decline_code, '' AS source
		FROM invoices
		WHERE merchant_id = $1 AND first_failed_at IS NOT NULL AND first_failed_at >= $2 AND first_failed_at < $3
		UNION ALL
		SELECT 'r', closed_at, currency, paid_amount, decline_code, recovered_by
		FROM invoices
		WHERE merchant_id = $1 AND status = 'paid' AND recovered_by <> '' AND closed_at >= $2 AND closed_at < $3
	) counted
	GROUP BY 1, 2, 3, 4, 5`

// Figures counts in SQL and folds the groups as domain.FiguresOf does.
func (l ledger) Figures(ctx context.Context, merchant domain.MerchantID, from, to time.Time) (domain.RecoveryFigures, error) {
	mid, err := merchantParam(merchant)
	if err != nil {
		return domain.RecoveryFigures{}, fmt.Errorf("recovery figures: %w", err)
	}
	f := domain.NewRecoveryFigures()
	if !to.After(from) {
		return f, nil
	}
	type group struct {
		side, day, currency, code, source string
		count                             int
		amount                            int64
	}
	groups, err := queryAll(ctx, l.db, func(rows *sql.Rows) (group, error) {
		var g group
		err := rows.Scan(&g.side, &g.day, &g.currency, &g.code, &g.source, &g.count, &g.amount)
		return g, err
	}, figuresSQL, mid, from, to)
	if err != nil {
		return domain.RecoveryFigures{}, interpretError("recovery figures", err)
	}
	type day struct{ date, currency string }
	series := map[day]*domain.DayFigures{}
	for _, g := range groups {
		k := day{g.day, g.currency}
		row := series[k]
		if row == nil {
			row = &domain.DayFigures{Date: g.day, Currency: g.currency}
			series[k] = row
		}
		code := cmp.Or(g.code, domain.UnknownDeclineCode)
		byCode := f.ByDeclineCode[code]
		if g.side == "f" {
			row.FailedAmount += g.amount
			byCode.FailedInvoices += g.count
		} else {
			row.RecoveredAmount += g.amount
			byCode.RecoveredInvoices += g.count
			f.BySource[domain.RecoverySource(g.source)] += g.count
		}
		f.ByDeclineCode[code] = byCode
	}
	for _, row := range series {
		f.Series = append(f.Series, *row)
	}
	slices.SortFunc(f.Series, func(a, b domain.DayFigures) int {
		return cmp.Or(cmp.Compare(a.Date, b.Date), cmp.Compare(a.Currency, b.Currency))
	})
	return f, nil
}
