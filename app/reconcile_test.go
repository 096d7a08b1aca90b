package app_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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

// taskShape is a task without what differs between two stores that make
// the same decision: its id and merchant.
func taskShape(task domain.Task) string {
	task.ID, task.MerchantID = "", ""
	return fmt.Sprintf("%+v", task)
}

// shapes are the tasks' shapes, sorted.
func shapes(tasks []domain.Task) []string {
	out := make([]string, 0, len(tasks))
	for _, task := range tasks {
		out = append(out, taskShape(task))
	}
	slices.Sort(out)
	return out
}

func TestReconcileProcessesAnUndeliveredEvent(t *testing.T) {
	is := is.New(t)
	u := newUseCases(t, nil)
	m := u.merchant(t, "Acme")
	gw := newEventsGateway()
	ev := failedEvent(m.StripeAccountID, stripetest.NewID("in_"), u.clock.Now().Add(-time.Hour))
	gw.add(ev, false)
	r, obs := u.reconciler(t, reconcileConfig(), gw)

	res := reconcile(t, r, 72*time.Hour)

	is.Equal(res, app.ReconcileResult{Merchants: 1, Listed: 1, Processed: 1}) // the missed event is processed
	stored := u.tasksOf(t, m.ID)
	is.Equal(len(stored), tasksPerFailure) // with the tasks of a failure
	for _, task := range stored {
		is.Equal(task.StripeEventID, ev.ID) // made by that event
		is.Equal(task.MerchantID, m.ID)     // for the account's merchant
	}
	is.Equal(u.recovery(t, m.ID)["usd"].FailedAmount, int64(2000)) // the failure is recorded
	is.True(!u.lockFree(t, ev.ID))                                 // and the event's lock kept

	// The same body delivered by webhook to another deployment makes the
	// same tasks.
	other := newUseCases(t, nil)
	_, _, err := other.merchants.Create(context.Background(), "Acme", m.StripeAccountID)
	is.NoErr(err)
	decoded, err := stripe.Decoder{}.DecodeEvent(ev.JSON())
	is.NoErr(err)
	other.handle(t, decoded)
	var otherMerchant domain.Merchant
	otherMerchant, err = other.mem.Merchants().MerchantByStripeAccount(context.Background(), m.StripeAccountID)
	is.NoErr(err)
	is.Equal(shapes(stored), shapes(other.tasksOf(t, otherMerchant.ID))) // what a delivery would have made

	is.Equal(obs.counts(), map[string]int{ports.DeliveryProcessed: 1}) // the observer hears of it
	webhookSeen, _ := u.obs.seen()
	is.Equal(len(webhookSeen), 0)                                      // not as a webhook delivery
	is.True(strings.Contains(u.logs.String(), `"source":"reconcile"`)) // its log line says where it came from

	// Its webhook, when Stripe finally delivers it, is a duplicate.
	late := u.handle(t, decoded)
	is.Equal(late.Processed, false)
	is.True(strings.Contains(late.Reason, duplicateWords))
	is.Equal(len(u.tasksOf(t, m.ID)), tasksPerFailure) // nothing was made again

	// And so is the event in the next reconciliation, should Stripe still
	// list it.
	again := reconcile(t, r, 72*time.Hour)
	is.Equal(again, app.ReconcileResult{Merchants: 1, Listed: 1, Duplicates: 1})
	is.Equal(len(u.tasksOf(t, m.ID)), tasksPerFailure)
}

func TestReconcileEventAlreadyDeliveredIsADuplicate(t *testing.T) {
	is := is.New(t)
	u := newUseCases(t, nil)
	m := u.merchant(t, "Acme")
	gw := newEventsGateway()
	ev := failedEvent(m.StripeAccountID, stripetest.NewID("in_"), u.clock.Now().Add(-time.Hour))
	// Recoup processed the webhook but Stripe never saw the answer: the
	// event is listed as undelivered.
	gw.add(ev, false)
	decoded, err := stripe.Decoder{}.DecodeEvent(ev.JSON())
	is.NoErr(err)
	first := u.handle(t, decoded)
	is.True(first.Processed)
	// The merchant deletes a task since: processing the event again would
	// make it anew.
	is.NoErr(u.tasks.Delete(context.Background(), m, first.Tasks[0]))
	before, figures := u.tasksOf(t, m.ID), u.recovery(t, m.ID)
	r, obs := u.reconciler(t, reconcileConfig(), gw)

	res := reconcile(t, r, 72*time.Hour)

	is.Equal(res, app.ReconcileResult{Merchants: 1, Listed: 1, Duplicates: 1}) // a duplicate
	is.Equal(u.tasksOf(t, m.ID), before)                                       // that changes nothing
	is.Equal(u.recovery(t, m.ID), figures)
	is.Equal(obs.counts(), map[string]int{ports.DeliveryDuplicate: 1})
}

