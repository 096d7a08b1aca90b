package memory_test

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/recoupdev/recoup/adapters/memory"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/cputime"
	"github.com/recoupdev/recoup/ports"
)

const benchMerchants = 100

// reportCPU reports the process's CPU time per operation since start (GC
// included): unlike ns/op it does not grow with other processes' load.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cputime.Process()-start)/float64(b.N), "cpu-ns/op")
}

// filledStore holds total tasks spread evenly over benchMerchants merchants
// and returns it with the merchants.
func filledStore(b *testing.B, total int) (*memory.Store, []domain.MerchantID) {
	b.Helper()
	ctx := context.Background()
	st := memory.New(ports.SystemClock{})
	merchants := make([]domain.MerchantID, benchMerchants)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range merchants {
		m := domain.MerchantID(domain.NewID())
		merchants[i] = m
		tasks := make([]domain.Task, 0, total/benchMerchants)
		for j := range total / benchMerchants {
			// Several tasks share each CreatedAt, as a burst of webhooks does.
			created := base.Add(time.Duration(j/4) * time.Second)
			tasks = append(tasks, domain.Task{
				ID: domain.TaskID(domain.NewID()), MerchantID: m, Type: domain.TypeNotifyChargeFailed,
				Status: domain.StatusPending, StripeEventID: "evt_" + strconv.Itoa(j), StripeChargeID: "ch_" + strconv.Itoa(j),
				AmountDue: 2000, Currency: "usd", RunAt: created.Add(time.Hour), CreatedAt: created, UpdatedAt: created,
			})
		}
		if _, err := st.Tasks().Schedule(ctx, m, tasks); err != nil {
			b.Fatal(err)
		}
	}
	return st, merchants
}

// pageFilter asks for the page of 50 that starts at the middle of the
// merchant's list (a keyset continuation), or the first page when mid is
// false.
func pageFilter(b *testing.B, st *memory.Store, m domain.MerchantID, mid bool) domain.TaskFilter {
	b.Helper()
	f := domain.TaskFilter{Limit: 50}
	if !mid {
		return f
	}
	counts, err := st.Tasks().CountByStatus(context.Background(), m)
	if err != nil {
		b.Fatal(err)
	}
	page, err := st.Tasks().List(context.Background(), m, domain.TaskFilter{Limit: domain.MaxPageSize})
	if err != nil {
		b.Fatal(err)
	}
	// Walk to the middle of the merchant's list with large pages.
	for seen := len(page.Tasks); seen < counts[domain.StatusPending]/2 && page.Next != nil; seen += len(page.Tasks) {
		f.After = page.Next
		page, err = st.Tasks().List(context.Background(), m, domain.TaskFilter{Limit: domain.MaxPageSize, After: page.Next})
		if err != nil {
			b.Fatal(err)
		}
	}
	f.After = page.Next
	return f
}

// BenchmarkListPage lists one page of 50 of one merchant's tasks while the
// store holds 10,000 and 100,000 tasks over 100 merchants. A page costs
// O(log n + 50) in the merchant's own tasks, so ns/op barely moves between
// the sizes; BenchmarkListPageScaling reports the ratio directly.
func BenchmarkListPage(b *testing.B) {
	for _, total := range []int{10_000, 100_000} {
		st, merchants := filledStore(b, total)
		for _, mid := range []bool{false, true} {
			where := "first"
			if mid {
				where = "middle"
			}
			b.Run(fmt.Sprintf("tasks=%d/page=%s", total, where), func(b *testing.B) {
				ctx := context.Background()
				m := merchants[len(merchants)/2]
				f := pageFilter(b, st, m, mid)
				b.ReportAllocs()
				cpu := cputime.Process()
				for b.Loop() {
					page, err := st.Tasks().List(ctx, m, f)
					if err != nil || len(page.Tasks) != 50 {
						b.Fatalf("page of %d tasks: %v", len(page.Tasks), err)
					}
				}
				reportCPU(b, cpu)
			})
		}
	}
}

// BenchmarkListPageScaling lists a middle page of 50 alternately from a
// store of 10,000 and one of 100,000 tasks (100 merchants each) and reports
// each one's time per page and their ratio: about 1 means the cost does not
// grow with the store.
func BenchmarkListPageScaling(b *testing.B) {
	ctx := context.Background()
	small, smallMerchants := filledStore(b, 10_000)
	large, largeMerchants := filledStore(b, 100_000)
	sm, lm := smallMerchants[0], largeMerchants[0]
	sf, lf := pageFilter(b, small, sm, true), pageFilter(b, large, lm, true)
	var smallTime, largeTime time.Duration
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		if _, err := small.Tasks().List(ctx, sm, sf); err != nil {
			b.Fatal(err)
		}
		mid := time.Now()
		if _, err := large.Tasks().List(ctx, lm, lf); err != nil {
			b.Fatal(err)
		}
		smallTime += mid.Sub(start)
		largeTime += time.Since(mid)
	}
	b.ReportMetric(float64(smallTime.Nanoseconds())/float64(b.N), "ns/page-10k")
	b.ReportMetric(float64(largeTime.Nanoseconds())/float64(b.N), "ns/page-100k")
	b.ReportMetric(float64(largeTime)/float64(smallTime), "ratio-100k/10k")
}

// BenchmarkLockAndSchedule is the webhook's unit of work, from many
// goroutines at once: take a new event's lock and schedule a notify and a
// retry for one merchant. Units of work queue on the store's one lock
// whatever their merchant; with one merchant, its task list is 100 times
// longer. Each event's tasks are stamped with the time, as the webhook
// stamps them: tasks that all shared one CreatedAt would be ordered by
// their random ids, and each would be inserted mid-list.
func BenchmarkLockAndSchedule(b *testing.B) {
	for _, merchants := range []int{1, benchMerchants} {
		b.Run(fmt.Sprintf("merchants=%d", merchants), func(b *testing.B) {
			st := memory.New(ports.SystemClock{})
			ms := make([]domain.MerchantID, merchants)
			for i := range ms {
				ms[i] = domain.MerchantID(domain.NewID())
			}
			var seq atomic.Int64
			b.ReportAllocs()
			cpu := cputime.Process()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					n := seq.Add(1)
					m := ms[int(n)%len(ms)]
					evt, inv := "evt_"+strconv.FormatInt(n, 10), "in_"+strconv.FormatInt(n, 10)
					now := time.Now().UTC() // as the webhook stamps each event's tasks
					tasks := []domain.Task{
						{ID: domain.TaskID(domain.NewID()), MerchantID: m, Type: domain.TypeNotifyPaymentFailed, Status: domain.StatusPending,
							StripeEventID: evt, StripeInvoiceID: inv, InvoiceAttempt: 1, RunAt: now, CreatedAt: now, UpdatedAt: now},
						{ID: domain.TaskID(domain.NewID()), MerchantID: m, Type: domain.TypeRetryPayment, Status: domain.StatusPending,
							StripeEventID: evt, StripeInvoiceID: inv, InvoiceAttempt: 1, RunAt: now.Add(24 * time.Hour), CreatedAt: now, UpdatedAt: now},
					}
					err := st.InTx(ctx, func(ctx context.Context, tx ports.Tx) error {
						ok, err := tx.Events().AttemptEventLock(ctx, evt)
						if err != nil || !ok {
							return fmt.Errorf("lock %s: %t, %w", evt, ok, err)
						}
						_, err = tx.Tasks().Schedule(ctx, m, tasks)
						return err
					})
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			reportCPU(b, cpu)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
