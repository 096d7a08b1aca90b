package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/recoupdev/recoup"
	"github.com/recoupdev/recoup/adapters/postgres"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/pgtest"
	"github.com/recoupdev/recoup/internal/stripetest"
)

// TestKilledWorkerDeliveryIsSentAgain: a `recoup worker` killed with
// SIGKILL while the merchant's endpoint is answering its outbound webhook
// leaves the delivery claimed; once the claim's lease (one minute) has
// expired the next worker sends the message again, under the same
// webhook-id, and records it delivered: at least once, one id.
func TestKilledWorkerDeliveryIsSentAgain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := migratedDatabase(t)
	db := pgtest.Open(t, url)

	var mu sync.Mutex
	var ids []string
	started, killed := make(chan *exec.Cmd, 1), make(chan struct{})
	var once sync.Once
	endpoint := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ids = append(ids, r.Header.Get("webhook-id"))
		mu.Unlock()
		once.Do(func() { // the first worker dies while the endpoint answers it
			w := <-started
			_ = w.Process.Signal(syscall.SIGKILL)
			_ = w.Wait()
			close(killed)
		})
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(endpoint.Close)

	// The merchant, its endpoint and an invoice.recovered message, made
	// in process on the database the workers share.
	svc, err := recoup.New(recoup.Options{Storage: postgres.New(db), WebhookSecrets: []string{testSecret}, AllowPrivateEndpoints: true})
	if err != nil {
		t.Fatal(err)
	}
	account := stripetest.NewID("acct_")
	m, _, err := svc.Merchants().Create(ctx, "Shop", account)
	if err != nil {
		t.Fatal(err)
	}
	ep, err := svc.Endpoints().Create(ctx, m, endpoint.URL+"/hooks", []string{domain.OutboundInvoiceRecovered})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	inv := stripetest.Invoice{ID: stripetest.NewID("in_"), Customer: "cus_jenny", CustomerEmail: "jenny@example.com",
		AmountDue: 2000, AttemptCount: 1, HostedInvoiceURL: "https://invoice.stripe.com/i/x"}
	paid := inv
	paid.Status, paid.AmountPaid, paid.AttemptCount = "paid", 2000, 2
	for _, ev := range []stripetest.Event{
		{Type: domain.EventInvoicePaymentFailed, Account: account, Created: now.Add(-time.Minute), Object: inv},
		{Type: domain.EventInvoicePaid, Account: account, Created: now, Object: paid},
	} {
		payload := ev.JSON()
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(payload))
		req.Header.Set("Stripe-Signature", stripetest.Sign(payload, testSecret, now))
		rec := httptest.NewRecorder()
		svc.WebhookHandler().ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("webhook: %d %s", rec.Code, rec.Body)
		}
	}
	deliveries := func() []domain.Delivery {
		t.Helper()
		page, err := svc.Endpoints().Deliveries(ctx, m, ep.ID, domain.DeliveryFilter{})
		if err != nil {
			t.Fatalf("deliveries: %v", err)
		}
		return page.Deliveries
	}
	if d := deliveries(); len(d) != 1 || d[0].Status != domain.DeliveryPending {
		t.Fatalf("deliveries before the workers: %+v; want one pending", d)
	}

	api := stripetest.NewAPI(t) // the workers' Stripe: the invoice's tasks were cancelled by its payment
	env := []string{"DATABASE_URL=" + url, "STRIPE_API_BASE=" + api.URL(), "RECOUP_WEBHOOK_ALLOW_PRIVATE=true",
		"RECOUP_WORKER_POLL=100ms", "RECOUP_RECONCILE_INTERVAL=0"}
	first, firstLogs := startWorker(t, env...)
	started <- first
	select {
	case <-killed:
	case <-time.After(time.Minute):
		t.Fatalf("the first worker never sent the message:\n%s", firstLogs.String())
	}
	if d := deliveries(); len(d) != 1 || d[0].Status == domain.DeliveryDelivered {
		t.Fatalf("after the kill: %+v; want the delivery not recorded", d)
	}

	second, secondLogs := startWorker(t, env...)
	deadline := time.Now().Add(2 * time.Minute)
	for d := deliveries(); d[0].Status != domain.DeliveryDelivered && time.Now().Before(deadline); d = deliveries() {
		time.Sleep(200 * time.Millisecond)
	}
	terminate(t, second, secondLogs)

	d := deliveries()[0]
	if d.Status != domain.DeliveryDelivered || d.Attempts != 2 {
		t.Fatalf("the delivery is %s after %d attempts; want delivered after 2\n%s", d.Status, d.Attempts, secondLogs.String())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ids) != 2 || ids[0] == "" || ids[0] != ids[1] {
		t.Errorf("the endpoint got webhook-ids %q; want the same one twice", ids)
	}
}
