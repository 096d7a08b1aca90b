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

// TestKilledWorkerCancelsTheSubscriptionOnce: a `recoup worker` killed
// with SIGKILL right after Stripe canceled a subscription for an invoice's
// end_dunning, before it recorded the outcome, leaves the task claimable
// once its lease expires; the next worker repeats the cancel with the same
// idempotency key, Stripe cancels once, and the task succeeds once.
func TestKilledWorkerCancelsTheSubscriptionOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := migratedDatabase(t)
	db := pgtest.Open(t, url)
	api := stripetest.NewAPI(t)

	// The merchant, its policy and an invoice whose attempts are spent,
	// recorded in process on the database the workers share.
	svc, err := recoup.New(recoup.Options{Storage: postgres.New(db), WebhookSecrets: []string{testSecret}})
	if err != nil {
		t.Fatal(err)
	}
	account := stripetest.NewID("acct_")
	m, _, err := svc.Merchants().Create(ctx, "Shop", account)
	if err != nil {
		t.Fatal(err)
	}
	p := domain.DefaultDunningPolicy()
	p.OnExhausted = domain.ExhaustedCancelSubscription
	if _, err := svc.Policies().Set(ctx, m, p); err != nil {
		t.Fatal(err)
	}
	invoice, sub, charge := stripetest.NewID("in_"), stripetest.NewID("sub_"), stripetest.NewID("ch_")
	api.PutCustomer(account, "cus_jenny", "jenny@example.com")
	api.PutSubscription(account, stripetest.Subscription{ID: sub, Customer: "cus_jenny", Status: "past_due"})
	api.PutCharge(account, stripetest.Charge{ID: charge, Invoice: invoice, Customer: "cus_jenny", Amount: 2000})
	inv := stripetest.Invoice{ID: invoice, Customer: "cus_jenny", CustomerEmail: "jenny@example.com", AmountDue: 2000,
		AttemptCount: 8, Subscription: sub, HostedInvoiceURL: "https://invoice.stripe.com/i/" + invoice}
	withCharge := inv
	withCharge.Charge = charge
	api.PutInvoice(account, withCharge)
	now := time.Now()
	payload := stripetest.Event{Type: domain.EventInvoicePaymentFailed, Account: account, Created: now, Object: inv}.JSON()
	req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(payload))
	req.Header.Set("Stripe-Signature", stripetest.Sign(payload, testSecret, now))
	rec := httptest.NewRecorder()
	svc.WebhookHandler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("webhook: %d %s", rec.Code, rec.Body)
	}
	var end string
	if err := db.NewRaw("SELECT id FROM tasks WHERE type = 'end_dunning' AND status = 'pending'").Scan(ctx, &end); err != nil {
		t.Fatalf("the spent invoice's end_dunning: %v", err)
	}

	// The first worker is killed once Stripe has canceled, before the
	// answer reaches it.
	path := "/v1/subscriptions/" + sub
	started, killed := make(chan *exec.Cmd, 1), make(chan struct{})
	var once sync.Once
	api.OnAnswer(http.MethodDelete, path, func(stripetest.Request) {
		once.Do(func() {
			w := <-started
			_ = w.Process.Signal(syscall.SIGKILL)
			_ = w.Wait()
			close(killed)
		})
	})
	env := []string{"DATABASE_URL=" + url, "STRIPE_API_BASE=" + api.URL(), "RECOUP_WORKER_LEASE=3s", "RECOUP_WORKER_POLL=100ms"}
	first, firstLogs := startWorker(t, env...)
	started <- first
	select {
	case <-killed:
	case <-time.After(time.Minute):
		t.Fatalf("the first worker never canceled the subscription:\n%s", firstLogs.String())
	}
	taskStatus := func() (status, reason string, attempts int) {
		t.Helper()
		err := db.NewRaw("SELECT status, reason, attempts FROM tasks WHERE id = ?", end).Scan(ctx, &status, &reason, &attempts)
		if err != nil {
			t.Fatalf("read the end_dunning: %v", err)
		}
		return status, reason, attempts
	}
	if status, _, _ := taskStatus(); status != "running" {
		t.Fatalf("after the kill the end_dunning is %s; want running, held by the dead worker", status)
	}

	second, secondLogs := startWorker(t, env...)
	deadline := time.Now().Add(time.Minute)
	for status, _, _ := taskStatus(); status == "running" && time.Now().Before(deadline); status, _, _ = taskStatus() {
		time.Sleep(100 * time.Millisecond)
	}
	terminate(t, second, secondLogs)

	status, reason, attempts := taskStatus()
	if status != "succeeded" || reason != string(domain.ExhaustedCancelSubscription) || attempts != 2 {
		t.Fatalf("the end_dunning is %s (%q) after %d claims; want succeeded (cancel_subscription) after 2\n%s",
			status, reason, attempts, secondLogs.String())
	}
	var keys []string
	effective := 0
	for _, r := range api.Requests() {
		if r.Method == http.MethodDelete && r.Path == path {
			keys = append(keys, r.IdempotencyKey)
			if r.Status == http.StatusOK && !r.Replayed {
				effective++
			}
		}
	}
	if len(keys) != 2 || keys[0] == "" || keys[0] != keys[1] {
		t.Errorf("cancel requests with idempotency keys %q; want two with the same key", keys)
	}
	if effective != 1 {
		t.Errorf("%d cancel requests canceled; want exactly one", effective)
	}
	if s, ok := api.Subscription(account, sub); !ok || s.Status != "canceled" {
		t.Errorf("the subscription is %q; want canceled", s.Status)
	}
}
