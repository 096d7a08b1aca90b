package bench_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/recoupdev/recoup/adapters/postgres"
	"github.com/recoupdev/recoup/app"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/pgtest"
	"github.com/recoupdev/recoup/internal/stripetest"
	"github.com/recoupdev/recoup/ports"
)

// Size of BenchmarkFiguresPostgres's data: one large merchant's year.
const (
	figuresInvoices = 100_000
	figuresTasks    = 1_000_000 // ten per invoice
)

// figuresFrom and figuresTo are the days of the year the benchmark's
// invoices failed in, and the span each request asks for.
var (
	figuresFrom = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	figuresTo   = time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC) // included
)

// BenchmarkFiguresPostgres measures the recovery figures of one merchant
// with 100,000 failed invoices and 1,000,000 tasks over a year, asked for
// the whole year. "figures" is the ledger's query alone (the series, by
// decline code, by source) once the running sums are folded, as the
// workers keep them; "figures-unfolded" the same before any fold (a year
// of changes that no worker folded); "stats" is GET /api/stats?from&to
// over loopback HTTP, which adds the all-time sums by currency and the
// task counts by status. Each reports p50-ms and p99-ms (goal: p99 under
// 50 ms).
// The data is loaded here, so only a run with -bench pays for it.
func BenchmarkFiguresPostgres(b *testing.B) {
	ctx := context.Background()
	db := openRecoup(b, migratedSchema(b, pgtest.NewDatabase(b)), 4)
	store := postgres.New(db)
	clock := ports.SystemClock{}
	merchants := app.NewMerchantService(store.Merchants(), clock)
	m, key, err := merchants.Create(ctx, "Large shop", stripetest.NewID("acct_"))
	if err != nil {
		b.Fatal(err)
	}
	loadFigures(b, ctx, db, m.ID)
	failed, recovered := figuresCounts(b, ctx, db)
	checked := func(b *testing.B, f domain.RecoveryFigures, err error) {
		if err != nil {
			b.Fatal(err)
		}
		var nf, nr, ns int
		for _, c := range f.ByDeclineCode {
			nf += c.FailedInvoices
			nr += c.RecoveredInvoices
		}
		for _, n := range f.BySource {
			ns += n
		}
		if nf != failed || nr != recovered || ns != recovered || len(f.Series) == 0 {
			b.Fatalf("figures count %d failed and %d (%d by source) recovered invoices in %d series rows; want %d and %d",
				nf, nr, ns, len(f.Series), failed, recovered)
		}
	}
	figures := func(b *testing.B) {
		lat := make([]time.Duration, 0, b.N)
		for b.Loop() {
			start := time.Now()
			f, err := store.Ledger().Figures(ctx, m.ID, domain.DayRange{From: figuresFrom, To: figuresTo})
			lat = append(lat, time.Since(start))
			checked(b, f, err)
		}
		reportLatency(b, lat)
	}

	// The load appended its changes to the running sums, as a year of
	// webhooks would with no worker to fold them: the worst case.
	b.Run("figures-unfolded", figures)
	// The workers fold them every few seconds; the figures are read as
	// they stand then.
	if err := store.FoldSums(ctx); err != nil {
		b.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "VACUUM ANALYZE figure_sums, figure_changes, task_counts, task_count_changes"); err != nil {
		b.Fatalf("analyze: %v", err)
	}
	b.Run("figures", figures)

	b.Run("stats", func(b *testing.B) {
		srv := apiServer(b, store, merchants)
		client := srv.Client()
		url := srv.URL + "/api/stats?from=" + figuresFrom.Format(domain.DateLayout) + "&to=" + figuresTo.Format(domain.DateLayout)
		get := func() {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				b.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+key.Plain)
			res, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			var body struct {
				Series []json.RawMessage `json:"series"`
			}
			err = json.NewDecoder(res.Body).Decode(&body)
			_ = res.Body.Close()
			if res.StatusCode != http.StatusOK || err != nil || len(body.Series) == 0 {
				b.Fatalf("GET /api/stats: %d, %d series rows, %v", res.StatusCode, len(body.Series), err)
			}
		}
		get() // the connection is open before the timer starts
		lat := make([]time.Duration, 0, b.N)
		for b.Loop() {
			start := time.Now()
			get()
			lat = append(lat, time.Since(start))
		}
		reportLatency(b, lat)
	})
}

