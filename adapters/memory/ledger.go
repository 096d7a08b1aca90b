package memory

import (
	"context"
	"fmt"
	"maps"
	"time"

	"github.com/recoupdev/recoup/domain"
)

// ledger is the recovery ledger, inside a unit of work (t set) or with
// each call a unit of work of its own.
type ledger struct {
	s *Store
	t *tx
}

// RecordFailure keeps the invoice's first failure; later ones change
// nothing.
func (l ledger) RecordFailure(ctx context.Context, merchant domain.MerchantID, inv domain.InvoiceAmount, at time.Time) error {
	if inv.InvoiceID == "" {
		return fmt.Errorf("%w: empty invoice id", domain.ErrInvalid)
	}
	return l.s.do(ctx, l.t, func(t *tx) error {
		h, err := t.shard(ctx, merchant)
		if err != nil {
			return err
		}
		old, ok := h.sh.ledger[inv.InvoiceID]
		if ok {
			return nil
		}
		h.setLedger(inv.InvoiceID, old, false, ledgerEntry{currency: inv.Currency, failed: inv.Amount, failedAt: norm(at)})
		return nil
	})
}

// RecordPaid counts the invoice as recovered with the paid amount, once,
// and only if a failure was recorded for it.
func (l ledger) RecordPaid(ctx context.Context, merchant domain.MerchantID, inv domain.InvoiceAmount, at time.Time) error {
	return l.s.do(ctx, l.t, func(t *tx) error {
		h, err := t.shard(ctx, merchant)
		if err != nil {
			return err
		}
		old, ok := h.sh.ledger[inv.InvoiceID]
		if !ok || old.paid {
			return nil
		}
		e := old
		e.recovered, e.paid, e.paidAt = inv.Amount, true, norm(at)
		h.setLedger(inv.InvoiceID, old, true, e)
		return nil
	})
}

// Recovery returns the merchant's running sums; it costs O(currencies).
func (l ledger) Recovery(ctx context.Context, merchant domain.MerchantID) (map[string]domain.CurrencyRecovery, error) {
	var out map[string]domain.CurrencyRecovery
	err := l.s.do(ctx, l.t, func(t *tx) error {
		h, err := t.shard(ctx, merchant)
		if err != nil {
			return err
		}
		out = maps.Clone(h.sh.sums)
		return nil
	})
	if out == nil && err == nil {
		out = map[string]domain.CurrencyRecovery{}
	}
	return out, err
}
