package app_test

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recoupdev/recoup/adapters/stripe"
	"github.com/recoupdev/recoup/app"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/stripetest"
)

// engine is the recovery engine end to end: the webhook, policy and
// update-link use cases and a worker, over one memory store, a scripted
// Stripe and a clock that only the test moves.
type engine struct {
	*workerFixture
	webhooks *app.WebhookService
	policies *app.PolicyService
	worker   *app.Worker
	stripe   *stripeBook
}

// engineLinkBase is the public URL of the engine's update links.
const engineLinkBase = "https://pay.example.com"

// engineLinkKeys sign the engine's update links.
var engineLinkKeys = domain.LinkKeysFromSecrets([]string{"whsec_engine_tests"})

func newEngine(t *testing.T) *engine {
	t.Helper()
	f := newWorkerFixture(t)
	e := &engine{workerFixture: f, stripe: &stripeBook{}}
	e.stripe.install(f.gateway)
	e.webhooks = app.NewWebhookService(f.store, app.WebhookConfig{Clock: f.clock})
	e.policies = app.NewPolicyService(f.store.Policies())
	cfg := workerTestConfig()
	cfg.UpdateLinks = app.UpdateLinkConfig{BaseURL: engineLinkBase, Keys: engineLinkKeys}
	e.worker = f.worker(t, cfg)
	return e
}

// setPolicy stores the merchant's policy through the policy use case.
func (e *engine) setPolicy(t *testing.T, m domain.Merchant, p domain.DunningPolicy) {
	t.Helper()
	if _, err := e.policies.Set(context.Background(), m, p); err != nil {
		t.Fatalf("set policy: %v", err)
	}
}

// handle delivers an event to the webhook use case and fails the test on
// an error.
func (e *engine) handle(t *testing.T, ev domain.Event) app.WebhookResult {
	t.Helper()
	res, err := e.webhooks.Handle(context.Background(), ev)
	if err != nil {
		t.Fatalf("handle %s %s: %v", ev.Type, ev.ID, err)
	}
	return res
}

// handleDuplicate delivers an event again and fails the test unless it is
// answered as a duplicate that changed none of the merchant's tasks.
func (e *engine) handleDuplicate(t *testing.T, ev domain.Event) {
	t.Helper()
	before := e.tasksOf(t, ev)
	res := e.handle(t, ev)
	if res.Processed || res.Action != domain.ActionIgnored || len(res.Tasks) != 0 || !strings.Contains(res.Reason, duplicateWords) {
		t.Fatalf("a duplicate of %s was processed: %+v", ev.Type, res)
	}
	if after := e.tasksOf(t, ev); !slices.EqualFunc(before, after, sameTask) {
		t.Fatalf("a duplicate of %s changed the tasks:\nbefore %+v\nafter  %+v", ev.Type, before, after)
	}
}

// tasksOf returns every task of the event's merchant.
func (e *engine) tasksOf(t *testing.T, ev domain.Event) []domain.Task {
	t.Helper()
	m, err := e.store.Merchants().MerchantByStripeAccount(context.Background(), ev.Account)
	if err != nil {
		t.Fatal(err)
	}
	return e.all(t, m.ID)
}

// all returns every task of the merchant, newest first.
func (e *engine) all(t *testing.T, m domain.MerchantID) []domain.Task {
	t.Helper()
	var out []domain.Task
	f := domain.TaskFilter{Limit: domain.MaxPageSize}
	for {
		page, err := e.store.Tasks().List(context.Background(), m, f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page.Tasks...)
		if page.Next == nil {
			return out
		}
		f.After = page.Next
	}
}

// sameTask compares tasks by value, times by instant.
func sameTask(a, b domain.Task) bool {
	return a.ID == b.ID && a.Type == b.Type && a.Status == b.Status && a.RunAt.Equal(b.RunAt) &&
		a.Attempts == b.Attempts && a.Reason == b.Reason && a.DeclineCode == b.DeclineCode &&
		a.InvoiceAttempt == b.InvoiceAttempt && a.UpdatedAt.Equal(b.UpdatedAt)
}

