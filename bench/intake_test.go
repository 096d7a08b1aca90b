package bench_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/recoupdev/recoup/adapters/postgres"
	"github.com/recoupdev/recoup/app"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/pgtest"
	"github.com/recoupdev/recoup/internal/stripetest"
	"github.com/recoupdev/recoup/ports"
)

const (
	webhookSecret = "whsec_recoup_bench_secret"
	// intakeMerchants is how many merchants the events are spread over.
	intakeMerchants = 4
	// intakePool is the connection pool of both sides: enough for 32
	// senders, each holding one connection for its transaction.
	intakePool = 40
)

// failedInvoice is one invoice.payment_failed event's content, the same for
// the baseline and for recoup.
type failedInvoice struct {
	EventID, InvoiceID string
	Merchant           int // index into the run's merchants
	Customer, Email    string
	Subscription       string
	HostedURL          string
	Amount             int64
	Currency           string
	Attempt            int
}

// failedInvoices returns n distinct events, attempt 1 with no retry planned
// by Stripe, spread round-robin over the merchants.
func failedInvoices(n int) []failedInvoice {
	evs := make([]failedInvoice, n)
	for i := range evs {
		evs[i] = failedInvoice{
			EventID: stripetest.NewID("evt_"), InvoiceID: stripetest.NewID("in_"),
			Merchant: i % intakeMerchants, Customer: fmt.Sprintf("cus_bench%d", i),
			Email: fmt.Sprintf("customer%d@example.com", i), Subscription: fmt.Sprintf("sub_bench%d", i),
			HostedURL: "https://invoice.stripe.com/i/bench", Amount: 4200, Currency: "usd", Attempt: 1,
		}
	}
	return evs
}

// BenchmarkWebhookIntakePostgres: see the package documentation.
func BenchmarkWebhookIntakePostgres(b *testing.B) {
	dbURL := pgtest.NewDatabase(b)
	for _, senders := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("senders=%d", senders), func(b *testing.B) {
			var bl baselines
			b.Run("baseline", func(b *testing.B) {
				bl.add(b.N, benchIntakePgx(b, dbURL, senders))
			})
			b.Run("recoup", func(b *testing.B) {
				rate := benchIntakeRecoup(b, dbURL, senders)
				reportRatio(b, rate, &bl)
			})
		})
	}
}

// benchIntakeRecoup posts b.N pre-signed events to the real server over
// loopback TCP and returns the events/s.
func benchIntakeRecoup(b *testing.B, dbURL string, senders int) float64 {
	ctx := context.Background()
	db := openRecoup(b, migratedSchema(b, dbURL), intakePool)
	store := postgres.New(db)
	clock := ports.SystemClock{}
	merchantSvc := app.NewMerchantService(store.Merchants(), clock)
	accounts := make([]string, intakeMerchants)
	for i := range accounts {
		m, _, err := merchantSvc.Create(ctx, fmt.Sprintf("Bench %d", i), stripetest.NewID("acct_"))
		if err != nil {
			b.Fatal(err)
		}
		accounts[i] = m.StripeAccountID
	}
	srv := apiServer(b, store, merchantSvc)
	transport := &http.Transport{MaxIdleConns: 2 * senders, MaxIdleConnsPerHost: 2 * senders}
	b.Cleanup(transport.CloseIdleConnections)
	client := &http.Client{Transport: transport, Timeout: time.Minute}

	evs := failedInvoices(b.N)
	payloads, sigs := make([][]byte, b.N), make([]string, b.N)
	now := time.Now()
	for i, ev := range evs {
		payloads[i] = stripetest.Event{
			ID: ev.EventID, Type: domain.EventInvoicePaymentFailed, Account: accounts[ev.Merchant],
			Object: stripetest.Invoice{
				ID: ev.InvoiceID, Customer: ev.Customer, CustomerEmail: ev.Email, AmountDue: ev.Amount,
				Currency: ev.Currency, AttemptCount: ev.Attempt, Subscription: ev.Subscription,
				HostedInvoiceURL: ev.HostedURL,
			},
		}.JSON()
		sigs[i] = stripetest.Sign(payloads[i], webhookSecret, now)
	}
	warmSQL(b, db.DB, senders)
	warmHTTP(b, client, srv.URL+"/healthz", senders)
	webhookURL := srv.URL + "/webhooks/stripe"
	scheduled := []byte(`"action":"tasks_scheduled"`)
	lat := make([]time.Duration, b.N)

	b.ResetTimer()
	err := runParallel(senders, b.N, func(i int) error {
		start := time.Now()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, webhookURL, bytes.NewReader(payloads[i]))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Stripe-Signature", sigs[i])
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		lat[i] = time.Since(start)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK || !bytes.Contains(body, scheduled) {
			return fmt.Errorf("status %d: %s", resp.StatusCode, body)
		}
		return nil
	})
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	checkIntake(b, db.DB.QueryRowContext, b.N)
	reportLatency(b, lat)
	return reportRate(b, b.N, "events/s")
}

