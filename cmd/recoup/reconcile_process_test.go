package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/recoupdev/recoup/app"
	"github.com/recoupdev/recoup/internal/pgtest"
	"github.com/recoupdev/recoup/internal/stripetest"
)

// TestReconcileProcessesDuringAWebhookStorm: two `recoup reconcile`
// processes run at once on one database while `recoup serve` receives the
// same undelivered events as webhooks, over and over until both have
// ended: each event's effects are applied exactly once, and every other
// arrival is a duplicate.
func TestReconcileProcessesDuringAWebhookStorm(t *testing.T) {
	url := migratedDatabase(t)
	srv := startServe(t, []string{"DATABASE_URL=" + url}, "--worker=false")
	api := stripetest.NewAPI(t)
	// A slow listing keeps each reconciliation on its merchant long
	// enough for the other process to find it taken.
	api.Hold(http.MethodGet, "/v1/events", 200*time.Millisecond)
	const perAccount, senders = 15, 3
	var payloads [][]byte
	for _, account := range []string{"acct_1StormA", "acct_1StormB"} {
		createMerchant(t, srv.base, account)
		for range perAccount {
			p := failedInvoiceEvent(account)
			api.AddEvent(account, p, false)
			payloads = append(payloads, p)
		}
	}

	type run struct {
		counts app.ReconcileResult
		err    error
		stderr string
	}
	runs := make([]run, 2)
	var reconciling sync.WaitGroup
	for i := range runs {
		cmd := exec.Command(binary, "reconcile", "--since", "24h")
		cmd.Env = append(os.Environ(), "DATABASE_URL="+url, "STRIPE_API_KEY=sk_test_storm", "STRIPE_API_BASE="+api.URL())
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatalf("start recoup reconcile: %v", err)
		}
		reconciling.Go(func() {
			runs[i].err = cmd.Wait()
			runs[i].stderr = stderr.String()
			if runs[i].err == nil {
				runs[i].err = json.Unmarshal(stdout.Bytes(), &runs[i].counts)
			}
		})
	}
	done := make(chan struct{})
	go func() {
		reconciling.Wait()
		close(done)
	}()

	// The storm starts as the first listing is answered, when a
	// reconciliation starts applying what it listed, and delivers every
	// event again and again until both reconciliations have ended, then
	// once more.
	for listed := false; !listed; {
		select {
		case <-done:
			listed = true
		case <-time.After(5 * time.Millisecond):
			listed = slices.ContainsFunc(api.Requests(), func(r stripetest.Request) bool { return r.Path == "/v1/events" })
		}
	}
	var delivered, processed atomic.Int64
	var storm sync.WaitGroup
	for range senders {
		storm.Go(func() {
			for last := false; !last; {
				select {
				case <-done:
					last = true
				default:
				}
				for i := range payloads {
					// Newest first: the reconciliations go oldest first.
					status, ans := deliver(t, srv.base, payloads[len(payloads)-1-i])
					if status != http.StatusOK {
						t.Errorf("delivery answered %d: %+v", status, ans)
						continue
					}
					delivered.Add(1)
					if ans.Processed {
						processed.Add(1)
					}
				}
			}
		})
	}
	storm.Wait()

	var total app.ReconcileResult
	for i, r := range runs {
		if r.err != nil {
			t.Fatalf("recoup reconcile %d: %v\n%s", i, r.err, r.stderr)
		}
		total.Merchants += r.counts.Merchants
		total.Listed += r.counts.Listed
		total.Processed += r.counts.Processed
		total.Duplicates += r.counts.Duplicates
		total.Failed += r.counts.Failed + r.counts.Ignored
	}
	t.Logf("reconciliations %+v %+v; webhooks: %d delivered, %d processed", runs[0].counts, runs[1].counts, delivered.Load(), processed.Load())
	if total.Failed != 0 || total.Listed != total.Processed+total.Duplicates {
		t.Errorf("reconciliations counted %+v: want every listed event processed or a duplicate", total)
	}
	if got := total.Processed + int(processed.Load()); got != len(payloads) {
		t.Errorf("%d events processed by reconciliation and webhook together; want each of the %d once", got, len(payloads))
	}

	db := pgtest.Open(t, url)
	ctx := context.Background()
	var perEvent []int
	if err := db.NewRaw("SELECT count(*) FROM tasks GROUP BY stripe_event_id").Scan(ctx, &perEvent); err != nil {
		t.Fatal(err)
	}
	var locks int
	if err := db.NewRaw("SELECT count(*) FROM processed_events").Scan(ctx, &locks); err != nil {
		t.Fatal(err)
	}
	if len(perEvent) != len(payloads) || locks != len(payloads) {
		t.Errorf("tasks of %d events and %d locks; want %d of each", len(perEvent), locks, len(payloads))
	}
	for _, n := range perEvent {
		// The 4 tasks of one invoice.payment_failed (attempt 1): a notice,
		// two reminders and a payment retry.
		if n != 4 {
			t.Errorf("an event made %d tasks; want the 4 of one delivery", n)
		}
	}
}
