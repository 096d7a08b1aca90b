package app_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/adapters/memory"
	"github.com/recoupdev/recoup/app"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/clocktest"
	"github.com/recoupdev/recoup/internal/logtest"
	"github.com/recoupdev/recoup/ports"
)

// paymentCall is one PayInvoice the fake gateway saw.
type paymentCall struct {
	Account, Invoice, Key string
	CtxErr                error // the context's error when the call returned
}

// scriptedGateway is a scripted PaymentGateway that counts what it is asked.
// By default every invoice is open and every payment succeeds.
type scriptedGateway struct {
	mu       sync.Mutex
	invoice  func(account, invoiceID string) (domain.Invoice, error)
	pay      func(ctx context.Context, account, invoiceID, key string) error
	reads    int
	pays     []paymentCall
	ends     []paymentCall // calls that end dunning
	inFlight int
	maxIn    int
}

func (g *scriptedGateway) Invoice(_ context.Context, account, invoiceID string) (domain.Invoice, error) {
	g.mu.Lock()
	g.reads++
	f := g.invoice
	g.mu.Unlock()
	if f != nil {
		return f(account, invoiceID)
	}
	return domain.Invoice{ID: invoiceID, Status: "open"}, nil
}

func (g *scriptedGateway) PayInvoice(ctx context.Context, account, invoiceID, key string) error {
	g.mu.Lock()
	g.inFlight++
	g.maxIn = max(g.maxIn, g.inFlight)
	f := g.pay
	g.mu.Unlock()
	var err error
	if f != nil {
		err = f(ctx, account, invoiceID, key)
	}
	g.mu.Lock()
	g.inFlight--
	g.pays = append(g.pays, paymentCall{Account: account, Invoice: invoiceID, Key: key, CtxErr: ctx.Err()})
	g.mu.Unlock()
	return err
}

func (g *scriptedGateway) CancelSubscription(_ context.Context, account, sub, key string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ends = append(g.ends, paymentCall{Account: account, Invoice: "cancel " + sub, Key: key})
	return nil
}

func (g *scriptedGateway) MarkUncollectible(_ context.Context, account, invoiceID, key string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ends = append(g.ends, paymentCall{Account: account, Invoice: "uncollectible " + invoiceID, Key: key})
	return nil
}

func (g *scriptedGateway) Customer(_ context.Context, _, id string) (domain.Customer, error) {
	return domain.Customer{ID: id, Email: "customer-of-record@example.com"}, nil
}

func (g *scriptedGateway) PortalSession(context.Context, string, string, string) (string, error) {
	return "https://billing.stripe.com/p/session/test", nil
}

func (g *scriptedGateway) Events(context.Context, string, ports.EventQuery) (ports.EventPage, error) {
	return ports.EventPage{}, nil
}

func (g *scriptedGateway) endCalls() []paymentCall {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]paymentCall(nil), g.ends...)
}

func (g *scriptedGateway) payCalls() []paymentCall {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]paymentCall(nil), g.pays...)
}

func (g *scriptedGateway) readCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.reads
}

func (g *scriptedGateway) maxInFlight() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.maxIn
}

// recordingNotifier records the notifications it is asked to send.
type recordingNotifier struct {
	mu   sync.Mutex
	err  error
	sent []domain.Notification
	// sentCh, if set, receives every notification sent.
	sentCh chan domain.Notification
}

func (n *recordingNotifier) Notify(_ context.Context, note domain.Notification) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.err != nil {
		return n.err
	}
	n.sent = append(n.sent, note)
	if n.sentCh != nil {
		n.sentCh <- note
	}
	return nil
}

func (n *recordingNotifier) all() []domain.Notification {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]domain.Notification(nil), n.sent...)
}

// workerFixture is a memory store with one merchant, a clock and fakes.
type workerFixture struct {
	store    *memory.Store
	clock    *clocktest.Clock
	merchant domain.Merchant
	gateway  *scriptedGateway
	notifier *recordingNotifier
	logs     *logtest.Buffer
}

func newWorkerFixture(t *testing.T) *workerFixture {
	t.Helper()
	clock := clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	f := &workerFixture{
		store: memory.New(clock), clock: clock, gateway: &scriptedGateway{}, notifier: &recordingNotifier{}, logs: &logtest.Buffer{},
	}
	f.merchant = f.addMerchant(t, "Acme Books", "acct_1Acme")
	return f
}