// Statements of the baseline, written as the postgres adapter writes them
// (store.go, tasks.go, ledger.go): the same tables, columns, conflict
// targets and RETURNING lists.
const (
	lockSQL = `INSERT INTO processed_events (event_id, processed_at) VALUES ($1, $2)
		ON CONFLICT (event_id) DO NOTHING
		RETURNING event_id`
	insertTaskSQL = `INSERT INTO tasks AS tasks (id, merchant_id, type, status, stripe_event_id,
		stripe_customer_id, stripe_invoice_id, stripe_subscription_id, stripe_charge_id,
		customer_email, amount_due, currency, hosted_invoice_url, invoice_attempt, attempts,
		run_at, lease_until, last_error, decline_code, reason, created_at, updated_at)
		VALUES ($1, $2, $3, 'pending', $4, $5, $6, $7, '', $8, $9, $10, $11, $12, 0, $13, NULL, '', '', '', $14, $14)`
	notifyConflict = `
		ON CONFLICT (merchant_id, stripe_invoice_id, invoice_attempt)
		WHERE type = 'notify_payment_failed' DO NOTHING`
	retryConflict = `
		ON CONFLICT (merchant_id, stripe_invoice_id)
		WHERE type = 'retry_payment' AND status = 'pending' DO UPDATE
		SET run_at = EXCLUDED.run_at, stripe_event_id = EXCLUDED.stripe_event_id,
			invoice_attempt = EXCLUDED.invoice_attempt, decline_code = EXCLUDED.decline_code,
			updated_at = EXCLUDED.updated_at`
	returningTask = `
		RETURNING tasks.id, tasks.merchant_id, tasks.type, tasks.status,
		tasks.stripe_event_id, tasks.stripe_customer_id, tasks.stripe_invoice_id,
		tasks.stripe_subscription_id, tasks.stripe_charge_id, tasks.customer_email,
		tasks.amount_due, tasks.currency, tasks.hosted_invoice_url, tasks.invoice_attempt,
		tasks.attempts, tasks.run_at, tasks.lease_until, tasks.last_error,
		tasks.decline_code, tasks.reason, tasks.created_at, tasks.updated_at`
	notifySQL   = insertTaskSQL + notifyConflict + returningTask
	reminderSQL = insertTaskSQL + `
		ON CONFLICT (merchant_id, stripe_invoice_id, invoice_attempt)
		WHERE type = 'notify_reminder' DO NOTHING` + returningTask
	// The merchant's policy, read in the event's transaction.
	policySQL = `SELECT policy FROM merchant_policies WHERE merchant_id = $1`
	// The plan's cancellation: an end of dunning the new retry supersedes.
	cancelSQL = `
		UPDATE tasks SET status = 'cancelled', reason = $4, updated_at = $2
		WHERE merchant_id = $1 AND status = 'pending' AND stripe_invoice_id = $3
			AND ($5::text = '' OR type = ANY (string_to_array($5::text, ',')))
		RETURNING id`
	retrySQL = insertTaskSQL + retryConflict + returningTask
	// The invoice's record, as the ledger's Record writes it: created (or
	// found) and locked, then written with the failure merged.
	holdInvoiceSQL = `
		INSERT INTO invoices AS invoices (merchant_id, invoice_id) VALUES ($1, $2)
		ON CONFLICT (merchant_id, invoice_id) DO UPDATE SET merchant_id = EXCLUDED.merchant_id
		RETURNING invoices.merchant_id, invoices.invoice_id, invoices.customer_id,
		invoices.subscription_id, invoices.currency, invoices.amount_due, invoices.first_failed_at,
		invoices.last_failed_at, invoices.stripe_attempts, invoices.recoup_attempts,
		invoices.stripe_retry_at, invoices.decline_code, invoices.declined_at, invoices.card_updated_at,
		invoices.recoup_paid, invoices.status, invoices.closed_at, invoices.paid_amount,
		invoices.recovered_by`
	updateInvoiceSQL = `
		UPDATE invoices SET customer_id = $3, subscription_id = $4, currency = $5, amount_due = $6,
			first_failed_at = $7::timestamptz, last_failed_at = $8::timestamptz, stripe_attempts = $9,
			recoup_attempts = $10, stripe_retry_at = $11::timestamptz, decline_code = $12,
			declined_at = $13::timestamptz, card_updated_at = $14::timestamptz, recoup_paid = $15,
			status = $16, closed_at = $17::timestamptz, paid_amount = $18, recovered_by = $19
		WHERE merchant_id = $1 AND invoice_id = $2`
)