func TestReconcileListsWhatTheContractSays(t *testing.T) {
	is := is.New(t)
	u := newUseCases(t, nil)
	m := u.merchant(t, "Acme")
	gw := newEventsGateway()
	now := u.clock.Now()
	recent := gw.add(failedEvent(m.StripeAccountID, stripetest.NewID("in_"), now.Add(-10*time.Hour)), false)
	gw.add(failedEvent(m.StripeAccountID, stripetest.NewID("in_"), now.Add(-80*time.Hour)), false) // before the window
	gw.add(failedEvent(m.StripeAccountID, stripetest.NewID("in_"), now.Add(-2*time.Hour)), true)   // delivered
	r, _ := u.reconciler(t, app.ReconcileConfig{Backoff: time.Microsecond}, gw)

	res := reconcile(t, r, 72*time.Hour)

	is.Equal(res, app.ReconcileResult{Merchants: 1, Listed: 1, Processed: 1}) // only the undelivered event in the window
	stored := u.tasksOf(t, m.ID)
	is.Equal(len(stored), tasksPerFailure)
	is.Equal(stored[0].StripeEventID, recent)
	q := gw.listings()
	is.Equal(len(q), 1)                                   // one page
	is.Equal(q[0].account, m.StripeAccountID)             // on the merchant's connected account
	is.True(q[0].q.Since.Equal(now.Add(-72 * time.Hour))) // since the window's start
	is.True(q[0].q.Undelivered)                           // only what Stripe could not deliver
	is.Equal(q[0].q.StartingAfter, "")
	is.Equal(q[0].q.Limit, 100) // the default page
	for _, typ := range []string{
		domain.EventInvoicePaymentFailed, domain.EventInvoicePaymentActionRequired, domain.EventChargeFailed,
		domain.EventCustomerSubscriptionDeleted, domain.EventInvoicePaid, domain.EventInvoiceVoided,
		domain.EventInvoiceMarkedUncollectible, domain.EventCustomerUpdated, domain.EventPaymentMethodAttached,
		domain.EventCustomerSourceExpiring,
	} {
		is.True(slices.Contains(q[0].q.Types, typ)) // every type the policy handles
	}
	for _, typ := range q[0].q.Types {
		is.True(domain.Handles(typ)) // and no other
	}

	t.Run("the window is at most 30 days", func(t *testing.T) {
		is := is.New(t)
		reconcile(t, r, 90*24*time.Hour)
		q := gw.listings()
		is.True(q[len(q)-1].q.Since.Equal(now.Add(-30 * 24 * time.Hour)))
	})
	t.Run("a negative window is none", func(t *testing.T) {
		is := is.New(t)
		res := reconcile(t, r, -time.Hour)
		q := gw.listings()
		is.True(q[len(q)-1].q.Since.Equal(now))
		is.Equal(res, app.ReconcileResult{Merchants: 1})
	})
}

func TestReconcilePagesThroughEverything(t *testing.T) {
	is := is.New(t)
	u := newUseCases(t, nil)
	m := u.merchant(t, "Acme")
	gw := newEventsGateway()
	var ids []string
	for i := range 5 {
		ids = append(ids, gw.add(failedEvent(m.StripeAccountID, stripetest.NewID("in_"), u.clock.Now().Add(-time.Duration(i+1)*time.Minute)), false))
	}
	r, obs := u.reconciler(t, reconcileConfig(), gw) // two events a page

	res := reconcile(t, r, 72*time.Hour)

	is.Equal(res, app.ReconcileResult{Merchants: 1, Listed: 5, Processed: 5}) // every page's events
	byEvent := map[string]int{}
	for _, task := range u.tasksOf(t, m.ID) {
		byEvent[task.StripeEventID]++
	}
	for _, id := range ids {
		is.Equal(byEvent[id], tasksPerFailure) // each event's tasks, once
	}
	var after []string
	for _, q := range gw.listings() {
		is.Equal(q.q.Limit, 2)
		after = append(after, q.q.StartingAfter)
	}
	is.Equal(after, []string{"", ids[1], ids[3]}) // each page after the last event of the one before
	is.Equal(obs.counts(), map[string]int{ports.DeliveryProcessed: 5})
}

func TestReconcileKeepsMerchantsApart(t *testing.T) {
	is := is.New(t)
	u := newUseCases(t, nil)
	a, b, quiet := u.merchant(t, "A"), u.merchant(t, "B"), u.merchant(t, "Quiet")
	gw := newEventsGateway()
	invoice := stripetest.NewID("in_") // the same Stripe id on both accounts
	at := u.clock.Now().Add(-time.Hour)
	evA := gw.add(failedEvent(a.StripeAccountID, invoice, at), false)
	evB1 := gw.add(failedEvent(b.StripeAccountID, invoice, at), false)
	evB2 := gw.add(failedEvent(b.StripeAccountID, stripetest.NewID("in_"), at), false)
	gw.add(failedEvent("acct_nobodys", stripetest.NewID("in_"), at), false) // an account no merchant has
	r, _ := u.reconciler(t, reconcileConfig(), gw)

	res := reconcile(t, r, 72*time.Hour)

	is.Equal(res, app.ReconcileResult{Merchants: 3, Listed: 3, Processed: 3}) // every merchant, its own events
	events := func(m domain.MerchantID) map[string]bool {
		out := map[string]bool{}
		for _, task := range u.tasksOf(t, m) {
			out[task.StripeEventID] = true
		}
		return out
	}
	is.Equal(events(a.ID), map[string]bool{evA: true})              // A's tasks come from A's event only
	is.Equal(events(b.ID), map[string]bool{evB1: true, evB2: true}) // B's from B's
	is.Equal(len(u.tasksOf(t, quiet.ID)), 0)                        // the quiet merchant has none
	var accounts []string
	for _, q := range gw.listings() {
		accounts = append(accounts, q.account)
	}
	slices.Sort(accounts)
	want := []string{a.StripeAccountID, b.StripeAccountID, quiet.StripeAccountID}
	slices.Sort(want)
	is.Equal(accounts, want) // each merchant's account listed once, and only those
	is.Equal(u.pendingAnywhere(t), 3*tasksPerFailure)
}

