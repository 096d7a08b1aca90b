package memory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/recoupdev/recoup/domain"
)

// setRecord stores r, logging how to restore the record it replaces.
func (u *unit) setRecord(ten *tenant, r domain.InvoiceRecord) {
	old, had := ten.invoices[r.InvoiceID]
	ten.putRecord(old, r, true)
	u.onUndo(func() { ten.putRecord(r, old, had) })
}

// putRecord stores to in place of from, or, unless keep, deletes from;
// either way byCustomer follows.
func (ten *tenant) putRecord(from, to domain.InvoiceRecord, keep bool) {
	if from.CustomerID != to.CustomerID {
		dropFrom(ten.byCustomer, from.CustomerID, from.InvoiceID)
		addTo(ten.byCustomer, to.CustomerID, to.InvoiceID)
	}
	if keep {
		ten.invoices[to.InvoiceID] = to
	} else {
		delete(ten.invoices, from.InvoiceID)
	}
}

// detached returns r with its own StripeRetryAt: no caller shares memory
// with the store.
func detached(r domain.InvoiceRecord) domain.InvoiceRecord {
	if r.StripeRetryAt != nil {
		at := *r.StripeRetryAt
		r.StripeRetryAt = &at
	}
	return r
}

// Record needs no waiting: no other unit of work runs meanwhile, so no
// fact can be lost to another.
func (c scope) Record(ctx context.Context, merchant domain.MerchantID, f domain.InvoiceFact) (domain.InvoiceRecord, error) {
	if f.InvoiceID == "" || !domain.StorableText(string(f.Kind), f.InvoiceID, f.CustomerID, f.SubscriptionID, f.Currency, f.DeclineCode, f.Status) {
		return domain.InvoiceRecord{}, fmt.Errorf("record invoice fact: %w: empty invoice id, or text with a NUL character", domain.ErrInvalid)
	}
	// The fact's times as PostgreSQL keeps them, the record's from then on.
	f.At = norm(f.At)
	if f.StripeRetryAt != nil {
		at := norm(*f.StripeRetryAt)
		f.StripeRetryAt = &at
	}
	var out domain.InvoiceRecord
	err := c.doFor(ctx, merchant, func(u *unit, ten *tenant) error {
		r, ok := ten.invoices[f.InvoiceID]
		if !ok {
			r = domain.InvoiceRecord{MerchantID: ten.id, InvoiceID: f.InvoiceID}
		}
		r = r.Apply(f)
		u.setRecord(ten, r)
		out = detached(r)
		return nil
	})
	return out, err
}

func (c scope) Invoice(ctx context.Context, merchant domain.MerchantID, invoiceID string) (domain.InvoiceRecord, error) {
	var out domain.InvoiceRecord
	err := c.doFor(ctx, merchant, func(_ *unit, ten *tenant) error {
		r, ok := ten.invoices[invoiceID]
		if !ok {
			return fmt.Errorf("invoice %s: %w", invoiceID, domain.ErrNotFound)
		}
		out = detached(r)
		return nil
	})
	return out, err
}

func (c scope) OpenFailed(ctx context.Context, merchant domain.MerchantID, customerID string) ([]domain.InvoiceRecord, error) {
	var out []domain.InvoiceRecord
	err := c.doFor(ctx, merchant, func(_ *unit, ten *tenant) error {
		for _, id := range ten.byCustomer[customerID] {
			if r := ten.invoices[id]; r.Failed() && r.Status == "" {
				out = append(out, detached(r))
			}
		}
		return nil
	})
	slices.SortFunc(out, func(a, b domain.InvoiceRecord) int {
		return cmp.Or(a.FirstFailedAt.Compare(b.FirstFailedAt), strings.Compare(a.InvoiceID, b.InvoiceID))
	})
	return out, err
}

// Recovery sums at each call: a merchant's dashboard asks now and then,
// whereas running sums would be one more thing for every change to undo.
func (c scope) Recovery(ctx context.Context, merchant domain.MerchantID) (map[string]domain.CurrencyRecovery, error) {
	out := map[string]domain.CurrencyRecovery{}
	err := c.doFor(ctx, merchant, func(_ *unit, ten *tenant) error {
		for _, r := range ten.invoices {
			if !r.Failed() && !r.Recovered() {
				continue
			}
			sum := out[r.Currency]
			if r.Failed() {
				sum.FailedAmount += r.AmountDue
			}
			if r.Recovered() {
				sum.RecoveredAmount += r.PaidAmount
			}
			out[r.Currency] = sum
		}
		return nil
	})
	return out, err
}