// returnedTask receives a RETURNING row, as the adapter reads it back.
type returnedTask struct {
	ID, MerchantID, Type, Status                   string
	EventID, CustomerID, InvoiceID, SubscriptionID string
	ChargeID, Email                                string
	Amount                                         int64
	Currency, HostedURL                            string
	InvoiceAttempt, Attempts                       int
	RunAt                                          time.Time
	LeaseUntil                                     *time.Time
	LastError, DeclineCode, Reason                 string
	CreatedAt, UpdatedAt                           time.Time
}

func (t *returnedTask) dest() []any {
	return []any{&t.ID, &t.MerchantID, &t.Type, &t.Status, &t.EventID, &t.CustomerID, &t.InvoiceID,
		&t.SubscriptionID, &t.ChargeID, &t.Email, &t.Amount, &t.Currency, &t.HostedURL,
		&t.InvoiceAttempt, &t.Attempts, &t.RunAt, &t.LeaseUntil, &t.LastError, &t.DeclineCode, &t.Reason,
		&t.CreatedAt, &t.UpdatedAt}
}

// returnedInvoice receives holdInvoiceSQL's row, as the adapter reads it.
type returnedInvoice struct {
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

func (r *returnedInvoice) dest() []any {
	return []any{&r.MerchantID, &r.InvoiceID, &r.CustomerID, &r.SubscriptionID, &r.Currency, &r.AmountDue,
		&r.FirstFailedAt, &r.LastFailedAt, &r.StripeAttempts, &r.RecoupAttempts, &r.StripeRetryAt,
		&r.DeclineCode, &r.DeclinedAt, &r.CardUpdatedAt, &r.RecoupPaid, &r.Status, &r.ClosedAt,
		&r.PaidAmount, &r.RecoveredBy}
}

// benchIntakePgx runs, for b.N events, the transaction recoup runs for
// each, through pgxpool, and returns the events/s.
func benchIntakePgx(b *testing.B, dbURL string, senders int) float64 {
	ctx := context.Background()
	pool := openPgx(b, migratedSchema(b, dbURL), intakePool)
	merchants := make([]string, intakeMerchants)
	for i := range merchants {
		merchants[i] = domain.NewID()
	}
	warmPgx(b, pool, senders)
	evs := failedInvoices(b.N)
	retryDelay := time.Duration(domain.DefaultDunningPolicy().RetryDelaysHours[0]) * time.Hour
	lat := make([]time.Duration, b.N)

	b.ResetTimer()
	err := runParallel(senders, b.N, func(i int) error {
		start := time.Now()
		err := intakeTx(ctx, pool, evs[i], merchants[evs[i].Merchant], retryDelay)
		lat[i] = time.Since(start)
		return err
	})
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	checkIntake(b, pool.QueryRow, b.N)
	reportLatency(b, lat)
	return reportRate(b, b.N, "events/s")
}

// intakeTx is the baseline's transaction for one event.
func intakeTx(ctx context.Context, pool *pgxpool.Pool, ev failedInvoice, merchant string, retryDelay time.Duration) error {
	now := time.Now().UTC()
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }() // a no-op after Commit

	var locked string
	if err := tx.QueryRow(ctx, lockSQL, ev.EventID, now).Scan(&locked); err != nil {
		return fmt.Errorf("lock %s: %w", ev.EventID, err)
	}
	var policy []byte
	if err := tx.QueryRow(ctx, policySQL, merchant).Scan(&policy); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("read policy: %w", err)
	}
	// The event's failure merged into the record the insert returned (a
	// new, empty one) gives these values.
	var inv returnedInvoice
	if err := tx.QueryRow(ctx, holdInvoiceSQL, merchant, ev.InvoiceID).Scan(inv.dest()...); err != nil {
		return fmt.Errorf("hold invoice %s: %w", ev.InvoiceID, err)
	}
	if _, err := tx.Exec(ctx, updateInvoiceSQL, merchant, ev.InvoiceID, ev.Customer, ev.Subscription, ev.Currency,
		ev.Amount, now, now, ev.Attempt, 0, nil, "", nil, nil, "", "", nil, 0, ""); err != nil {
		return fmt.Errorf("record invoice %s: %w", ev.InvoiceID, err)
	}
	rows, err := tx.Query(ctx, cancelSQL, merchant, now, ev.InvoiceID, "superseded", string(domain.TypeEndDunning))
	if err != nil {
		return fmt.Errorf("cancel: %w", err)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("cancel: %w", err)
	}
	var got returnedTask
	for _, task := range []struct {
		sql, typ string
		attempt  int // a reminder's is its number
		runAt    time.Time
	}{
		{notifySQL, string(domain.TypeNotifyPaymentFailed), ev.Attempt, now},
		{reminderSQL, string(domain.TypeNotifyReminder), 1, now.Add(72 * time.Hour)},
		{reminderSQL, string(domain.TypeNotifyReminder), 2, now.Add(168 * time.Hour)},
		{retrySQL, string(domain.TypeRetryPayment), ev.Attempt, now.Add(retryDelay)},
	} {
		err := tx.QueryRow(ctx, task.sql, domain.NewID(), merchant, task.typ, ev.EventID, ev.Customer,
			ev.InvoiceID, ev.Subscription, ev.Email, ev.Amount, ev.Currency, ev.HostedURL, task.attempt,
			task.runAt, now).Scan(got.dest()...)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("insert %s: %w", task.typ, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// rowScanner is QueryRow of database/sql or of pgx, reduced to what
// checkIntake needs.
type rowScanner[R interface{ Scan(...any) error }] func(ctx context.Context, sql string, args ...any) R

// checkIntake fails b unless the run stored all n events with their four
// tasks (a notice, two reminders, a retry) and invoice record: a benchmark
// that lost work would flatter itself.
func checkIntake[R interface{ Scan(...any) error }](b *testing.B, query rowScanner[R], n int) {
	b.Helper()
	var events, tasks, invoices int
	err := query(context.Background(), `SELECT
		(SELECT count(*) FROM processed_events),
		(SELECT count(*) FROM tasks),
		(SELECT count(*) FROM invoices)`).Scan(&events, &tasks, &invoices)
	if err != nil {
		b.Fatalf("count rows: %v", err)
	}
	if events != n || tasks != 4*n || invoices != n {
		b.Fatalf("stored %d events, %d tasks, %d invoice records; want %d, %d, %d", events, tasks, invoices, n, 4*n, n)
	}
}

// warmHTTP opens about n keep-alive connections to the server, so that the
// timed deliveries do not pay for TCP set-up.
func warmHTTP(b *testing.B, client *http.Client, healthURL string, n int) {
	b.Helper()
	err := runParallel(n, 4*n, func(int) error {
		resp, err := client.Get(healthURL)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: status %d", healthURL, resp.StatusCode)
		}
		return nil
	})
	if err != nil {
		b.Fatalf("warm HTTP: %v", err)
	}
}
