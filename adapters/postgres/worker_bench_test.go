package postgres_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/recoupdev/recoup/adapters/postgres"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/pgtest"
)

// claimMerchants is how many merchants BenchmarkClaimFinish's tasks are
// spread over, as in bench's worker benchmark.
const claimMerchants = 16

// BenchmarkClaimFinish measures the worker's storage path, tasks/s at 1, 4
// and 16 goroutines, each claiming one due retry_payment at a time and
// finishing it succeeded: "store" through Queue().ClaimDue and
// Queue().Finish, "pgx" with the statements of bench's worker baseline on
// a pgxpool (one UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED
// LIMIT 1) RETURNING to claim, one UPDATE … WHERE id = $1 AND attempts =
// $2 to finish). store/pgx, reported as ratio-vs-pgx, is what the adapter
// costs on the worker's hot path, without the use case around it.
//
// messages=0 finishes as bench's worker did before outbound webhooks. In
// the other cases the finish reports a task.succeeded message, its
// payload the task's JSON made in the timed loop on both sides, to
// merchants with no endpoint (endpoints=0: nothing is stored, as in
// bench's worker, whose merchants have none) or one subscribed to every
// type (endpoints=1: a delivery per task). The baseline then mirrors the
// store's statement with plain SQL: the task's UPDATE and the INSERT of
// its deliveries, from the merchant's endpoints read FOR SHARE, in one
// statement.
//
// Each side works in a schema of its own, where b.N tasks are inserted
// before the timer starts; pools have goroutines+4 connections, opened
// before the timer starts. The two sides drain their tasks in turns of
// b.N/claimRounds, in alternating order, so that a machine shared with
// other work slows both alike; each side's tasks/s counts its own turns'
// time, and ns/op is that of both.
func BenchmarkClaimFinish(b *testing.B) {
	databaseURL := pgtest.NewDatabase(b)
	cases := []claimCase{
		{"messages=0", false, 0},
		{"messages=1/endpoints=0", true, 0},
		{"messages=1/endpoints=1", true, 1},
	}
	for _, c := range cases {
		for _, conc := range []int{1, 4, 16} {
			b.Run(fmt.Sprintf("%s/goroutines=%d", c.name, conc), func(b *testing.B) {
				pgxURL := seedClaims(b, databaseURL, b.N, c.endpoints)
				pool, err := pgxpool.New(context.Background(), withParam(b, pgxURL, "pool_max_conns", fmt.Sprint(conc+4)))
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(pool.Close)
				warmPgxPool(b, pool, conc)

				storeURL := seedClaims(b, databaseURL, b.N, c.endpoints)
				db := pgtest.Open(b, withParam(b, storeURL, "pool_max_conns", fmt.Sprint(conc+4)))
				warmStore(b, db.DB, conc)
				st := postgres.New(db)

				pgxSide := func(ctx context.Context) (bool, error) { return claimFinishPgx(ctx, pool, c.message) }
				storeSide := func(ctx context.Context) (bool, error) {
					tasks, err := st.Queue().ClaimDue(ctx, time.Now().UTC(), 5*time.Minute, 1)
					if err != nil || len(tasks) == 0 {
						return false, err
					}
					t := tasks[0].Task
					res := domain.TaskResult{Status: domain.StatusSucceeded, At: time.Now().UTC()}
					if c.message {
						msg, err := succeededMessage(t, res.At)
						if err != nil {
							return false, err
						}
						res.Messages = []domain.OutboundMessage{msg}
					}
					return true, st.Queue().Finish(ctx, t.MerchantID, t.ID, t.Attempts, res)
				}

				var pgxTime, storeTime time.Duration
				b.ResetTimer()
				for round := range claimRounds {
					quota := b.N / claimRounds
					if round == claimRounds-1 {
						quota = b.N - round*(b.N/claimRounds)
					}
					turns := []func(){
						func() { pgxTime += drainQuota(b, conc, quota, pgxSide) },
						func() { storeTime += drainQuota(b, conc, quota, storeSide) },
					}
					if round%2 == 1 {
						turns[0], turns[1] = turns[1], turns[0]
					}
					for _, turn := range turns {
						turn()
					}
				}
				b.StopTimer()
				checkClaimed(b, pgxURL, b.N, c)
				checkClaimed(b, storeURL, b.N, c)
				pgxRate, storeRate := float64(b.N)/pgxTime.Seconds(), float64(b.N)/storeTime.Seconds()
				b.ReportMetric(pgxRate, "pgx-tasks/s")
				b.ReportMetric(storeRate, "store-tasks/s")
				b.ReportMetric(storeRate/pgxRate, "ratio-vs-pgx")
			})
		}
	}
}