func TestReconcileBacksOffOnTransientErrors(t *testing.T) {
	transient := func() error {
		return &domain.PaymentError{Kind: domain.PaymentTransient, Code: "rate_limit", Message: "Too many requests"}
	}
	permanent := &domain.PaymentError{Kind: domain.PaymentPermanent, Message: "Stripe refused the platform's API key or its permissions"}
	cases := []struct {
		name string
		// fail is the answer to a's listings
		fail      func(call int) error
		wantCalls int  // listings of a's account
		wantA     bool // whether a's event was processed
	}{
		{"a rate limit, twice, then an answer", func(call int) error {
			if call <= 2 {
				return transient()
			}
			return nil
		}, 3, true},
		{"Stripe unreachable past every try", func(int) error { return transient() }, 3, false},
		{"a permanent error is not tried again", func(int) error { return permanent }, 1, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			u := newUseCases(t, nil)
			a, b := u.merchant(t, "A"), u.merchant(t, "B")
			gw := newEventsGateway()
			at := u.clock.Now().Add(-time.Hour)
			gw.add(failedEvent(a.StripeAccountID, stripetest.NewID("in_"), at), false)
			gw.add(failedEvent(b.StripeAccountID, stripetest.NewID("in_"), at), false)
			gw.fail = func(account string, call int) error {
				if account == a.StripeAccountID {
					return tc.fail(call)
				}
				return nil
			}
			r, _ := u.reconciler(t, reconcileConfig(), gw) // three tries

			res := reconcile(t, r, 72*time.Hour)

			gw.mu.Lock()
			calls := gw.calls[a.StripeAccountID]
			gw.mu.Unlock()
			is.Equal(calls, tc.wantCalls) // tried as often as the error allows
			if tc.wantA {
				is.Equal(res, app.ReconcileResult{Merchants: 2, Listed: 2, Processed: 2})
				is.Equal(len(u.tasksOf(t, a.ID)), tasksPerFailure)
			} else {
				is.Equal(res, app.ReconcileResult{Merchants: 2, Listed: 1, Processed: 1, Failed: 1}) // a's failure counted
				is.Equal(len(u.tasksOf(t, a.ID)), 0)
				is.True(strings.Contains(u.logs.String(), `"level":"ERROR","msg":"reconcile: merchant"`)) // and logged
			}
			is.Equal(len(u.tasksOf(t, b.ID)), tasksPerFailure) // b is reconciled whatever happens to a
		})
	}

	t.Run("a failure on a later page keeps the earlier pages", func(t *testing.T) {
		is := is.New(t)
		u := newUseCases(t, nil)
		m := u.merchant(t, "Acme")
		gw := newEventsGateway()
		for i := range 3 {
			gw.add(failedEvent(m.StripeAccountID, stripetest.NewID("in_"), u.clock.Now().Add(-time.Duration(i+1)*time.Minute)), false)
		}
		gw.fail = func(_ string, call int) error {
			if call > 1 {
				return permanent
			}
			return nil
		}
		r, _ := u.reconciler(t, reconcileConfig(), gw)

		res := reconcile(t, r, 72*time.Hour)

		is.Equal(res, app.ReconcileResult{Merchants: 1, Listed: 2, Processed: 2, Failed: 1})
		is.Equal(len(u.tasksOf(t, m.ID)), 2*tasksPerFailure)

		gw.fail = nil // the next run gets the rest
		again := reconcile(t, r, 72*time.Hour)
		is.Equal(again, app.ReconcileResult{Merchants: 1, Listed: 3, Processed: 1, Duplicates: 2})
		is.Equal(len(u.tasksOf(t, m.ID)), 3*tasksPerFailure)
	})
}

func TestReconcileCountsEachOutcome(t *testing.T) {
	is := is.New(t)
	u, fs := withFaultyStore(t)
	m := u.merchant(t, "Acme")
	gw := newEventsGateway()
	now := u.clock.Now()
	// Oldest first, as they are applied: the one whose unit of work
	// fails, a live event (this deployment is in test mode), a body that
	// is not an event, a duplicate and a new one.
	failing := gw.add(failedEvent(m.StripeAccountID, stripetest.NewID("in_"), now.Add(-5*time.Minute)), false)
	live := failedEvent(m.StripeAccountID, stripetest.NewID("in_"), now.Add(-4*time.Minute))
	live.Livemode = true
	gw.add(live, false)
	gw.addRaw(m.StripeAccountID, listedEvent{id: "evt_garbled", typ: domain.EventInvoicePaid, created: now.Add(-3 * time.Minute),
		payload: []byte(`{"id": "evt_garbled", "object": "event", "type": "invoice.paid", "data": 7}`)})
	dup := failedEvent(m.StripeAccountID, stripetest.NewID("in_"), now.Add(-2*time.Minute))
	gw.add(dup, false)
	decoded, err := stripe.Decoder{}.DecodeEvent(dup.JSON())
	is.NoErr(err)
	u.handle(t, decoded)
	fresh := gw.add(failedEvent(m.StripeAccountID, stripetest.NewID("in_"), now.Add(-1*time.Minute)), false)
	var schedules atomic.Int32
	fs.beforeStep(func(step string) error {
		if step == stepSchedule && schedules.Add(1) == 1 { // the oldest event's
			return errDiskFull
		}
		return nil
	})
	r, obs := u.reconciler(t, reconcileConfig(), gw)

	res := reconcile(t, r, 72*time.Hour)

	is.Equal(res, app.ReconcileResult{Merchants: 1, Listed: 5, Processed: 1, Duplicates: 1, Ignored: 1, Failed: 2})
	is.Equal(obs.counts(), map[string]int{ports.DeliveryProcessed: 1, ports.DeliveryDuplicate: 1, ports.DeliveryIgnored: 1,
		ports.DeliveryFailed: 2})
	byEvent := map[string]int{}
	for _, task := range u.tasksOf(t, m.ID) {
		byEvent[task.StripeEventID]++
	}
	is.Equal(byEvent, map[string]int{dup.ID: tasksPerFailure, fresh: tasksPerFailure}) // only the duplicate's and the new one's tasks
	is.True(u.lockFree(t, failing))                                                    // the failed event kept nothing
	is.True(u.lockFree(t, live.ID))                                                    // nor did the ignored one

	// The next run processes the event that failed.
	again := reconcile(t, r, 72*time.Hour)
	is.Equal(again, app.ReconcileResult{Merchants: 1, Listed: 5, Processed: 1, Duplicates: 2, Ignored: 1, Failed: 1})
	is.Equal(len(u.tasksOf(t, m.ID)), 3*tasksPerFailure)
	is.True(!u.lockFree(t, failing))
}

