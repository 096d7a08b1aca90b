package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// Livemode says which Stripe mode's events count: events of the other mode
// are acknowledged and ignored, so a test event never acts on live data.
type Livemode bool

// WebhookResult is the outcome of one delivery, as the webhook answers it.
type WebhookResult struct {
	Processed  bool
	Action     string
	Reason     string
	Tasks      []domain.TaskID
	MerchantID domain.MerchantID // empty when no merchant was found
}

// WebhookService turns Stripe events into tasks, exactly once per event.
type WebhookService struct {
	store    ports.Storage
	policy   domain.Policy
	clock    ports.Clock
	livemode Livemode
	log      *slog.Logger
}

// NewWebhookService returns the webhook use case. A nil logger discards.
func NewWebhookService(store ports.Storage, policy domain.Policy, clock ports.Clock, livemode Livemode, log *slog.Logger) *WebhookService {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &WebhookService{store: store, policy: policy, clock: clock, livemode: livemode, log: log}
}

// DuplicateReason is the reason given for a delivery whose event another
// delivery already processed.
func DuplicateReason(eventID string) string {
	return fmt.Sprintf("Event %s handled by parallel worker (idempotency lock)", eventID)
}

// Handle applies one verified event and logs the delivery. The idempotency
// lock is taken first, in the transaction that applies the event's effects:
// a duplicate changes nothing, and an error rolls back the lock with the
// effects so that Stripe's redelivery can succeed. An error means the
// delivery must be answered as failed (nothing of it was kept).
func (s *WebhookService) Handle(ctx context.Context, ev domain.Event) (res WebhookResult, err error) {
	defer func() { s.logDelivery(ctx, ev, res, err) }()

	if ev.Livemode != bool(s.livemode) {
		return WebhookResult{Action: domain.ActionIgnored, Reason: fmt.Sprintf("Event livemode=%t does not match this endpoint's livemode=%t", ev.Livemode, bool(s.livemode))}, nil
	}
	if !domain.Handles(ev.Type) {
		return WebhookResult{Processed: true, Action: domain.ActionIgnored, Reason: fmt.Sprintf("Event type %s not handled", ev.Type)}, nil
	}
	if ev.Account == "" {
		return WebhookResult{Action: domain.ActionIgnored, Reason: "Event has no connected account"}, nil
	}
	merchant, err := s.store.Merchants().MerchantByStripeAccount(ctx, ev.Account)
	if errors.Is(err, domain.ErrNotFound) {
		return WebhookResult{Action: domain.ActionIgnored, Reason: fmt.Sprintf("No merchant for account %s", ev.Account)}, nil
	}
	if err != nil {
		return WebhookResult{}, fmt.Errorf("find merchant: %w", err)
	}
	res.MerchantID = merchant.ID

	effects, err := s.policy.Apply(ev, merchant.ID, s.clock.Now())
	if err != nil {
		return res, err
	}
	err = s.store.InTx(ctx, func(ctx context.Context, tx ports.Tx) error {
		locked, err := tx.Events().AttemptEventLock(ctx, ev.ID)
		if err != nil {
			return fmt.Errorf("idempotency lock: %w", err)
		}
		if !locked {
			res.Action, res.Reason = domain.ActionIgnored, DuplicateReason(ev.ID)
			return nil
		}
		ids, err := apply(ctx, tx, merchant.ID, effects, s.clock)
		if err != nil {
			return err
		}
		res.Processed, res.Action, res.Tasks = true, effects.Action, ids
		return nil
	})
	if err != nil {
		return WebhookResult{MerchantID: merchant.ID}, err
	}
	return res, nil
}

// apply writes an event's effects inside the transaction holding its lock.
func apply(ctx context.Context, tx ports.Tx, merchant domain.MerchantID, eff domain.Effects, clock ports.Clock) ([]domain.TaskID, error) {
	ids := []domain.TaskID{}
	if len(eff.Schedule) > 0 {
		stored, err := tx.Tasks().Schedule(ctx, merchant, eff.Schedule)
		if err != nil {
			return nil, fmt.Errorf("schedule tasks: %w", err)
		}
		for _, t := range stored {
			ids = append(ids, t.ID)
		}
	}
	if eff.Cancel != nil {
		cancelled, err := tx.Tasks().CancelPending(ctx, merchant, *eff.Cancel, clock.Now())
		if err != nil {
			return nil, fmt.Errorf("cancel tasks: %w", err)
		}
		ids = append(ids, cancelled...)
	}
	if eff.Failed != nil {
		if err := tx.Ledger().RecordFailure(ctx, merchant, *eff.Failed, clock.Now()); err != nil {
			return nil, fmt.Errorf("record failure: %w", err)
		}
	}
	if eff.Recovered != nil {
		if err := tx.Ledger().RecordPaid(ctx, merchant, *eff.Recovered, clock.Now()); err != nil {
			return nil, fmt.Errorf("record payment: %w", err)
		}
	}
	return ids, nil
}

func (s *WebhookService) logDelivery(ctx context.Context, ev domain.Event, res WebhookResult, err error) {
	attrs := []slog.Attr{
		slog.String("event_id", ev.ID),
		slog.String("event_type", ev.Type),
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
