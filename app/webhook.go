package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// WebhookResult is the outcome of one delivery, as the webhook answers it.
type WebhookResult struct {
	Processed  bool
	Action     string
	Reason     string
	Tasks      []domain.TaskID
	MerchantID domain.MerchantID // empty when no merchant was found
}

// WebhookConfig tunes the webhook use case. Every zero field has a default.
type WebhookConfig struct {
	// Livemode says which Stripe mode's events count: events of the other
	// mode are acknowledged and ignored, so that a test event never acts
	// on live data.
	Livemode bool
	// Clock stamps the tasks; nil is the system clock.
	Clock ports.Clock
	// Logger receives one line per delivery; nil discards.
	Logger *slog.Logger
	// Observer is told every delivery's outcome and lock wait; nil: nobody.
	Observer ports.Observer
}

// WebhookService turns Stripe events into tasks, exactly once per event.
type WebhookService struct {
	store     ports.Storage
	merchants *merchantCache
	clock     ports.Clock
	livemode  bool
	log       *slog.Logger
	obs       ports.Observer
}

// NewWebhookService returns the webhook use case on store.
func NewWebhookService(store ports.Storage, cfg WebhookConfig) *WebhookService {
	s := &WebhookService{
		store: store, merchants: newMerchantCache(store.Merchants()),
		clock: cfg.Clock, livemode: cfg.Livemode, log: cfg.Logger, obs: cfg.Observer,
	}
	if s.clock == nil {
		s.clock = ports.SystemClock{}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.obs == nil {
		s.obs = ports.NopObserver{}
	}
	return s
}

// observedEventType is the event type an Observer is told: the type itself
// when the policy handles it, ports.EventTypeOther for anything else, so
// that senders cannot grow the set of values.
func observedEventType(eventType string) string {
	if domain.Handles(eventType) {
		return eventType
	}
	return ports.EventTypeOther
}

// duplicateReason is the reason given for a delivery whose event another
// delivery already processed. Its words are part of the webhook's
// contract: "parallel worker" stands for any other delivery, in flight at
// the same moment or long done.
func duplicateReason(eventID string) string {
	return fmt.Sprintf("Event %s handled by parallel worker (idempotency lock)", eventID)
}

// Handle applies one verified event and logs the delivery. The idempotency
// lock is taken first, in the transaction that applies the event's effects:
// a duplicate changes nothing, and an error rolls back the lock with the
// effects so that Stripe's redelivery can succeed. An error means the
// delivery must be answered as failed (nothing of it was kept).
func (s *WebhookService) Handle(ctx context.Context, ev domain.Event) (WebhookResult, error) {
	res, _, err := s.handle(ctx, ev, sourceWebhook)
	return res, err
}

// The sources of an event, in its log line.
const (
	sourceWebhook   = "webhook"
	sourceReconcile = "reconcile"
)

// handle is Handle for an event from source, saying whether it was a
// duplicate. Only webhook deliveries are reported to the Observer as such;
// a reconciled event is counted by the reconciler.
func (s *WebhookService) handle(ctx context.Context, ev domain.Event, source string) (res WebhookResult, duplicate bool, err error) {
	start := time.Now()
	defer func() {
		s.logDelivery(ctx, ev, source, res, err)
		if source == sourceWebhook {
			s.obs.WebhookDelivery(observedEventType(ev.Type), deliveryOutcome(res, err, duplicate), time.Since(start))
		}
	}()

	if ev.Livemode != s.livemode {
		return WebhookResult{Action: domain.ActionIgnored, Reason: fmt.Sprintf("Event livemode=%t does not match this endpoint's livemode=%t", ev.Livemode, s.livemode)}, duplicate, nil
	}
	if !domain.Handles(ev.Type) {
		return WebhookResult{Processed: true, Action: domain.ActionIgnored, Reason: fmt.Sprintf("Event type %s not handled", ev.Type)}, duplicate, nil
	}
	if ev.Account == "" {
		return WebhookResult{Action: domain.ActionIgnored, Reason: "Event has no connected account"}, duplicate, nil
	}
	merchant, err := s.merchants.byStripeAccount(ctx, ev.Account)
	if errors.Is(err, domain.ErrNotFound) {
		return WebhookResult{Action: domain.ActionIgnored, Reason: fmt.Sprintf("No merchant for account %s", ev.Account)}, duplicate, nil
	}
	if err != nil {
		return WebhookResult{}, false, fmt.Errorf("find merchant: %w", err)
	}
	res.MerchantID = merchant.ID

	now := s.clock.Now()
	fact, hasFact := domain.FactOf(ev, now)
	err = s.store.InTx(ctx, func(ctx context.Context, tx ports.Tx) error {
		lockStart := time.Now()
		locked, err := tx.Events().AttemptEventLock(ctx, ev.ID)
		s.obs.LockWait(time.Since(lockStart))
		if err != nil {
			return fmt.Errorf("idempotency lock: %w", err)
		}
		if !locked {
			duplicate = true
			res.Action, res.Reason = domain.ActionIgnored, duplicateReason(ev.ID)
			return nil
		}
		duplicate = false // a retry of the unit of work may take the lock after all
		// The policy is read in the unit of work, so that a policy stored
		// before this event applies to it.
		policy := domain.DefaultDunningPolicy()
		if needsPolicy(ev.Type) {
			if policy, err = tx.Policies().Policy(ctx, merchant.ID); err != nil {
				return fmt.Errorf("read policy: %w", err)
			}
		}
		var d domain.Decision
		if customer, ok := domain.CardUpdate(ev); ok {
			if d, err = cardUpdate(ctx, tx, merchant.ID, customer, ev, policy, now); err != nil {
				return err
			}
		} else {
			var rec domain.InvoiceRecord
			if hasFact {
				if rec, err = tx.Ledger().Record(ctx, merchant.ID, fact); err != nil {
					return fmt.Errorf("record invoice %s: %w", fact.InvoiceID, err)
				}
				if err := reportRecovery(ctx, tx, merchant.ID, fact, rec); err != nil {
					return err
				}
			}
			if d, err = domain.Decide(ev, rec, policy, merchant.ID, now); err != nil {
				return err
			}
		}
		ids, err := apply(ctx, tx, merchant.ID, d, now)
		if err != nil {
			return err
		}
		res.Processed, res.Action, res.Tasks = true, d.Action, ids
		return nil
	})
	if err != nil {
		return WebhookResult{MerchantID: merchant.ID}, duplicate, err
	}
	return res, duplicate, nil
}

// reportRecovery enqueues invoice.recovered for the merchant's endpoints
// when fact is the payment that recovered the invoice, in the unit of
// work that records it.
func reportRecovery(ctx context.Context, tx ports.Tx, merchant domain.MerchantID, fact domain.InvoiceFact, rec domain.InvoiceRecord) error {
	// Storage keeps times to the microsecond.
	if fact.Kind != domain.FactPaid || !rec.Recovered() || !rec.ClosedAt.Equal(fact.At.Truncate(time.Microsecond)) {
		return nil
	}
	payload, err := domain.OutboundPayload(domain.OutboundInvoiceRecovered, fact.At,
		domain.RecoveredInvoice{InvoiceID: rec.InvoiceID, Amount: rec.PaidAmount, Currency: rec.Currency})
	if err != nil {
		return err
	}
	if _, err := tx.Outbox().Enqueue(ctx, merchant, domain.OutboundMessage{Type: domain.OutboundInvoiceRecovered, Payload: payload, At: fact.At}); err != nil {
		return fmt.Errorf("enqueue invoice.recovered: %w", err)
	}
	return nil
}

// cardUpdate records a change of the customer's payment method on each of
// their open failed invoices at the merchant, and decides the retries it
// brings.
func cardUpdate(ctx context.Context, tx ports.Tx, merchant domain.MerchantID, customer string, ev domain.Event,
	policy domain.DunningPolicy, now time.Time) (domain.Decision, error) {
	open, err := tx.Ledger().OpenFailed(ctx, merchant, customer)
	if err != nil {
		return domain.Decision{}, fmt.Errorf("open invoices of %s: %w", customer, err)
	}
	at := ev.Created
	if at.IsZero() {
		at = now
	}
	recs := make([]domain.InvoiceRecord, 0, len(open))
	for _, r := range open {
		rec, err := tx.Ledger().Record(ctx, merchant, domain.InvoiceFact{Kind: domain.FactCardUpdated, InvoiceID: r.InvoiceID, At: at})
		if err != nil {
			return domain.Decision{}, fmt.Errorf("record invoice %s: %w", r.InvoiceID, err)
		}
		recs = append(recs, rec)
	}
	return domain.DecideCardUpdate(ev, recs, policy, merchant, now), nil
}

// needsPolicy reports whether events of this type are decided by the
// merchant's policy; the others (payments, closings, deleted
// subscriptions) only cancel, whatever it says.
func needsPolicy(eventType string) bool {
	switch eventType {
	case domain.EventInvoicePaymentFailed, domain.EventInvoicePaymentActionRequired, domain.EventChargeFailed,
		domain.EventCustomerUpdated, domain.EventPaymentMethodAttached, domain.EventCustomerSourceExpiring:
		return true
	}
	return false
}

// deliveryOutcome names a delivery's outcome for the Observer.
func deliveryOutcome(res WebhookResult, err error, duplicate bool) string {
	switch {
	case err != nil:
		return ports.DeliveryFailed
	case duplicate:
		return ports.DeliveryDuplicate
	case res.Processed && res.Action != domain.ActionIgnored:
		return ports.DeliveryProcessed
	}
	return ports.DeliveryIgnored
}

// apply carries out a decision in the unit of work that made it (the
// event's, holding its lock, or a task run's): cancellations first, then
// the tasks to schedule. It returns the ids of the tasks cancelled,
// stored or moved.
func apply(ctx context.Context, tx ports.Tx, merchant domain.MerchantID, d domain.Decision, now time.Time) ([]domain.TaskID, error) {
	ids := make([]domain.TaskID, 0, len(d.Schedule))
	for _, sel := range d.Cancel {
		cancelled, err := tx.Tasks().CancelPending(ctx, merchant, sel, now)
		if err != nil {
			return nil, fmt.Errorf("cancel tasks: %w", err)
		}
		ids = append(ids, cancelled...)
	}
	if len(d.Schedule) > 0 {
		stored, err := tx.Tasks().Schedule(ctx, merchant, d.Schedule)
		if err != nil {
			return nil, fmt.Errorf("schedule tasks: %w", err)
		}
		for _, t := range stored {
			ids = append(ids, t.ID)
		}
	}
	return ids, nil
}

func (s *WebhookService) logDelivery(ctx context.Context, ev domain.Event, source string, res WebhookResult, err error) {
	attrs := make([]slog.Attr, 0, 9) // on the stack: the most a line has
	attrs = append(attrs, slog.String("event_id", ev.ID), slog.String("event_type", ev.Type))
	if source != sourceWebhook {
		attrs = append(attrs, slog.String("source", source))
	}
	if res.MerchantID != "" {
		attrs = append(attrs, slog.String("merchant_id", string(res.MerchantID)))
	}
	if err != nil {
		attrs = append(attrs, slog.String("action", "failed"), slog.String("reason", err.Error()))
		s.log.LogAttrs(ctx, slog.LevelError, "webhook delivery failed", attrs...)
		return
	}
	attrs = append(attrs, slog.String("action", res.Action), slog.String("reason", res.Reason),
		slog.Bool("processed", res.Processed), slog.Int("tasks", len(res.Tasks)))
	s.log.LogAttrs(ctx, slog.LevelInfo, "webhook delivery", attrs...)
}