// invoiceTasks returns the merchant's tasks of the invoice of the given
// type, oldest first, those made together by when they are due.
func (e *engine) invoiceTasks(t *testing.T, m domain.MerchantID, invoice string, typ domain.TaskType) []domain.Task {
	t.Helper()
	var out []domain.Task
	for _, task := range e.all(t, m) {
		if task.StripeInvoiceID == invoice && task.Type == typ {
			out = append(out, task)
		}
	}
	slices.SortFunc(out, func(a, b domain.Task) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), a.RunAt.Compare(b.RunAt))
	})
	return out
}

// pendingOf returns the invoice's one pending task of the type, and false
// when there is none; it fails the test if there are more.
func (e *engine) pendingOf(t *testing.T, m domain.MerchantID, invoice string, typ domain.TaskType) (domain.Task, bool) {
	t.Helper()
	var found []domain.Task
	for _, task := range e.invoiceTasks(t, m, invoice, typ) {
		if task.Status == domain.StatusPending {
			found = append(found, task)
		}
	}
	switch len(found) {
	case 0:
		return domain.Task{}, false
	case 1:
		return found[0], true
	}
	t.Fatalf("invoice %s has %d pending %s tasks, at most one allowed", invoice, len(found), typ)
	return domain.Task{}, false
}

// mustPending is pendingOf for a task that must be there.
func (e *engine) mustPending(t *testing.T, m domain.MerchantID, invoice string, typ domain.TaskType) domain.Task {
	t.Helper()
	task, ok := e.pendingOf(t, m, invoice, typ)
	if !ok {
		t.Fatalf("invoice %s has no pending %s; tasks: %+v", invoice, typ, e.invoiceTasks(t, m, invoice, typ))
	}
	return task
}

// runDue runs the worker until nothing is due at the clock's time and
// returns how many tasks ran.
func (e *engine) runDue(t *testing.T) int {
	t.Helper()
	total := 0
	for range 20 {
		n := runOnceOK(t, e.worker)
		if n == 0 {
			return total
		}
		total += n
	}
	t.Fatal("the worker kept finding due work")
	return total
}

// advance moves the clock by d and runs what is then due.
func (e *engine) advance(t *testing.T, d time.Duration) int {
	t.Helper()
	e.clock.Add(d)
	return e.runDue(t)
}

// quietPolicy is the default policy without reminders, so that a test of
// retries sees only the emails it asks for.
func quietPolicy() domain.DunningPolicy {
	p := domain.DefaultDunningPolicy()
	p.Emails.ReminderHours = nil
	return p
}

// failure is an invoice.payment_failed of the merchant's customer
// cus_jenny on the invoice, at the clock's time, that Stripe will not
// retry itself.
func (e *engine) failure(m domain.Merchant, invoice string, attempt int) domain.Event {
	ev := paymentFailedEvent(m.StripeAccountID, invoice, "sub_"+invoice, attempt)
	ev.Created = e.clock.Now()
	return ev
}

// chargeFailed is a charge.failed of the invoice's payment, declined with
// code, at the clock's time.
func (e *engine) chargeFailed(m domain.Merchant, invoice, code string) domain.Event {
	return domain.Event{ID: stripetest.NewID("evt_"), Type: domain.EventChargeFailed, Account: m.StripeAccountID,
		Created: e.clock.Now(), Charge: &domain.Charge{ID: stripetest.NewID("ch_"), CustomerID: "cus_jenny",
			CustomerEmail: "jenny@example.com", InvoiceID: invoice, Amount: 2000, Currency: "usd",
			DeclineCode: code, Created: e.clock.Now()}}
}

// paid is an invoice.paid of the invoice at the clock's time.
func (e *engine) paid(m domain.Merchant, invoice string) domain.Event {
	ev := invoiceEvent(domain.EventInvoicePaid, m.StripeAccountID, invoice, "sub_"+invoice)
	ev.Created = e.clock.Now()
	return ev
}

// decoded renders a Stripe event as Stripe API version 2023-10-16 sends
// it, created at the clock's time, and decodes it as the webhook endpoint
// does.
func (e *engine) decoded(t *testing.T, ev stripetest.Event) domain.Event {
	t.Helper()
	if ev.Created.IsZero() {
		ev.Created = e.clock.Now()
	}
	out, err := stripe.Decoder{}.DecodeEvent(ev.JSON())
	if err != nil {
		t.Fatalf("decode %s: %v", ev.Type, err)
	}
	return out
}