// TestReconcileOneProcessAtATime: a merchant another reconciler holds is
// left to it; a reconciler whose lease expired and was taken over stops
// at its next page.
func TestReconcileOneProcessAtATime(t *testing.T) {
	t.Run("a held merchant is skipped", func(t *testing.T) {
		is := is.New(t)
		u := newUseCases(t, nil)
		m := u.merchant(t, "Acme")
		gw := newEventsGateway()
		ev := gw.add(failedEvent(m.StripeAccountID, stripetest.NewID("in_"), u.clock.Now().Add(-time.Hour)), false)
		inside, release := make(chan struct{}), make(chan struct{})
		gw.before = func(_ string, call int) {
			if call == 1 {
				close(inside)
				<-release
			}
		}
		first, _ := u.reconciler(t, reconcileConfig(), gw)
		second, _ := u.reconciler(t, reconcileConfig(), gw)

		var firstRes app.ReconcileResult
		var firstErr error
		done := make(chan struct{})
		go func() {
			defer close(done)
			firstRes, firstErr = first.Run(context.Background(), 72*time.Hour)
		}()
		<-inside // the first holds the merchant, listing its events

		secondRes := reconcile(t, second, 72*time.Hour)
		close(release)
		<-done

		is.Equal(secondRes, app.ReconcileResult{})                                     // the second left the merchant alone
		is.NoErr(firstErr)                                                             //
		is.Equal(firstRes, app.ReconcileResult{Merchants: 1, Listed: 1, Processed: 1}) // the first reconciled it
		is.Equal(len(gw.listings()), 1)                                                // listing it once
		is.Equal(len(u.tasksOf(t, m.ID)), tasksPerFailure)
		is.True(!u.lockFree(t, ev))

		// Released at the end of the run: the next run of either may take it.
		is.Equal(reconcile(t, second, 72*time.Hour), app.ReconcileResult{Merchants: 1, Listed: 1, Duplicates: 1})
	})

	t.Run("two runs of one reconciler: the second skips the merchant the first holds", func(t *testing.T) {
		// An embedder may call Service.Reconcile while RunWorker's
		// periodic run is under way: the same reconciler, twice at once.
		is := is.New(t)
		u := newUseCases(t, nil)
		m := u.merchant(t, "Acme")
		gw := newEventsGateway()
		gw.add(failedEvent(m.StripeAccountID, stripetest.NewID("in_"), u.clock.Now().Add(-time.Hour)), false)
		inside, release := make(chan struct{}), make(chan struct{})
		gw.before = func(_ string, call int) {
			if call == 1 {
				close(inside)
				<-release
			}
		}
		r, _ := u.reconciler(t, reconcileConfig(), gw)

		var firstRes app.ReconcileResult
		var firstErr error
		done := make(chan struct{})
		go func() {
			defer close(done)
			firstRes, firstErr = r.Run(context.Background(), 72*time.Hour)
		}()
		<-inside // the first run holds the merchant, listing its events

		secondRes := reconcile(t, r, 72*time.Hour)
		close(release)
		<-done

		is.Equal(secondRes, app.ReconcileResult{}) // the second run left the merchant alone
		is.NoErr(firstErr)
		is.Equal(firstRes, app.ReconcileResult{Merchants: 1, Listed: 1, Processed: 1})
		is.Equal(len(gw.listings()), 1) // one listing of the account
	})

	t.Run("an expired lease is taken over, and its old holder leaves the events to the new", func(t *testing.T) {
		is := is.New(t)
		u := newUseCases(t, nil)
		m := u.merchant(t, "Acme")
		gw := newEventsGateway()
		at := u.clock.Now().Add(-time.Hour)
		gw.add(failedEvent(m.StripeAccountID, stripetest.NewID("in_"), at), false)
		gw.add(failedEvent(m.StripeAccountID, stripetest.NewID("in_"), at.Add(-time.Minute)), false)
		firstIn, firstGo := make(chan struct{}), make(chan struct{})
		secondIn, secondGo := make(chan struct{}), make(chan struct{})
		gw.before = func(_ string, call int) {
			switch call {
			case 1: // the first reconciler's first page
				close(firstIn)
				<-firstGo
			case 2: // the second's first page
				close(secondIn)
				<-secondGo
			}
		}
		cfg := app.ReconcileConfig{PageSize: 1, Lease: 10 * time.Minute, Backoff: time.Microsecond}
		first, _ := u.reconciler(t, cfg, gw)
		second, _ := u.reconciler(t, cfg, gw)

		type outcome struct {
			res app.ReconcileResult
			err error
		}
		firstDone, secondDone := make(chan outcome, 1), make(chan outcome, 1)
		go func() {
			res, err := first.Run(context.Background(), 72*time.Hour)
			firstDone <- outcome{res, err}
		}()
		<-firstIn
		u.clock.Add(11 * time.Minute) // the first stalls past its lease
		go func() {
			res, err := second.Run(context.Background(), 72*time.Hour+11*time.Minute)
			secondDone <- outcome{res, err}
		}()
		<-secondIn // the second took the merchant over
		close(firstGo)
		f := <-firstDone
		close(secondGo)
		s := <-secondDone

		is.NoErr(f.err)
		is.NoErr(s.err)
		is.Equal(f.res, app.ReconcileResult{Merchants: 1, Failed: 1})               // the first stopped after its page, lease lost, and left the events
		is.Equal(s.res, app.ReconcileResult{Merchants: 1, Listed: 2, Processed: 2}) // to the second
		is.Equal(len(u.tasksOf(t, m.ID)), 2*tasksPerFailure)                        // each event once
	})

	t.Run("a lease lost while the events are applied stops its old holder", func(t *testing.T) {
		is := is.New(t)
		u := newUseCases(t, nil)
		m := u.merchant(t, "Acme")
		gw := newEventsGateway()
		at := u.clock.Now().Add(-time.Hour)
		older := gw.add(failedEvent(m.StripeAccountID, stripetest.NewID("in_"), at.Add(-time.Minute)), false)
		newer := gw.add(failedEvent(m.StripeAccountID, stripetest.NewID("in_"), at), false)
		cfg := app.ReconcileConfig{PageSize: 1, Lease: 10 * time.Minute, Backoff: time.Microsecond}
		firstIn, firstGo := make(chan struct{}), make(chan struct{})
		secondIn, secondGo := make(chan struct{}), make(chan struct{})
		// Each reconciler stalls as it decodes its first event.
		first, err := app.NewReconciler(cfg, u.mem, gw, &stallingDecoder{in: firstIn, proceed: firstGo}, u.webhooks, u.clock, nil, nil)
		is.NoErr(err)
		second, err := app.NewReconciler(cfg, u.mem, gw, &stallingDecoder{in: secondIn, proceed: secondGo}, u.webhooks, u.clock, nil, nil)
		is.NoErr(err)

		type outcome struct {
			res app.ReconcileResult
			err error
		}
		firstDone, secondDone := make(chan outcome, 1), make(chan outcome, 1)
		go func() {
			res, err := first.Run(context.Background(), 72*time.Hour)
			firstDone <- outcome{res, err}
		}()
		<-firstIn                     // the first listed both pages, and applies the older event
		u.clock.Add(11 * time.Minute) // past its lease
		go func() {
			res, err := second.Run(context.Background(), 72*time.Hour+11*time.Minute)
			secondDone <- outcome{res, err}
		}()
		<-secondIn // the second took the merchant over
		close(firstGo)
		f := <-firstDone
		close(secondGo)
		s := <-secondDone

		is.NoErr(f.err)
		is.NoErr(s.err)
		is.Equal(f.res, app.ReconcileResult{Merchants: 1, Listed: 2, Processed: 1, Failed: 1})     // the first applied one event, then found its lease lost
		is.Equal(s.res, app.ReconcileResult{Merchants: 1, Listed: 2, Processed: 1, Duplicates: 1}) // the second the other
		byEvent := map[string]int{}
		for _, task := range u.tasksOf(t, m.ID) {
			byEvent[task.StripeEventID]++
		}
		is.Equal(byEvent, map[string]int{older: tasksPerFailure, newer: tasksPerFailure}) // each event once
	})
}

