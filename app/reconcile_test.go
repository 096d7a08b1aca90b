package app_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/adapters/stripe"
	"github.com/recoupdev/recoup/app"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/stripetest"
	"github.com/recoupdev/recoup/ports"
)

// listedEvent is one event the eventsGateway lists.
type listedEvent struct {
	id, typ   string
	created   time.Time
	delivered bool // whether Stripe's webhook delivery succeeded
	payload   []byte
}

// eventsQuery is one listing the eventsGateway answered.
type eventsQuery struct {
	account string
	q       ports.EventQuery
}

// eventsGateway is a scripted gateway whose Events lists, per connected
// account, the events a test adds, filtered and paged as Stripe does:
// newest first, by type, created at or after Since (to the second), only
// undelivered ones when asked, after StartingAfter, Limit per page.
type eventsGateway struct {
	*scriptedGateway

	mu      sync.Mutex
	events  map[string][]listedEvent // by account, newest first
	queries []eventsQuery
	calls   map[string]int // listings asked, by account
	// fail, if set, decides whether the account's call-th listing
	// (1-based) fails, and how.
	fail func(account string, call int) error
	// before, if set, runs at every listing before it answers, on the
	// caller's goroutine and without the gateway's lock.
	before func(account string, call int)
}

func newEventsGateway() *eventsGateway {
	return &eventsGateway{scriptedGateway: &scriptedGateway{}, events: map[string][]listedEvent{}, calls: map[string]int{}}
}

// add lists ev on its account (ev.Account), delivered or not, and returns
// its id. ev.Created must be set.
func (g *eventsGateway) add(ev stripetest.Event, delivered bool) string {
	if ev.ID == "" {
		ev.ID = stripetest.NewID("evt_")
	}
	g.addRaw(ev.Account, listedEvent{id: ev.ID, typ: ev.Type, created: ev.Created, delivered: delivered, payload: ev.JSON()})
	return ev.ID
}

// addRaw lists an event with any payload on the account.
func (g *eventsGateway) addRaw(account string, e listedEvent) {
	g.mu.Lock()
	defer g.mu.Unlock()
	list := append(g.events[account], e)
	// Newest first; of two created in the same second, the later added.
	slices.SortStableFunc(list, func(a, b listedEvent) int { return b.created.Compare(a.created) })
	g.events[account] = list
}

func (g *eventsGateway) Events(_ context.Context, account string, q ports.EventQuery) (ports.EventPage, error) {
	g.mu.Lock()
	g.calls[account]++
	call := g.calls[account]
	g.queries = append(g.queries, eventsQuery{account, q})
	before, fail := g.before, g.fail
	g.mu.Unlock()
	if before != nil {
		before(account, call)
	}
	if fail != nil {
		if err := fail(account, call); err != nil {
			return ports.EventPage{}, err
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	list := g.events[account]
	if q.StartingAfter != "" {
		i := slices.IndexFunc(list, func(e listedEvent) bool { return e.id == q.StartingAfter })
		if i < 0 {
			return ports.EventPage{}, &domain.PaymentError{Kind: domain.PaymentPermanent, Message: "No such event: " + q.StartingAfter}
		}
		list = list[i+1:]
	}
	var matched []listedEvent
	for _, e := range list {
		if slices.Contains(q.Types, e.typ) && e.created.Unix() >= q.Since.Unix() && !(q.Undelivered && e.delivered) {
			matched = append(matched, e)
		}
	}
	page := ports.EventPage{HasMore: len(matched) > q.Limit}
	for _, e := range matched[:min(q.Limit, len(matched))] {
		page.Payloads = append(page.Payloads, e.payload)
		page.LastID = e.id
	}
	return page, nil
}

func (g *eventsGateway) listings() []eventsQuery {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.queries)
}

// reconcileObserver records what a reconciler tells its Observer.
type reconcileObserver struct {
	ports.NopObserver
	mu       sync.Mutex
	outcomes []string
}

func (o *reconcileObserver) ReconciledEvent(outcome string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.outcomes = append(o.outcomes, outcome)
}

// counts returns how many events were reported with each outcome.
func (o *reconcileObserver) counts() map[string]int {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string]int{}
	for _, c := range o.outcomes {
		out[c]++
	}
	return out
}

// reconcileConfig is the tests' configuration: small pages, and a back-off
// short enough that a test never waits on it.
func reconcileConfig() app.ReconcileConfig {
	return app.ReconcileConfig{PageSize: 2, Backoff: time.Microsecond, MaxTries: 3}
}

