package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"regexp"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// WorkerConfig tunes the task worker. Zero fields take the defaults of
// DefaultWorkerConfig.
type WorkerConfig struct {
	// Concurrency is how many tasks run at once in this process.
	Concurrency int
	// Poll is the longest wait before due work is noticed when nobody calls
	// Wake.
	Poll time.Duration
	// Lease is how long a claimed task stays with this worker before
	// another may take it. It must be longer than TaskTimeout, so that a
	// task is never run by two workers at once while its first run is alive.
	Lease time.Duration
	// TaskTimeout bounds one execution (the Stripe and SMTP calls of one
	// attempt). Default: the smaller of one minute and half the lease.
	TaskTimeout time.Duration
	// MaxAttempts is how many executions a task gets before a retryable
	// failure makes it failed.
	MaxAttempts int
	// UpdateLinks, when its BaseURL is set, puts in every customer email a
	// link to update the payment method (see domain.UpdateLink).
	UpdateLinks UpdateLinkConfig
	// BackoffBase is the delay after the first failed attempt; it doubles
	// with each attempt up to BackoffCap. The actual delay is drawn between
	// half of that and all of it, so that tasks failed together (an outage)
	// do not come back together.
	BackoffBase time.Duration
	BackoffCap  time.Duration
}

// UpdateLinkConfig says how the worker makes customers' update links:
// BaseURL/update/<token>, each token signed with Keys (see
// domain.LinkKeys).
type UpdateLinkConfig struct {
	BaseURL string // the deployment's public URL; empty: no links
	Keys    domain.LinkKeys
}

// emailWindow is the span of the weekly email cap.
const emailWindow = 7 * 24 * time.Hour

// DefaultWorkerConfig returns the defaults: 4 tasks at once, due work
// noticed within 1 s, 5 min lease, 5 attempts with backoff from 5 min
// doubling to at most 6 h.
func DefaultWorkerConfig() WorkerConfig {
	return WorkerConfig{
		Concurrency: 4,
		Poll:        time.Second,
		Lease:       5 * time.Minute,
		MaxAttempts: 5,
		BackoffBase: 5 * time.Minute,
		BackoffCap:  6 * time.Hour,
	}
}

// withDefaults fills zero fields and checks the result.
func (c WorkerConfig) withDefaults() (WorkerConfig, error) {
	d := DefaultWorkerConfig()
	if c.Concurrency == 0 {
		c.Concurrency = d.Concurrency
	}
	if c.Poll == 0 {
		c.Poll = d.Poll
	}
	if c.Lease == 0 {
		c.Lease = d.Lease
	}
	if c.TaskTimeout == 0 {
		c.TaskTimeout = min(time.Minute, c.Lease/2)
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = d.MaxAttempts
	}
	if c.BackoffBase == 0 {
		c.BackoffBase = d.BackoffBase
	}
	if c.BackoffCap == 0 {
		c.BackoffCap = max(d.BackoffCap, c.BackoffBase)
	}
	switch {
	case c.Concurrency < 1:
		return c, fmt.Errorf("%w: worker concurrency must be at least 1", domain.ErrInvalid)
	case c.Poll < 0 || c.Lease < 0 || c.TaskTimeout < 0 || c.BackoffBase < 0:
		return c, fmt.Errorf("%w: worker durations must be positive", domain.ErrInvalid)
	case c.TaskTimeout >= c.Lease:
		return c, fmt.Errorf("%w: worker task timeout %s must be shorter than the lease %s", domain.ErrInvalid, c.TaskTimeout, c.Lease)
	case c.MaxAttempts < 1:
		return c, fmt.Errorf("%w: worker max attempts must be at least 1", domain.ErrInvalid)
	case c.BackoffCap < c.BackoffBase:
		return c, fmt.Errorf("%w: worker backoff cap %s is below its base %s", domain.ErrInvalid, c.BackoffCap, c.BackoffBase)
	case c.UpdateLinks.BaseURL != "" && len(c.UpdateLinks.Keys) == 0:
		return c, fmt.Errorf("%w: update links need a key", domain.ErrInvalid)
	}
	return c, nil
}

