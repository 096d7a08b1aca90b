package memory_test

import (
	"context"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/recoupdev/recoup/adapters/memory"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// retainedEvents is how many webhook events BenchmarkRetainedPerEvent
// stores.
const retainedEvents = 90_000

// BenchmarkRetainedPerEvent stores retainedEvents invoice.payment_failed
// events the way the webhook does, one unit of work each (the event's
// lock, the invoice's record with the failure merged, a
// notify_payment_failed due now and a retry_payment due in a day), over
// benchMerchants merchants, and reports the heap they keep per event
// (B/event: HeapAlloc after a GC, before and after) and, from the first
// iteration, the growth of the process's resident memory per event
// (rss-B/event). The tasks and the fact share their strings, as those
// built from one decoded event do.
func BenchmarkRetainedPerEvent(b *testing.B) {
	merchants := make([]domain.MerchantID, benchMerchants)
	for i := range merchants {
		merchants[i] = domain.MerchantID(domain.NewID())
	}
	var heapPerEvent, rssPerEvent float64
	iterations := 0
	for b.Loop() {
		heap, rss := heapAndRSS(b)
		st := memory.New(ports.SystemClock{})
		for i := range retainedEvents {
			storeEvent(b, st, merchants[i%len(merchants)])
		}
		heapAfter, rssAfter := heapAndRSS(b)
		runtime.KeepAlive(st)
		heapPerEvent += float64(heapAfter-heap) / retainedEvents
		if iterations == 0 { // later iterations reuse the heap the first one grew
			rssPerEvent = float64(rssAfter-rss) / retainedEvents
		}
		iterations++
	}
	b.ReportMetric(heapPerEvent/float64(iterations), "B/event")
	b.ReportMetric(rssPerEvent, "rss-B/event")
}

// heapAndRSS returns the live heap after a full collection, and the
// process's resident memory.
func heapAndRSS(b *testing.B) (heap, rss int64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	statm, err := os.ReadFile("/proc/self/statm")
	if err == nil {
		var pages int64
		if f := strings.Fields(string(statm)); len(f) > 1 {
			for _, c := range f[1] {
				pages = pages*10 + int64(c-'0')
			}
		}
		rss = pages * int64(os.Getpagesize())
	}
	return int64(ms.HeapAlloc), rss
}

// storeEvent applies one invoice.payment_failed event for merchant m, as
// the webhook's unit of work does, with fields shaped like Stripe's.
func storeEvent(b *testing.B, st *memory.Store, m domain.MerchantID) {
	evt, inv := stripeID("evt_"), stripeID("in_")
	now := time.Now()
	notify := domain.Task{
		ID: domain.TaskID(domain.NewID()), MerchantID: m, Type: domain.TypeNotifyPaymentFailed, Status: domain.StatusPending,
		StripeEventID: evt, StripeCustomerID: stripeID("cus_"), StripeInvoiceID: inv, StripeSubscriptionID: stripeID("sub_"),
		StripeChargeID: stripeID("ch_"), CustomerEmail: "customer" + alnum(5) + "@example.com", AmountDue: 2000,
		Currency: strings.Clone("usd"), HostedInvoiceURL: "https://invoice.stripe.com/i/" + stripeID("acct_") + "/test_" + alnum(46),
		InvoiceAttempt: 1, RunAt: now, CreatedAt: now, UpdatedAt: now,
	}
	retry := notify
	retry.ID, retry.Type, retry.RunAt = domain.TaskID(domain.NewID()), domain.TypeRetryPayment, now.Add(24*time.Hour)
	err := st.InTx(context.Background(), func(ctx context.Context, tx ports.Tx) error {
		if ok, err := tx.Events().AttemptEventLock(ctx, evt); err != nil || !ok {
			b.Fatalf("lock %s: %t, %v", evt, ok, err)
		}
		fact := domain.InvoiceFact{Kind: domain.FactFailed, InvoiceID: inv, CustomerID: notify.StripeCustomerID,
			SubscriptionID: notify.StripeSubscriptionID, Currency: notify.Currency, AmountDue: notify.AmountDue, At: now, AttemptCount: 1}
		if _, err := tx.Ledger().Record(ctx, m, fact); err != nil {
			return err
		}
		_, err := tx.Tasks().Schedule(ctx, m, []domain.Task{notify, retry})
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
}

// stripeID is a Stripe id: the prefix and 24 alphanumerics.
func stripeID(prefix string) string { return prefix + alnum(24) }

func alnum(n int) string {
	const chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	var sb strings.Builder
	sb.Grow(n)
	for range n {
		sb.WriteByte(chars[rand.IntN(len(chars))])
	}
	return sb.String()
}