// stallingDecoder is the Stripe decoder, but its first decoding waits:
// it closes in, then waits for proceed to close.
type stallingDecoder struct {
	in, proceed chan struct{}
	calls       atomic.Int32
}

func (d *stallingDecoder) DecodeEvent(payload []byte) (domain.Event, error) {
	if d.calls.Add(1) == 1 {
		close(d.in)
		<-d.proceed
	}
	return stripe.Decoder{}.DecodeEvent(payload)
}

// TestReconcileRacingReconcilers: reconcilers of several processes run at
// once on the same merchants; each event is applied exactly once.
func TestReconcileRacingReconcilers(t *testing.T) {
	is := is.New(t)
	u := newUseCases(t, nil)
	gw := newEventsGateway()
	const merchants, perMerchant, reconcilers = 3, 12, 4
	var all []string
	for i := range merchants {
		m := u.merchant(t, fmt.Sprintf("Merchant %d", i))
		for j := range perMerchant {
			all = append(all, gw.add(failedEvent(m.StripeAccountID, stripetest.NewID("in_"), u.clock.Now().Add(-time.Duration(j+1)*time.Minute)), false))
		}
	}
	var rs []*app.Reconciler
	for range reconcilers {
		r, _ := u.reconciler(t, app.ReconcileConfig{PageSize: 5, Backoff: time.Microsecond}, gw)
		rs = append(rs, r)
	}
	// Webhook deliveries of the same events race them too.
	var deliveries []domain.Event
	for _, e := range gw.events {
		for _, le := range e[:3] {
			ev, err := stripe.Decoder{}.DecodeEvent(le.payload)
			is.NoErr(err)
			deliveries = append(deliveries, ev)
		}
	}

	start := make(chan struct{})
	results := make([]app.ReconcileResult, reconcilers)
	errs := make([]error, reconcilers)
	var webhookResults []app.WebhookResult
	var webhookErrs []error
	var wg sync.WaitGroup
	for i, r := range rs {
		wg.Go(func() {
			<-start
			results[i], errs[i] = r.Run(context.Background(), 72*time.Hour)
		})
	}
	wg.Go(func() {
		<-start
		webhookResults, webhookErrs = handleAll(u, deliveries)
	})
	close(start)
	wg.Wait()

	var total app.ReconcileResult
	for i, res := range results {
		is.NoErr(errs[i])
		is.Equal(res.Failed, 0)
		total.Processed += res.Processed
		total.Duplicates += res.Duplicates
		total.Listed += res.Listed
	}
	webhookProcessed := 0
	for i, res := range webhookResults {
		is.NoErr(webhookErrs[i])
		if res.Processed {
			webhookProcessed++
		}
	}
	is.Equal(total.Processed+webhookProcessed, len(all)) // every event processed once, by one of them
	is.Equal(total.Listed, total.Processed+total.Duplicates)
	byEvent := map[string]int{}
	for _, m := range u.mustMerchants(t) {
		for _, task := range u.tasksOf(t, m.ID) {
			byEvent[task.StripeEventID]++
		}
	}
	is.Equal(len(byEvent), len(all))
	for _, id := range all {
		is.Equal(byEvent[id], tasksPerFailure) // with its tasks once
	}
}