// ErrNoPaymentGateway is the last_error of a retry_payment task run by a
// worker built without a payment gateway (no Stripe API key configured).
var ErrNoPaymentGateway = merchantError("payment retries are disabled: no Stripe API key is configured")

// Worker runs due tasks: it claims them from the queue, re-reads their
// invoice, pays, emails or ends dunning, and records the outcome with
// what it learned (a decline code, a payment) and the new plan it makes.
// Several workers, in one process or many, may share one store: the claim
// gives each task to one.
type Worker struct {
	cfg       WorkerConfig
	store     ports.Storage
	merchants *merchantCache
	gateway   ports.PaymentGateway // nil: no Stripe key
	notifier  ports.Notifier
	clock     ports.Clock
	log       *slog.Logger
	obs       ports.Observer
	wake      chan struct{}
}

// WorkerPorts are what a Worker acts through.
type WorkerPorts struct {
	// Storage holds the tasks, merchants, policies and invoice records.
	// Required.
	Storage ports.Storage
	// Gateway acts on Stripe; nil (no Stripe key) makes payment retries
	// fail with ErrNoPaymentGateway and emails go out without re-reading
	// the invoice.
	Gateway ports.PaymentGateway
	// Notifier sends the customer emails. Required.
	Notifier ports.Notifier
	// Clock tells the time; nil is the system clock.
	Clock ports.Clock
	// Logger receives a line per task run; nil discards.
	Logger *slog.Logger
	// Observer is told every task run's type, outcome and duration; nil:
	// nobody.
	Observer ports.Observer
}

// NewWorker returns a worker; ErrInvalid when cfg is out of range or a
// required port is missing.
func NewWorker(cfg WorkerConfig, p WorkerPorts) (*Worker, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if p.Storage == nil || p.Notifier == nil {
		return nil, fmt.Errorf("%w: worker needs a storage and a notifier", domain.ErrInvalid)
	}
	w := &Worker{
		cfg: cfg, store: p.Storage, merchants: newMerchantCache(p.Storage.Merchants()), gateway: p.Gateway,
		notifier: p.Notifier, clock: p.Clock, log: p.Logger, obs: p.Observer, wake: make(chan struct{}, 1),
	}
	if w.clock == nil {
		w.clock = ports.SystemClock{}
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	if w.obs == nil {
		w.obs = ports.NopObserver{}
	}
	return w, nil
}

// runOutcome names a task run's outcome for the Observer; recordErr is the
// error of recording it.
func runOutcome(res domain.TaskResult, recordErr error) string {
	switch {
	case errors.Is(recordErr, domain.ErrConflict):
		return ports.TaskConflict
	case recordErr != nil:
		return ports.TaskUnrecorded
	}
	switch res.Status {
	case domain.StatusSucceeded:
		return ports.TaskSucceeded
	case domain.StatusPending:
		return ports.TaskRetry
	case domain.StatusCancelled:
		return ports.TaskCancelled
	}
	return ports.TaskFailed
}

// Config returns the worker's configuration with its defaults applied.
func (w *Worker) Config() WorkerConfig { return w.cfg }

// Wake makes a running worker look for due work now instead of at its next
// poll: the webhook side calls it after scheduling a task due now. It never
// blocks.
func (w *Worker) Wake() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run claims and executes due tasks, at most Concurrency at once, until ctx
// ends. Then it claims nothing more, waits for the tasks in flight to finish
// and be recorded (they run on a context that ctx's end does not cancel,
// bounded by TaskTimeout), and returns nil. Storage errors are logged and
// retried at the next poll; they do not stop the worker.
func (w *Worker) Run(ctx context.Context) error {
	done := make(chan struct{}, w.cfg.Concurrency)
	inflight := 0
	defer func() {
		for ; inflight > 0; inflight-- {
			<-done
		}
	}()
	timer := time.NewTimer(w.cfg.Poll)
	defer timer.Stop()

	for {
		// more: a slot that frees should claim again at once rather than
		// wait for the next poll. A claim may come back short, even empty,
		// while work is due: it skips what other units of work hold, and
		// those may be this worker's own tasks being recorded. So only an
		// empty claim with nothing in flight means the queue is drained.
		more := false
		if free := w.cfg.Concurrency - inflight; free > 0 && ctx.Err() == nil {
			tasks, err := w.store.Queue().ClaimDue(ctx, w.clock.Now(), w.cfg.Lease, free)
			if err != nil && ctx.Err() == nil {
				w.log.LogAttrs(ctx, slog.LevelError, "worker: claim due tasks", slog.String("error", err.Error()))
			}
			// Tasks returned are ours even if ctx just ended: run them.
			for _, t := range tasks {
				inflight++
				go func() {
					defer func() { done <- struct{}{} }()
					w.runTask(context.WithoutCancel(ctx), t)
				}()
			}
			more = err == nil && (len(tasks) > 0 || inflight > 0)
		} else if free == 0 {
			more = true
		}
		timer.Reset(w.cfg.Poll)

	wait:
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-done:
				inflight--
				if more {
					// Count every task that ended meanwhile, so that one
					// claim fills all free slots: under load the claims
					// grow instead of taking one task each.
					for drained := false; !drained; {
						select {
						case <-done:
							inflight--
						default:
							drained = true
						}
					}
					break wait
				}
			case <-w.wake:
				break wait
			case <-timer.C:
				break wait
			}
		}
	}
}

