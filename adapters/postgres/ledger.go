package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// ledger keeps one row per merchant's invoice in invoices: the
// domain.InvoiceRecord that its facts merged into.
type ledger struct {
	db querier
	// store is set outside a unit of work, where Record runs its two
	// statements in a transaction of its own.
	store *Store
}

// invoiceColumns is what every invoice query returns, in the order of
// invoiceRow.dest.
const invoiceColumns = `invoices.merchant_id, invoices.invoice_id, invoices.customer_id,
	invoices.subscription_id, invoices.currency, invoices.amount_due, invoices.first_failed_at,
	invoices.last_failed_at, invoices.stripe_attempts, invoices.recoup_attempts,
	invoices.stripe_retry_at, invoices.decline_code, invoices.declined_at, invoices.card_updated_at,
	invoices.recoup_paid, invoices.status, invoices.closed_at, invoices.paid_amount,
	invoices.recovered_by`

// invoiceRow receives a row of invoiceColumns; a time not known yet is
// NULL.
type invoiceRow struct {
	MerchantID, InvoiceID, CustomerID, SubscriptionID, Currency string
	AmountDue                                                   int64
	FirstFailedAt, LastFailedAt                                 *time.Time
	StripeAttempts, RecoupAttempts                              int
	StripeRetryAt                                               *time.Time
	DeclineCode                                                 string
	DeclinedAt, CardUpdatedAt                                   *time.Time
	RecoupPaid, Status                                          string
	ClosedAt                                                    *time.Time
	PaidAmount                                                  int64
	RecoveredBy                                                 string
}

func (r *invoiceRow) dest() []any {
	return []any{&r.MerchantID, &r.InvoiceID, &r.CustomerID, &r.SubscriptionID, &r.Currency, &r.AmountDue,
		&r.FirstFailedAt, &r.LastFailedAt, &r.StripeAttempts, &r.RecoupAttempts, &r.StripeRetryAt,
		&r.DeclineCode, &r.DeclinedAt, &r.CardUpdatedAt, &r.RecoupPaid, &r.Status, &r.ClosedAt,
		&r.PaidAmount, &r.RecoveredBy}
}

func (r invoiceRow) record() domain.InvoiceRecord {
	rec := domain.InvoiceRecord{
		MerchantID: domain.MerchantID(r.MerchantID), InvoiceID: r.InvoiceID, CustomerID: r.CustomerID,
		SubscriptionID: r.SubscriptionID, Currency: r.Currency, AmountDue: r.AmountDue,
		FirstFailedAt: timeOf(r.FirstFailedAt), LastFailedAt: timeOf(r.LastFailedAt),
		StripeAttempts: r.StripeAttempts, RecoupAttempts: r.RecoupAttempts,
		DeclineCode: r.DeclineCode, DeclinedAt: timeOf(r.DeclinedAt), CardUpdatedAt: timeOf(r.CardUpdatedAt),
		RecoupPaid: domain.RecoverySource(r.RecoupPaid), Status: r.Status, ClosedAt: timeOf(r.ClosedAt),
		PaidAmount: r.PaidAmount, RecoveredBy: domain.RecoverySource(r.RecoveredBy),
	}
	if r.StripeRetryAt != nil {
		at := r.StripeRetryAt.UTC()
		rec.StripeRetryAt = &at
	}
	return rec
}