// reconciler builds a reconciler on the use cases' store and webhook use
// case, with the real Stripe decoder.
func (u *useCases) reconciler(t *testing.T, cfg app.ReconcileConfig, gw ports.PaymentGateway) (*app.Reconciler, *reconcileObserver) {
	t.Helper()
	obs := &reconcileObserver{}
	log := slog.New(slog.NewJSONHandler(u.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r, err := app.NewReconciler(cfg, u.mem, gw, stripe.Decoder{}, u.webhooks, u.clock, log, obs)
	if err != nil {
		t.Fatalf("reconciler: %v", err)
	}
	return r, obs
}

// reconcile runs r over window and fails the test on an error.
func reconcile(t *testing.T, r *app.Reconciler, window time.Duration) app.ReconcileResult {
	t.Helper()
	res, err := r.Run(context.Background(), window)
	if err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	return res
}

// failedEvent is an invoice.payment_failed of the account, created at the
// given time, as Stripe renders it: attempt 1 of an invoice Stripe will
// not retry itself.
func failedEvent(account, invoiceID string, created time.Time) stripetest.Event {
	return stripetest.Event{
		ID: stripetest.NewID("evt_"), Type: domain.EventInvoicePaymentFailed, Account: account, Created: created,
		Object: stripetest.Invoice{
			ID: invoiceID, Customer: "cus_jenny", CustomerEmail: "jenny@example.com", AmountDue: 2000, Currency: "usd",
			AttemptCount: 1, HostedInvoiceURL: "https://invoice.stripe.com/i/test", Subscription: "sub_1",
			Charge: stripetest.NewID("ch_"),
		},
	}
}

// paidEvent is an invoice.paid of the account's invoice, created at the
// given time.
func paidEvent(account, invoiceID string, created time.Time) stripetest.Event {
	return stripetest.Event{
		ID: stripetest.NewID("evt_"), Type: domain.EventInvoicePaid, Account: account, Created: created,
		Object: stripetest.Invoice{
			ID: invoiceID, Customer: "cus_jenny", AmountDue: 2000, AmountPaid: 2000, Currency: "usd",
			AttemptCount: 2, Subscription: "sub_1", Status: "paid",
		},
	}
}

// TestReconcileAppliesEventsInTheirOrder: Stripe lists newest first, yet
// a failure and the payment that ends it, both missed, must come out as
// their webhooks would have in the order they happened: the failure's
// tasks cancelled by the payment, and the invoice reported recovered to
// the merchant's endpoints.
func TestReconcileAppliesEventsInTheirOrder(t *testing.T) {
	for _, pageSize := range []int{1, 100} { // across pages, and within one
		t.Run(fmt.Sprintf("%d a page", pageSize), func(t *testing.T) {
			is := is.New(t)
			u := newUseCases(t, nil)
			m := u.merchant(t, "Acme")
			ep, err := domain.NewWebhookEndpoint(m.ID, "https://hooks.example.com/recoup", []string{"*"}, u.clock.Now())
			is.NoErr(err)
			is.NoErr(u.mem.Endpoints().CreateEndpoint(context.Background(), m.ID, ep))
			gw := newEventsGateway()
			invoice := stripetest.NewID("in_")
			now := u.clock.Now()
			failed := failedEvent(m.StripeAccountID, invoice, now.Add(-2*time.Hour))
			gw.add(failed, false)
			gw.add(paidEvent(m.StripeAccountID, invoice, now.Add(-time.Hour)), false)
			r, _ := u.reconciler(t, app.ReconcileConfig{PageSize: pageSize, Backoff: time.Microsecond}, gw)

			res := reconcile(t, r, 72*time.Hour)

			is.Equal(res, app.ReconcileResult{Merchants: 1, Listed: 2, Processed: 2})
			rec, err := u.mem.Ledger().Invoice(context.Background(), m.ID, invoice)
			is.NoErr(err)
			is.True(rec.Recovered()) // the invoice counts as recovered
			is.Equal(u.recovery(t, m.ID)["usd"], domain.CurrencyRecovery{FailedAmount: 2000, RecoveredAmount: 2000})
			tasks := u.tasksOf(t, m.ID)
			is.Equal(len(tasks), tasksPerFailure) // the failure's tasks were made
			for _, task := range tasks {
				is.Equal(task.StripeEventID, failed.ID)
				is.Equal(task.Status, domain.StatusCancelled) // and cancelled by the payment
				is.Equal(task.Reason, domain.ReasonPaid)
			}
			page, err := u.mem.Endpoints().Deliveries(context.Background(), m.ID, ep.ID, domain.DeliveryFilter{Limit: 10})
			is.NoErr(err)
			var types []string
			for _, d := range page.Deliveries {
				types = append(types, d.EventType)
			}
			is.Equal(types, []string{domain.OutboundInvoiceRecovered}) // the merchant hears of the recovery
		})
	}
}