// RunOnce claims up to Concurrency due tasks, executes them concurrently,
// and returns how many it ran once all are recorded. Tests and benchmarks
// use it to step the worker; Run is the long-lived loop.
func (w *Worker) RunOnce(ctx context.Context) (int, error) {
	tasks, err := w.store.Queue().ClaimDue(ctx, w.clock.Now(), w.cfg.Lease, w.cfg.Concurrency)
	if err != nil {
		return 0, fmt.Errorf("claim due tasks: %w", err)
	}
	var wg sync.WaitGroup
	for _, t := range tasks {
		wg.Go(func() { w.runTask(context.WithoutCancel(ctx), t) })
	}
	wg.Wait()
	return len(tasks), nil
}

// run is how one attempt of a task ended: the result to record, the error
// that made it fail (for the log), and, when the attempt learned something
// of the invoice, the fact to record with the result and re-plan from.
type run struct {
	res   domain.TaskResult
	cause error
	fact  *domain.InvoiceFact
	// replan asks for the invoice's plan to be made again with the result,
	// from what its record already holds.
	replan bool
}

// runTask executes one claimed task and records its outcome. ctx is not
// cancelled by shutdown: a task that started is finished and recorded.
func (w *Worker) runTask(ctx context.Context, c ports.Claim) {
	start := time.Now()
	t := c.Task
	runCtx, cancel := context.WithTimeout(ctx, w.cfg.TaskTimeout)
	r := w.execute(runCtx, c)
	cancel()
	r.res.At = w.clock.Now()
	r.res.Messages = outcomeMessages(t, r.res)

	err := w.record(ctx, c, r)
	if errors.Is(err, domain.ErrConflict) && r.res.Status == domain.StatusPending && t.Type == domain.TypeRetryPayment {
		// A new plan for the invoice scheduled another retry while this
		// one ran, and an invoice has at most one pending retry: this one
		// is superseded. If the claim was lost instead, this conflicts too.
		r.res = domain.TaskResult{Status: domain.StatusCancelled, At: r.res.At, Reason: domain.ReasonSuperseded,
			LastError: r.res.LastError + "; superseded by a newer retry of the invoice"}
		err = w.record(ctx, c, run{res: r.res})
	}
	w.obs.TaskRun(string(t.Type), runOutcome(r.res, err), time.Since(start))

	attrs := []slog.Attr{
		slog.String("task_id", string(t.ID)), slog.String("merchant_id", string(t.MerchantID)),
		slog.String("type", string(t.Type)), slog.Int("attempt", t.Attempts),
		slog.String("status", string(r.res.Status)), slog.Duration("duration", time.Since(start)),
	}
	if r.res.Reason != "" {
		attrs = append(attrs, slog.String("reason", r.res.Reason))
	}
	if r.res.Status == domain.StatusPending {
		attrs = append(attrs, slog.Time("run_at", r.res.RunAt))
	}
	if r.res.LastError != "" {
		attrs = append(attrs, slog.String("last_error", r.res.LastError))
	}
	if r.cause != nil {
		// The whole detail, which last_error leaves out, with the
		// customer's address masked.
		attrs = append(attrs, slog.String("cause", maskEmails(r.cause.Error())))
	}
	switch {
	case errors.Is(err, domain.ErrConflict):
		// The lease ran out and another worker took the task, or a merchant
		// changed it meanwhile: that claim's outcome is the one that counts.
		w.log.LogAttrs(ctx, slog.LevelWarn, "worker: task outcome not recorded, claim lost", append(attrs, slog.String("error", err.Error()))...)
	case err != nil:
		// The task stays running and is claimed again once its lease
		// expires; the invoice re-read then sees what this run did.
		w.log.LogAttrs(ctx, slog.LevelError, "worker: record task outcome", append(attrs, slog.String("error", err.Error()))...)
	default:
		level := slog.LevelInfo
		if r.res.Status == domain.StatusFailed {
			level = slog.LevelWarn
		}
		w.log.LogAttrs(ctx, level, "worker: task run", attrs...)
	}
}

