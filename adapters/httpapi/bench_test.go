package httpapi_test

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/recoupdev/recoup/adapters/httpapi"
	"github.com/recoupdev/recoup/adapters/memory"
	"github.com/recoupdev/recoup/adapters/stripe"
	"github.com/recoupdev/recoup/app"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/cputime"
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
// the delivery's log line formatted as JSON, the JSON answer), with no
// socket involved, against a baseline that only verifies the signature and
// decodes the event: stripe-go's webhook.ConstructEventWithOptions, what
// any Go receiver of Stripe webhooks runs first. All use the same kind of
// pre-signed events and 8 senders; "handler" reports its events/s as a
// fraction of the baseline's ("ratio", target: at least 0.8). So that the
// machine has no time to change in between, every line measures the
// baseline over as many events right before itself, outside its timer,
// and compares itself with that; the "baseline" line reports it alone.
//
// The machine is shared, so each also reports the process's CPU time per
// event (garbage collection included): with 8 senders on every core the
// path is CPU-bound, and "cpu-ratio", the baseline's CPU per event over
// the handler's, is the same fraction without the time spent waiting for
// a CPU another tenant holds.
//
// "verify" is recoup's own verifier alone (stripe-go's signature check,
// then one decode with stripe-go's types of only what the policy reads).
func BenchmarkWebhook(b *testing.B) {
	b.Run("baseline", func(b *testing.B) {
		benchmarkVerify(b, false, constructEvent)
	})
	b.Run("verify", func(b *testing.B) {
		verifier, err := stripe.NewVerifier([]string{testSecret})
		if err != nil {
			b.Fatal(err)
		}
		benchmarkVerify(b, true, func(payload []byte, sig string) error {
			_, err := verifier.VerifyEvent(payload, sig)
			return err
		})
	})

	// All events for one merchant is the worst case: the memory store
	// serialises one merchant's writes, as PostgreSQL serialises row locks.
	// A platform's deliveries are usually spread over many merchants.
	for _, merchants := range []int{1, 100} {
		b.Run(fmt.Sprintf("handler/merchants=%d", merchants), func(b *testing.B) {
			benchmarkHandler(b, merchants)
		})
	}
}

// constructEvent is the baseline's work: stripe-go's signature check and
// decoding, as a plain receiver calls it.
func constructEvent(payload []byte, sig string) error {
	_, err := webhook.ConstructEventWithOptions(payload, sig, testSecret, webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true})
	return err
}

// rate is what one measurement gave.
type rate struct {
	eventsPerSec float64
	cpuPerEvent  float64 // ns
}

// measured is the rate of n events done in elapsed with cpu of CPU time.
func measured(n int, elapsed, cpu time.Duration) rate {
	return rate{eventsPerSec: float64(n) / elapsed.Seconds(), cpuPerEvent: float64(cpu) / float64(n)}
}

// measure runs b.N events through do, timed, and reports the rate. With
// compare it first measures the baseline over as many events, outside b's
// timer, and reports the ratios to it.
func measure(b *testing.B, compare bool, do func() error) {
	var baseline rate
	if compare {
		payloads, sigs := signedEvents(b.N, "acct_bench")
		start, cpu := time.Now(), cputime.Process()
		err := runSenders(b.N, func(i int) error { return constructEvent(payloads[i], sigs[i]) })
		if err != nil {
			b.Fatal(err)
		}
		baseline = measured(b.N, time.Since(start), cputime.Process()-cpu)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cputime.Process()
	err := do()
	used := cputime.Process() - cpu
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	r := measured(b.N, b.Elapsed(), used)
	b.ReportMetric(r.eventsPerSec, "events/s")
	b.ReportMetric(r.cpuPerEvent, "cpu-ns/event")
	if compare {
		b.ReportMetric(r.eventsPerSec/baseline.eventsPerSec, "ratio")
		b.ReportMetric(baseline.cpuPerEvent/r.cpuPerEvent, "cpu-ratio")
	}
}

// benchmarkVerify runs check over b.N pre-signed events on 8 senders.
func benchmarkVerify(b *testing.B, compare bool, check func(payload []byte, sig string) error) {
	payloads, sigs := signedEvents(b.N, "acct_bench")
	measure(b, compare, func() error {
		return runSenders(b.N, func(i int) error { return check(payloads[i], sigs[i]) })
	})
}

// benchmarkHandler sends b.N distinct signed events, spread round-robin
// over the given number of merchants, through the real webhook handler on
// the memory store.
func benchmarkHandler(b *testing.B, merchants int) {
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
	ctx := b.Context()
	measure(b, true, func() error {
		return runSenders(b.N, func(i int) error {
			// What net/http's server hands a handler; httptest.NewRequest
			// would also allocate a 4 KiB reader per request.
			req := (&http.Request{
				Method: http.MethodPost, URL: webhookURL, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
				Header: http.Header{"Content-Type": {"application/json"}, "Stripe-Signature": {sigs[i]}},
				Body:   io.NopCloser(bytes.NewReader(payloads[i])), ContentLength: int64(len(payloads[i])),
				Host: "recoup.example", RemoteAddr: "192.0.2.1:443", RequestURI: "/webhooks/stripe",
			}).WithContext(ctx)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK || !bytes.Contains(rec.Body.Bytes(), processed) {
				return fmt.Errorf("status %d: %s", rec.Code, rec.Body)
			}
			return nil
		})
	})
}

var webhookURL = &url.URL{Path: "/webhooks/stripe"}
