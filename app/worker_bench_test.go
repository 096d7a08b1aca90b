package app_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/recoupdev/recoup/adapters/memory"
	"github.com/recoupdev/recoup/app"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/worktest"
	"github.com/recoupdev/recoup/ports"
)

// benchmarkWorker measures how many retry_payment tasks per second one
// worker with conc goroutines executes from store, with a gateway that
// answers at once: the cost of claiming, running and recording a task. It
// seeds b.N due tasks over 16 merchants, runs the worker until all are
// paid, and reports tasks/s and claims/task (how well
// claims batch under load). Any ports.Storage can be measured this way.
func benchmarkWorker(b *testing.B, store ports.Storage, conc int) {
	ctx := context.Background()
	clock := ports.SystemClock{}
	now := clock.Now().Add(-time.Second)
	const merchants = 16
	batches := make([][]domain.Task, merchants)
	ids := make([]domain.MerchantID, merchants)
	for i := range ids {
		m := domain.Merchant{ID: domain.MerchantID(domain.NewID()), Name: fmt.Sprintf("Bench %d", i),
			StripeAccountID: fmt.Sprintf("acct_bench%d%d", i, time.Now().UnixNano()), CreatedAt: now}
		_, key, err := domain.NewAPIKey(m.ID, now)
		if err != nil {
			b.Fatal(err)
		}
		if err := store.Merchants().CreateMerchant(ctx, m, key); err != nil {
			b.Fatal(err)
		}
		ids[i] = m.ID
	}
	for i := range b.N {
		mi := i % merchants
		batches[mi] = append(batches[mi], domain.Task{
			ID: domain.TaskID(domain.NewID()), MerchantID: ids[mi], Type: domain.TypeRetryPayment, Status: domain.StatusPending,
			StripeEventID: "evt_bench", StripeInvoiceID: fmt.Sprintf("in_bench%d", i), InvoiceAttempt: 1,
			AmountDue: 2000, Currency: "usd", RunAt: now, CreatedAt: now, UpdatedAt: now,
		})
	}
	for mi, batch := range batches {
		for len(batch) > 0 {
			n := min(len(batch), 1000)
			if _, err := store.Tasks().Schedule(ctx, ids[mi], batch[:n]); err != nil {
				b.Fatal(err)
			}
			batch = batch[n:]
		}
	}

	gw := worktest.NewInstantGateway(b.N)
	var claims atomic.Int64
	counted := worktest.CountingStorage{Storage: store, Claims: &claims}
	w, err := app.NewWorker(app.WorkerConfig{Concurrency: conc}, app.WorkerPorts{Storage: counted, Gateway: gw, Notifier: worktest.DiscardNotifier{}, Clock: clock})
	if err != nil {
		b.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	returned := make(chan error, 1)
	b.ResetTimer()
	start := time.Now()
	go func() { returned <- w.Run(runCtx) }()
	<-gw.Done()
	cancel()
	if err := <-returned; err != nil { // after the last outcome is recorded
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "tasks/s")
	b.ReportMetric(float64(claims.Load())/float64(b.N), "claims/task")
}

// BenchmarkWorkerMemory: tasks executed per second on the memory storage
// at 1, 4 and 16 worker goroutines.
func BenchmarkWorkerMemory(b *testing.B) {
	for _, conc := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("goroutines=%d", conc), func(b *testing.B) {
			benchmarkWorker(b, memory.New(nil), conc)
		})
	}
}