// mustMerchants lists every merchant of the store.
func (u *useCases) mustMerchants(t *testing.T) []domain.Merchant {
	t.Helper()
	ms, err := u.mem.Merchants().ListMerchants(context.Background(), "", 1000)
	if err != nil {
		t.Fatalf("list merchants: %v", err)
	}
	return ms
}

func TestReconcileManyMerchantsArePaged(t *testing.T) {
	is := is.New(t)
	u := newUseCases(t, nil)
	gw := newEventsGateway()
	const merchants = 205 // more than two pages of the merchant directory
	for i := range merchants {
		m := u.merchant(t, fmt.Sprintf("Merchant %d", i))
		gw.add(failedEvent(m.StripeAccountID, stripetest.NewID("in_"), u.clock.Now().Add(-time.Hour)), false)
	}
	r, _ := u.reconciler(t, reconcileConfig(), gw)

	res := reconcile(t, r, 72*time.Hour)

	is.Equal(res, app.ReconcileResult{Merchants: merchants, Listed: merchants, Processed: merchants}) // every merchant once
	seen := map[string]int{}
	for _, q := range gw.listings() {
		seen[q.account]++
	}
	is.Equal(len(seen), merchants)
	for _, n := range seen {
		is.Equal(n, 1)
	}
}

func TestReconcileStopsWhenCancelled(t *testing.T) {
	is := is.New(t)
	u := newUseCases(t, nil)
	gw := newEventsGateway()
	for i := range 3 {
		m := u.merchant(t, fmt.Sprintf("Merchant %d", i))
		gw.add(failedEvent(m.StripeAccountID, stripetest.NewID("in_"), u.clock.Now().Add(-time.Hour)), false)
	}
	ctx, cancel := context.WithCancel(context.Background())
	gw.before = func(string, int) { cancel() } // cancelled while the first merchant is listed
	r, _ := u.reconciler(t, reconcileConfig(), gw)

	res, err := r.Run(ctx, 72*time.Hour)

	is.True(errors.Is(err, context.Canceled)) // the run ends with ctx
	is.Equal(res.Merchants, 1)                // after the merchant it was on
	is.Equal(len(gw.listings()), 1)           // and lists no other
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
			_, err = u.mem.Endpoints().CreateEndpoint(context.Background(), m.ID, ep)
			is.NoErr(err)
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

// TestReconcileThroughStripeAPI runs reconciliation through the real
// Stripe gateway against stripetest's scripted API.
func TestReconcileThroughStripeAPI(t *testing.T) {
	is := is.New(t)
	u := newUseCases(t, nil)
	a, b := u.merchant(t, "A"), u.merchant(t, "B")
	api := stripetest.NewAPI(t)
	now := u.clock.Now()
	var missedA []string
	for i := range 3 {
		ev := failedEvent(a.StripeAccountID, stripetest.NewID("in_"), now.Add(-time.Duration(i+1)*time.Hour))
		api.AddEvent(a.StripeAccountID, ev.JSON(), false)
		missedA = append(missedA, ev.ID)
	}
	delivered := failedEvent(a.StripeAccountID, stripetest.NewID("in_"), now.Add(-30*time.Minute))
	api.AddEvent(a.StripeAccountID, delivered.JSON(), true) // Stripe delivered it: not listed
	old := failedEvent(a.StripeAccountID, stripetest.NewID("in_"), now.Add(-100*time.Hour))
	api.AddEvent(a.StripeAccountID, old.JSON(), false) // before the window
	unhandled := stripetest.Event{ID: stripetest.NewID("evt_"), Type: "invoice.created", Account: a.StripeAccountID, Created: now.Add(-time.Hour),
		Object: stripetest.Invoice{Customer: "cus_jenny", AmountDue: 2000}}
	api.AddEvent(a.StripeAccountID, unhandled.JSON(), false) // a type recoup does not handle: not listed
	subDeleted := stripetest.Event{ID: stripetest.NewID("evt_"), Type: domain.EventCustomerSubscriptionDeleted, Account: b.StripeAccountID,
		Created: now.Add(-time.Hour), Object: stripetest.Subscription{ID: "sub_1", Customer: "cus_jenny"}}
	api.AddEvent(b.StripeAccountID, subDeleted.JSON(), false)
	api.FailNext("GET", "/v1/events", 429, 2) // Stripe's rate limiter, twice

	gw := stripe.NewGateway(stripe.GatewayConfig{APIKey: "sk_test_123", APIBase: api.URL()})
	r, obs := u.reconciler(t, app.ReconcileConfig{PageSize: 2, Backoff: time.Microsecond}, gw)

	res := reconcile(t, r, 72*time.Hour)

	is.Equal(res, app.ReconcileResult{Merchants: 2, Listed: 4, Processed: 4}) // A's three missed events, B's one
	byEvent := map[string]int{}
	for _, task := range u.tasksOf(t, a.ID) {
		byEvent[task.StripeEventID]++
	}
	is.Equal(len(byEvent), 3)
	for _, id := range missedA {
		is.Equal(byEvent[id], tasksPerFailure) // each missed event's tasks
	}
	is.True(u.lockFree(t, delivered.ID)) // the delivered event was not read
	is.True(u.lockFree(t, old.ID))       // nor the old one
	is.True(!u.lockFree(t, subDeleted.ID))
	is.Equal(len(u.tasksOf(t, b.ID)), 0) // B's event cancelled nothing, made nothing
	is.Equal(obs.counts(), map[string]int{ports.DeliveryProcessed: 4})

	// Merchants are reconciled in id order: A's and B's requests are told
	// apart by their account.
	limited, byAccount := 0, map[string][]stripetest.Request{}
	for _, req := range api.Requests() {
		is.Equal(req.Path, "/v1/events") // reconciliation only lists events
		is.Equal(req.Method, "GET")
		is.True(req.Account == a.StripeAccountID || req.Account == b.StripeAccountID) // on a merchant's connected account
		is.Equal(req.Form.Get("delivery_success"), "false")                           // undelivered events only
		is.Equal(req.Form.Get("created[gte]"), fmt.Sprint(now.Add(-72*time.Hour).Unix()))
		is.Equal(req.Form.Get("limit"), "2")
		is.True(len(req.Form["types"]) > 0) // of the handled types
		for _, typ := range req.Form["types"] {
			is.True(domain.Handles(typ))
		}
		if req.Status == 429 {
			limited++
			continue
		}
		is.Equal(req.Status, 200)
		byAccount[req.Account] = append(byAccount[req.Account], req)
	}
	is.Equal(limited, 2)                                                     // rate-limited twice, backed off, and went on
	is.Equal(len(byAccount[a.StripeAccountID]), 2)                           // A's two pages
	is.Equal(byAccount[a.StripeAccountID][0].Form.Get("starting_after"), "") // the first from the start
	is.Equal(byAccount[a.StripeAccountID][1].Form.Get("starting_after"), missedA[1])
	is.Equal(len(byAccount[b.StripeAccountID]), 1) // B's one

	t.Run("without an API key every merchant fails", func(t *testing.T) {
		is := is.New(t)
		before := len(api.Requests())
		r, _ := u.reconciler(t, reconcileConfig(), stripe.NewGateway(stripe.GatewayConfig{APIBase: api.URL()}))
		res, err := r.Run(context.Background(), 72*time.Hour)
		is.NoErr(err)
		is.Equal(res, app.ReconcileResult{Merchants: 2, Failed: 2}) // reported, so that the command exits non-zero
		is.Equal(len(api.Requests()), before)                       // and nothing sent
	})
}

// brokenStorage is a store whose merchant directory or leases cannot be
// reached.
type brokenStorage struct {
	ports.Storage
	merchants, leases bool
}

func (s brokenStorage) Merchants() ports.MerchantDirectory {
	if s.merchants {
		return brokenMerchants{s.Storage.Merchants()}
	}
	return s.Storage.Merchants()
}

func (s brokenStorage) Leases() ports.Leases {
	if s.leases {
		return brokenLeases{}
	}
	return s.Storage.Leases()
}

type brokenMerchants struct{ ports.MerchantDirectory }

func (brokenMerchants) ListMerchants(context.Context, domain.MerchantID, int) ([]domain.Merchant, error) {
	return nil, fmt.Errorf("list merchants: %w", domain.ErrUnavailable)
}

type brokenLeases struct{}

func (brokenLeases) AcquireLease(context.Context, string, string, time.Time, time.Time) (bool, error) {
	return false, fmt.Errorf("acquire lease: %w", domain.ErrUnavailable)
}

func (brokenLeases) ReleaseLease(context.Context, string, string) error { return nil }

func TestReconcileWithoutStorage(t *testing.T) {
	t.Run("merchants cannot be listed", func(t *testing.T) {
		is := is.New(t)
		u := newUseCases(t, nil)
		u.merchant(t, "Acme")
		gw := newEventsGateway()
		r, err := app.NewReconciler(reconcileConfig(), brokenStorage{Storage: u.mem, merchants: true}, gw, stripe.Decoder{}, u.webhooks, u.clock, nil, nil)
		is.NoErr(err)

		_, err = r.Run(context.Background(), 72*time.Hour)

		is.True(errors.Is(err, domain.ErrUnavailable)) // the run fails
		is.Equal(len(gw.listings()), 0)
	})

	t.Run("a merchant's lease cannot be taken", func(t *testing.T) {
		is := is.New(t)
		u := newUseCases(t, nil)
		m := u.merchant(t, "Acme")
		gw := newEventsGateway()
		gw.add(failedEvent(m.StripeAccountID, stripetest.NewID("in_"), u.clock.Now().Add(-time.Hour)), false)
		r, err := app.NewReconciler(reconcileConfig(), brokenStorage{Storage: u.mem, leases: true}, gw, stripe.Decoder{}, u.webhooks, u.clock, nil, nil)
		is.NoErr(err)

		res := reconcile(t, r, 72*time.Hour)

		is.Equal(res, app.ReconcileResult{Merchants: 1, Failed: 1}) // the merchant is counted as failed, not as done
		is.Equal(len(gw.listings()), 0)                             // and not listed without its lease
		is.Equal(len(u.tasksOf(t, m.ID)), 0)
	})
}

func TestNewReconcilerNeedsItsPorts(t *testing.T) {
	u := newUseCases(t, nil)
	gw := newEventsGateway()
	for name, build := range map[string]func() (*app.Reconciler, error){
		"no storage": func() (*app.Reconciler, error) {
			return app.NewReconciler(app.ReconcileConfig{}, nil, gw, stripe.Decoder{}, u.webhooks, u.clock, nil, nil)
		},
		"no gateway": func() (*app.Reconciler, error) {
			return app.NewReconciler(app.ReconcileConfig{}, u.mem, nil, stripe.Decoder{}, u.webhooks, u.clock, nil, nil)
		},
		"no decoder": func() (*app.Reconciler, error) {
			return app.NewReconciler(app.ReconcileConfig{}, u.mem, gw, nil, u.webhooks, u.clock, nil, nil)
		},
		"no webhook use case": func() (*app.Reconciler, error) {
			return app.NewReconciler(app.ReconcileConfig{}, u.mem, gw, stripe.Decoder{}, nil, u.clock, nil, nil)
		},
	} {
		t.Run(name, func(t *testing.T) {
			is := is.New(t)
			_, err := build()
			is.True(errors.Is(err, domain.ErrInvalid)) // refused
		})
	}
}

// TestReconcileEventWithoutAccount: an event listed on a connected account
// whose body does not name the account is that account's.
func TestReconcileEventWithoutAccount(t *testing.T) {
	is := is.New(t)
	u := newUseCases(t, nil)
	m := u.merchant(t, "Acme")
	gw := newEventsGateway()
	ev := failedEvent("", stripetest.NewID("in_"), u.clock.Now().Add(-time.Hour))
	gw.addRaw(m.StripeAccountID, listedEvent{id: ev.ID, typ: ev.Type, created: ev.Created, payload: ev.JSON()})
	r, _ := u.reconciler(t, reconcileConfig(), gw)

	res := reconcile(t, r, 72*time.Hour)

	is.Equal(res, app.ReconcileResult{Merchants: 1, Listed: 1, Processed: 1}) // processed
	is.Equal(len(u.tasksOf(t, m.ID)), tasksPerFailure)                        // for the account's merchant
}

// A run stopped midway (the process shutting down) is no failure: nothing
// is counted failed or logged as an error, and the next run lists and
// applies what it left.
func TestReconcileStoppedMidwayIsNoFailure(t *testing.T) {
	is := is.New(t)
	u := newUseCases(t, nil)
	m := u.merchant(t, "Acme")
	gw := newEventsGateway()
	for i := range 3 {
		gw.add(failedEvent(m.StripeAccountID, stripetest.NewID("in_"), u.clock.Now().Add(-time.Duration(i+1)*time.Minute)), false)
	}
	cfg := reconcileConfig()
	cfg.PageSize = 1
	r, _ := u.reconciler(t, cfg, gw)
	ctx, cancel := context.WithCancel(t.Context())
	gw.before = func(_ string, call int) {
		if call == 2 {
			cancel() // stopping while the second page is listed
		}
	}
	gw.fail = func(_ string, call int) error {
		if call == 2 {
			return context.Canceled // what the HTTP client answers then
		}
		return nil
	}

	res, err := r.Run(ctx, 72*time.Hour)
	is.True(errors.Is(err, context.Canceled)) // the run says it was stopped
	is.Equal(res.Failed, 0)                   // and counts no failure
	is.True(!strings.Contains(u.logs.String(), `"level":"ERROR"`))
	is.Equal(len(u.tasksOf(t, m.ID)), 0) // nothing half-applied

	gw.before, gw.fail = nil, nil
	again := reconcile(t, r, 72*time.Hour)
	is.Equal(again, app.ReconcileResult{Merchants: 1, Listed: 3, Processed: 3}) // the next run does it all
	is.Equal(len(u.tasksOf(t, m.ID)), 3*tasksPerFailure)
}
