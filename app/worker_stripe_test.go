package app_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/adapters/email"
	"github.com/recoupdev/recoup/adapters/stripe"
	"github.com/recoupdev/recoup/app"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/logtest"
	"github.com/recoupdev/recoup/internal/stripetest"
)

// stripeRequest is what the worker sent to the Stripe API.
type stripeRequest struct {
	Method, Path, Account, IdempotencyKey string
}

// recordingProxy forwards to target and records each request.
type recordingProxy struct {
	mu   sync.Mutex
	seen []stripeRequest
}

func (p *recordingProxy) start(t *testing.T, target string) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.seen = append(p.seen, stripeRequest{Method: r.Method, Path: r.URL.Path,
			Account: r.Header.Get("Stripe-Account"), IdempotencyKey: r.Header.Get("Idempotency-Key")})
		p.mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func (p *recordingProxy) requests() []stripeRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]stripeRequest(nil), p.seen...)
}

// TestWorkerAgainstStripeMock runs tasks end to end through the real Stripe
// gateway against stripe-mock, which answers in Stripe's success shapes
// (its invoices are drafts, so nothing is cancelled).
func TestWorkerAgainstStripeMock(t *testing.T) {
	is := is.New(t)
	var proxy recordingProxy
	base := proxy.start(t, stripetest.StartMock(t))
	gateway := stripe.NewGateway(stripe.GatewayConfig{APIKey: "sk_test_123", APIBase: base})

	f := newWorkerFixture(t)
	retry := f.task(domain.TypeRetryPayment)
	retry.StripeInvoiceID = "in_1MockRetry"
	notify := f.task(domain.TypeNotifyPaymentFailed)
	notify.StripeInvoiceID = "in_1MockNotify"
	f.schedule(t, retry, notify)

	var logs logtest.Buffer
	w, err := app.NewWorker(workerTestConfig(), app.WorkerPorts{Storage: f.store, Gateway: gateway,
		Notifier: email.NewLogNotifier(slog.New(slog.NewJSONHandler(&logs, nil))), Clock: f.clock})
	is.NoErr(err)                // worker
	is.Equal(runOnceOK(t, w), 2) // both ran

	got := f.get(t, retry.ID)
	is.Equal(got.LastError, "")                                  // no error
	is.Equal(got.Status, domain.StatusSucceeded)                 // paid
	is.Equal(f.get(t, notify.ID).Status, domain.StatusSucceeded) // emailed

	var reads, pays int
	for _, r := range proxy.requests() {
		is.Equal(r.Account, "acct_1Acme") // every request on the merchant's connected account
		switch {
		case r.Method == http.MethodGet && strings.HasPrefix(r.Path, "/v1/invoices/"):
			reads++
		case r.Method == http.MethodPost && r.Path == "/v1/invoices/in_1MockRetry/pay":
			pays++
			is.Equal(r.IdempotencyKey, domain.RunKey(retry)) // key of the scheduled run
		default:
			t.Errorf("unexpected Stripe request %s %s", r.Method, r.Path)
		}
	}
	is.Equal(reads, 2) // each task re-read its invoice first
	is.Equal(pays, 1)  // one payment, for the retry task only
	out := logs.String()
	is.True(strings.Contains(out, `"to":"j***@example.com"`)) // the email went to the log notifier, the address masked
	is.True(strings.Contains(out, string(notify.ID)))         // for the notify task
}
