package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/recoupdev/recoup/domain"
)

// ledger keeps one row per failed invoice in invoice_recoveries.
type ledger struct {
	db bun.IDB
}

// RecordFailure inserts the invoice's row unless it has one: the first
// failure counts, and the primary key settles concurrent ones.
func (l ledger) RecordFailure(ctx context.Context, merchant domain.MerchantID, inv domain.InvoiceAmount, at time.Time) error {
	mid, err := merchantParam(merchant)
	if err != nil {
		return fmt.Errorf("record failure: %w", err)
	}
	if inv.InvoiceID == "" {
		return fmt.Errorf("record failure: %w: empty invoice id", domain.ErrInvalid)
	}
	_, err = l.db.NewRaw(`
		INSERT INTO invoice_recoveries (merchant_id, invoice_id, currency, failed_amount, failed_at)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (merchant_id, invoice_id) DO NOTHING`,
		mid, inv.InvoiceID, inv.Currency, inv.Amount, at).Exec(ctx)
	return interpretError("record failure of invoice "+inv.InvoiceID, err)
}

// RecordPaid marks a failed, not yet recovered invoice recovered; an
// invoice that never failed has no row and is left alone.
func (l ledger) RecordPaid(ctx context.Context, merchant domain.MerchantID, inv domain.InvoiceAmount, at time.Time) error {
	mid, err := merchantParam(merchant)
	if err != nil {
		return fmt.Errorf("record payment: %w", err)
	}
	if inv.InvoiceID == "" {
		return fmt.Errorf("record payment: %w: empty invoice id", domain.ErrInvalid)
	}
	_, err = l.db.NewRaw(`
		UPDATE invoice_recoveries SET recovered_amount = ?, recovered_at = ?
		WHERE merchant_id = ? AND invoice_id = ? AND recovered_at IS NULL`,
		inv.Amount, at, mid, inv.InvoiceID).Exec(ctx)
	return interpretError("record payment of invoice "+inv.InvoiceID, err)
}

// Recovery sums the merchant's failed and recovered amounts by currency.
func (l ledger) Recovery(ctx context.Context, merchant domain.MerchantID) (map[string]domain.CurrencyRecovery, error) {
	mid, err := merchantParam(merchant)
	if err != nil {
		return nil, fmt.Errorf("recovery figures: %w", err)
	}
	var rows []struct {
		Currency  string `bun:"currency"`
		Failed    int64  `bun:"failed"`
		Recovered int64  `bun:"recovered"`
	}
	if err := l.db.NewRaw(`
		SELECT currency, sum(failed_amount)::bigint AS failed, sum(recovered_amount)::bigint AS recovered
		FROM invoice_recoveries WHERE merchant_id = ? GROUP BY currency`, mid).Scan(ctx, &rows); err != nil {
		return nil, interpretError("recovery figures", err)
	}
	out := make(map[string]domain.CurrencyRecovery, len(rows))
	for _, r := range rows {
		out[r.Currency] = domain.CurrencyRecovery{FailedAmount: r.Failed, RecoveredAmount: r.Recovered}
	}
	return out, nil
}
