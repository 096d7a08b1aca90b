package recoup_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup"
	"github.com/recoupdev/recoup/adapters/memory"
	"github.com/recoupdev/recoup/adapters/postgres"
	"github.com/recoupdev/recoup/adapters/stripe"
	"github.com/recoupdev/recoup/app"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/clocktest"
	"github.com/recoupdev/recoup/internal/pgtest"
	"github.com/recoupdev/recoup/internal/stripetest"
	"github.com/recoupdev/recoup/ports"
)

// clockedStorages makes a fresh store of each adapter, the memory one on
// the test's clock (PostgreSQL keeps the times it is given).
var clockedStorages = map[string]func(t *testing.T, clock ports.Clock) ports.Storage{
	"memory":   func(t *testing.T, clock ports.Clock) ports.Storage { return memory.New(clock) },
	"postgres": func(t *testing.T, _ ports.Clock) ports.Storage { return postgres.New(pgtest.NewMigratedDB(t)) },
}

// deathLease is the workers' lease in the death tests.
const deathLease = time.Minute

// deathRig is two recoup services on one storage and one scripted Stripe
// API, on a test clock: first's storage goes dark when dying.die() is
// called (its worker dies), second's stays up. merchant, on account, has
// the policy the rig was made with.
type deathRig struct {
	start         time.Time
	clock         *clocktest.Clock
	api           *stripetest.API
	store         ports.Storage // second's: the same storage, never dark
	dying         *dyingStorage
	first, second *recoup.Service
	account       string
	merchant      domain.Merchant
}

func newDeathRig(t *testing.T, storage func(t *testing.T, clock ports.Clock) ports.Storage, p domain.DunningPolicy) deathRig {
	t.Helper()
	r := deathRig{start: time.Now().UTC().Truncate(time.Second), api: stripetest.NewAPI(t), account: stripetest.NewID("acct_")}
	r.clock = clocktest.New(r.start)
	r.api.SetClock(r.clock.Now)
	gw := stripe.NewGateway(stripe.GatewayConfig{APIKey: "sk_test_death", APIBase: r.api.URL()})
	store := storage(t, r.clock)
	r.store, r.dying = store, &dyingStorage{Storage: store}
	cfg := app.WorkerConfig{Lease: deathLease}
	r.first = newService(t, recoup.Options{Storage: r.dying, Gateway: gw, Clock: r.clock, ReconcileInterval: -1, Worker: cfg})
	r.second = newService(t, recoup.Options{Storage: store, Gateway: gw, Clock: r.clock, ReconcileInterval: -1, Worker: cfg})
	var err error
	r.merchant, _, err = r.second.Merchants().Create(t.Context(), "Shop", r.account)
	if err == nil {
		_, err = r.second.Policies().Set(t.Context(), r.merchant, p)
	}
	if err != nil {
		t.Fatalf("merchant and policy: %v", err)
	}
	return r
}

// errDead is what a dead worker's storage answers.
var errDead = errors.New("the worker is dead")

// dyingStorage is a worker's view of storage that goes dark when the
// worker dies: from then on it records nothing, as a killed process
// would not. Its claims stay behind, running, until their leases expire.
type dyingStorage struct {
	ports.Storage
	dead atomic.Bool
}

func (d *dyingStorage) die() { d.dead.Store(true) }

func (d *dyingStorage) InTx(ctx context.Context, fn func(ctx context.Context, tx ports.Tx) error) error {
	if d.dead.Load() {
		return errDead
	}
	return d.Storage.InTx(ctx, fn)
}

func (d *dyingStorage) Queue() ports.TaskQueue { return dyingQueue{d.Storage.Queue(), d} }

type dyingQueue struct {
	ports.TaskQueue
	d *dyingStorage
}

func (q dyingQueue) Finish(ctx context.Context, merchant domain.MerchantID, id domain.TaskID, attempt int, res domain.TaskResult) error {
	if q.d.dead.Load() {
		return errDead
	}
	return q.TaskQueue.Finish(ctx, merchant, id, attempt, res)
}