// claimRounds is how many turns each side of BenchmarkClaimFinish takes.
const claimRounds = 6

// drainQuota runs step from conc goroutines until quota tasks are done,
// and returns how long that took; it fails b on an error, or if the tasks
// run out first.
func drainQuota(b *testing.B, conc, quota int, step func(ctx context.Context) (bool, error)) time.Duration {
	ctx := context.Background()
	var left atomic.Int64
	left.Store(int64(quota))
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				ok, err := step(ctx)
				if err == nil && !ok {
					err = errors.New("no task left to claim")
				}
				if err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	if first != nil {
		b.Fatal(first)
	}
	return took
}

// claimCase is a case of BenchmarkClaimFinish: whether the finish
// reports a message, and how many endpoints each merchant has.
type claimCase struct {
	name      string
	message   bool
	endpoints int
}

// warmPgxPool opens n connections of pool and leaves them idle in it, so
// that no timed claim pays for a connection's set-up.
func warmPgxPool(b *testing.B, pool *pgxpool.Pool, n int) {
	b.Helper()
	ctx := ctxTimeout(b)
	conns := make([]*pgxpool.Conn, 0, n)
	for range n {
		c, err := pool.Acquire(ctx)
		if err != nil {
			b.Fatalf("warm pool: %v", err)
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.Release()
	}
}

// warmStore does the same for the store's pool.
func warmStore(b *testing.B, db *sql.DB, n int) {
	b.Helper()
	ctx := ctxTimeout(b)
	conns := make([]*sql.Conn, 0, n)
	for range n {
		c, err := db.Conn(ctx)
		if err == nil {
			err = c.PingContext(ctx)
		}
		if err != nil {
			b.Fatalf("warm pool: %v", err)
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		_ = c.Close()
	}
}

// succeededMessage is the task.succeeded message of t, as the worker makes
// it.
func succeededMessage(t domain.Task, at time.Time) (domain.OutboundMessage, error) {
	t.Status, t.UpdatedAt = domain.StatusSucceeded, at
	payload, err := domain.OutboundPayload(domain.OutboundTaskSucceeded, at, t)
	return domain.OutboundMessage{Type: domain.OutboundTaskSucceeded, Payload: payload, At: at}, err
}

// seedClaims makes a migrated schema with claimMerchants merchants, each
// with the given number of endpoints subscribed to every type, and n due
// retry_payment tasks spread over them, and returns its URL.
func seedClaims(b *testing.B, databaseURL string, n, endpoints int) string {
	b.Helper()
	schemaURL, db := newSchema(b, databaseURL, 2)
	ctx := ctxTimeout(b)
	merchants := make([]string, claimMerchants)
	for i := range merchants {
		merchants[i] = domain.NewID()
	}
	now := time.Now().UTC()
	stmts := []string{
		`INSERT INTO merchants (id, name, stripe_account_id, created_at)
		SELECT m::uuid, 'Bench', 'acct_bench' || ord, ?::timestamptz
		FROM unnest(string_to_array(?, ',')) WITH ORDINALITY AS u(m, ord)`,
		`INSERT INTO webhook_endpoints (id, merchant_id, url, events, secret, created_at)
		SELECT gen_random_uuid(), m::uuid, 'https://hooks.example/' || g, '{*}', '\x00'::bytea, ?::timestamptz
		FROM unnest(string_to_array(?, ',')) AS u(m), generate_series(1, ?::int) AS g`,
		`INSERT INTO tasks (id, merchant_id, type, status, stripe_event_id, stripe_customer_id,
			stripe_invoice_id, customer_email, amount_due, currency, invoice_attempt, attempts,
			run_at, created_at, updated_at)
		SELECT gen_random_uuid(), (string_to_array(?, ','))[1 + g % ?::int]::uuid, 'retry_payment', 'pending',
			'evt_bench' || g, 'cus_bench' || g, 'in_bench' || g, 'customer' || g || '@example.com', 4200, 'usd', 1, 0,
			?::timestamptz - interval '1 minute' + g * interval '1 microsecond', ?::timestamptz, ?::timestamptz
		FROM generate_series(1, ?::int) AS g`,
		`ANALYZE`,
	}
	list := strings.Join(merchants, ",")
	args := [][]any{{now, list}, {now, list, endpoints}, {list, claimMerchants, now, now, now, n}, nil}
	for i, stmt := range stmts {
		if _, err := db.NewRaw(stmt, args[i]...).Exec(ctx); err != nil {
			b.Fatalf("seed: %v", err)
		}
	}
	return schemaURL
}

// checkClaimed fails b unless all n tasks succeeded, with a delivery per
// task and endpoint when they reported a message.
func checkClaimed(b *testing.B, schemaURL string, n int, c claimCase) {
	b.Helper()
	db := pgtest.Open(b, schemaURL)
	ctx := ctxTimeout(b)
	var succeeded, deliveries int
	if err := db.NewRaw(`SELECT (SELECT count(*) FROM tasks WHERE status = 'succeeded'),
		(SELECT count(*) FROM webhook_deliveries)`).Scan(ctx, &succeeded, &deliveries); err != nil {
		b.Fatalf("check: %v", err)
	}
	want := 0
	if c.message {
		want = n * c.endpoints
	}
	if succeeded != n || deliveries != want {
		b.Fatalf("%d of %d tasks succeeded with %d deliveries; want all, with %d", succeeded, n, deliveries, want)
	}
}

// Statements of the baseline: bench's worker claim and finish, and the
// finish that stores the outcome's message with it.
const (
	pgxClaimSQL = `UPDATE tasks
		SET status = 'running', attempts = attempts + 1, lease_until = $2, updated_at = $1
		WHERE id IN (
			SELECT id FROM tasks
			WHERE status = 'pending' AND run_at <= $1
			ORDER BY run_at
			LIMIT 1
			FOR UPDATE SKIP LOCKED
		)
		RETURNING id, merchant_id, attempts`
	pgxFinishSQL = `UPDATE tasks
		SET status = 'succeeded', last_error = '', lease_until = NULL, updated_at = $3
		WHERE id = $1 AND attempts = $2 AND status = 'running'`
	pgxFinishWithMessageSQL = `WITH fin AS (
			UPDATE tasks
			SET status = 'succeeded', last_error = '', lease_until = NULL, updated_at = $3
			WHERE id = $1 AND attempts = $2 AND status = 'running'
			RETURNING merchant_id
		), eps AS (
			SELECT e.id, e.merchant_id FROM webhook_endpoints e JOIN fin ON e.merchant_id = fin.merchant_id
			WHERE e.disabled_at IS NULL AND ($4 = ANY (e.events) OR '*' = ANY (e.events))
			FOR SHARE OF e
		), ins AS (
			INSERT INTO webhook_deliveries (id, merchant_id, endpoint_id, event_type, payload, status, next_attempt_at, created_at)
			SELECT gen_random_uuid(), eps.merchant_id, eps.id, $4, $5, 'pending', $3, $3 FROM eps
		)
		SELECT count(*) FROM fin`
)

// claimFinishPgx claims one task and finishes it, and reports whether
// there was one.
func claimFinishPgx(ctx context.Context, pool *pgxpool.Pool, message bool) (bool, error) {
	now := time.Now().UTC()
	var id, merchant string
	var attempts int
	err := pool.QueryRow(ctx, pgxClaimSQL, now, now.Add(5*time.Minute)).Scan(&id, &merchant, &attempts)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("claim: %w", err)
	}
	at := time.Now().UTC()
	var n int64
	if message {
		msg, err := succeededMessage(domain.Task{ID: domain.TaskID(id), MerchantID: domain.MerchantID(merchant),
			Type: domain.TypeRetryPayment, Attempts: attempts}, at)
		if err != nil {
			return false, err
		}
		err = pool.QueryRow(ctx, pgxFinishWithMessageSQL, id, attempts, at, msg.Type, msg.Payload).Scan(&n)
		if err != nil {
			return false, fmt.Errorf("finish %s: %w", id, err)
		}
	} else {
		tag, err := pool.Exec(ctx, pgxFinishSQL, id, attempts, at)
		if err != nil {
			return false, fmt.Errorf("finish %s: %w", id, err)
		}
		n = tag.RowsAffected()
	}
	if n != 1 {
		return false, fmt.Errorf("finish %s: claim lost", id)
	}
	return true, nil
}
