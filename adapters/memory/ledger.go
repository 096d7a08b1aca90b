package memory

import (
	"context"
	"fmt"
	"time"

	"github.com/recoupdev/recoup/domain"
)

// ledgerRow is one failed invoice's figures. No port reads when an invoice
// failed or was paid, so those times are not kept.
type ledgerRow struct {
	currency          string
	failed, recovered int64
	paid              bool
}

func (u *unit) setRow(ten *tenant, invoice string, row ledgerRow) {
	old, had := ten.ledger[invoice]
	ten.ledger[invoice] = row
	u.onUndo(func() {
		if had {
			ten.ledger[invoice] = old
		} else {
			delete(ten.ledger, invoice)
		}
	})
}

func (c scope) RecordFailure(ctx context.Context, merchant domain.MerchantID, inv domain.InvoiceAmount, _ time.Time) error {
	if inv.InvoiceID == "" || !domain.StorableText(inv.InvoiceID, inv.Currency) {
		return fmt.Errorf("record failure: %w: empty invoice id, or text with a NUL character", domain.ErrInvalid)
	}
	return c.doFor(ctx, merchant, func(u *unit, ten *tenant) error {
		if _, ok := ten.ledger[inv.InvoiceID]; !ok {
			u.setRow(ten, inv.InvoiceID, ledgerRow{currency: inv.Currency, failed: inv.Amount})
		}
		return nil
	})
}

func (c scope) RecordPaid(ctx context.Context, merchant domain.MerchantID, inv domain.InvoiceAmount, _ time.Time) error {
	if inv.InvoiceID == "" || !domain.StorableText(inv.InvoiceID) {
		return fmt.Errorf("record payment: %w: empty invoice id, or one with a NUL character", domain.ErrInvalid)
	}
	return c.doFor(ctx, merchant, func(u *unit, ten *tenant) error {
		if row, ok := ten.ledger[inv.InvoiceID]; ok && !row.paid {
			row.recovered, row.paid = inv.Amount, true
			u.setRow(ten, inv.InvoiceID, row)
		}
		return nil
	})
}

// Recovery sums at each call: a merchant's dashboard asks now and then,
// whereas running sums would be one more thing for every change to undo.
func (c scope) Recovery(ctx context.Context, merchant domain.MerchantID) (map[string]domain.CurrencyRecovery, error) {
	out := map[string]domain.CurrencyRecovery{}
	err := c.doFor(ctx, merchant, func(_ *unit, ten *tenant) error {
		for _, row := range ten.ledger {
			sum := out[row.currency]
			sum.FailedAmount += row.failed
			sum.RecoveredAmount += row.recovered
			out[row.currency] = sum
		}
		return nil
	})
	return out, err
}
