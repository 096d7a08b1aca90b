package postgres_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/recoupdev/recoup/adapters/postgres"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/pgtest"
)

// Size of BenchmarkTaskList's table.
const (
	benchMerchants        = 1_000
	benchTasksPerMerchant = 1_000
)

// BenchmarkTaskList reads one page of 50 tasks of one merchant among
// 1,000,000 tasks of 1,000 merchants: the first page, a page from the
// middle of the list (after a cursor), and the first page of one status.
// It reports p50 and p99 latency, and logs the EXPLAIN ANALYZE of each
// query as the store sends it, as a prepared statement with both a custom
// and the generic plan (PostgreSQL may settle on the generic one after five
// executions); a plan without an index scan of the list indexes is an
// error.
//
// The table is loaded here, in a fresh database, so that only a run with
// -bench pays for it (a minute or so).
func BenchmarkTaskList(b *testing.B) {
	ctx := context.Background()
	db := pgtest.NewMigratedDB(b)
	loadTasks(b, ctx, db)
	merchants, cursors := benchMerchantsAndCursors(b, ctx, db)
	st := postgres.New(db)

	cases := []struct {
		name   string
		filter func(i int) domain.TaskFilter
		index  string
	}{
		{"first-page", func(int) domain.TaskFilter {
			return domain.TaskFilter{Limit: 50}
		}, "tasks_merchant_created"},
		{"after-cursor", func(i int) domain.TaskFilter {
			return domain.TaskFilter{Limit: 50, After: &cursors[i]}
		}, "tasks_merchant_created"},
		{"status=failed", func(int) domain.TaskFilter {
			return domain.TaskFilter{Limit: 50, Status: domain.StatusFailed}
		}, "tasks_merchant_status_created"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			explainList(b, ctx, db, merchants[0], c.filter(0), c.index)
			latencies := make([]time.Duration, 0, b.N)
			i := 0
			for b.Loop() {
				m := i % len(merchants)
				start := time.Now()
				page, err := st.Tasks().List(ctx, merchants[m], c.filter(m))
				latencies = append(latencies, time.Since(start))
				if err != nil {
					b.Fatalf("list: %v", err)
				}
				if len(page.Tasks) != 50 {
					b.Fatalf("page of %d tasks, want 50", len(page.Tasks))
				}
				i++
			}
			slices.Sort(latencies)
			b.ReportMetric(ms(latencies[len(latencies)/2]), "p50-ms")
			b.ReportMetric(ms(latencies[len(latencies)*99/100]), "p99-ms")
		})
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// loadTasks fills the tasks table in one INSERT … SELECT. Tasks are made in
// time order across merchants, as webhooks would make them, so one
// merchant's tasks are spread over the whole table. Types and statuses
// cycle; invoice ids are unique, so the "at most one" indexes allow every
// row.
func loadTasks(b *testing.B, ctx context.Context, db *bun.DB) {
	b.Helper()
	start := time.Now()
	_, err := db.NewRaw(`
		INSERT INTO tasks (id, merchant_id, type, status, stripe_event_id, stripe_customer_id,
			stripe_invoice_id, customer_email, amount_due, currency, invoice_attempt, attempts,
			run_at, created_at, updated_at)
		SELECT gen_random_uuid(), md5('merchant-' || m)::uuid,
			(ARRAY['retry_payment', 'notify_payment_failed', 'notify_action_required', 'notify_charge_failed'])[1 + i % 4],
			(ARRAY['pending', 'running', 'succeeded', 'failed', 'cancelled'])[1 + (i / 4) % 5],
			'evt_' || m || '_' || i, 'cus_' || m, 'in_' || m || '_' || i, 'jenny@example.com', 2000, 'usd', 1, 0,
			t + interval '1 day', t, t
		FROM generate_series(1, ?) AS i,
			generate_series(1, ?) AS m,
			LATERAL (SELECT timestamptz '2026-01-01' + i * interval '1 minute' + m * interval '1 millisecond') AS at(t)`,
		benchTasksPerMerchant, benchMerchants).Exec(ctx)
	if err != nil {
		b.Fatalf("load tasks: %v", err)
	}
	if _, err := db.ExecContext(ctx, "VACUUM ANALYZE tasks"); err != nil {
		b.Fatalf("analyze: %v", err)
	}
	b.Logf("loaded %d tasks of %d merchants in %v", benchMerchants*benchTasksPerMerchant, benchMerchants, time.Since(start).Round(time.Millisecond))
}

// benchMerchantsAndCursors returns the merchants and, for each, the cursor
// of its 500th newest task.
func benchMerchantsAndCursors(b *testing.B, ctx context.Context, db *bun.DB) ([]domain.MerchantID, []domain.TaskCursor) {
	b.Helper()
	var rows []struct {
		MerchantID string    `bun:"merchant_id"`
		CreatedAt  time.Time `bun:"created_at"`
		ID         string    `bun:"id"`
	}
	err := db.NewRaw(`
		SELECT merchant_id, created_at, id FROM (
			SELECT merchant_id, created_at, id,
				row_number() OVER (PARTITION BY merchant_id ORDER BY created_at DESC, id DESC) AS n
			FROM tasks) ranked
		WHERE n = ?
		ORDER BY merchant_id`, benchTasksPerMerchant/2).Scan(ctx, &rows)
	if err != nil {
		b.Fatalf("cursors: %v", err)
	}
	if len(rows) != benchMerchants {
		b.Fatalf("%d merchants, want %d", len(rows), benchMerchants)
	}
	merchants := make([]domain.MerchantID, len(rows))
	cursors := make([]domain.TaskCursor, len(rows))
	for i, r := range rows {
		merchants[i] = domain.MerchantID(r.MerchantID)
		cursors[i] = domain.TaskCursor{CreatedAt: r.CreatedAt.UTC(), ID: domain.TaskID(r.ID)}
	}
	return merchants, cursors
}

// explainList logs the plans of List's statement for the merchant and
// filter, custom and generic, and fails the benchmark unless each is an
// index scan of index alone.
func explainList(b *testing.B, ctx context.Context, db *bun.DB, m domain.MerchantID, f domain.TaskFilter, index string) {
	b.Helper()
	query, args, err := postgres.ListQuery(m, f)
	if err != nil {
		b.Fatalf("list query: %v", err)
	}
	// PREPARE, SET and EXECUTE must share a session.
	conn, err := db.Conn(ctx)
	if err != nil {
		b.Fatalf("explain: %v", err)
	}
	defer func() { _ = conn.Close() }()
	if _, err := conn.ExecContext(ctx, "PREPARE list_page AS "+query); err != nil {
		b.Fatalf("prepare: %v", err)
	}
	defer func() { _, _ = conn.ExecContext(ctx, "DEALLOCATE list_page; RESET plan_cache_mode") }()
	params := strings.TrimSuffix(strings.Repeat("?, ", len(args)), ", ")
	for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
		if _, err := conn.ExecContext(ctx, "SET plan_cache_mode = "+mode); err != nil {
			b.Fatalf("plan_cache_mode: %v", err)
		}
		var plan []string
		if err := conn.NewRaw("EXPLAIN (ANALYZE, BUFFERS) EXECUTE list_page("+params+")", args...).Scan(ctx, &plan); err != nil {
			b.Fatalf("explain: %v", err)
		}
		text := strings.Join(plan, "\n")
		b.Logf("%s\n%s, EXPLAIN ANALYZE:\n%s", query, mode, text)
		if !strings.Contains(text, "Index Scan using "+index+" ") || strings.Contains(text, "Seq Scan") || strings.Contains(text, "Sort") {
			b.Errorf("the %s plan is not an index scan of %s alone", mode, index)
		}
	}
}
