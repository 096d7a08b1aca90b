package memory

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/recoupdev/recoup/domain"
)

// tenant.open lists each open failed invoice under its customer, as
// OpenFailed asks for them. A customer has few at a time, so each list
// is short and unordered; a single sorted list of every customer's would
// make each new failure move the whole list, which grows with the
// merchant's open invoices.

// openOf is the customer under whom tenant.open lists r, if r is open and
// failed.
func openOf(r domain.InvoiceRecord) (customer string, open bool) {
	return r.CustomerID, r.Failed() && r.Status == ""
}

// setRecord stores r, logging how to restore the record it replaces.
func (u *unit) setRecord(ten *tenant, r domain.InvoiceRecord) {
	old, had := ten.invoices[r.InvoiceID]
	ten.invoices[r.InvoiceID] = r
	ten.reopen(old, r)
	u.onUndo(func() {
		ten.reopen(r, old)
		if had {
			ten.invoices[r.InvoiceID] = old
		} else {
			delete(ten.invoices, r.InvoiceID)
		}
	})
}

// reopen moves the invoice's entry in tenant.open as its record changes
// from from to to (both records of one invoice).
func (ten *tenant) reopen(from, to domain.InvoiceRecord) {
	a, wasOpen := openOf(from)
	b, isOpen := openOf(to)
	if a == b && wasOpen == isOpen {
		return
	}
	if wasOpen {
		rest := slices.DeleteFunc(ten.open[a], func(id string) bool { return id == from.InvoiceID })
		if len(rest) == 0 {
			delete(ten.open, a)
		} else {
			ten.open[a] = rest
		}
	}
	if isOpen {
		ten.open[b] = append(ten.open[b], to.InvoiceID)
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
		for _, id := range ten.open[customerID] {
			out = append(out, detached(ten.invoices[id]))
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

// Figures, like Recovery, counts at each call.
func (c scope) Figures(ctx context.Context, merchant domain.MerchantID, days domain.DayRange) (domain.RecoveryFigures, error) {
	var out domain.RecoveryFigures
	err := c.doFor(ctx, merchant, func(_ *unit, ten *tenant) error {
		out = domain.FiguresOf(maps.Values(ten.invoices), days.From, days.End())
		return nil
	})
	return out, err
}