// outcomeMessages are the outbound messages that report a run's outcome
// to the merchant's endpoints, stored with it: task.succeeded or
// task.failed, with the task as it ends, and dunning.exhausted when an
// end_dunning ran.
func outcomeMessages(t domain.Task, res domain.TaskResult) []domain.OutboundMessage {
	var typ string
	switch res.Status {
	case domain.StatusSucceeded:
		typ = domain.OutboundTaskSucceeded
	case domain.StatusFailed:
		typ = domain.OutboundTaskFailed
	default:
		return nil
	}
	final := t
	final.Status, final.LastError, final.Reason, final.UpdatedAt = res.Status, res.LastError, res.Reason, res.At
	if res.DeclineCode != "" {
		final.DeclineCode = res.DeclineCode
	}
	types := []string{typ}
	if t.Type == domain.TypeEndDunning && res.Status == domain.StatusSucceeded {
		types = append(types, domain.OutboundDunningExhausted)
	}
	msgs := make([]domain.OutboundMessage, 0, len(types))
	for _, typ := range types {
		payload, err := domain.OutboundPayload(typ, res.At, final)
		if err != nil {
			continue // a task always marshals
		}
		msgs = append(msgs, domain.OutboundMessage{Type: typ, Payload: payload, At: res.At})
	}
	return msgs
}

// record stores the result of the claimed task's run. A run that learned
// a fact of the invoice records it in the same unit of work, and the plan
// it leads to (a new retry, the end of dunning, or their cancellation)
// under the policy the claim read: one stored since applies to the tasks
// scheduled after it, as a policy change never moves tasks already
// scheduled.
func (w *Worker) record(ctx context.Context, c ports.Claim, r run) error {
	t := c.Task
	if r.fact == nil && !r.replan {
		return w.store.Queue().Finish(ctx, t.MerchantID, t.ID, t.Attempts, r.res)
	}
	return w.store.InTx(ctx, func(ctx context.Context, tx ports.Tx) error {
		// The invoice record first, then the task: the webhook's unit of
		// work takes them in this order too, so the two never deadlock.
		var rec domain.InvoiceRecord
		var err error
		if r.fact != nil {
			rec, err = tx.Ledger().Record(ctx, t.MerchantID, *r.fact)
		} else {
			rec, err = tx.Ledger().Invoice(ctx, t.MerchantID, t.StripeInvoiceID)
		}
		if err != nil {
			return fmt.Errorf("invoice record %s: %w", t.StripeInvoiceID, err)
		}
		if err := tx.Queue().Finish(ctx, t.MerchantID, t.ID, t.Attempts, r.res); err != nil {
			return err
		}
		if !rec.Failed() {
			return nil // nothing to plan: Replan would decide nothing
		}
		now := w.clock.Now()
		_, err = apply(ctx, tx, t.MerchantID, domain.Replan(rec, c.Policy, t, now), now)
		return err
	})
}

