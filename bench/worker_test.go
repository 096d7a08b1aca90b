package bench_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/recoupdev/recoup/adapters/postgres"
	"github.com/recoupdev/recoup/app"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/pgtest"
	"github.com/recoupdev/recoup/internal/worktest"
	"github.com/recoupdev/recoup/ports"
)

// workerMerchants is how many merchants the seeded tasks are spread over.
const workerMerchants = 16

// BenchmarkWorkerPostgres: see the package documentation.
func BenchmarkWorkerPostgres(b *testing.B) {
	dbURL := pgtest.NewDatabase(b)
	for _, procs := range []int{1, 2} {
		for _, conc := range []int{1, 4, 16} {
			b.Run(fmt.Sprintf("workers=%d/goroutines=%d", procs, conc), func(b *testing.B) {
				var plain, engine baselines
				b.Run("baseline", func(b *testing.B) {
					plain.add(b.N, benchWorkerPgx(b, dbURL, procs, conc, drainPgx))
				})
				b.Run("baseline-engine", func(b *testing.B) {
					engine.add(b.N, benchWorkerPgx(b, dbURL, procs, conc, drainPgxEngine))
				})
				b.Run("recoup", func(b *testing.B) {
					rate := benchWorkerRecoup(b, dbURL, procs, conc)
					reportRatio(b, rate, &plain)
					reportRatioAs(b, rate, &engine, "ratio-vs-engine-sql")
				})
			})
		}
	}
}

// workerPool is the size of each "process's" connection pool: one per
// goroutine, and a few for the claim and for slack, the same on both
// sides.
func workerPool(conc int) int { return conc + 4 }