// timeOf reads a nullable column: NULL is the zero time.
func timeOf(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// nullTime writes a time to a nullable column: the zero time is NULL.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

func scanInvoice(rows *sql.Rows) (domain.InvoiceRecord, error) {
	var r invoiceRow
	if err := rows.Scan(r.dest()...); err != nil {
		return domain.InvoiceRecord{}, err
	}
	return r.record(), nil
}

// Record's statements. holdInvoiceSQL creates the record, empty, or finds
// it, and in both cases locks its row until the transaction ends: a
// conflicting insert waits for the transaction that holds the row, and DO
// UPDATE (a change to nothing) locks the latest version of the row and
// returns it, where DO NOTHING would return nothing and lock nothing.
const (
	holdInvoiceSQL = `
		INSERT INTO invoices AS invoices (merchant_id, invoice_id) VALUES ($1, $2)
		ON CONFLICT (merchant_id, invoice_id) DO UPDATE SET merchant_id = EXCLUDED.merchant_id
		RETURNING ` + invoiceColumns
	updateInvoiceSQL = `
		UPDATE invoices SET customer_id = $3, subscription_id = $4, currency = $5, amount_due = $6,
			first_failed_at = $7::timestamptz, last_failed_at = $8::timestamptz, stripe_attempts = $9,
			recoup_attempts = $10, stripe_retry_at = $11::timestamptz, decline_code = $12,
			declined_at = $13::timestamptz, card_updated_at = $14::timestamptz, recoup_paid = $15,
			status = $16, closed_at = $17::timestamptz, paid_amount = $18, recovered_by = $19
		WHERE merchant_id = $1 AND invoice_id = $2`
)

// Record merges the fact in Go, with domain.InvoiceRecord.Apply itself, so
// that the merge has one definition: the row is created or found and
// locked (holdInvoiceSQL), the fact applied to what it holds, and the row
// updated, in one transaction (the unit of work's, or one of its own
// outside a unit of work). A concurrent Record of the same invoice waits
// at holdInvoiceSQL until that transaction ends, then merges into what it
// committed.
func (l ledger) Record(ctx context.Context, merchant domain.MerchantID, f domain.InvoiceFact) (domain.InvoiceRecord, error) {
	mid, err := merchantParam(merchant)
	if err != nil {
		return domain.InvoiceRecord{}, fmt.Errorf("record invoice fact: %w", err)
	}
	if f.InvoiceID == "" || !domain.StorableText(f.InvoiceID, f.CustomerID, f.SubscriptionID, f.Currency, f.DeclineCode, f.Status) {
		return domain.InvoiceRecord{}, fmt.Errorf("record invoice fact: %w: empty invoice id, or text with a NUL character", domain.ErrInvalid)
	}
	// Apply compares the fact's times with the record's, which come back
	// from timestamptz in microseconds: the fact is merged as it would be
	// read back, so that the record returned is the record stored.
	f.At = f.At.Truncate(time.Microsecond)
	if f.StripeRetryAt != nil {
		at := f.StripeRetryAt.Truncate(time.Microsecond)
		f.StripeRetryAt = &at
	}
	if l.store == nil {
		return recordFact(ctx, l.db, mid, f)
	}
	var rec domain.InvoiceRecord
	err = l.store.InTx(ctx, func(ctx context.Context, tx ports.Tx) error {
		var err error
		rec, err = recordFact(ctx, tx.(txScope).db, mid, f)
		return err
	})
	return rec, err
}

// recordFact runs Record's statements on db, which must be a transaction:
// the row's lock lasts until it ends.
func recordFact(ctx context.Context, db querier, mid string, f domain.InvoiceFact) (domain.InvoiceRecord, error) {
	var row invoiceRow
	if err := db.QueryRowContext(ctx, holdInvoiceSQL, mid, f.InvoiceID).Scan(row.dest()...); err != nil {
		return domain.InvoiceRecord{}, interpretError("record fact of invoice "+f.InvoiceID, err)
	}
	r := row.record().Apply(f)
	var retryAt any // NULL: Stripe will not retry
	if r.StripeRetryAt != nil {
		retryAt = *r.StripeRetryAt
	}
	_, err := db.ExecContext(ctx, updateInvoiceSQL, mid, r.InvoiceID, r.CustomerID, r.SubscriptionID, r.Currency,
		r.AmountDue, nullTime(r.FirstFailedAt), nullTime(r.LastFailedAt), r.StripeAttempts, r.RecoupAttempts,
		retryAt, r.DeclineCode, nullTime(r.DeclinedAt), nullTime(r.CardUpdatedAt), string(r.RecoupPaid),
		r.Status, nullTime(r.ClosedAt), r.PaidAmount, string(r.RecoveredBy))
	if err != nil {
		return domain.InvoiceRecord{}, interpretError("record fact of invoice "+f.InvoiceID, err)
	}
	return r, nil
}

// Invoice reads the merchant's record of an invoice. An id that no record
// can have (empty, or with a NUL character) has none.
func (l ledger) Invoice(ctx context.Context, merchant domain.MerchantID, invoiceID string) (domain.InvoiceRecord, error) {
	mid, err := merchantParam(merchant)
	if err != nil {
		return domain.InvoiceRecord{}, fmt.Errorf("read invoice: %w", err)
	}
	if invoiceID == "" || !domain.StorableText(invoiceID) {
		return domain.InvoiceRecord{}, fmt.Errorf("invoice %q: %w", invoiceID, domain.ErrNotFound)
	}
	var row invoiceRow
	err = l.db.QueryRowContext(ctx, `SELECT `+invoiceColumns+` FROM invoices WHERE merchant_id = $1 AND invoice_id = $2`,
		mid, invoiceID).Scan(row.dest()...)
	if errors.Is(err, sql.ErrNoRows) {
		return domain.InvoiceRecord{}, fmt.Errorf("invoice %s: %w", invoiceID, domain.ErrNotFound)
	}
	if err != nil {
		return domain.InvoiceRecord{}, interpretError("read invoice "+invoiceID, err)
	}
	return row.record(), nil
}

// openFailedSQL is OpenFailed's statement; its conditions are those of the
// partial index invoices_open_failed.
const openFailedSQL = `
	SELECT ` + invoiceColumns + ` FROM invoices
	WHERE merchant_id = $1 AND customer_id = $2 AND first_failed_at IS NOT NULL AND status = ''
	ORDER BY first_failed_at, invoice_id`

// OpenFailed lists the customer's open failed invoices, oldest failure
// first (then by id, for a stable order). Records that name no customer
// belong to none: an empty customer id has no invoices.
func (l ledger) OpenFailed(ctx context.Context, merchant domain.MerchantID, customerID string) ([]domain.InvoiceRecord, error) {
	mid, err := merchantParam(merchant)
	if err != nil {
		return nil, fmt.Errorf("open failed invoices: %w", err)
	}
	if customerID == "" || !domain.StorableText(customerID) {
		return []domain.InvoiceRecord{}, nil
	}
	recs, err := queryAll(ctx, l.db, scanInvoice, openFailedSQL, mid, customerID)
	if err != nil {
		return nil, interpretError("open failed invoices of "+customerID, err)
	}
	if recs == nil {
		recs = []domain.InvoiceRecord{}
	}
	return recs, nil
}
