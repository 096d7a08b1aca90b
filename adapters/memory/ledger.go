package memory

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/recoupdev/recoup/domain"
)

// customerInvoice is an entry of tenant.open, which lists each open
// failed invoice under its customer: a map of lists, most of one
// invoice, would cost about four times the memory. Most invoices close,
// so it stays as small as what OpenFailed can return.
type customerInvoice struct{ customer, invoice string }

func (a customerInvoice) compare(b customerInvoice) int {
	return cmp.Or(strings.Compare(a.customer, b.customer), strings.Compare(a.invoice, b.invoice))
}

// openOf is r's entry in tenant.open, if it is open and failed.
func openOf(r domain.InvoiceRecord) (customerInvoice, bool) {
	return customerInvoice{r.CustomerID, r.InvoiceID}, r.Failed() && r.Status == ""
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
// from from to to.
func (ten *tenant) reopen(from, to domain.InvoiceRecord) {
	a, wasOpen := openOf(from)
	b, isOpen := openOf(to)
	if a == b && wasOpen == isOpen {
		return
	}
	if wasOpen {
		i, _ := slices.BinarySearchFunc(ten.open, a, customerInvoice.compare)
		ten.open = slices.Delete(ten.open, i, i+1)
	}
	if isOpen {
		i, _ := slices.BinarySearchFunc(ten.open, b, customerInvoice.compare)
		ten.open = slices.Insert(ten.open, i, b)
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
		i, _ := slices.BinarySearchFunc(ten.open, customerInvoice{customer: customerID}, customerInvoice.compare)
		for ; i < len(ten.open) && ten.open[i].customer == customerID; i++ {
			out = append(out, detached(ten.invoices[ten.open[i].invoice]))
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
func (c scope) Figures(ctx context.Context, merchant domain.MerchantID, from, to time.Time) (domain.RecoveryFigures, error) {
	var out domain.RecoveryFigures
	err := c.doFor(ctx, merchant, func(_ *unit, ten *tenant) error {
		// The bounds as PostgreSQL compares them, as the records' times.
		out = domain.FiguresOf(maps.Values(ten.invoices), norm(from), norm(to))
		return nil
	})
	return out, err
}
