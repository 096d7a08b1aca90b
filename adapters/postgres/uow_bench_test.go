package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/recoupdev/recoup/adapters/postgres"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/pgtest"
	"github.com/recoupdev/recoup/ports"
)

// BenchmarkUnitOfWork runs the webhook's unit of work for a failed invoice
// payment (the event lock, a notify_payment_failed and a retry_payment,
// the invoice's record) at 1, 8 and 32 goroutines: "store" through Store.InTx,
// "pgx" as the same statements one by one on a pgxpool with pgx's defaults.
// Without HTTP and the use cases around it, store/pgx is what the adapter
// itself costs; each reports events/s.
func BenchmarkUnitOfWork(b *testing.B) {
	databaseURL := pgtest.NewDatabase(b)
	for _, conc := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("goroutines=%d", conc), func(b *testing.B) {
			b.Run("pgx", func(b *testing.B) {
				schemaURL, _ := newSchema(b, databaseURL, 2)
				pool, err := pgxpool.New(context.Background(), withParam(b, schemaURL, "pool_max_conns", fmt.Sprint(conc+2)))
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(pool.Close)
				m := domain.MerchantID(domain.NewID())
				runUnits(b, conc, func(ctx context.Context, i int) error { return pgxUnit(ctx, pool, m, i) })
			})
			b.Run("store", func(b *testing.B) {
				st := postgres.New(newSchemaDB(b, databaseURL, conc+2))
				m := createMerchant(b, st).ID
				runUnits(b, conc, func(ctx context.Context, i int) error {
					return st.InTx(ctx, func(ctx context.Context, tx ports.Tx) error {
						ok, err := tx.Events().AttemptEventLock(ctx, fmt.Sprintf("evt_uow%d", i))
						if err != nil || !ok {
							return fmt.Errorf("lock: %t %w", ok, err)
						}
						notify, retry := unitTasks(m, i)
						if _, err := tx.Tasks().Schedule(ctx, m, []domain.Task{notify, retry}); err != nil {
							return err
						}
						_, err = tx.Ledger().Record(ctx, m, domain.InvoiceFact{Kind: domain.FactFailed,
							InvoiceID: notify.StripeInvoiceID, AmountDue: 2000, Currency: "usd", At: now(), AttemptCount: 1})
						return err
					})
				})
			})
		})
	}
}

func unitTasks(m domain.MerchantID, i int) (notify, retry domain.Task) {
	invoice := fmt.Sprintf("in_uow%d", i)
	notify = newTask(m, domain.TypeNotifyPaymentFailed, invoice, 1)
	retry = newTask(m, domain.TypeRetryPayment, invoice, 1)
	return notify, retry
}

// runUnits calls unit b.N times from conc goroutines and reports events/s.
func runUnits(b *testing.B, conc int, unit func(ctx context.Context, i int) error) {
	ctx := context.Background()
	var next atomic.Int64
	errs := make(chan error, conc)
	var wg sync.WaitGroup
	b.ResetTimer()
	for range conc {
		wg.Go(func() {
			for i := int(next.Add(1)); i <= b.N; i = int(next.Add(1)) {
				if err := unit(ctx, i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// The statements of pgxUnit, as the store sent them before they were
// combined.
const (
	pgxLock = `INSERT INTO processed_events (event_id, processed_at) VALUES ($1, $2)
		ON CONFLICT (event_id) DO NOTHING RETURNING event_id`
	pgxInsertTask = `INSERT INTO tasks AS tasks (id, merchant_id, type, status, stripe_event_id,
		stripe_invoice_id, amount_due, currency, invoice_attempt, run_at, created_at, updated_at)
		VALUES ($1, $2, $3, 'pending', $4, $5, 2000, 'usd', 1, $6, $6, $6) `
	pgxNotify = pgxInsertTask + `ON CONFLICT (merchant_id, stripe_invoice_id, invoice_attempt)
		WHERE type = 'notify_payment_failed' DO NOTHING RETURNING tasks.id`
	pgxRetry = pgxInsertTask + `ON CONFLICT (merchant_id, stripe_invoice_id)
		WHERE type = 'retry_payment' AND status = 'pending' DO UPDATE SET run_at = EXCLUDED.run_at,
		stripe_event_id = EXCLUDED.stripe_event_id, invoice_attempt = EXCLUDED.invoice_attempt,
		decline_code = EXCLUDED.decline_code, updated_at = EXCLUDED.updated_at RETURNING tasks.id`
	// The invoice's record: created (or found) and locked, then written
	// with the fact merged, as the ledger's Record does.
	pgxHoldInvoice = `INSERT INTO invoices AS invoices (merchant_id, invoice_id) VALUES ($1, $2)
		ON CONFLICT (merchant_id, invoice_id) DO UPDATE SET merchant_id = EXCLUDED.merchant_id
		RETURNING invoices.merchant_id, invoices.invoice_id, invoices.customer_id,
		invoices.subscription_id, invoices.currency, invoices.amount_due, invoices.first_failed_at,
		invoices.last_failed_at, invoices.stripe_attempts, invoices.recoup_attempts,
		invoices.stripe_retry_at, invoices.decline_code, invoices.declined_at, invoices.card_updated_at,
		invoices.recoup_paid, invoices.status, invoices.closed_at, invoices.paid_amount,
		invoices.recovered_by`
	pgxUpdateInvoice = `UPDATE invoices SET customer_id = '', subscription_id = '', currency = 'usd',
		amount_due = 2000, first_failed_at = $3, last_failed_at = $3, stripe_attempts = 1,
		recoup_attempts = 0, stripe_retry_at = NULL, decline_code = '', declined_at = NULL,
		card_updated_at = NULL, recoup_paid = '', status = '', closed_at = NULL, paid_amount = 0,
		recovered_by = '' WHERE merchant_id = $1 AND invoice_id = $2`
)

func pgxUnit(ctx context.Context, pool *pgxpool.Pool, m domain.MerchantID, i int) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	at := time.Now().UTC()
	var got string
	if err := tx.QueryRow(ctx, pgxLock, fmt.Sprintf("evt_uow%d", i), at).Scan(&got); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	notify, retry := unitTasks(m, i)
	for _, t := range []domain.Task{notify, retry} {
		query := pgxNotify
		if t.Type == domain.TypeRetryPayment {
			query = pgxRetry
		}
		if err := tx.QueryRow(ctx, query, t.ID, m, t.Type, t.StripeEventID, t.StripeInvoiceID, at).Scan(&got); err != nil {
			return fmt.Errorf("insert %s: %w", t.Type, err)
		}
	}
	record := make([]any, 19)
	for i := range record {
		record[i] = new(any)
	}
	if err := tx.QueryRow(ctx, pgxHoldInvoice, m, notify.StripeInvoiceID).Scan(record...); err != nil {
		return fmt.Errorf("hold invoice: %w", err)
	}
	if _, err := tx.Exec(ctx, pgxUpdateInvoice, m, notify.StripeInvoiceID, at); err != nil {
		return fmt.Errorf("record invoice: %w", err)
	}
	return tx.Commit(ctx)
}