// TestEndDunningActsOnceAcrossAWorkerDeath: the worker running an
// invoice's end_dunning dies after its Stripe request went out and before
// it recorded the outcome; once the claim's lease expires another worker
// runs the task again with the same idempotency key, Stripe acts once,
// and the task succeeds once. On both adapters, in process (the
// PostgreSQL case with a killed process is in cmd/recoup).
func TestEndDunningActsOnceAcrossAWorkerDeath(t *testing.T) {
	for name, storage := range clockedStorages {
		t.Run(name, func(t *testing.T) {
			is := is.New(t)
			ctx := t.Context()
			p := domain.DefaultDunningPolicy()
			p.OnExhausted = domain.ExhaustedCancelSubscription
			rig := newDeathRig(t, storage, p)
			start, clock, api, dying, first, second := rig.start, rig.clock, rig.api, rig.dying, rig.first, rig.second
			account, m := rig.account, rig.merchant

			// An invoice whose attempts are spent: its dunning ends at once.
			invoice, sub, charge := stripetest.NewID("in_"), stripetest.NewID("sub_"), stripetest.NewID("ch_")
			api.PutCustomer(account, "cus_jenny", "jenny@example.com")
			api.PutSubscription(account, stripetest.Subscription{ID: sub, Customer: "cus_jenny", Status: "past_due"})
			api.PutCharge(account, stripetest.Charge{ID: charge, Invoice: invoice, Customer: "cus_jenny", Amount: 2000, Created: start})
			inv := stripetest.Invoice{ID: invoice, Customer: "cus_jenny", CustomerEmail: "jenny@example.com", AmountDue: 2000,
				AttemptCount: 8, Subscription: sub, HostedInvoiceURL: "https://invoice.stripe.com/i/" + invoice}
			withCharge := inv
			withCharge.Charge = charge
			api.PutInvoice(account, withCharge)
			payload := stripetest.Event{Type: domain.EventInvoicePaymentFailed, Account: account, Created: start, Object: inv}.JSON()
			rec := httptest.NewRecorder()
			second.WebhookHandler().ServeHTTP(rec, signedEventAt(t, "/", payload, start))
			is.Equal(rec.Code, http.StatusOK)
			page, err := second.Tasks().List(ctx, m, domain.TaskFilter{Limit: domain.MaxPageSize})
			is.NoErr(err)
			var end domain.Task
			for _, task := range page.Tasks {
				if task.Type == domain.TypeEndDunning {
					is.Equal(end.ID, domain.TaskID("")) // one end_dunning
					end = task
				}
			}
			is.Equal(end.Status, domain.StatusPending) // planned, due at once
			is.True(!end.RunAt.After(start))

			// The first worker dies as Stripe answers its request.
			path := "/v1/subscriptions/" + sub
			api.OnAnswer(http.MethodDelete, path, func(stripetest.Request) { dying.die() })
			_, err = first.Worker().RunOnce(ctx)
			is.NoErr(err)
			is.Equal(subscriptionStatus(t, api, account, sub), "canceled") // Stripe canceled
			got, err := second.Tasks().Get(ctx, m, end.ID)
			is.NoErr(err)
			is.Equal(got.Status, domain.StatusRunning) // but nobody recorded it

			// Its lease expires; the second worker runs the task again.
			clock.Add(deathLease + time.Second)
			_, err = second.Worker().RunOnce(ctx)
			is.NoErr(err)
			got, err = second.Tasks().Get(ctx, m, end.ID)
			is.NoErr(err)
			is.Equal(got.Status, domain.StatusSucceeded) // it succeeded
			is.Equal(got.Reason, string(domain.ExhaustedCancelSubscription))
			is.Equal(got.Attempts, 2) // on its second claim

			var sent, effective int
			for _, r := range api.Requests() {
				if r.Method != http.MethodDelete || r.Path != path {
					continue
				}
				sent++
				is.Equal(r.Account, account)
				is.Equal(r.IdempotencyKey, domain.RunKey(end)) // both runs with the same key
				if r.Status == http.StatusOK && !r.Replayed {
					effective++
				}
			}
			is.Equal(sent, 2)                                              // the cancel went out once per run, with the same key
			is.Equal(effective, 1)                                         // and canceled once: the repeat found it canceled
			is.Equal(subscriptionStatus(t, api, account, sub), "canceled") // for good

			page, err = second.Tasks().List(ctx, m, domain.TaskFilter{Limit: domain.MaxPageSize})
			is.NoErr(err)
			ends := 0
			for _, task := range page.Tasks {
				if task.Type == domain.TypeEndDunning {
					ends++
				}
			}
			is.Equal(ends, 1) // and no second end was planned
		})
	}
}

func subscriptionStatus(t *testing.T, api *stripetest.API, account, id string) string {
	t.Helper()
	sub, ok := api.Subscription(account, id)
	if !ok {
		t.Fatalf("the Stripe account has no subscription %s", id)
	}
	return sub.Status
}

