package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/recoupdev/recoup/domain"
)

// ledger keeps one row per failed invoice in invoice_recoveries.
type ledger struct {
	db querier
}

// RecordFailure inserts the invoice's row unless it has one: the first
// failure counts, and the primary key settles concurrent ones.
func (l ledger) RecordFailure(ctx context.Context, merchant domain.MerchantID, inv domain.InvoiceAmount, at time.Time) error {
	mid, err := merchantParam(merchant)
	if err != nil {
		return fmt.Errorf("record failure: %w", err)
	}
	if inv.InvoiceID == "" || !domain.StorableText(inv.InvoiceID, inv.Currency) {
		return fmt.Errorf("record failure: %w: empty invoice id, or text with a NUL character", domain.ErrInvalid)
	}
	_, err = l.db.ExecContext(ctx, `
		INSERT INTO invoice_recoveries (merchant_id, invoice_id, currency, failed_amount, failed_at)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (merchant_id, invoice_id) DO NOTHING`,
		mid, inv.InvoiceID, inv.Currency, inv.Amount, at)
	return interpretError("record failure of invoice "+inv.InvoiceID, err)
}

// RecordPaid marks a failed, not yet recovered invoice recovered; an
// invoice that never failed has no row and is left alone.
func (l ledger) RecordPaid(ctx context.Context, merchant domain.MerchantID, inv domain.InvoiceAmount, at time.Time) error {
	mid, err := merchantParam(merchant)
	if err != nil {
		return fmt.Errorf("record payment: %w", err)
	}
	if inv.InvoiceID == "" || !domain.StorableText(inv.InvoiceID) {
		return fmt.Errorf("record payment: %w: empty invoice id, or one with a NUL character", domain.ErrInvalid)
	}
	_, err = l.db.ExecContext(ctx, `
		UPDATE invoice_recoveries SET recovered_amount = $3, recovered_at = $4
		WHERE merchant_id = $1 AND invoice_id = $2 AND recovered_at IS NULL`,
		mid, inv.InvoiceID, inv.Amount, at)
	return interpretError("record payment of invoice "+inv.InvoiceID, err)
}

// Recovery sums the merchant's failed and recovered amounts by currency.
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
	}, `
		SELECT currency, sum(failed_amount)::bigint, sum(recovered_amount)::bigint
		FROM invoice_recoveries WHERE merchant_id = $1 GROUP BY currency`, mid)
	if err != nil {
		return nil, interpretError("recovery figures", err)
	}
	out := make(map[string]domain.CurrencyRecovery, len(rows))
	for _, r := range rows {
		out[r.currency] = domain.CurrencyRecovery{FailedAmount: r.failed, RecoveredAmount: r.recovered}
	}
	return out, nil
}
