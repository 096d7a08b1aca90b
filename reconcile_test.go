package recoup_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup"
	"github.com/recoupdev/recoup/adapters/postgres"
	"github.com/recoupdev/recoup/adapters/stripe"
	"github.com/recoupdev/recoup/app"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/pgtest"
	"github.com/recoupdev/recoup/internal/stripetest"
	"github.com/recoupdev/recoup/ports"
)

// undeliveredFailure is an invoice.payment_failed of the account, an hour
// old: attempt 1 of a fresh invoice.
func undeliveredFailure(account string) []byte {
	return stripetest.Event{
		Type: domain.EventInvoicePaymentFailed, Account: account, Created: time.Now().Add(-time.Hour),
		Object: stripetest.Invoice{
			ID: stripetest.NewID("in_"), Customer: "cus_jenny", CustomerEmail: "jenny@example.com",
			AmountDue: 2000, AttemptCount: 1, HostedInvoiceURL: "https://invoice.stripe.com/i/test",
		},
	}.JSON()
}

// tasksByEvent counts the merchant's tasks by the event that made them.
func tasksByEvent(t *testing.T, svc *recoup.Service, m domain.Merchant) map[string]int {
	t.Helper()
	out := map[string]int{}
	filter := domain.TaskFilter{Limit: domain.MaxPageSize}
	for {
		page, err := svc.Tasks().List(t.Context(), m, filter)
		if err != nil {
			t.Fatalf("list tasks: %v", err)
		}
		for _, task := range page.Tasks {
			out[task.StripeEventID]++
		}
		if page.Next == nil {
			return out
		}
		filter.After = page.Next
	}
}

// tasksOfOneDelivery is how many tasks one delivery of the payload makes,
// on a Service of its own.
func tasksOfOneDelivery(t *testing.T, account string, payload []byte) int {
	t.Helper()
	svc := newService(t, recoup.Options{})
	m, _, err := svc.Merchants().Create(t.Context(), "Reference", account)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	svc.WebhookHandler().ServeHTTP(rec, signedEvent(t, "/", payload))
	if rec.Code != http.StatusOK {
		t.Fatalf("reference delivery: %d %s", rec.Code, rec.Body)
	}
	n := 0
	for _, c := range tasksByEvent(t, svc, m) {
		n += c
	}
	return n
}

// TestReconcileDuringAWebhookStorm: a reconciliation runs while several
// senders post the same undelivered events as signed webhooks to the
// webhook handler, on both adapters: each event's effects happen exactly
// once, whichever way it came first, and every other arrival is a
// duplicate.
func TestReconcileDuringAWebhookStorm(t *testing.T) {
	for name, storage := range e2eStorages() {
		t.Run(name, func(t *testing.T) {
			is := is.New(t)
			api := stripetest.NewAPI(t)
			gw := stripe.NewGateway(stripe.GatewayConfig{APIKey: "sk_test_storm", APIBase: api.URL()})
			obs := &recordingObserver{}
			svc := newService(t, recoup.Options{Storage: storage(t), Gateway: gw, Observer: obs, ReconcileInterval: -1})
			account := stripetest.NewID("acct_")
			m, _, err := svc.Merchants().Create(t.Context(), "Shop", account)
			is.NoErr(err)
			const events, senders = 16, 4
			payloads := make([][]byte, events)
			for i := range payloads {
				payloads[i] = undeliveredFailure(account)
				api.AddEvent(account, payloads[i], false)
			}
			hook := httptest.NewServer(svc.WebhookHandler())
			t.Cleanup(hook.Close)

			start := make(chan struct{})
			var wg sync.WaitGroup
			var res app.ReconcileResult
			var reconcileErr error
			reconciled := make(chan struct{})
			wg.Go(func() {
				defer close(reconciled)
				<-start
				res, reconcileErr = svc.Reconcile(context.Background(), 72*time.Hour)
			})
			statuses := make(chan int, senders*events)
			// The senders start as the listing is answered, when the
			// reconciliation starts applying what it listed.
			listed := make(chan struct{})
			wg.Go(func() {
				defer close(listed)
				<-start
				for !slices.ContainsFunc(api.Requests(), func(r stripetest.Request) bool { return r.Path == "/v1/events" }) {
					select {
					case <-reconciled: // it never listed: the assertions say so
						return
					case <-time.After(time.Millisecond):
					}
				}
			})
			for range senders {
				wg.Go(func() {
					<-listed
					// Each sender goes through the events newest first,
					// all of them together, the reconciliation oldest
					// first: they meet on the way.
					for i := range events {
						payload := payloads[events-1-i]
						req, err := http.NewRequest(http.MethodPost, hook.URL, bytes.NewReader(payload))
						if err != nil {
							statuses <- 0
							continue
						}
						req.Header.Set("Stripe-Signature", stripetest.Sign(payload, testSecret, time.Now()))
						answer, err := hook.Client().Do(req)
						if err != nil {
							statuses <- 0
							continue
						}
						_ = answer.Body.Close()
						statuses <- answer.StatusCode
					}
				})
			}
			close(start)
			wg.Wait()
			close(statuses)

			is.NoErr(reconcileErr)
			for status := range statuses {
				is.Equal(status, http.StatusOK) // every delivery acknowledged
			}
			webhook := map[string]int{}
			for _, outcome := range obs.outcomes() {
				webhook[outcome]++
			}
			is.Equal(webhook[ports.DeliveryProcessed]+webhook[ports.DeliveryDuplicate], senders*events) // each delivery processed or a duplicate
			is.Equal(res.Merchants, 1)
			is.Equal(res.Listed, events) // the reconciliation listed every event
			is.Equal(res.Failed+res.Ignored, 0)
			t.Logf("processed by reconciliation %d, by webhook %d", res.Processed, webhook[ports.DeliveryProcessed])
			is.Equal(res.Processed+webhook[ports.DeliveryProcessed], events) // each event processed once, one way or the other
			arrivals := res.Listed + senders*events
			is.Equal(res.Processed+webhook[ports.DeliveryProcessed]+res.Duplicates+webhook[ports.DeliveryDuplicate], arrivals) // every other arrival a duplicate

			other := stripetest.NewID("acct_")
			perDelivery := tasksOfOneDelivery(t, other, undeliveredFailure(other))
			is.True(perDelivery > 0)
			byEvent := tasksByEvent(t, svc, m)
			is.Equal(len(byEvent), events) // tasks for every event
			for id, n := range byEvent {
				if n != perDelivery {
					t.Errorf("event %s made %d tasks; one delivery makes %d", id, n, perDelivery)
				}
			}
		})
	}
}