// TestCloseOnceAcrossAWorkerDeath: a task whose own Stripe call closes
// its invoice (a retry that pays it, an end_dunning that marks it
// uncollectible) dies right after Stripe acted. The run after its lease
// finds the invoice closed; rather than cancel the task as closed by
// someone else, it makes the call again with the same idempotency key,
// which Stripe answers with its first answer: the task succeeds, Stripe
// acted once, and a payment counts as recoup's even when invoice.paid
// was recorded first.
func TestCloseOnceAcrossAWorkerDeath(t *testing.T) {
	cases := []struct {
		name     string
		attempts int // the failed invoice's attempt_count
		task     domain.TaskType
		action   domain.ExhaustedAction
		call     string // the path of the Stripe call that closes the invoice, after /v1/invoices/{id}
		status   string // the invoice's status after it
		reason   string // the task's reason when it succeeds
	}{
		{"a retry pays", 1, domain.TypeRetryPayment, domain.ExhaustedNone, "/pay", domain.InvoicePaid, domain.ReasonPaid},
		{"an end marks uncollectible", 8, domain.TypeEndDunning, domain.ExhaustedMarkUncollectible, "/mark_uncollectible",
			domain.InvoiceUncollectible, string(domain.ExhaustedMarkUncollectible)},
	}
	for name, storage := range clockedStorages {
		for _, tc := range cases {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				is := is.New(t)
				ctx := t.Context()
				p := domain.DefaultDunningPolicy()
				p.OnExhausted, p.Emails = tc.action, domain.EmailPolicy{} // no emails: only the task of the case runs
				rig := newDeathRig(t, storage, p)
				start, clock, api, dying, first, second := rig.start, rig.clock, rig.api, rig.dying, rig.first, rig.second
				account, m := rig.account, rig.merchant

				invoice := stripetest.NewID("in_")
				api.PutCustomer(account, "cus_jenny", "jenny@example.com")
				inv := stripetest.Invoice{ID: invoice, Customer: "cus_jenny", CustomerEmail: "jenny@example.com", AmountDue: 2000,
					AttemptCount: tc.attempts, HostedInvoiceURL: "https://invoice.stripe.com/i/" + invoice}
				api.PutInvoice(account, inv)
				payload := stripetest.Event{Type: domain.EventInvoicePaymentFailed, Account: account, Created: start, Object: inv}.JSON()
				rec := httptest.NewRecorder()
				second.WebhookHandler().ServeHTTP(rec, signedEventAt(t, "/", payload, start))
				is.Equal(rec.Code, http.StatusOK)
				page, err := second.Tasks().List(ctx, m, domain.TaskFilter{Limit: domain.MaxPageSize})
				is.NoErr(err)
				var task domain.Task
				for _, pt := range page.Tasks {
					if pt.Type == tc.task && pt.Status == domain.StatusPending {
						task = pt
					}
				}
				is.True(task.ID != "") // the task of the case is planned
				if d := task.RunAt.Sub(clock.Now()); d > 0 {
					clock.Add(d)
				}

				// The first worker dies as Stripe answers its call.
				path := "/v1/invoices/" + invoice + tc.call
				api.OnAnswer(http.MethodPost, path, func(stripetest.Request) { dying.die() })
				_, err = first.Worker().RunOnce(ctx)
				is.NoErr(err)
				now, _ := api.Invoice(account, invoice)
				is.Equal(now.Status, tc.status) // Stripe acted
				got, err := second.Tasks().Get(ctx, m, task.ID)
				is.NoErr(err)
				is.Equal(got.Status, domain.StatusRunning) // but nobody recorded it

				if tc.task == domain.TypeRetryPayment {
					// Stripe's invoice.paid comes before the task runs again.
					paid := inv
					paid.Status, paid.AmountPaid, paid.AttemptCount = "paid", 2000, tc.attempts+1
					payload := stripetest.Event{Type: domain.EventInvoicePaid, Account: account, Created: clock.Now(), Object: paid}.JSON()
					rec := httptest.NewRecorder()
					second.WebhookHandler().ServeHTTP(rec, signedEventAt(t, "/", payload, clock.Now()))
					is.Equal(rec.Code, http.StatusOK)
				}

				clock.Add(deathLease + time.Second)
				_, err = second.Worker().RunOnce(ctx)
				is.NoErr(err)
				got, err = second.Tasks().Get(ctx, m, task.ID)
				is.NoErr(err)
				is.Equal(got.Status, domain.StatusSucceeded) // it succeeded, not "cancelled: already closed"
				is.Equal(got.Reason, tc.reason)
				is.Equal(got.Attempts, 2)

				var sent, effective int
				for _, r := range api.Requests() {
					if r.Method != http.MethodPost || r.Path != path {
						continue
					}
					sent++
					is.Equal(r.IdempotencyKey, domain.RunKey(task)) // both runs with the same key
					if r.Status == http.StatusOK && !r.Replayed {
						effective++
					}
				}
				is.Equal(sent, 2)      // the call went out once per run
				is.Equal(effective, 1) // and Stripe acted once: the second was its first answer again

				if tc.task == domain.TypeRetryPayment {
					record, err := rig.store.Ledger().Invoice(ctx, m.ID, invoice)
					is.NoErr(err)
					is.Equal(record.RecoveredBy, domain.RecoveredByRecoupRetry) // recoup's payment, though reported first by Stripe
				}
			})
		}
	}
}
