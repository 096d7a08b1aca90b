package app_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/recoupdev/recoup/adapters/memory"
	"github.com/recoupdev/recoup/app"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/clocktest"
	"github.com/recoupdev/recoup/internal/logtest"
	"github.com/recoupdev/recoup/internal/stripetest"
	"github.com/recoupdev/recoup/ports"
)

// useCases is the webhook, task and merchant use cases on one fresh memory
// store, with a fixed clock, an observer and a log that the tests read.
type useCases struct {
	mem       *memory.Store
	clock     *clocktest.Clock
	obs       *recordingObserver
	logs      *logtest.Buffer
	webhooks  *app.WebhookService
	tasks     *app.TaskService
	merchants *app.MerchantService
}

// newUseCases builds the use cases on a fresh memory store; wrap, if given,
// puts a wrapper of the store (a faultyStore) between them and the store.
func newUseCases(t *testing.T, wrap func(ports.Storage) ports.Storage) *useCases {
	t.Helper()
	clock := clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	u := &useCases{mem: memory.New(clock), clock: clock, obs: &recordingObserver{}, logs: &logtest.Buffer{}}
	var store ports.Storage = u.mem
	if wrap != nil {
		store = wrap(u.mem)
	}
	log := slog.New(slog.NewJSONHandler(u.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	u.webhooks = app.NewWebhookService(store, app.WebhookConfig{Clock: clock, Logger: log, Observer: u.obs})
	u.tasks = app.NewTaskService(store.Tasks(), store.Ledger(), clock)
	u.merchants = app.NewMerchantService(store.Merchants(), clock)
	return u
}

// merchant creates a merchant through the merchant use case, on a fresh
// Stripe account.
func (u *useCases) merchant(t *testing.T, name string) domain.Merchant {
	t.Helper()
	m, _, err := u.merchants.Create(context.Background(), name, stripetest.NewID("acct_"))
	if err != nil {
		t.Fatalf("create merchant %s: %v", name, err)
	}
	return m
}

// handle runs the webhook use case and fails the test on an error.
func (u *useCases) handle(t *testing.T, ev domain.Event) app.WebhookResult {
	t.Helper()
	res, err := u.webhooks.Handle(context.Background(), ev)
	if err != nil {
		t.Fatalf("handle %s %s: %v", ev.Type, ev.ID, err)
	}
	return res
}

// tasksOf reads every task of the merchant straight from the store, newest
// first.
func (u *useCases) tasksOf(t *testing.T, m domain.MerchantID) []domain.Task {
	t.Helper()
	var all []domain.Task
	f := domain.TaskFilter{Limit: domain.MaxPageSize}
	for {
		page, err := u.mem.Tasks().List(context.Background(), m, f)
		if err != nil {
			t.Fatalf("list tasks: %v", err)
		}
		all = append(all, page.Tasks...)
		if page.Next == nil {
			return all
		}
		f.After = page.Next
	}
}

// get reads one task of the merchant straight from the store.
func (u *useCases) get(t *testing.T, m domain.MerchantID, id domain.TaskID) domain.Task {
	t.Helper()
	task, err := u.mem.Tasks().Get(context.Background(), m, id)
	if err != nil {
		t.Fatalf("get task %s: %v", id, err)
	}
	return task
}

// pendingAnywhere counts the pending tasks of every merchant, whenever they
// are due: what a stray write of the webhook would have left.
func (u *useCases) pendingAnywhere(t *testing.T) int {
	t.Helper()
	n, _, err := u.mem.Queue().Backlog(context.Background(), u.clock.Now().AddDate(10, 0, 0))
	if err != nil {
		t.Fatalf("backlog: %v", err)
	}
	return n
}

// recovery reads the merchant's recovery figures straight from the store.
func (u *useCases) recovery(t *testing.T, m domain.MerchantID) map[string]domain.CurrencyRecovery {
	t.Helper()
	r, err := u.mem.Ledger().Recovery(context.Background(), m)
	if err != nil {
		t.Fatalf("recovery: %v", err)
	}
	return r
}

var errProbeRollback = errors.New("probe: roll back")

// lockFree reports whether the event's idempotency lock can still be taken
// (the probe rolls back, so it leaves the lock as it found it).
func (u *useCases) lockFree(t *testing.T, eventID string) bool {
	t.Helper()
	var free bool
	err := u.mem.InTx(context.Background(), func(ctx context.Context, tx ports.Tx) error {
		ok, err := tx.Events().AttemptEventLock(ctx, eventID)
		if err != nil {
			return err
		}
		free = ok
		return errProbeRollback
	})
	if !errors.Is(err, errProbeRollback) {
		t.Fatalf("lock probe: %v", err)
	}
	return free
}

// taskIn makes a task of m in the given status, on an invoice and a charge
// of its own (so that the "at most one" rules leave it alone and it can be
// cancelled alone). Only one task may be due in the store at a time for
// this to work: it claims what is due.
func (u *useCases) taskIn(t *testing.T, m domain.MerchantID, status domain.TaskStatus) domain.Task {
	t.Helper()
	ctx := context.Background()
	now := u.clock.Now()
	runAt := now.Add(time.Hour)
	if status == domain.StatusRunning || status == domain.StatusSucceeded || status == domain.StatusFailed {
		runAt = now.Add(-time.Minute) // due, to be claimed
	}
	task := u.schedule(t, m, now, runAt)
	switch status {
	case domain.StatusPending:
		return task
	case domain.StatusCancelled:
		ids, err := u.mem.Tasks().CancelPending(ctx, m, domain.CancelSelector{InvoiceID: task.StripeInvoiceID}, now)
		if err != nil || len(ids) != 1 {
			t.Fatalf("cancel: %v %v", err, ids)
		}
		return u.get(t, m, task.ID)
	}
	claimed, err := u.mem.Queue().ClaimDue(ctx, now, time.Hour, 10)
	if err != nil || len(claimed) != 1 || claimed[0].ID != task.ID {
		t.Fatalf("claim: %v %v", err, claimed)
	}
	if status != domain.StatusRunning {
		res := domain.TaskResult{Status: status, At: now}
		if status == domain.StatusFailed {
			res.LastError = "card declined (insufficient_funds)"
		}
		if err := u.mem.Queue().Finish(ctx, m, task.ID, claimed[0].Attempts, res); err != nil {
			t.Fatalf("finish: %v", err)
		}
	}
	got := u.get(t, m, task.ID)
	if got.Status != status {
		t.Fatalf("task is %s, want %s", got.Status, status)
	}
	return got
}

// schedule stores a pending notify_charge_failed of m straight through the
// store, on an invoice and a charge of its own.
func (u *useCases) schedule(t *testing.T, m domain.MerchantID, createdAt, runAt time.Time) domain.Task {
	t.Helper()
	task := domain.Task{
		ID: domain.TaskID(domain.NewID()), MerchantID: m, Type: domain.TypeNotifyChargeFailed,
		Status: domain.StatusPending, StripeEventID: stripetest.NewID("evt_"),
		StripeCustomerID: "cus_test", StripeInvoiceID: stripetest.NewID("in_"),
		StripeChargeID: stripetest.NewID("ch_"), CustomerEmail: "jenny@example.com",
		AmountDue: 1500, Currency: "eur", RunAt: runAt, CreatedAt: createdAt, UpdatedAt: createdAt,
	}
	stored, err := u.mem.Tasks().Schedule(context.Background(), m, []domain.Task{task})
	if err != nil || len(stored) != 1 {
		t.Fatalf("schedule: %v (%d stored)", err, len(stored))
	}
	return stored[0]
}

// sortedIDs returns the tasks' ids, sorted.
func sortedIDs(tasks []domain.Task) []domain.TaskID {
	ids := make([]domain.TaskID, 0, len(tasks))
	for _, t := range tasks {
		ids = append(ids, t.ID)
	}
	slices.Sort(ids)
	return ids
}

// sorted returns a sorted copy of ids.
func sorted(ids []domain.TaskID) []domain.TaskID {
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}

// paymentFailedEvent is an invoice.payment_failed of the connected account
// on an invoice that Stripe will not retry itself, at the given attempt.
func paymentFailedEvent(account, invoiceID, subscriptionID string, attempt int) domain.Event {
	return domain.Event{
		ID: stripetest.NewID("evt_"), Type: domain.EventInvoicePaymentFailed, Account: account,
		Invoice: &domain.Invoice{
			ID: invoiceID, Status: "open", CustomerID: "cus_jenny", CustomerEmail: "jenny@example.com",
			SubscriptionID: subscriptionID, ChargeID: stripetest.NewID("ch_"), AmountDue: 2000, Currency: "usd",
			HostedInvoiceURL: "https://invoice.stripe.com/i/test", AttemptCount: attempt,
		},
	}
}

// invoiceEvent is an event of type eventType (invoice.paid, …) about a
// whole paid invoice of the connected account.
func invoiceEvent(eventType, account, invoiceID, subscriptionID string) domain.Event {
	status := map[string]string{
		domain.EventInvoicePaid: "paid", domain.EventInvoiceVoided: "void", domain.EventInvoiceMarkedUncollectible: "uncollectible",
	}[eventType]
	return domain.Event{
		ID: stripetest.NewID("evt_"), Type: eventType, Account: account,
		Invoice: &domain.Invoice{
			ID: invoiceID, Status: status, CustomerID: "cus_jenny", SubscriptionID: subscriptionID,
			AmountDue: 2000, AmountPaid: 2000, Currency: "usd", AttemptCount: 2,
		},
	}
}

// observed is one delivery an Observer was told of.
type observed struct{ eventType, outcome string }

// recordingObserver records what the webhook use case tells it.
type recordingObserver struct {
	ports.NopObserver // what the webhook does not report
	mu                sync.Mutex
	deliveries        []observed
	lockWaits         int
}

var _ ports.Observer = (*recordingObserver)(nil)

func (o *recordingObserver) WebhookDelivery(eventType, outcome string, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.deliveries = append(o.deliveries, observed{eventType, outcome})
}

func (o *recordingObserver) LockWait(time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.lockWaits++
}

// seen returns the deliveries observed so far and the number of lock waits.
func (o *recordingObserver) seen() ([]observed, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.deliveries), o.lockWaits
}

// count returns how many deliveries had this outcome.
func (o *recordingObserver) count(outcome string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, d := range o.deliveries {
		if d.outcome == outcome {
			n++
		}
	}
	return n
}

// The steps of a unit of work that a faultyStore sees.
const (
	stepLock     = "lock"
	stepSchedule = "schedule"
	stepCancel   = "cancel"
	stepFailure  = "record failure"
	stepPaid     = "record paid"
)

var errDiskFull = errors.New("disk full at /var/lib/recoup")

// faultyStore is a storage wrapper that records the steps each unit of work
// takes through its Tx, and that makes a step fail on demand: a failure
// after the event lock, inside the unit of work that took it.
type faultyStore struct {
	ports.Storage

	mu     sync.Mutex
	units  [][]string // each unit of work's steps, in order
	failAt string     // the step that fails with errDiskFull, while set
	// before, if set, runs before every step, on the unit of work's
	// goroutine; its error fails the step.
	before func(step string) error
}

func (s *faultyStore) failStep(step string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failAt = step
}

func (s *faultyStore) beforeStep(f func(step string) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.before = f
}

// unitsOfWork returns the steps of every unit of work begun so far.
func (s *faultyStore) unitsOfWork() [][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([][]string, len(s.units))
	for i, u := range s.units {
		out[i] = slices.Clone(u)
	}
	return out
}

func (s *faultyStore) InTx(ctx context.Context, fn func(context.Context, ports.Tx) error) error {
	s.mu.Lock()
	unit := len(s.units)
	s.units = append(s.units, nil)
	s.mu.Unlock()
	return s.Storage.InTx(ctx, func(ctx context.Context, tx ports.Tx) error {
		return fn(ctx, faultyTx{Tx: tx, s: s, unit: unit})
	})
}

// step records a step of a unit of work and says whether it fails.
func (s *faultyStore) step(unit int, name string) error {
	s.mu.Lock()
	s.units[unit] = append(s.units[unit], name)
	fail, before := s.failAt == name, s.before
	s.mu.Unlock()
	if before != nil {
		if err := before(name); err != nil {
			return err
		}
	}
	if fail {
		return fmt.Errorf("%s: %w", name, errDiskFull)
	}
	return nil
}

type faultyTx struct {
	ports.Tx
	s    *faultyStore
	unit int
}

func (t faultyTx) Events() ports.EventLocker { return faultyLocker{EventLocker: t.Tx.Events(), t: t} }
func (t faultyTx) Tasks() ports.TenantTaskRepository {
	return faultyTasks{TenantTaskRepository: t.Tx.Tasks(), t: t}
}
func (t faultyTx) Ledger() ports.InvoiceLedger {
	return faultyLedger{InvoiceLedger: t.Tx.Ledger(), t: t}
}

type faultyLocker struct {
	ports.EventLocker
	t faultyTx
}

func (l faultyLocker) AttemptEventLock(ctx context.Context, eventID string) (bool, error) {
	if err := l.t.s.step(l.t.unit, stepLock); err != nil {
		return false, err
	}
	return l.EventLocker.AttemptEventLock(ctx, eventID)
}

type faultyTasks struct {
	ports.TenantTaskRepository
	t faultyTx
}

func (r faultyTasks) Schedule(ctx context.Context, m domain.MerchantID, tasks []domain.Task) ([]domain.Task, error) {
	if err := r.t.s.step(r.t.unit, stepSchedule); err != nil {
		return nil, err
	}
	return r.TenantTaskRepository.Schedule(ctx, m, tasks)
}

func (r faultyTasks) CancelPending(ctx context.Context, m domain.MerchantID, sel domain.CancelSelector, now time.Time) ([]domain.TaskID, error) {
	if err := r.t.s.step(r.t.unit, stepCancel); err != nil {
		return nil, err
	}
	return r.TenantTaskRepository.CancelPending(ctx, m, sel, now)
}

type faultyLedger struct {
	ports.InvoiceLedger
	t faultyTx
}

// Record is the step of its fact's kind: a failure, a payment, or another.
func (l faultyLedger) Record(ctx context.Context, m domain.MerchantID, f domain.InvoiceFact) (domain.InvoiceRecord, error) {
	step := "record " + string(f.Kind)
	switch f.Kind {
	case domain.FactFailed:
		step = stepFailure
	case domain.FactPaid:
		step = stepPaid
	}
	if err := l.t.s.step(l.t.unit, step); err != nil {
		return domain.InvoiceRecord{}, err
	}
	return l.InvoiceLedger.Record(ctx, m, f)
}

// withFaultyStore builds the use cases over a faultyStore and returns both.
func withFaultyStore(t *testing.T) (*useCases, *faultyStore) {
	t.Helper()
	var fs *faultyStore
	u := newUseCases(t, func(s ports.Storage) ports.Storage {
		fs = &faultyStore{Storage: s}
		return fs
	})
	return u, fs
}