// execute does one attempt of the claimed task and says how it ended. A
// panic in it is a failed attempt like any other error, so one bad task
// cannot stop the worker.
func (w *Worker) execute(ctx context.Context, c ports.Claim) (r run) {
	t := c.Task
	defer func() {
		if p := recover(); p != nil {
			w.log.LogAttrs(ctx, slog.LevelError, "worker: task panicked",
				slog.String("task_id", string(t.ID)), slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
			r = w.retryLater(t, fmt.Errorf("panic: %v", p))
		}
	}()

	merchant, err := w.merchants.byMerchantID(ctx, t.MerchantID)
	if err != nil {
		if errors.Is(err, domain.ErrNotFound) {
			return failed(merchantError("the merchant no longer exists"))
		}
		return w.retryLater(t, fmt.Errorf("find merchant: %w", err))
	}
	// Stripe's events arrive out of order: the invoice may have been paid
	// or closed since this task was scheduled. Acting on it then would
	// charge or email a customer who owes nothing.
	var inv *domain.Invoice
	if t.StripeInvoiceID != "" && w.gateway != nil {
		got, err := w.gateway.Invoice(ctx, merchant.StripeAccountID, t.StripeInvoiceID)
		if err != nil {
			return w.outcome(t, err)
		}
		if got.Settled() {
			closed := cancelled(domain.ClosedReason(got.Status),
				fmt.Sprintf("invoice %s is already %s; nothing to do", t.StripeInvoiceID, got.Status))
			if !mayHaveClosed(c, got.Status) {
				return closed
			}
			// An earlier run of this task may have closed it and died
			// before recording so. The same call again, with the same
			// idempotency key, tells: Stripe answers a request it already
			// made with its first answer, and refuses one it did not make
			// (someone else closed the invoice). The invoice's record is
			// left out: its plan would stop at the closing.
			c.Invoice = nil
			r = w.executeAs(ctx, c, merchant, &got)
			if s := r.res.Status; s != domain.StatusSucceeded && s != domain.StatusPending { // pending: Stripe could not say
				return closed
			}
			return r
		}
		inv = &got
	}

	// A policy applies to the tasks run after it is stored: the claim
	// read the merchant's.
	return w.executeAs(ctx, c, merchant, inv)
}

// mayHaveClosed reports whether the claimed task's own effect is to close
// its invoice with this status, and an earlier run of it could have done
// so: a retry_payment that pays, an end_dunning that marks it
// uncollectible, run before.
func mayHaveClosed(c ports.Claim, status string) bool {
	if c.Attempts < 2 {
		return false
	}
	switch c.Type {
	case domain.TypeRetryPayment:
		return status == domain.InvoicePaid
	case domain.TypeEndDunning:
		return status == domain.InvoiceUncollectible && c.Policy.OnExhausted == domain.ExhaustedMarkUncollectible
	}
	return false
}

// executeAs runs the claimed task by its type, under the merchant's
// policy.
func (w *Worker) executeAs(ctx context.Context, c ports.Claim, m domain.Merchant, inv *domain.Invoice) run {
	t, policy := c.Task, c.Policy
	switch t.Type {
	case domain.TypeRetryPayment:
		return w.retryPayment(ctx, t, m, policy, c.Invoice)
	case domain.TypeEndDunning:
		return w.endDunning(ctx, t, m, policy, inv)
	}
	if t.Type.IsNotification() {
		return w.notify(ctx, t, m, policy, inv)
	}
	return failed(merchantError(fmt.Sprintf("unknown task type %q", t.Type)))
}

// retryPayment pays the invoice on the merchant's account, if the plan
// still wants an attempt: a policy stored since the task was scheduled,
// or a decline learned meanwhile (rec, the invoice's record as the task
// was claimed), may have ended it.
func (w *Worker) retryPayment(ctx context.Context, t domain.Task, m domain.Merchant, policy domain.DunningPolicy, rec *domain.InvoiceRecord) run {
	if w.gateway == nil {
		return failed(ErrNoPaymentGateway)
	}
	if t.StripeInvoiceID == "" {
		return failed(merchantError("the task names no invoice to pay"))
	}
	// No record: a task from before the invoice ledger, or one a merchant
	// made; pay as asked.
	if rec != nil {
		if step := policy.Plan(*rec); step.RetryAt.IsZero() {
			r := cancelled(step.Reason, "the policy plans no further attempt now: "+step.Reason)
			r.replan = true
			return r
		}
	}
	err := w.gateway.PayInvoice(ctx, m.StripeAccountID, t.StripeInvoiceID, paymentKey(t))
	if err == nil {
		r := succeeded(t, domain.ReasonPaid)
		r.fact = &domain.InvoiceFact{Kind: domain.FactRecoupPaid, InvoiceID: t.StripeInvoiceID, At: w.clock.Now()}
		return r
	}
	var pe *domain.PaymentError
	if errors.As(err, &pe) && (pe.Kind == domain.PaymentHardDecline || pe.Kind == domain.PaymentSoftDecline) {
		// A decline is an attempt: it counts in the invoice's budget, and
		// the plan decides what comes next (another attempt on the
		// schedule, or none after a hard decline).
		r := failed(err)
		r.res.Reason, r.res.DeclineCode = domain.ReasonDeclined, pe.Code
		r.fact = &domain.InvoiceFact{Kind: domain.FactRecoupDeclined, InvoiceID: t.StripeInvoiceID, DeclineCode: pe.Code, At: w.clock.Now()}
		return r
	}
	return w.outcome(t, err)
}

// endDunning does what the policy says when an invoice's dunning ends,
// through the Stripe API with the run's idempotency key, so that a run
// repeated after a crash acts once.
func (w *Worker) endDunning(ctx context.Context, t domain.Task, m domain.Merchant, policy domain.DunningPolicy, inv *domain.Invoice) run {
	action := policy.OnExhausted
	if action == domain.ExhaustedNone {
		return succeeded(t, string(action))
	}
	if w.gateway == nil {
		return failed(ErrNoPaymentGateway)
	}
	var err error
	switch action {
	case domain.ExhaustedCancelSubscription:
		sub := t.StripeSubscriptionID
		if inv != nil && inv.SubscriptionID != "" {
			sub = inv.SubscriptionID
		}
		if sub == "" {
			r := succeeded(t, string(domain.ExhaustedNone))
			r.res.LastError = "the invoice has no subscription to cancel"
			return r
		}
		err = w.gateway.CancelSubscription(ctx, m.StripeAccountID, sub, paymentKey(t))
	case domain.ExhaustedMarkUncollectible:
		err = w.gateway.MarkUncollectible(ctx, m.StripeAccountID, t.StripeInvoiceID, paymentKey(t))
	default:
		return failed(merchantError(fmt.Sprintf("unknown on_exhausted %q", action)))
	}
	if err != nil {
		return w.outcome(t, err)
	}
	return succeeded(t, string(action))
}

// notify sends a customer email, when the policy sends it. The email of a
// failed payment first reads the failure's decline code, which the
// invoice's plan depends on, and asks for a new card after a hard decline.
func (w *Worker) notify(ctx context.Context, t domain.Task, m domain.Merchant, policy domain.DunningPolicy, inv *domain.Invoice) run {
	var fact *domain.InvoiceFact
	code := t.DeclineCode
	if t.Type == domain.TypeNotifyPaymentFailed && inv != nil && inv.DeclineCode != "" {
		code = inv.DeclineCode
		at := inv.DeclinedAt
		if at.IsZero() {
			at = t.CreatedAt
		}
		fact = &domain.InvoiceFact{Kind: domain.FactDeclined, InvoiceID: t.StripeInvoiceID, DeclineCode: code, At: at}
	}
	with := func(r run) run {
		r.fact = fact
		if code != "" {
			r.res.DeclineCode = code
		}
		return r
	}
	if !emailOn(policy, t) {
		return with(cancelled(domain.ReasonPolicyOff, "the policy does not send this email"))
	}
	n := notificationFor(t, m, inv)
	n.NewCardNeeded = policy.HardDecline(code)
	if n.To == "" && t.StripeCustomerID != "" && w.gateway != nil {
		// Some events name the customer only (an expiring card).
		c, err := w.gateway.Customer(ctx, m.StripeAccountID, t.StripeCustomerID)
		if err != nil {
			return with(w.outcome(t, err))
		}
		n.To = c.Email
	}
	if n.To == "" {
		return with(failed(merchantError("no customer email address to notify")))
	}
	link, err := w.updateLink(t)
	if err != nil {
		return with(failed(err))
	}
	n.UpdateURL = link

	// The weekly cap counts every email to the customer: a place is taken
	// before sending, and given back if the email does not go out.
	customer := t.StripeCustomerID
	if customer == "" {
		customer = n.To
	}
	at := w.clock.Now()
	ok, err := w.store.Emails().ReserveEmail(ctx, t.MerchantID, customer, at, emailWindow, policy.MaxEmailsPerCustomerPerWeek)
	if err != nil {
		return with(w.retryLater(t, fmt.Errorf("reserve email: %w", err)))
	}
	if !ok {
		return with(cancelled(domain.ReasonEmailCap,
			fmt.Sprintf("the customer had %d emails from this merchant in the last 7 days", policy.MaxEmailsPerCustomerPerWeek)))
	}
	if err := w.notifier.Notify(ctx, n); err != nil {
		if rerr := w.store.Emails().ReleaseEmail(ctx, t.MerchantID, customer, at); rerr != nil {
			w.log.LogAttrs(ctx, slog.LevelWarn, "worker: release email reservation",
				slog.String("task_id", string(t.ID)), slog.String("error", rerr.Error()))
		}
		return with(w.outcome(t, &emailError{err: fmt.Errorf("send %s email: %w", t.Type, err)}))
	}
	return with(succeeded(t, domain.ReasonSent))
}

// updateLink is the customer's update link for t's email, or "" when the
// worker makes none (no public URL) or the task names no customer.
func (w *Worker) updateLink(t domain.Task) (string, error) {
	cfg := w.cfg.UpdateLinks
	if cfg.BaseURL == "" || t.StripeCustomerID == "" {
		return "", nil
	}
	tok, err := cfg.Keys.Sign(domain.UpdateLink{Merchant: t.MerchantID, Customer: t.StripeCustomerID,
		Invoice: t.StripeInvoiceID, Expires: w.clock.Now().Add(domain.UpdateLinkLifetime)})
	if err != nil {
		return "", fmt.Errorf("sign update link: %w", err)
	}
	return strings.TrimRight(cfg.BaseURL, "/") + "/update/" + tok, nil
}

// emailOn reports whether the policy sends t's email now.
func emailOn(p domain.DunningPolicy, t domain.Task) bool {
	switch t.Type {
	case domain.TypeNotifyPaymentFailed:
		return p.Emails.PaymentFailed
	case domain.TypeNotifyActionRequired:
		return p.Emails.ActionRequired
	case domain.TypeNotifyChargeFailed:
		return p.Emails.ChargeFailed
	case domain.TypeNotifyCardExpiring:
		return p.Emails.CardExpiring
	case domain.TypeNotifyReminder:
		return t.InvoiceAttempt >= 1 && t.InvoiceAttempt <= len(p.Emails.ReminderHours)
	}
	return false
}

// paymentKey is the Stripe idempotency key of a run of a task that acts on
// Stripe (see domain.RunKey): a run repeated after a crash cannot act
// twice, and the next scheduled run is a new request Stripe really tries.
func paymentKey(t domain.Task) string { return domain.RunKey(t) }

// notificationFor builds the email of a notify_* task, preferring the
// invoice's current facts (the customer may have changed their address) to
// those the task copied from the event.
func notificationFor(t domain.Task, m domain.Merchant, inv *domain.Invoice) domain.Notification {
	n := domain.Notification{
		Type: t.Type, TaskID: t.ID, Attempt: t.Attempts, To: t.CustomerEmail, MerchantName: m.Name,
		Amount: t.AmountDue, Currency: t.Currency, HostedInvoiceURL: t.HostedInvoiceURL,
		InvoiceID: t.StripeInvoiceID, ChargeID: t.StripeChargeID,
		IdempotencyKey: domain.RunKey(t),
	}
	if t.Type == domain.TypeNotifyCardExpiring {
		// The task keeps the card's expiry month as yyyymm.
		n.CardExpMonth, n.CardExpYear = t.InvoiceAttempt%100, t.InvoiceAttempt/100
	}
	if inv != nil {
		if inv.CustomerEmail != "" {
			n.To = inv.CustomerEmail
		}
		if inv.HostedInvoiceURL != "" {
			n.HostedInvoiceURL = inv.HostedInvoiceURL
		}
		if inv.Currency != "" && inv.AmountDue > 0 {
			n.Amount, n.Currency = inv.AmountDue, inv.Currency
		}
	}
	return n
}

// merchantError is a failure whose text is fit for the merchant as it is.
type merchantError string

func (e merchantError) Error() string { return string(e) }

// emailError is a failure of the notifier: its text names servers and
// addresses, so a merchant reads only that the email did not go out.
type emailError struct{ err error }

func (e *emailError) Error() string { return e.err.Error() }
func (e *emailError) Unwrap() error { return e.err }

// merchantMessage is what a merchant reads of a failed attempt in the
// task's last_error: short, stable and useful, and free of recoup's
// infrastructure (addresses, error chains), which only the log gets.
func merchantMessage(err error) string {
	var me merchantError
	var pe *domain.PaymentError
	var ee *emailError
	switch {
	case errors.As(err, &me):
		return string(me)
	case errors.As(err, &pe):
		return pe.MerchantMessage()
	case errors.As(err, &ee) && errors.Is(err, domain.ErrInvalid):
		return "email delivery failed: the customer's address was refused"
	case errors.As(err, &ee):
		return "email delivery failed"
	}
	return "internal error"
}

// outcome classifies an error of an attempt: a hard decline or a
// permanent error fails the task at once, anything else may pass later.
func (w *Worker) outcome(t domain.Task, err error) run {
	if kind, ok := domain.PaymentErrorKindOf(err); ok {
		switch kind {
		case domain.PaymentHardDecline, domain.PaymentPermanent:
			return failed(err)
		}
		return w.retryLater(t, err)
	}
	if errors.Is(err, domain.ErrInvalid) {
		return failed(err)
	}
	return w.retryLater(t, err)
}

// succeeded ends a run that did its work; last_error keeps what went wrong
// before the attempt that worked.
func succeeded(t domain.Task, reason string) run {
	return run{res: domain.TaskResult{Status: domain.StatusSucceeded, LastError: t.LastError, Reason: reason}}
}

func cancelled(reason, why string) run {
	return run{res: domain.TaskResult{Status: domain.StatusCancelled, Reason: reason, LastError: why}}
}

func failed(err error) run {
	return run{res: domain.TaskResult{Status: domain.StatusFailed, LastError: merchantMessage(err), Reason: domain.ReasonError}, cause: err}
}

// retryLater sends t back to pending after a backoff, or fails it if it had
// its last attempt.
func (w *Worker) retryLater(t domain.Task, err error) run {
	if t.Attempts >= w.cfg.MaxAttempts {
		return run{res: domain.TaskResult{Status: domain.StatusFailed, Reason: domain.ReasonError,
			LastError: fmt.Sprintf("%s; gave up after %d attempts", merchantMessage(err), t.Attempts)}, cause: err}
	}
	return run{res: domain.TaskResult{Status: domain.StatusPending, RunAt: w.clock.Now().Add(w.backoff(t.Attempts)),
		LastError: merchantMessage(err) + "; will retry"}, cause: err}
}

// emailAddress matches what looks like an email address in a log line's
// text, for MaskEmails.
var emailAddress = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)+`)

// maskEmails masks every email address in text (an SMTP server's answer
// often repeats the recipient), as domain.MaskEmail does.
func maskEmails(text string) string {
	return emailAddress.ReplaceAllStringFunc(text, domain.MaskEmail)
}

// backoff is the delay after failed attempt n (1-based): base·2^(n-1),
// capped, then drawn uniformly from its upper half.
func (w *Worker) backoff(n int) time.Duration {
	d := w.cfg.BackoffBase
	for i := 1; i < n && d < w.cfg.BackoffCap; i++ {
		d *= 2
	}
	d = min(d, w.cfg.BackoffCap)
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + rand.N(d-half+1)
}