func (f *workerFixture) addMerchant(t *testing.T, name, account string) domain.Merchant {
	t.Helper()
	m := domain.Merchant{ID: domain.MerchantID(domain.NewID()), Name: name, StripeAccountID: account, CreatedAt: f.clock.Now()}
	_, key, err := domain.NewAPIKey(m.ID, f.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := f.store.Merchants().CreateMerchant(context.Background(), m, key); err != nil {
		t.Fatal(err)
	}
	return m
}

// workerTestConfig is the tests' worker configuration: a fixed backoff range that
// the assertions can check.
func workerTestConfig() app.WorkerConfig {
	return app.WorkerConfig{Concurrency: 4, Poll: time.Hour, Lease: 5 * time.Minute, TaskTimeout: time.Minute,
		MaxAttempts: 3, BackoffBase: time.Minute, BackoffCap: 10 * time.Minute}
}

func (f *workerFixture) worker(t *testing.T, cfg app.WorkerConfig) *app.Worker {
	t.Helper()
	return f.workerWith(t, cfg, f.gateway)
}

func (f *workerFixture) workerWith(t *testing.T, cfg app.WorkerConfig, gw ports.PaymentGateway) *app.Worker {
	t.Helper()
	var port ports.PaymentGateway
	if gw != nil {
		port = gw
	}
	w, err := app.NewWorker(cfg, app.WorkerPorts{Storage: f.store, Gateway: port, Notifier: f.notifier, Clock: f.clock,
		Logger: slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

var invoiceIDs struct {
	mu sync.Mutex
	n  int
}

func nextInvoiceID() string {
	invoiceIDs.mu.Lock()
	defer invoiceIDs.mu.Unlock()
	invoiceIDs.n++
	return fmt.Sprintf("in_test%06d", invoiceIDs.n)
}

// task is a due task of the workerFixture's merchant on a fresh invoice.
func (f *workerFixture) task(typ domain.TaskType) domain.Task {
	now := f.clock.Now()
	return domain.Task{
		ID: domain.TaskID(domain.NewID()), MerchantID: f.merchant.ID, Type: typ, Status: domain.StatusPending,
		StripeEventID: "evt_1", StripeCustomerID: "cus_1", StripeInvoiceID: nextInvoiceID(),
		CustomerEmail: "jenny@example.com", AmountDue: 2000, Currency: "usd",
		HostedInvoiceURL: "https://invoice.stripe.com/i/test", InvoiceAttempt: 1,
		RunAt: now, CreatedAt: now, UpdatedAt: now,
	}
}

func (f *workerFixture) schedule(t *testing.T, tasks ...domain.Task) []domain.Task {
	t.Helper()
	if len(tasks) == 0 {
		return nil
	}
	stored, err := f.store.Tasks().Schedule(context.Background(), tasks[0].MerchantID, tasks)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != len(tasks) {
		t.Fatalf("scheduled %d of %d tasks", len(stored), len(tasks))
	}
	return stored
}

func (f *workerFixture) get(t *testing.T, id domain.TaskID) domain.Task {
	t.Helper()
	got, err := f.store.Tasks().Get(context.Background(), f.merchant.ID, id)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func runOnceOK(t *testing.T, w *app.Worker) int {
	t.Helper()
	n, err := w.RunOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestWorkerConfig(t *testing.T) {
	is := is.New(t)
	f := newWorkerFixture(t)
	w, err := app.NewWorker(app.WorkerConfig{}, app.WorkerPorts{Storage: f.store, Notifier: f.notifier, Clock: f.clock})
	is.NoErr(err) // zero config takes the defaults
	cfg := w.Config()
	is.Equal(cfg.Concurrency, 4)               // default concurrency
	is.Equal(cfg.Poll, time.Second)            // default poll
	is.Equal(cfg.Lease, 5*time.Minute)         // default lease
	is.True(cfg.TaskTimeout < cfg.Lease)       // a run ends before its lease
	is.True(cfg.MaxAttempts > 1)               // retries exist
	is.True(cfg.BackoffCap >= cfg.BackoffBase) // backoff grows

	for name, bad := range map[string]app.WorkerConfig{
		"negative concurrency":  {Concurrency: -1},
		"timeout beyond lease":  {Lease: time.Minute, TaskTimeout: 2 * time.Minute},
		"cap below base":        {BackoffBase: time.Hour, BackoffCap: time.Minute},
		"negative max attempts": {MaxAttempts: -2},
		"negative poll":         {Poll: -time.Second},
	} {
		t.Run(name, func(t *testing.T) {
			is := is.New(t)
			_, err := app.NewWorker(bad, app.WorkerPorts{Storage: f.store, Notifier: f.notifier, Clock: f.clock})
			is.True(errors.Is(err, domain.ErrInvalid)) // refused
		})
	}
}

func TestWorkerRetryPaymentSucceeds(t *testing.T) {
	is := is.New(t)
	f := newWorkerFixture(t)
	task := f.schedule(t, f.task(domain.TypeRetryPayment))[0]

	is.Equal(runOnceOK(t, f.worker(t, workerTestConfig())), 1) // one task run

	got := f.get(t, task.ID)
	is.Equal(got.Status, domain.StatusSucceeded) // paid
	is.Equal(got.Attempts, 1)                    // one attempt
	is.Equal(f.gateway.readCount(), 1)           // invoice re-read first
	pays := f.gateway.payCalls()
	is.Equal(len(pays), 1)                                     // one payment
	is.Equal(pays[0].Account, "acct_1Acme")                    // on the merchant's connected account
	is.Equal(pays[0].Invoice, task.StripeInvoiceID)            // of the task's invoice
	is.Equal(pays[0].Key, domain.RunKey(task))                 // idempotency key of the scheduled run
	is.Equal(len(f.notifier.all()), 0)                         // no email
	is.Equal(runOnceOK(t, f.worker(t, workerTestConfig())), 0) // nothing left to do
}

func TestWorkerNotifies(t *testing.T) {
	for _, typ := range []domain.TaskType{domain.TypeNotifyPaymentFailed, domain.TypeNotifyActionRequired, domain.TypeNotifyChargeFailed} {
		t.Run(string(typ), func(t *testing.T) {
			is := is.New(t)
			f := newWorkerFixture(t)
			task := f.task(typ)
			if typ == domain.TypeNotifyChargeFailed {
				task.StripeInvoiceID, task.HostedInvoiceURL, task.StripeChargeID = "", "", "ch_1"
			}
			task = f.schedule(t, task)[0]
			// The customer changed their address since the event.
			f.gateway.invoice = func(_, id string) (domain.Invoice, error) {
				return domain.Invoice{ID: id, Status: "open", CustomerEmail: "jenny.new@example.com",
					AmountDue: 2500, Currency: "eur", HostedInvoiceURL: "https://invoice.stripe.com/i/fresh"}, nil
			}

			is.Equal(runOnceOK(t, f.worker(t, workerTestConfig())), 1) // one task run

			is.Equal(f.get(t, task.ID).Status, domain.StatusSucceeded) // sent
			sent := f.notifier.all()
			is.Equal(len(sent), 1) // one email
			n := sent[0]
			is.Equal(n.Type, typ)                           // its type
			is.Equal(n.TaskID, task.ID)                     // its task
			is.Equal(n.MerchantName, "Acme Books")          // merchant's name
			is.Equal(n.IdempotencyKey, domain.RunKey(task)) // key of the scheduled run
			is.Equal(len(f.gateway.payCalls()), 0)          // nothing charged
			if typ == domain.TypeNotifyChargeFailed {
				is.Equal(f.gateway.readCount(), 0)  // no invoice to re-read
				is.Equal(n.To, "jenny@example.com") // the task's address
				is.Equal(n.Amount, int64(2000))     // the task's amount
				is.Equal(n.ChargeID, "ch_1")        // the charge
				return
			}
			is.Equal(n.To, "jenny.new@example.com")                            // the invoice's current address
			is.Equal(n.Amount, int64(2500))                                    // its current amount
			is.Equal(n.Currency, "eur")                                        // in its currency
			is.Equal(n.HostedInvoiceURL, "https://invoice.stripe.com/i/fresh") // its current link
		})
	}
}

func TestWorkerOutcomes(t *testing.T) {
	soft := &domain.PaymentError{Kind: domain.PaymentSoftDecline, Code: "insufficient_funds", Message: "Your card has insufficient funds."}
	hard := &domain.PaymentError{Kind: domain.PaymentHardDecline, Code: "stolen_card", Message: "Your card was declined."}
	transient := &domain.PaymentError{Kind: domain.PaymentTransient, Code: "rate_limit", Message: "Too many requests", Err: errors.New("dial tcp 10.0.0.7:443: i/o timeout")}
	permanent := &domain.PaymentError{Kind: domain.PaymentPermanent, Message: "No such invoice: 'in_1'", Err: errors.New("POST http://10.0.0.7/v1/invoices: 404")}
	cases := []struct {
		name       string
		err        error
		wantStatus domain.TaskStatus
		wantError  string // last_error, exactly
	}{
		{"soft decline fails the attempt", soft, domain.StatusFailed, "card declined (insufficient_funds): Your card has insufficient funds."},
		{"transient backs off", transient, domain.StatusPending, "payment provider unreachable; will retry"},
		{"plain error backs off", errors.New("read tcp 10.0.0.7:443: connection reset"), domain.StatusPending, "internal error; will retry"},
		{"hard decline fails at once", hard, domain.StatusFailed, "card declined (stolen_card): Your card was declined."},
		{"permanent fails at once", permanent, domain.StatusFailed, "No such invoice: 'in_1'"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			is := is.New(t)
			f := newWorkerFixture(t)
			task := f.schedule(t, f.task(domain.TypeRetryPayment))[0]
			f.gateway.pay = func(context.Context, string, string, string) error { return c.err }
			start := f.clock.Now()

			runOnceOK(t, f.worker(t, workerTestConfig()))

			got := f.get(t, task.ID)
			is.Equal(got.Status, c.wantStatus)                    // status
			is.Equal(got.Attempts, 1)                             // the attempt counted
			is.Equal(got.LastError, c.wantError)                  // last_error says why, for the merchant
			is.True(!strings.Contains(got.LastError, "10.0.0.7")) // never recoup's infrastructure
			if c.err != nil && strings.Contains(c.err.Error(), "10.0.0.7") {
				is.True(strings.Contains(f.logs.String(), "10.0.0.7")) // which only the log gets
			}
			if c.wantStatus == domain.StatusPending {
				// First backoff: base (1 min) with jitter in its upper half.
				is.True(!got.RunAt.Before(start.Add(30 * time.Second))) // not before half the base
				is.True(!got.RunAt.After(start.Add(time.Minute)))       // not after the base
			}
		})
	}
}

func TestWorkerBackoffGrowsUntilMaxAttempts(t *testing.T) {
	is := is.New(t)
	f := newWorkerFixture(t)
	task := f.schedule(t, f.task(domain.TypeRetryPayment))[0]
	f.gateway.pay = func(context.Context, string, string, string) error {
		return &domain.PaymentError{Kind: domain.PaymentTransient, Code: "rate_limit", Message: "Too many requests"}
	}
	cfg := workerTestConfig() // 3 attempts, 1 min doubling, capped at 10 min
	w := f.worker(t, cfg)

	for attempt := 1; attempt <= cfg.MaxAttempts; attempt++ {
		before := f.clock.Now()
		is.Equal(runOnceOK(t, w), 1) // the task is due and runs
		got := f.get(t, task.ID)
		is.Equal(got.Attempts, attempt) // attempts kept
		if attempt < cfg.MaxAttempts {
			is.Equal(got.Status, domain.StatusPending) // tries again
			full := time.Minute << (attempt - 1)
			is.True(!got.RunAt.Before(before.Add(full / 2))) // backoff doubles: lower bound
			is.True(!got.RunAt.After(before.Add(full)))      // backoff doubles: upper bound
			is.Equal(runOnceOK(t, w), 0)                     // not due before its backoff
			f.clock.Add(got.RunAt.Sub(before))
			continue
		}
		is.Equal(got.Status, domain.StatusFailed)                            // gave up
		is.True(strings.Contains(got.LastError, "gave up after 3 attempts")) // says so
		is.True(strings.Contains(got.LastError, "unreachable"))              // and why
	}
	keys := map[string]bool{}
	for _, p := range f.gateway.payCalls() {
		keys[p.Key] = true
	}
	is.Equal(len(keys), 3) // each attempt its own idempotency key
}

func TestWorkerTransientThenSuccess(t *testing.T) {
	is := is.New(t)
	f := newWorkerFixture(t)
	task := f.schedule(t, f.task(domain.TypeRetryPayment))[0]
	calls := 0
	f.gateway.pay = func(context.Context, string, string, string) error {
		calls++ // RunOnce runs one task here: no race
		if calls == 1 {
			return &domain.PaymentError{Kind: domain.PaymentTransient, Message: "Stripe answered 503"}
		}
		return nil
	}
	w := f.worker(t, workerTestConfig())

	runOnceOK(t, w)
	is.Equal(f.get(t, task.ID).Status, domain.StatusPending) // backed off
	f.clock.Add(time.Hour)
	runOnceOK(t, w)

	got := f.get(t, task.ID)
	is.Equal(got.Status, domain.StatusSucceeded)                        // paid on the second attempt
	is.Equal(got.Attempts, 2)                                           // two attempts
	is.Equal(got.LastError, "payment provider unreachable; will retry") // the earlier failure kept
	pays := f.gateway.payCalls()
	is.Equal(len(pays), 2)                     // two requests
	is.Equal(pays[0].Key, domain.RunKey(task)) // the first run's key
	is.True(pays[1].Key != pays[0].Key)        // the rescheduled run is a new request
}

func TestWorkerCancelsWhenInvoiceClosed(t *testing.T) {
	for _, status := range []string{"paid", "void", "uncollectible"} {
		for _, typ := range []domain.TaskType{domain.TypeRetryPayment, domain.TypeNotifyPaymentFailed, domain.TypeNotifyActionRequired} {
			t.Run(status+" "+string(typ), func(t *testing.T) {
				is := is.New(t)
				f := newWorkerFixture(t)
				task := f.schedule(t, f.task(typ))[0]
				f.gateway.invoice = func(_, id string) (domain.Invoice, error) {
					return domain.Invoice{ID: id, Status: status, CustomerEmail: "jenny@example.com"}, nil
				}

				runOnceOK(t, f.worker(t, workerTestConfig()))

				got := f.get(t, task.ID)
				is.Equal(got.Status, domain.StatusCancelled)     // cancelled
				is.True(strings.Contains(got.LastError, status)) // says why
				is.Equal(len(f.gateway.payCalls()), 0)           // nothing charged
				is.Equal(len(f.notifier.all()), 0)               // nobody emailed
			})
		}
	}
}

func TestWorkerInvoiceReadFails(t *testing.T) {
	is := is.New(t)
	f := newWorkerFixture(t)
	notify := f.schedule(t, f.task(domain.TypeNotifyPaymentFailed))[0]
	f.gateway.invoice = func(_, id string) (domain.Invoice, error) {
		return domain.Invoice{}, &domain.PaymentError{Kind: domain.PaymentTransient, Message: "timeout"}
	}
	runOnceOK(t, f.worker(t, workerTestConfig()))
	got := f.get(t, notify.ID)
	is.Equal(got.Status, domain.StatusPending)                          // tries again later
	is.Equal(got.LastError, "payment provider unreachable; will retry") // says why
	is.Equal(len(f.notifier.all()), 0)                                  // no email without a re-read

	f.gateway.invoice = func(_, id string) (domain.Invoice, error) {
		return domain.Invoice{}, &domain.PaymentError{Kind: domain.PaymentPermanent, Message: "No such invoice", Err: domain.ErrNotFound}
	}
	f.clock.Add(time.Hour)
	runOnceOK(t, f.worker(t, workerTestConfig()))
	got = f.get(t, notify.ID)
	is.Equal(got.Status, domain.StatusFailed)                   // an unknown invoice fails for good
	is.True(strings.Contains(got.LastError, "No such invoice")) // says why
}

func TestWorkerWithoutGateway(t *testing.T) {
	is := is.New(t)
	f := newWorkerFixture(t)
	retry := f.task(domain.TypeRetryPayment)
	notify := f.task(domain.TypeNotifyPaymentFailed)
	f.schedule(t, retry, notify)

	w := f.workerWith(t, workerTestConfig(), nil) // STRIPE_API_KEY unset
	is.Equal(runOnceOK(t, w), 2)                  // both run

	got := f.get(t, retry.ID)
	is.Equal(got.Status, domain.StatusFailed)                                   // retries disabled
	is.True(strings.Contains(got.LastError, "no Stripe API key is configured")) // clearly
	is.Equal(f.get(t, notify.ID).Status, domain.StatusSucceeded)                // emails still go out
	is.Equal(len(f.notifier.all()), 1)                                          // one email
}

func TestWorkerNotifierErrors(t *testing.T) {
	t.Run("temporary", func(t *testing.T) {
		is := is.New(t)
		f := newWorkerFixture(t)
		task := f.schedule(t, f.task(domain.TypeNotifyPaymentFailed))[0]
		f.notifier.err = errors.New("dial tcp 127.0.0.1:25: connection refused (to jenny.new@example.com)")
		runOnceOK(t, f.worker(t, workerTestConfig()))
		got := f.get(t, task.ID)
		is.Equal(got.Status, domain.StatusPending)                       // tries again
		is.Equal(got.LastError, "email delivery failed; will retry")     // says what, not where
		is.True(strings.Contains(f.logs.String(), "connection refused")) // the log says where
		is.True(strings.Contains(f.logs.String(), "j***@example.com"))   // with the address masked
		is.True(!strings.Contains(f.logs.String(), "jenny"))             // never whole
	})
	t.Run("permanent", func(t *testing.T) {
		is := is.New(t)
		f := newWorkerFixture(t)
		task := f.schedule(t, f.task(domain.TypeNotifyPaymentFailed))[0]
		f.notifier.err = fmt.Errorf("%w: smtp server refused recipient", domain.ErrInvalid)
		runOnceOK(t, f.worker(t, workerTestConfig()))
		is.Equal(f.get(t, task.ID).Status, domain.StatusFailed) // fails at once
	})
	t.Run("no recipient", func(t *testing.T) {
		is := is.New(t)
		f := newWorkerFixture(t)
		task := f.task(domain.TypeNotifyChargeFailed)
		task.StripeInvoiceID, task.CustomerEmail, task.StripeCustomerID = "", "", ""
		f.schedule(t, task)
		runOnceOK(t, f.worker(t, workerTestConfig()))
		got := f.get(t, task.ID)
		is.Equal(got.Status, domain.StatusFailed)                 // nobody to email
		is.True(strings.Contains(got.LastError, "email address")) // says so
		is.Equal(len(f.notifier.all()), 0)                        // nothing sent
	})
}

func TestWorkerSurvivesPanic(t *testing.T) {
	is := is.New(t)
	f := newWorkerFixture(t)
	bad := f.task(domain.TypeRetryPayment)
	good := f.task(domain.TypeRetryPayment)
	f.schedule(t, bad, good)
	var mu sync.Mutex
	panicking := true
	f.gateway.pay = func(_ context.Context, _, invoice, _ string) error {
		mu.Lock()
		defer mu.Unlock()
		if invoice == bad.StripeInvoiceID && panicking {
			panic("nil map in a gateway")
		}
		return nil
	}
	w := f.worker(t, workerTestConfig())

	is.Equal(runOnceOK(t, w), 2) // both ran
	got := f.get(t, bad.ID)
	is.Equal(got.Status, domain.StatusPending)                          // a failed attempt, retried later
	is.Equal(got.Attempts, 1)                                           // counted
	is.Equal(got.LastError, "internal error; will retry")               // says what happened
	is.True(strings.Contains(f.logs.String(), "panic: nil map"))        // in detail in the log only
	is.Equal(f.get(t, good.ID).Status, domain.StatusSucceeded)          // the other task unharmed
	is.True(strings.Contains(f.logs.String(), "worker: task panicked")) // logged with its stack

	mu.Lock()
	panicking = false
	mu.Unlock()
	f.clock.Add(time.Hour)
	is.Equal(runOnceOK(t, w), 1)                              // the same worker goes on
	is.Equal(f.get(t, bad.ID).Status, domain.StatusSucceeded) // and the task succeeds
}

func TestWorkerFinishConflict(t *testing.T) {
	is := is.New(t)
	f := newWorkerFixture(t)
	task := f.schedule(t, f.task(domain.TypeRetryPayment))[0]
	entered, release := make(chan struct{}), make(chan struct{})
	keys := make(chan string, 2)
	var calls atomic.Int32
	f.gateway.pay = func(_ context.Context, _, _, key string) error {
		keys <- key
		if calls.Add(1) == 1 {
			close(entered)
			<-release // the first run hangs past its lease
		}
		return nil
	}
	cfg := workerTestConfig()
	first := f.worker(t, cfg)
	done := make(chan int)
	go func() {
		n, _ := first.RunOnce(context.Background())
		done <- n
	}()
	<-entered

	f.clock.Add(cfg.Lease + time.Second)
	second := f.worker(t, cfg)
	is.Equal(runOnceOK(t, second), 1) // the expired lease is claimed again
	close(release)
	is.Equal(<-done, 1) // the first worker ends normally

	got := f.get(t, task.ID)
	is.Equal(got.Status, domain.StatusSucceeded)                                        // the second claim's outcome counts
	is.Equal(got.Attempts, 2)                                                           // two claims
	is.True(strings.Contains(f.logs.String(), "task outcome not recorded, claim lost")) // the conflict is logged
	// The reclaimed run repeats the first run's idempotency key, so Stripe
	// cannot charge twice for a run whose worker was presumed dead.
	is.Equal(<-keys, <-keys)
}

func TestWorkerSupersededRetryIsCancelled(t *testing.T) {
	is := is.New(t)
	f := newWorkerFixture(t)
	old := f.schedule(t, f.task(domain.TypeRetryPayment))[0]
	entered, release := make(chan struct{}), make(chan struct{})
	f.gateway.pay = func(context.Context, string, string, string) error {
		close(entered)
		<-release
		return &domain.PaymentError{Kind: domain.PaymentTransient, Message: "Stripe answered 503"}
	}
	w := f.worker(t, workerTestConfig())
	done := make(chan int)
	go func() {
		n, _ := w.RunOnce(context.Background())
		done <- n
	}()
	<-entered
	// Meanwhile the invoice failed again and a new retry was scheduled.
	newer := f.task(domain.TypeRetryPayment)
	newer.StripeInvoiceID, newer.InvoiceAttempt = old.StripeInvoiceID, 2
	newer.RunAt = f.clock.Now().Add(72 * time.Hour)
	f.schedule(t, newer)
	close(release)
	is.Equal(<-done, 1) // ran

	got := f.get(t, old.ID)
	is.Equal(got.Status, domain.StatusCancelled)              // superseded, not stuck running
	is.True(strings.Contains(got.LastError, "superseded"))    // says so
	is.Equal(f.get(t, newer.ID).Status, domain.StatusPending) // the newer retry stands
}

// startWorker runs w.Run in the background; stop cancels its context and
// returns Run's error once it has returned.
func startWorker(w *app.Worker) (stop func() error, returned <-chan struct{}) {
	stop, returned, _ = startWorkerObserved(w)
	return stop, returned
}

// startWorkerObserved is startWorker that also tells when stop has cancelled
// the context (before Run returns).
func startWorkerObserved(w *app.Worker) (stop func() error, returned, cancelled <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	ret, canc := make(chan struct{}), make(chan struct{})
	go func() {
		errc <- w.Run(ctx)
		close(ret)
	}()
	return func() error { cancel(); close(canc); return <-errc }, ret, canc
}

func TestWorkerRunRespectsConcurrency(t *testing.T) {
	is := is.New(t)
	f := newWorkerFixture(t)
	const n, conc = 25, 3
	tasks := make([]domain.Task, n)
	for i := range tasks {
		tasks[i] = f.task(domain.TypeRetryPayment)
	}
	f.schedule(t, tasks...)
	started := make(chan struct{}, n)
	release := make(chan struct{})
	f.gateway.pay = func(context.Context, string, string, string) error {
		started <- struct{}{}
		<-release
		return nil
	}
	cfg := workerTestConfig()
	cfg.Concurrency = conc
	stop, _ := startWorker(f.worker(t, cfg))

	// Let tasks through one at a time: each release frees a slot, which
	// the worker fills at once (the backlog is full, so it does not wait
	// for its hour-long poll).
	for range conc {
		<-started
	}
	for i := range n {
		release <- struct{}{}
		if i < n-conc {
			<-started
		}
	}
	is.NoErr(stop()) // Run returns nil

	is.Equal(f.gateway.maxInFlight(), conc) // never more than the bound, and the bound used
	is.Equal(len(f.gateway.payCalls()), n)  // every task ran once
	for _, task := range tasks {
		is.Equal(f.get(t, task.ID).Status, domain.StatusSucceeded) // all recorded
	}
}

func TestWorkerRunDrainsOnCancel(t *testing.T) {
	is := is.New(t)
	f := newWorkerFixture(t)
	a, b, c := f.task(domain.TypeRetryPayment), f.task(domain.TypeRetryPayment), f.task(domain.TypeRetryPayment)
	c.RunAt = c.RunAt.Add(time.Second) // due only after a and b
	f.schedule(t, a, b, c)
	started := make(chan struct{}, 3)
	release := make(chan struct{})
	f.gateway.pay = func(context.Context, string, string, string) error {
		started <- struct{}{}
		<-release
		return nil
	}
	cfg := workerTestConfig()
	cfg.Concurrency = 2
	stop, returned, cancelled := startWorkerObserved(f.worker(t, cfg))
	<-started
	<-started
	f.clock.Add(time.Minute) // c is due now, but no slot is free

	stopped := make(chan error, 1)
	go func() { stopped <- stop() }() // SIGTERM
	<-cancelled
	select {
	case <-returned:
		t.Fatal("Run returned while tasks were in flight")
	default:
	}
	close(release)
	is.NoErr(<-stopped) // Run returns nil after draining

	for _, p := range f.gateway.payCalls() {
		is.NoErr(p.CtxErr) // in-flight tasks were not cut short by the shutdown
	}
	is.Equal(f.get(t, a.ID).Status, domain.StatusSucceeded) // drained and recorded
	is.Equal(f.get(t, b.ID).Status, domain.StatusSucceeded) // drained and recorded
	got := f.get(t, c.ID)
	is.Equal(got.Status, domain.StatusPending) // nothing new claimed after the cancel
	is.Equal(got.Attempts, 0)                  // never touched
}

func TestWorkerWake(t *testing.T) {
	is := is.New(t)
	f := newWorkerFixture(t)
	f.notifier.sentCh = make(chan domain.Notification, 2)
	w := f.worker(t, workerTestConfig()) // polls only once an hour
	first := f.schedule(t, f.task(domain.TypeNotifyPaymentFailed))[0]
	stop, _ := startWorker(w)
	defer func() { is.NoErr(stop()) }() // stops cleanly

	waitSent := func(want domain.TaskID, why string) {
		t.Helper()
		select {
		case n := <-f.notifier.sentCh:
			is.Equal(n.TaskID, want) // the expected task ran
		case <-time.After(30 * time.Second):
			t.Fatal(why)
		}
	}
	// Once the first task ran, the worker has made its first claim and
	// waits for its next poll, an hour away.
	waitSent(first.ID, "the worker did not run the task due at its start")
	second := f.schedule(t, f.task(domain.TypeNotifyPaymentFailed))[0]
	w.Wake()
	waitSent(second.ID, "Wake did not make the worker look for due work")
}

// TestWorkerOutOfOrderEvents: Stripe delivers invoice.paid before a late
// invoice.payment_failed for the same invoice. The failure still schedules
// an email, but the worker re-reads the invoice, sees it paid, and cancels
// instead of emailing.
func TestWorkerOutOfOrderEvents(t *testing.T) {
	is := is.New(t)
	f := newWorkerFixture(t)
	ctx := context.Background()
	hooks := app.NewWebhookService(f.store, app.WebhookConfig{Clock: f.clock})
	inv := domain.Invoice{
		ID: "in_outoforder", Status: "open", CustomerID: "cus_1", CustomerEmail: "jenny@example.com",
		AmountDue: 2000, Currency: "usd", HostedInvoiceURL: "https://invoice.stripe.com/i/ooo", AttemptCount: 1,
	}
	paid := inv
	paid.Status, paid.AmountPaid, paid.AmountDue = "paid", 2000, 0

	res, err := hooks.Handle(ctx, domain.Event{ID: "evt_paid", Type: domain.EventInvoicePaid, Account: f.merchant.StripeAccountID, Invoice: &paid})
	is.NoErr(err)          // invoice.paid handled
	is.True(res.Processed) // processed
	res, err = hooks.Handle(ctx, domain.Event{ID: "evt_failed_late", Type: domain.EventInvoicePaymentFailed, Account: f.merchant.StripeAccountID, Invoice: &inv})
	is.NoErr(err)               // the late failure is handled
	is.True(len(res.Tasks) > 0) // and schedules a task, since it cannot know better

	f.gateway.invoice = func(_, id string) (domain.Invoice, error) { return paid, nil } // Stripe's truth
	f.clock.Add(8 * 24 * time.Hour)                                                     // everything due
	is.Equal(runOnceOK(t, f.worker(t, workerTestConfig())), len(res.Tasks))             // all its tasks ran

	for _, id := range res.Tasks {
		got := f.get(t, id)
		is.Equal(got.Status, domain.StatusCancelled)     // cancelled
		is.True(strings.Contains(got.LastError, "paid")) // because the invoice is paid
	}
	is.Equal(len(f.notifier.all()), 0)     // nobody emailed
	is.Equal(len(f.gateway.payCalls()), 0) // nothing charged
}

// TestWorkersShareQueue: two workers on one store, 1,000 due tasks: every
// task is executed exactly once.
func TestWorkersShareQueue(t *testing.T) {
	is := is.New(t)
	f := newWorkerFixture(t)
	const n = 1000
	tasks := make([]domain.Task, n)
	for i := range tasks {
		tasks[i] = f.task(domain.TypeRetryPayment)
	}
	f.schedule(t, tasks...)
	var mu sync.Mutex
	paid := map[string]int{}
	all := make(chan struct{})
	f.gateway.pay = func(_ context.Context, _, invoice, _ string) error {
		mu.Lock()
		defer mu.Unlock()
		paid[invoice]++
		if len(paid) == n && paid[invoice] == 1 {
			close(all)
		}
		return nil
	}
	cfg := workerTestConfig()
	cfg.Concurrency = 8
	stopA, _ := startWorker(f.worker(t, cfg))
	stopB, _ := startWorker(f.worker(t, cfg))
	select {
	case <-all:
	case <-time.After(60 * time.Second):
		t.Fatal("the workers did not run every task")
	}
	is.NoErr(stopA()) // first worker stops
	is.NoErr(stopB()) // second worker stops

	mu.Lock()
	defer mu.Unlock()
	for _, task := range tasks {
		is.Equal(paid[task.StripeInvoiceID], 1)                    // paid exactly once
		is.Equal(f.get(t, task.ID).Status, domain.StatusSucceeded) // and recorded
		is.Equal(f.get(t, task.ID).Attempts, 1)                    // in one attempt
	}
}