// seedDueTasks inserts workerMerchants merchants and n due retry_payment
// tasks spread over them, in two statements, then refreshes the planner's
// statistics as autovacuum would on a long-lived table.
func seedDueTasks(b *testing.B, schemaURL string, n int) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, schemaURL)
	if err != nil {
		b.Fatalf("seed: %v", err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	merchants := make([]string, workerMerchants)
	for i := range merchants {
		merchants[i] = domain.NewID()
	}
	now := time.Now().UTC()
	if _, err := conn.Exec(ctx, `
		INSERT INTO merchants (id, name, stripe_account_id, created_at)
		SELECT m, 'Bench ' || ord, 'acct_bench' || ord, $2
		FROM unnest($1::uuid[]) WITH ORDINALITY AS u(m, ord)`, merchants, now); err != nil {
		b.Fatalf("seed merchants: %v", err)
	}
	// Due a little in the past, each at its own instant, oldest first.
	if _, err := conn.Exec(ctx, `
		INSERT INTO tasks (id, merchant_id, type, status, stripe_event_id, stripe_customer_id,
			stripe_invoice_id, customer_email, amount_due, currency, invoice_attempt, attempts,
			run_at, created_at, updated_at)
		SELECT gen_random_uuid(), ($1::uuid[])[1 + g % $3], 'retry_payment', 'pending', 'evt_bench' || g,
			'cus_bench' || g, 'in_bench' || g, 'customer' || g || '@example.com', 4200, 'usd', 1, 0,
			$4::timestamptz - interval '1 minute' + g * interval '1 microsecond', $4, $4
		FROM generate_series(1, $2::int) AS g`, merchants, n, workerMerchants, now); err != nil {
		b.Fatalf("seed tasks: %v", err)
	}
	if _, err := conn.Exec(ctx, "ANALYZE tasks"); err != nil {
		b.Fatalf("analyze: %v", err)
	}
}

// checkDrained fails b unless all n tasks succeeded.
func checkDrained(b *testing.B, schemaURL string, n int) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, schemaURL)
	if err != nil {
		b.Fatalf("check: %v", err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	var succeeded, total int
	if err := conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'succeeded'), count(*) FROM tasks`).
		Scan(&succeeded, &total); err != nil {
		b.Fatalf("check: %v", err)
	}
	if succeeded != n || total != n {
		b.Fatalf("%d of %d tasks succeeded; want all %d", succeeded, total, n)
	}
}

// benchWorkerRecoup drains b.N due tasks with procs app.Workers, each on
// its own pool with Concurrency conc, and returns the tasks/s.
func benchWorkerRecoup(b *testing.B, dbURL string, procs, conc int) float64 {
	schemaURL := migratedSchema(b, dbURL)
	seedDueTasks(b, schemaURL, b.N)
	gw := worktest.NewInstantGateway(b.N)
	var claims atomic.Int64
	log := slog.New(slog.NewJSONHandler(io.Discard, nil)) // a line per task, as in production
	workers := make([]*app.Worker, procs)
	for i := range workers {
		db := openRecoup(b, schemaURL, workerPool(conc))
		warmSQL(b, db.DB, conc+1)
		store := postgres.New(db)
		// A short poll bounds the wait of a worker whose claim found every
		// remaining task locked by the other's claim.
		w, err := app.NewWorker(app.WorkerConfig{Concurrency: conc, Poll: 50 * time.Millisecond}, app.WorkerPorts{
			Storage: worktest.CountingStorage{Storage: store, Claims: &claims}, Gateway: gw,
			Notifier: worktest.DiscardNotifier{}, Clock: ports.SystemClock{}, Logger: log})
		if err != nil {
			b.Fatal(err)
		}
		workers[i] = w
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errs := make(chan error, procs)
	b.ResetTimer()
	for _, w := range workers {
		go func() { errs <- w.Run(ctx) }()
	}
	<-gw.Done()
	cancel()
	for range workers {
		// Run returns once the tasks in flight are recorded.
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	checkDrained(b, schemaURL, b.N)
	b.ReportMetric(float64(claims.Load())/float64(b.N), "claims/task")
	return reportRate(b, b.N, "tasks/s")
}

// Statements of the baseline worker: claim one due task, then record its
// success while the claim holds.
const (
	claimSQL = `UPDATE tasks
		SET status = 'running', attempts = attempts + 1, lease_until = $2, updated_at = $1
		WHERE id IN (
			SELECT id FROM tasks
			WHERE status = 'pending' AND run_at <= $1
			ORDER BY run_at
			LIMIT $3
			FOR UPDATE SKIP LOCKED
		)
		RETURNING id, attempts`
	finishSQL = `UPDATE tasks
		SET status = 'succeeded', last_error = '', lease_until = NULL, updated_at = $3
		WHERE id = $1 AND attempts = $2 AND status = 'running'`
)

// benchWorkerPgx drains b.N due tasks with procs pgxpools of conc
// goroutines each, each running drain, and returns the tasks/s.
func benchWorkerPgx(b *testing.B, dbURL string, procs, conc int, drain func(context.Context, *pgxpool.Pool) (int, error)) float64 {
	schemaURL := migratedSchema(b, dbURL)
	seedDueTasks(b, schemaURL, b.N)
	pools := make([]*pgxpool.Pool, procs)
	for i := range pools {
		pools[i] = openPgx(b, schemaURL, workerPool(conc))
		warmPgx(b, pools[i], conc+1)
	}
	ctx := context.Background()
	var done atomic.Int64
	var once sync.Once
	var first error
	var wg sync.WaitGroup

	b.ResetTimer()
	for _, pool := range pools {
		for range conc {
			wg.Go(func() {
				n, err := drain(ctx, pool)
				done.Add(int64(n))
				if err != nil {
					once.Do(func() { first = err })
				}
			})
		}
	}
	wg.Wait()
	b.StopTimer()
	if first != nil {
		b.Fatal(first)
	}
	if got := done.Load(); got != int64(b.N) {
		b.Fatalf("baseline completed %d tasks, want %d", got, b.N)
	}
	checkDrained(b, schemaURL, b.N)
	return reportRate(b, b.N, "tasks/s")
}

// drainPgx claims and completes tasks one at a time until a claim finds
// none, and returns how many it completed. A claim finds none only when
// every task left is completed or being claimed by another goroutine, which
// then completes it.
func drainPgx(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	const lease = 5 * time.Minute
	for n := 0; ; n++ {
		now := time.Now().UTC()
		var id string
		var attempts int
		err := pool.QueryRow(ctx, claimSQL, now, now.Add(lease), 1).Scan(&id, &attempts)
		if errors.Is(err, pgx.ErrNoRows) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("claim: %w", err)
		}
		tag, err := pool.Exec(ctx, finishSQL, id, attempts, time.Now().UTC())
		if err != nil {
			return n, fmt.Errorf("finish %s: %w", id, err)
		}
		if tag.RowsAffected() != 1 {
			return n, fmt.Errorf("finish %s: claim lost", id)
		}
	}
}

// claimEngineSQL is claimSQL as recoup's claim runs it: the claimed
// task's merchant policy and invoice record read in the same statement.
const claimEngineSQL = `
	WITH claimed AS (` + claimSQL + `, merchant_id, stripe_invoice_id)
	SELECT claimed.id, claimed.attempts, claimed.merchant_id, claimed.stripe_invoice_id,
		merchant_policies.policy, invoices.invoice_id IS NOT NULL
	FROM claimed
	LEFT JOIN merchant_policies ON merchant_policies.merchant_id = claimed.merchant_id
	LEFT JOIN invoices ON invoices.merchant_id = claimed.merchant_id AND invoices.invoice_id = claimed.stripe_invoice_id`

// drainPgxEngine is drainPgx doing the database work recoup's worker does
// for a paid retry: the claim with its reads (claimEngineSQL), then one
// transaction that records the payment on the invoice's record as the
// ledger does (held, then updated: holdInvoiceSQL, updateInvoiceSQL) and
// completes the task.
func drainPgxEngine(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	const lease = 5 * time.Minute
	for n := 0; ; n++ {
		now := time.Now().UTC()
		var id, merchant, invoice string
		var attempts int
		var policy []byte
		var recorded bool
		err := pool.QueryRow(ctx, claimEngineSQL, now, now.Add(lease), 1).Scan(&id, &attempts, &merchant, &invoice, &policy, &recorded)
		if errors.Is(err, pgx.ErrNoRows) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("claim: %w", err)
		}
		err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			var inv returnedInvoice
			if err := tx.QueryRow(ctx, holdInvoiceSQL, merchant, invoice).Scan(inv.dest()...); err != nil {
				return fmt.Errorf("hold invoice: %w", err)
			}
			if _, err := tx.Exec(ctx, updateInvoiceSQL, merchant, invoice, inv.CustomerID, inv.SubscriptionID, inv.Currency,
				inv.AmountDue, inv.FirstFailedAt, inv.LastFailedAt, inv.StripeAttempts, inv.RecoupAttempts, inv.StripeRetryAt,
				inv.DeclineCode, inv.DeclinedAt, inv.CardUpdatedAt, string(domain.RecoveredByRecoupRetry), inv.Status,
				inv.ClosedAt, inv.PaidAmount, inv.RecoveredBy); err != nil {
				return fmt.Errorf("update invoice: %w", err)
			}
			tag, err := tx.Exec(ctx, finishSQL, id, attempts, time.Now().UTC())
			if err != nil {
				return fmt.Errorf("finish %s: %w", id, err)
			}
			if tag.RowsAffected() != 1 {
				return fmt.Errorf("finish %s: claim lost", id)
			}
			return nil
		})
		if err != nil {
			return n, err
		}
	}
}