// cardUpdated is a customer.updated whose default payment method changed.
func (e *engine) cardUpdated(t *testing.T, m domain.Merchant, customer string) domain.Event {
	t.Helper()
	return e.decoded(t, stripetest.Event{Type: domain.EventCustomerUpdated, Account: m.StripeAccountID,
		Object: map[string]any{"id": customer, "object": "customer", "email": "jenny@example.com",
			"invoice_settings": map[string]any{"default_payment_method": stripetest.NewID("pm_")}},
		PreviousAttributes: map[string]any{"invoice_settings": map[string]any{"default_payment_method": "pm_old"}}})
}

// cardAttached is a payment_method.attached to the customer.
func (e *engine) cardAttached(t *testing.T, m domain.Merchant, customer string) domain.Event {
	t.Helper()
	return e.decoded(t, stripetest.Event{Type: domain.EventPaymentMethodAttached, Account: m.StripeAccountID,
		Object: map[string]any{"id": stripetest.NewID("pm_"), "object": "payment_method", "type": "card", "customer": customer}})
}

// cardExpiring is a customer.source.expiring of the customer's card.
func (e *engine) cardExpiring(t *testing.T, m domain.Merchant, customer, card string, month, year int) domain.Event {
	t.Helper()
	return e.decoded(t, stripetest.Event{Type: domain.EventCustomerSourceExpiring, Account: m.StripeAccountID,
		Object: map[string]any{"id": card, "object": "card", "customer": customer, "brand": "Visa", "last4": "4242",
			"exp_month": month, "exp_year": year}})
}

// stripeBook is what the scripted Stripe knows of the invoices: a read
// answers an invoice's status and the decline code of its latest failed
// payment; a payment is declined as scripted, else it pays the invoice.
type stripeBook struct {
	mu       sync.Mutex
	declines map[string][]*domain.PaymentError // the next payments' declines, by invoice
	codes    map[string]string                 // the latest decline code, by invoice
	status   map[string]string                 // by invoice; none: open
	subs     map[string]string                 // the invoice's subscription
}

func (b *stripeBook) install(g *scriptedGateway) {
	b.declines, b.codes, b.status, b.subs = map[string][]*domain.PaymentError{}, map[string]string{}, map[string]string{}, map[string]string{}
	g.invoice = func(_, id string) (domain.Invoice, error) {
		b.mu.Lock()
		defer b.mu.Unlock()
		inv := domain.Invoice{ID: id, Status: "open", CustomerID: "cus_jenny", SubscriptionID: b.subs[id], DeclineCode: b.codes[id]}
		if s, ok := b.status[id]; ok {
			inv.Status = s
		}
		return inv, nil
	}
	g.pay = func(_ context.Context, _, id, _ string) error {
		b.mu.Lock()
		defer b.mu.Unlock()
		if next := b.declines[id]; len(next) > 0 {
			b.declines[id] = next[1:]
			b.codes[id] = next[0].Code
			return next[0]
		}
		b.status[id] = domain.InvoicePaid
		return nil
	}
}

// declined says what Stripe answers of the invoice's latest failed
// payment when it is read: declined with code.
func (b *stripeBook) declined(invoice, code string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.codes[invoice] = code
}

// declineNext makes the invoice's next payments fail, one per code; a code
// the default policy counts as hard is a hard decline.
func (b *stripeBook) declineNext(invoice string, codes ...string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, code := range codes {
		kind := domain.PaymentSoftDecline
		if domain.DefaultDunningPolicy().HardDecline(code) {
			kind = domain.PaymentHardDecline
		}
		b.declines[invoice] = append(b.declines[invoice], &domain.PaymentError{Kind: kind, Code: code, Message: "Your card was declined."})
	}
}

// invoiceStatus is the invoice's status at Stripe.
func (b *stripeBook) invoiceStatus(invoice string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s, ok := b.status[invoice]; ok {
		return s
	}
	return "open"
}
