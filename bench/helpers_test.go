package bench_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/uptrace/bun"

	"github.com/recoupdev/recoup/adapters/httpapi"
	"github.com/recoupdev/recoup/adapters/postgres"
	"github.com/recoupdev/recoup/adapters/stripe"
	"github.com/recoupdev/recoup/app"
	"github.com/recoupdev/recoup/internal/pgtest"
	"github.com/recoupdev/recoup/ports"
)

// setupTimeout bounds each set-up step, so that a hung server fails the
// benchmark instead of stalling it.
const setupTimeout = time.Minute

// migratedSchema makes a fresh schema in the database at dbURL, brings it to
// recoup's latest migration and returns its URL; b.Cleanup drops it. A
// schema is much cheaper than a database, and each run of a sub-benchmark
// gets its own, so that no run sees the rows of another.
func migratedSchema(b *testing.B, dbURL string) string {
	b.Helper()
	u := pgtest.NewSchema(b, dbURL)
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	db, err := postgres.Open(ctx, withPoolSize(b, u, 2))
	if err != nil {
		b.Fatalf("open %s: %v", u, err)
	}
	defer func() { _ = db.Close() }()
	if err := postgres.Migrate(ctx, db); err != nil {
		b.Fatal(err)
	}
	return u
}

// withPoolSize sets pool_max_conns, which both postgres.Open and pgxpool
// understand.
func withPoolSize(b *testing.B, rawURL string, n int) string {
	b.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		b.Fatalf("parse database URL: %v", err)
	}
	q := u.Query()
	q.Set("pool_max_conns", strconv.Itoa(n))
	u.RawQuery = q.Encode()
	return u.String()
}

// openRecoup opens the schema at u as recoup does (postgres.Open), with a
// pool of n connections closed by b.Cleanup.
func openRecoup(b *testing.B, u string, n int) *bun.DB {
	b.Helper()
	return pgtest.Open(b, withPoolSize(b, u, n))
}

// openPgx opens a pgxpool of n connections on the schema at u, with pgx's
// defaults (extended protocol, cached prepared statements), closed by
// b.Cleanup.
func openPgx(b *testing.B, u string, n int) *pgxpool.Pool {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	pool, err := pgxpool.New(ctx, withPoolSize(b, u, n))
	if err != nil {
		b.Fatalf("pgxpool: %v", err)
	}
	b.Cleanup(pool.Close)
	if err := pool.Ping(ctx); err != nil {
		b.Fatalf("pgxpool: %v", err)
	}
	return pool
}

// runParallel calls op(i) for every i in [0, n) from workers goroutines,
// each taking the next i as it finishes the last, and returns the first
// error; after an error no new i is started.
func runParallel(workers, n int, op func(i int) error) error {
	var next atomic.Int64
	var stop atomic.Bool
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for !stop.Load() {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := op(i); err != nil {
					once.Do(func() { first = fmt.Errorf("op %d: %w", i, err) })
					stop.Store(true)
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

// percentile returns the nearest-rank p-th percentile (0 < p ≤ 100) of
// sorted, or 0 if it is empty.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// reportRate reports n operations over b's measured time as unit (events/s,
// tasks/s) and returns the rate.
func reportRate(b *testing.B, n int, unit string) float64 {
	rate := float64(n) / b.Elapsed().Seconds()
	b.ReportMetric(rate, unit)
	return rate
}

// reportLatency reports the median and 99th percentile of lat in
// milliseconds; it sorts lat.
func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(percentile(lat, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(lat, 99)), "p99-ms")
}

// baselines keeps the rates a baseline sub-benchmark measured, by b.N. With
// -count n the testing package runs the baseline n times before recoup n
// times; comparing each recoup run with the mean of the baseline runs of
// the same size, rather than with the last one only, damps the noise of a
// shared machine.
type baselines struct {
	byN  map[int][]float64
	last float64
}

func (bl *baselines) add(n int, rate float64) {
	if bl.byN == nil {
		bl.byN = make(map[int][]float64)
	}
	bl.byN[n] = append(bl.byN[n], rate)
	bl.last = rate
}

// of returns the mean baseline rate of runs of n operations, or the last
// baseline rate when none had n (a time-based -benchtime), or 0 if there
// was none.
func (bl *baselines) of(n int) float64 {
	rates := bl.byN[n]
	if len(rates) == 0 {
		return bl.last
	}
	var sum float64
	for _, r := range rates {
		sum += r
	}
	return sum / float64(len(rates))
}

// reportRatio reports rate over the baseline's rate for b.N operations as
// ratio-vs-pgx, when a baseline was measured in this run.
func reportRatio(b *testing.B, rate float64, bl *baselines) {
	reportRatioAs(b, rate, bl, "ratio-vs-pgx")
}

// reportRatioAs is reportRatio under another unit, for a second baseline.
func reportRatioAs(b *testing.B, rate float64, bl *baselines, unit string) {
	if base := bl.of(b.N); base > 0 {
		b.ReportMetric(rate/base, unit)
	}
}

// warmSQL opens n connections of db's pool and leaves them idle in it, so
// that no timed operation pays for a connection set-up.
func warmSQL(b *testing.B, db *sql.DB, n int) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	conns := make([]*sql.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			_ = c.Close() // back to the idle pool
		}
	}()
	for range n {
		c, err := db.Conn(ctx)
		if err != nil {
			b.Fatalf("warm pool: %v", err)
		}
		conns = append(conns, c)
		if err := c.PingContext(ctx); err != nil {
			b.Fatalf("warm pool: %v", err)
		}
	}
}

// warmPgx opens n connections of pool and leaves them idle in it.
func warmPgx(b *testing.B, pool *pgxpool.Pool, n int) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	conns := make([]*pgxpool.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Release()
		}
	}()
	for range n {
		c, err := pool.Acquire(ctx)
		if err != nil {
			b.Fatalf("warm pool: %v", err)
		}
		conns = append(conns, c)
	}
}

// apiServer serves recoup's HTTP API on store over loopback, as the
// standalone server does, with its production log lines (JSON, one per
// webhook delivery) discarded; closed by b.Cleanup.
func apiServer(b *testing.B, store *postgres.Store, merchants *app.MerchantService) *httptest.Server {
	b.Helper()
	verifier, err := stripe.NewVerifier([]string{webhookSecret})
	if err != nil {
		b.Fatal(err)
	}
	clock := ports.SystemClock{}
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	srv := httptest.NewServer(httpapi.NewServer(httpapi.Config{
		Verifier:  verifier,
		Webhooks:  app.NewWebhookService(store, app.WebhookConfig{Clock: clock, Logger: log}),
		Tasks:     app.NewTaskService(store.Tasks(), store.Ledger(), clock),
		Merchants: merchants,
		Policies:  app.NewPolicyService(store.Policies()),
		Logger:    log,
	}))
	b.Cleanup(srv.Close)
	return srv
}
