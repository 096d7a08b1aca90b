// Package bench holds recoup's end-to-end benchmarks on PostgreSQL, each set
// beside a baseline that does the same database work with plain pgx, so that
// the cost of recoup's layers (HTTP, signature check, JSON, bun, the use
// cases) reads as a ratio to what the database alone allows on the same
// machine in the same run.
//
// The package has no code of its own: everything is in its _test.go files,
// and plain `go test ./bench/` runs no benchmark (only a quick unit test of
// the statistics). Every benchmark needs the test server of internal/pgtest
// (TEST_DATABASE_URL, or postgres://postgres@127.0.0.1:5432/test) and fails
// when it cannot reach it. Each run of a sub-benchmark works in a fresh,
// migrated schema of a database made for the benchmark and dropped after it.
//
// Recommended invocation (about two minutes on a 2-CPU machine; one pass,
// -count 1, takes about 45 s):
//
//	GOTOOLCHAIN=go1.27.3 go test -run '^$' -bench 'Intake|Worker' -benchtime 2000x -count 3 ./bench/
//
// A fixed count (-benchtime Nx) gives the baseline and recoup the same work,
// which keeps the ratios stable; with the default time-based -benchtime each
// sub-benchmark is run at growing b.N and takes longer. With -count n the
// testing package runs each baseline n times, then recoup n times; each
// recoup run's ratio-vs-pgx divides by the mean of the baseline runs of the
// same b.N. On a machine shared with other work the figures at low
// concurrency, which wait on every commit's fsync, swing by tens of percent
// from run to run: read several counts, not one.
//
// On both sides the connection pools (and recoup's keep-alive HTTP
// connections) are opened before the timer starts, and every run's rows are
// counted after it stops, so that a run that lost work fails instead of
// flattering itself. recoup writes its production log lines, as JSON, to
// io.Discard.
//
// BenchmarkWebhookIntakePostgres measures webhook intake at 1, 8 and 32
// concurrent senders. "recoup" posts pre-signed, distinct
// invoice.payment_failed events (attempt 1, next_payment_attempt null, so
// each makes a notify_payment_failed and a retry_payment task and an
// invoice record) over real TCP on loopback to httpapi.NewServer, backed by
// app.WebhookService on postgres.New with a pool of 40 connections.
// "baseline" runs, with pgxpool and no HTTP, the transaction recoup runs for
// each event: BEGIN; the processed_events lock; the two task inserts with the
// adapter's ON CONFLICT clauses and RETURNING; the invoice's record, made
// and locked by an INSERT … ON CONFLICT … RETURNING, then written by an
// UPDATE with the failure merged, as the ledger's Record does; COMMIT.
// recoup also reads the merchant by its Stripe account before that
// transaction; the baseline does not. Each reports events/s, p50-ms and
// p99-ms (per delivery, as the sender sees it); recoup also reports
// ratio-vs-pgx, its events/s over the baseline's in the same process
// (target at 32 senders: at least 0.7).
//
// BenchmarkWorkerPostgres measures tasks executed per second: b.N due
// retry_payment tasks are inserted in bulk (INSERT … SELECT generate_series)
// before the timer starts, then drained. "recoup" runs app.Worker (Run, with
// WorkerConfig.Concurrency 1, 4 or 16) over postgres.New, with a payment
// gateway that answers at once and a notifier that does nothing; each task
// is claimed, its merchant read, its invoice "re-read" and "paid", and its
// outcome recorded. With workers=2, two Worker instances on two separate
// connection pools stand for two processes (in-process, not child
// processes). Every pool, on either side, has Concurrency+4 connections.
// "baseline" has the same number of goroutines per pool, each
// claiming one task at a time with one UPDATE … WHERE id IN (SELECT … FOR
// UPDATE SKIP LOCKED LIMIT 1) RETURNING and completing it with one UPDATE
// WHERE id = $1 AND attempts = $2, through pgxpool. "baseline-engine" does,
// the same way, the database work recoup's worker does for a paid retry:
// the claim reading the merchant's policy and the invoice's record in its
// statement, then one transaction that records the payment on the invoice's
// record (held, then updated, as the ledger does) and completes the task.
// Each reports tasks/s; recoup also reports claims/task, ratio-vs-pgx
// (over "baseline"; target: at least 0.7) and ratio-vs-engine-sql (over
// "baseline-engine": the cost of recoup's layers alone).
//
// BenchmarkFiguresPostgres measures the recovery figures of one large
// merchant: 100,000 invoice records whose first failures are spread over a
// year (three currencies, nine decline codes and unknown, 40 % recovered
// by the four sources, 15 % closed unpaid) and 1,000,000 tasks, ten per
// invoice, loaded with INSERT … SELECT generate_series before the timer
// starts (under a minute). "figures" runs the ledger's Figures for the
// whole year (series, by decline code, by source); "stats" sends
// GET /api/stats?from&to for that year over loopback HTTP, which adds the
// all-time sums by currency and the task counts by status. Each checks
// its answer's counts against the table's and reports p50-ms and p99-ms
// (goal: p99 under 50 ms). It has no pgx baseline: its cost is the
// queries'. Each request takes about a second on the 2-CPU machine, so it
// is left out of the invocation above; run it on its own with
// -bench Figures -benchtime 100x.
package bench
