package httpapi_test

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/recoupdev/recoup/adapters/httpapi"
	"github.com/recoupdev/recoup/adapters/memory"
	"github.com/recoupdev/recoup/adapters/stripe"
	"github.com/recoupdev/recoup/app"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/stripetest"
	"github.com/recoupdev/recoup/ports"
)

// benchSenders is how many deliveries are in flight at once, as from
// Stripe's parallel webhook senders.
const benchSenders = 8

// signedEvents pre-signs n distinct invoice.payment_failed events for
// account, so that the timed loop does no signing.
func signedEvents(n int, account string) (payloads [][]byte, signatures []string) {
	now := time.Now()
	payloads, signatures = make([][]byte, n), make([]string, n)
	for i := range n {
		payloads[i] = stripetest.Event{
			Type: domain.EventInvoicePaymentFailed, Account: account,
			Object: stripetest.Invoice{
				Customer: "cus_bench", CustomerEmail: "bench@example.com", AmountDue: 4200,
				AttemptCount: 1, Subscription: "sub_bench", HostedInvoiceURL: "https://invoice.stripe.com/i/bench",
			},
		}.JSON()
		signatures[i] = stripetest.Sign(payloads[i], testSecret, now)
	}
	return payloads, signatures
}

// runSenders runs do(i) for every i in [0, n) on benchSenders goroutines
// and returns the first error.
func runSenders(n int, do func(i int) error) error {
	var next atomic.Int64
	var first atomic.Value
	var wg sync.WaitGroup
	for range benchSenders {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := do(i); err != nil {
					first.CompareAndSwap(nil, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, _ := first.Load().(error); err != nil {
		return err
	}
	return nil
}

// BenchmarkWebhook measures the webhook path on the memory adapter through
// the real handler (body read, signature check, JSON decode, lock, tasks,
// the delivery's log line formatted as JSON, the JSON answer), called with
// httptest.NewRecorder so that no socket is involved, against a baseline
// that only verifies the signature and decodes the event. Both use the
// same pre-signed events and 8 senders; "handler" reports its events/s as
// a fraction of the baseline's (target: at least 0.8).
func BenchmarkWebhook(b *testing.B) {
	var baseline float64

	b.Run("baseline", func(b *testing.B) {
		verifier, err := stripe.NewVerifier([]string{testSecret})
		if err != nil {
			b.Fatal(err)
		}
		payloads, sigs := signedEvents(b.N, "acct_bench")
		b.ReportAllocs()
		b.ResetTimer()
		err = runSenders(b.N, func(i int) error {
			_, err := verifier.VerifyEvent(payloads[i], sigs[i])
			return err
		})
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		baseline = float64(b.N) / b.Elapsed().Seconds()
		b.ReportMetric(baseline, "events/s")
	})

	// All events for one merchant is the worst case: the memory store
	// serialises one merchant's writes, as PostgreSQL serialises row locks.
	// A platform's deliveries are usually spread over many merchants.
	for _, merchants := range []int{1, 100} {
		b.Run(fmt.Sprintf("handler/merchants=%d", merchants), func(b *testing.B) {
			benchmarkHandler(b, merchants, baseline)
		})
	}
}

// benchmarkHandler sends b.N distinct signed events, spread round-robin
// over the given number of merchants, through the real webhook handler on
// the memory store, and reports events/s and the ratio to baseline.
func benchmarkHandler(b *testing.B, merchants int, baseline float64) {
	store := memory.New(nil)
	clock := ports.SystemClock{}
	accounts := make([]string, merchants)
	for i := range accounts {
		m, _, err := app.NewMerchantService(store.Merchants(), clock).Create(b.Context(), "Bench", fmt.Sprintf("acct_bench%d", i))
		if err != nil {
			b.Fatal(err)
		}
		accounts[i] = m.StripeAccountID
	}
	verifier, err := stripe.NewVerifier([]string{testSecret})
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	h := httpapi.NewWebhookHandler(verifier, app.NewWebhookService(store, domain.DefaultPolicy(), clock, false, log), log)
	payloads, sigs := make([][]byte, b.N), make([]string, b.N)
	for i, account := range accounts {
		n := b.N/merchants + min(1, max(0, b.N%merchants-i))
		ps, ss := signedEvents(n, account)
		for j := range n {
			payloads[j*merchants+i], sigs[j*merchants+i] = ps[j], ss[j]
		}
	}
	processed := []byte(`"processed":true`)
	b.ReportAllocs()
	b.ResetTimer()
	err = runSenders(b.N, func(i int) error {
		req := httptest.NewRequest(http.MethodPost, "/webhooks/stripe", bytes.NewReader(payloads[i]))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Stripe-Signature", sigs[i])
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || !bytes.Contains(rec.Body.Bytes(), processed) {
			return fmt.Errorf("status %d: %s", rec.Code, rec.Body)
		}
		return nil
	})
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	eps := float64(b.N) / b.Elapsed().Seconds()
	b.ReportMetric(eps, "events/s")
	if baseline > 0 {
		b.ReportMetric(eps/baseline, "ratio")
	}
}