// TestWorkersReconcileOneMerchantAtATime: two Services on one PostgreSQL
// database, each with its own connection pool and Stripe key, run their
// workers with a short reconciliation interval against a slow events
// endpoint: no two listings of one account overlap, every merchant is
// reconciled, and each undelivered event is applied once. (The recoup
// binary's RECOUP_RECONCILE_INTERVAL is at least a minute, too long for a
// test, so the workers are the library's RunWorker, as `recoup worker`
// runs it.)
func TestWorkersReconcileOneMerchantAtATime(t *testing.T) {
	is := is.New(t)
	url := pgtest.NewDatabase(t)
	pgtest.Migrate(t, pgtest.Open(t, url))
	api := stripetest.NewAPI(t)
	api.Hold(http.MethodGet, "/v1/events", 100*time.Millisecond)
	keys := []string{"sk_test_worker_a", "sk_test_worker_b"}
	var services []*recoup.Service
	obs := &reconcileCounter{}
	for _, key := range keys {
		services = append(services, newService(t, recoup.Options{
			Observer:          obs,
			Storage:           postgres.New(pgtest.Open(t, url)),
			Gateway:           stripe.NewGateway(stripe.GatewayConfig{APIKey: key, APIBase: api.URL()}),
			ReconcileInterval: 20 * time.Millisecond,
			Worker:            app.WorkerConfig{Poll: time.Hour},
			EventRetention:    -1,
		}))
	}
	const merchants = 3
	var accounts []string
	for i := range merchants {
		account := stripetest.NewID("acct_")
		_, _, err := services[0].Merchants().Create(t.Context(), fmt.Sprintf("Shop %d", i), account)
		is.NoErr(err)
		accounts = append(accounts, account)
		api.AddEvent(account, undeliveredFailure(account), false)
	}

	ctx, stop := context.WithCancel(t.Context())
	ran := make(chan error, len(services))
	for _, svc := range services {
		go func() { ran <- svc.RunWorker(ctx) }()
	}
	// Run until each worker has listed each account at least twice.
	listings := func() map[string]map[string]int {
		byKey := map[string]map[string]int{}
		for _, r := range api.Requests() {
			if r.Path == "/v1/events" {
				if byKey[r.Key] == nil {
					byKey[r.Key] = map[string]int{}
				}
				byKey[r.Key][r.Account]++
			}
		}
		return byKey
	}
	enough := func() bool {
		byKey := listings()
		for _, key := range keys {
			for _, account := range accounts {
				if byKey[key][account] < 2 {
					return false
				}
			}
		}
		return true
	}
	limit := time.After(30 * time.Second)
	for !enough() {
		select {
		case <-limit:
			stop()
			t.Fatalf("the workers did not reconcile every merchant twice each within 30 s: %v", listings())
		case <-time.After(20 * time.Millisecond):
		}
	}
	stop()
	for range services {
		is.NoErr(<-ran)
	}

	var events []stripetest.Request
	for _, r := range api.Requests() {
		if r.Path == "/v1/events" {
			is.Equal(r.Status, http.StatusOK)
			events = append(events, r)
		}
	}
	for i, a := range events {
		for _, b := range events[i+1:] {
			if a.Account == b.Account && a.Received.Before(b.Answered) && b.Received.Before(a.Answered) {
				t.Errorf("two listings of %s overlap: %s %s–%s and %s %s–%s", a.Account,
					a.Key, a.Received.Format(time.StampMicro), a.Answered.Format(time.StampMicro),
					b.Key, b.Received.Format(time.StampMicro), b.Answered.Format(time.StampMicro))
			}
		}
	}
	// (A run the test stops may count an event it was applying as
	// failed; the event's lock goes with it.)
	is.Equal(obs.count(ports.DeliveryProcessed), merchants) // each merchant's event applied once
	var locks int
	is.NoErr(pgtest.Open(t, url).NewRaw("SELECT count(*) FROM processed_events").Scan(t.Context(), &locks))
	is.Equal(locks, merchants) // and kept once
}

// reconcileCounter counts the outcomes of the events reconciliation put
// through the webhook's path.
type reconcileCounter struct {
	ports.NopObserver
	mu       sync.Mutex
	outcomes map[string]int
}

func (o *reconcileCounter) ReconciledEvent(outcome string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.outcomes == nil {
		o.outcomes = map[string]int{}
	}
	o.outcomes[outcome]++
}

func (o *reconcileCounter) count(outcome string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.outcomes[outcome]
}