// loadFigures fills the merchant's year: figuresInvoices invoice records,
// their first failures spread evenly over the year, and ten tasks each.
// The mix is drawn from hashes of the row number, so every run loads the
// same rows: three currencies (usd 70 %, eur 20 %, gbp 10 %), nine decline
// codes and unknown, and outcomes of which 40 % were recovered (by recoup's
// retry, Stripe's, a card update or the customer, one to fourteen days
// after the failure), 15 % closed unpaid and the rest still open.
func loadFigures(b *testing.B, ctx context.Context, db *bun.DB, merchant domain.MerchantID) {
	b.Helper()
	start := time.Now()
	_, err := db.NewRaw(`
		INSERT INTO invoices (merchant_id, invoice_id, customer_id, subscription_id, currency, amount_due,
			first_failed_at, last_failed_at, stripe_attempts, recoup_attempts, decline_code, declined_at,
			status, closed_at, paid_amount, recovered_by)
		SELECT ?, 'in_bench_' || i, 'cus_' || i % 40000, 'sub_' || i % 40000, cur, amount,
			failed_at, failed_at, 1 + o % 4, o % 3, code, failed_at,
			CASE WHEN o < 40 THEN 'paid' WHEN o < 50 THEN 'uncollectible' WHEN o < 55 THEN 'void' ELSE '' END,
			CASE WHEN o < 55 THEN failed_at + (1 + o % 14) * interval '1 day' END,
			CASE WHEN o < 40 THEN amount ELSE 0 END,
			CASE WHEN o < 18 THEN 'recoup_retry' WHEN o < 28 THEN 'stripe_retry' WHEN o < 34 THEN 'card_update'
				WHEN o < 40 THEN 'customer_paid' ELSE '' END
		FROM generate_series(0, ? - 1) AS i,
			LATERAL (SELECT
				?::timestamptz + i * (interval '365 days' / ?) AS failed_at,
				500 + abs(hashtext('a' || i)) % 20000 AS amount,
				abs(hashtext('o' || i)) % 100 AS o,
				(ARRAY['usd', 'usd', 'usd', 'usd', 'usd', 'usd', 'usd', 'eur', 'eur', 'gbp'])[1 + abs(hashtext('c' || i)) % 10] AS cur,
				(ARRAY['insufficient_funds', 'insufficient_funds', 'insufficient_funds', 'insufficient_funds',
					'generic_decline', 'generic_decline', 'do_not_honor', 'expired_card', 'card_velocity_exceeded',
					'lost_card', 'stolen_card', 'authentication_required', 'incorrect_cvc', '', ''])[1 + abs(hashtext('d' || i)) % 15] AS code
			) AS mix`,
		merchant, figuresInvoices, figuresFrom, figuresInvoices).Exec(ctx)
	if err != nil {
		b.Fatalf("load invoices: %v", err)
	}
	// Task j of an invoice is the j-th thing dunning did about it, a day
	// apart: its email, retries, reminders, an action-required and a
	// charge-failed email, and the end of dunning. Every "at most one"
	// index allows them: each has its own invoice_attempt, charge id, or
	// is the invoice's only one of its kind. Ids count up, which loads the
	// primary key in a third less time than random ones.
	_, err = db.NewRaw(`
		INSERT INTO tasks (id, merchant_id, type, status, stripe_event_id, stripe_customer_id, stripe_invoice_id,
			stripe_charge_id, customer_email, amount_due, currency, invoice_attempt, attempts, decline_code, reason,
			run_at, created_at, updated_at)
		SELECT lpad(to_hex(i), 32, '0')::uuid, ?, typ,
			CASE WHEN typ = 'retry_payment' AND j = 7 AND k % 10 = 0 THEN 'pending'
				WHEN typ = 'end_dunning' THEN 'succeeded'
				ELSE (ARRAY['succeeded', 'succeeded', 'failed', 'cancelled'])[1 + i % 4] END,
			'evt_bench_' || i, 'cus_' || k % 40000, 'in_bench_' || k, 'ch_bench_' || i, 'jenny@example.com',
			2000, 'usd', j + 1, 1, 'insufficient_funds', '', at + interval '1 day', at, at
		FROM generate_series(0, ? - 1) AS i,
			LATERAL (SELECT i % ? AS k, i / ? AS j) AS n,
			LATERAL (SELECT
				(ARRAY['notify_payment_failed', 'retry_payment', 'notify_reminder', 'retry_payment', 'notify_action_required',
					'retry_payment', 'notify_reminder', 'retry_payment', 'notify_charge_failed', 'end_dunning'])[1 + j] AS typ,
				?::timestamptz + k * (interval '365 days' / ?) + j * interval '1 day' AS at
			) AS row`,
		merchant, figuresTasks, figuresInvoices, figuresInvoices, figuresFrom, figuresInvoices).Exec(ctx)
	if err != nil {
		b.Fatalf("load tasks: %v", err)
	}
	if _, err := db.ExecContext(ctx, "VACUUM ANALYZE invoices, tasks"); err != nil {
		b.Fatalf("analyze: %v", err)
	}
	b.Logf("loaded %d invoices and %d tasks in %v", figuresInvoices, figuresTasks, time.Since(start).Round(time.Millisecond))
}

// figuresCounts counts, apart from the code under test, the invoices that
// failed and those recovered in the benchmark's year.
func figuresCounts(b *testing.B, ctx context.Context, db *bun.DB) (failed, recovered int) {
	b.Helper()
	end := figuresTo.AddDate(0, 0, 1)
	err := db.NewRaw(`
		SELECT count(*) FILTER (WHERE first_failed_at >= ? AND first_failed_at < ?),
			count(*) FILTER (WHERE status = 'paid' AND recovered_by <> '' AND closed_at >= ? AND closed_at < ?)
		FROM invoices`, figuresFrom, end, figuresFrom, end).Scan(ctx, &failed, &recovered)
	if err != nil {
		b.Fatalf("count invoices: %v", err)
	}
	if failed != figuresInvoices || recovered == 0 {
		b.Fatalf("%d failed and %d recovered invoices in the year; want %d and some", failed, recovered, figuresInvoices)
	}
	return failed, recovered
}
