package recoup_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup"
	"github.com/recoupdev/recoup/adapters/postgres"
	"github.com/recoupdev/recoup/adapters/stripe"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/clocktest"
	"github.com/recoupdev/recoup/internal/pgtest"
	"github.com/recoupdev/recoup/internal/stripetest"
	"github.com/recoupdev/recoup/ports"
)

// e2eStorages are the two adapters an end-to-end test runs on: the
// in-memory store (nil: recoup's default) and PostgreSQL, a fresh
// migrated database per test.
func e2eStorages() map[string]func(t *testing.T) ports.Storage {
	return map[string]func(t *testing.T) ports.Storage{
		"memory":   func(t *testing.T) ports.Storage { return nil },
		"postgres": func(t *testing.T) ports.Storage { return postgres.New(pgtest.NewMigratedDB(t)) },
	}
}

// TestDunningOverTheStripeAPI drives the composed service, webhook and
// worker, against the scripted Stripe API on both adapters: a stolen card
// is never charged again, insufficient funds are retried on their own
// schedule and paid, and an invoice whose attempts are spent is not
// retried but ends its dunning.
func TestDunningOverTheStripeAPI(t *testing.T) {
	for name, storage := range e2eStorages() {
		t.Run(name, func(t *testing.T) {
			is := is.New(t)
			ctx := t.Context()
			start := time.Now().UTC().Truncate(time.Second)
			clock := clocktest.New(start)
			api := stripetest.NewAPI(t)
			api.SetClock(clock.Now)
			gw := stripe.NewGateway(stripe.GatewayConfig{APIKey: "sk_test_dunning", APIBase: api.URL()})
			svc := newService(t, recoup.Options{Storage: storage(t), Gateway: gw, Clock: clock, ReconcileInterval: -1})
			account := stripetest.NewID("acct_")
			m, _, err := svc.Merchants().Create(ctx, "Shop", account)
			is.NoErr(err)
			api.PutCustomer(account, "cus_jenny", "jenny@example.com")

			stolen, short, spent := stripetest.NewID("in_"), stripetest.NewID("in_"), stripetest.NewID("in_")
			declines := map[string]string{stolen: "stolen_card", short: "insufficient_funds", spent: "generic_decline"}
			for id, attempts := range map[string]int{stolen: 1, short: 1, spent: 8} {
				charge := stripetest.NewID("ch_")
				api.PutCharge(account, stripetest.Charge{ID: charge, Invoice: id, Customer: "cus_jenny", Amount: 2000,
					DeclineCode: declines[id], Created: start})
				api.PutInvoice(account, stripetest.Invoice{ID: id, Customer: "cus_jenny", CustomerEmail: "jenny@example.com",
					AmountDue: 2000, AttemptCount: attempts, Charge: charge, HostedInvoiceURL: "https://invoice.stripe.com/i/" + id})
			}
			for id, attempts := range map[string]int{stolen: 1, short: 1, spent: 8} {
				payload := stripetest.Event{Type: domain.EventInvoicePaymentFailed, Account: account, Created: start,
					Object: stripetest.Invoice{ID: id, Customer: "cus_jenny", CustomerEmail: "jenny@example.com",
						AmountDue: 2000, AttemptCount: attempts}}.JSON()
				rec := httptest.NewRecorder()
				svc.WebhookHandler().ServeHTTP(rec, signedEventAt(t, "/", payload, start))
				is.Equal(rec.Code, http.StatusOK) // delivered
			}
			run := func() {
				t.Helper()
				_, err := svc.Worker().RunOnce(ctx)
				is.NoErr(err)
			}
			tasks := func(status domain.TaskStatus, invoice string, typ domain.TaskType) []domain.Task {
				t.Helper()
				page, err := svc.Tasks().List(ctx, m, domain.TaskFilter{Status: status, Limit: domain.MaxPageSize})
				is.NoErr(err)
				var out []domain.Task
				for _, task := range page.Tasks {
					if task.StripeInvoiceID == invoice && task.Type == typ {
						out = append(out, task)
					}
				}
				return out
			}

			pending := func(invoice string, typ domain.TaskType) []domain.Task {
				t.Helper()
				return tasks(domain.StatusPending, invoice, typ)
			}

			// The payment-failed emails run now and read each decline
			// from Stripe; the plans follow.
			run()
			is.Equal(len(pending(stolen, domain.TypeRetryPayment)), 0) // a stolen card: no retry
			retries := pending(short, domain.TypeRetryPayment)
			is.Equal(len(retries), 1)                                 // insufficient funds: one retry
			is.Equal(retries[0].RunAt.UTC(), start.Add(72*time.Hour)) // on that code's schedule
			is.Equal(retries[0].DeclineCode, "insufficient_funds")    // which it names
			is.Equal(len(pending(spent, domain.TypeRetryPayment)), 0) // attempts spent: no retry
			ended := tasks("", spent, domain.TypeEndDunning)
			is.Equal(len(ended), 1)                                 // but the end of its dunning, once
			is.Equal(ended[0].Status, domain.StatusSucceeded)       // due at once, it ran
			is.Equal(ended[0].Reason, string(domain.ExhaustedNone)) // as the default policy says: nothing more

			// Three days later the retry is due, and paid.
			clock.Add(72*time.Hour + time.Minute)
			run()
			inv, ok := api.Invoice(account, short)
			is.True(ok)
			is.Equal(inv.Status, "paid") // recoup's retry paid it
			for _, r := range api.Requests() {
				if r.Method == http.MethodPost && strings.HasSuffix(r.Path, "/pay") {
					is.True(!strings.Contains(r.Path, stolen)) // the stolen card was never charged
					is.True(!strings.Contains(r.Path, spent))  // nor the spent invoice
					is.Equal(r.Account, account)               // every charge on the merchant's account
				}
			}
		})
	}
}
