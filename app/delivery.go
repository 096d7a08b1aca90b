package app

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// DeliveryConfig tunes the DeliveryWorker; zero fields take defaults.
type DeliveryConfig struct {
	// Concurrency is how many messages are sent at once. Default 4.
	Concurrency int
	// Poll is the longest wait before due messages are noticed. Default 1 s.
	Poll time.Duration
	// Lease is how long a claimed delivery stays with this worker before
	// another may take it. Default 1 minute (a send times out in 10 s).
	Lease time.Duration
	// Retries are the waits after each failed attempt; past the list, or
	// past GiveUpAfter since the message was made, it is failed. Default:
	// 5 s, 5 min, 30 min, 2 h, 5 h, then every 10 h.
	Retries []time.Duration
	// GiveUpAfter is how long a message is tried. Default 3 days.
	GiveUpAfter time.Duration
}

func (c DeliveryConfig) withDefaults() DeliveryConfig {
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	if c.Poll <= 0 {
		c.Poll = time.Second
	}
	if c.Lease <= 0 {
		c.Lease = time.Minute
	}
	if len(c.Retries) == 0 {
		c.Retries = []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour,
			10 * time.Hour, 10 * time.Hour, 10 * time.Hour, 10 * time.Hour, 10 * time.Hour, 10 * time.Hour}
	}
	if c.GiveUpAfter <= 0 {
		c.GiveUpAfter = 72 * time.Hour
	}
	return c
}

// DeliveryWorker delivers the outbox: it claims due deliveries, sends each
// once, signed, and records the attempt: delivered on a 2xx, tried again
// later on anything else, failed once the retries or the 3 days run out; a
// 410 answer disables the endpoint. Each message is delivered at least
// once, under the same webhook-id on every attempt.
type DeliveryWorker struct {
	cfg    DeliveryConfig
	outbox ports.Outbox
	sender ports.WebhookSender
	clock  ports.Clock
	log    *slog.Logger
	obs    ports.Observer
	wake   chan struct{}
}

// NewDeliveryWorker returns a delivery worker.
func NewDeliveryWorker(cfg DeliveryConfig, outbox ports.Outbox, sender ports.WebhookSender, clock ports.Clock,
	log *slog.Logger, obs ports.Observer) *DeliveryWorker {
	if clock == nil {
		clock = ports.SystemClock{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if obs == nil {
		obs = ports.NopObserver{}
	}
	return &DeliveryWorker{cfg: cfg.withDefaults(), outbox: outbox, sender: sender, clock: clock, log: log, obs: obs,
		wake: make(chan struct{}, 1)}
}

// Wake makes a running delivery worker look for due messages now.
func (d *DeliveryWorker) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends; deliveries in flight then finish and are
// recorded before it returns.
func (d *DeliveryWorker) Run(ctx context.Context) {
	timer := time.NewTimer(d.cfg.Poll)
	defer timer.Stop()
	for {
		n, err := d.RunOnce(ctx)
		if err != nil && ctx.Err() == nil {
			d.log.LogAttrs(ctx, slog.LevelError, "outbound: claim deliveries", slog.String("error", err.Error()))
		}
		if n > 0 && err == nil {
			continue // more may be due
		}
		timer.Reset(d.cfg.Poll)
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
		case <-timer.C:
		}
	}
}

// RunOnce claims up to Concurrency due deliveries, attempts them at once,
// and returns how many once all are recorded.
func (d *DeliveryWorker) RunOnce(ctx context.Context) (int, error) {
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	claimed, err := d.outbox.ClaimDeliveries(ctx, d.clock.Now(), d.cfg.Lease, d.cfg.Concurrency)
	if err != nil {
		return 0, fmt.Errorf("claim deliveries: %w", err)
	}
	var wg sync.WaitGroup
	for _, del := range claimed {
		wg.Go(func() { d.attempt(context.WithoutCancel(ctx), del) })
	}
	wg.Wait()
	return len(claimed), nil
}

// sendTimeout bounds one attempt.
const sendTimeout = 10 * time.Second

func (d *DeliveryWorker) attempt(ctx context.Context, del domain.Delivery) {
	if del.Attempts == 1 {
		d.obs.OutboundEnqueued(del.EventType, 1)
	}
	start := time.Now()
	sendCtx, cancel := context.WithTimeout(ctx, sendTimeout)
	status, err := d.sender.Send(sendCtx, del, d.clock.Now())
	cancel()
	now := d.clock.Now()
	res := domain.DeliveryResult{Status: domain.DeliveryDelivered, StatusCode: status, At: now}
	outcome := ports.OutboundDelivered
	if err != nil {
		res.Error = maskEmails(err.Error())
		next, ok := d.next(del, now)
		switch {
		case status == 410:
			// The endpoint says it is gone for good.
			res.Status, res.DisableEndpoint, outcome = domain.DeliveryFailed, true, ports.OutboundFailed
		case ok:
			res.Status, res.NextAttemptAt, outcome = domain.DeliveryPending, next, ports.OutboundRetry
		default:
			res.Status, outcome = domain.DeliveryFailed, ports.OutboundFailed
		}
	}
	d.obs.OutboundAttempt(del.EventType, outcome, time.Since(start))
	if ferr := d.outbox.FinishDelivery(ctx, del.ID, del.Attempts, res); ferr != nil {
		d.log.LogAttrs(ctx, slog.LevelWarn, "outbound: record attempt", slog.String("delivery_id", string(del.ID)),
			slog.String("error", ferr.Error()))
		return
	}
	level := slog.LevelInfo
	if res.Status == domain.DeliveryFailed {
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{slog.String("delivery_id", string(del.ID)), slog.String("merchant_id", string(del.MerchantID)),
		slog.String("endpoint_id", string(del.EndpointID)), slog.String("event_type", del.EventType),
		slog.Int("attempt", del.Attempts), slog.String("status", string(res.Status)), slog.Int("status_code", status)}
	if res.Error != "" {
		attrs = append(attrs, slog.String("error", res.Error))
	}
	d.log.LogAttrs(ctx, level, "outbound: attempt", attrs...)
}

// next is when a failed attempt is tried again, and false when it was the
// last: past the retries, or past GiveUpAfter since the message was made.
func (d *DeliveryWorker) next(del domain.Delivery, now time.Time) (time.Time, bool) {
	if del.Attempts > len(d.cfg.Retries) {
		return time.Time{}, false
	}
	next := now.Add(d.cfg.Retries[del.Attempts-1])
	if next.After(del.CreatedAt.Add(d.cfg.GiveUpAfter)) {
		return time.Time{}, false
	}
	return next, true
}
