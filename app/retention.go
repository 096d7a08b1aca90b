package app

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/recoupdev/recoup/ports"
)

// DefaultEventRetention is how long idempotency locks are kept: far past
// the three days over which Stripe redelivers an event.
const DefaultEventRetention = 30 * 24 * time.Hour

// How often Run prunes, and how many locks one statement deletes, so that
// no statement holds locks for long.
const (
	pruneEvery = time.Hour
	pruneBatch = 1000
)

// EventPruner deletes idempotency locks older than a retention window,
// and email reservations too old for the weekly cap to count.
type EventPruner struct {
	store  prunable
	window time.Duration
	clock  ports.Clock
	log    *slog.Logger
}

// prunable is the storage an EventPruner prunes.
type prunable interface {
	ports.EventRetention
	Emails() ports.EmailLog
}

// emailRetention is how long email reservations are kept: twice the
// window the cap counts in, so that a worker whose clock lags still finds
// every reservation its window reaches.
const emailRetention = 2 * emailWindow

// NewEventPruner returns a pruner of locks older than window; a window of
// zero or less never prunes them (email reservations are pruned all the
// same). A nil logger discards.
func NewEventPruner(store prunable, window time.Duration, clock ports.Clock, log *slog.Logger) *EventPruner {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &EventPruner{store: store, window: window, clock: clock, log: log}
}

// Prune deletes the locks older than the window, in small batches, and
// returns how many it deleted.
func (p *EventPruner) Prune(ctx context.Context) (int, error) {
	if p.window <= 0 {
		return 0, nil
	}
	return p.pruneAll(ctx, "idempotency locks", p.clock.Now().Add(-p.window), p.store.PruneEvents)
}

// PruneEmails deletes the email reservations older than the cap can
// count, in small batches, and returns how many it deleted.
func (p *EventPruner) PruneEmails(ctx context.Context) (int, error) {
	return p.pruneAll(ctx, "email reservations", p.clock.Now().Add(-emailRetention), p.store.Emails().PruneEmails)
}

// pruneAll calls prune with batches of pruneBatch until one deletes
// fewer, and logs the total.
func (p *EventPruner) pruneAll(ctx context.Context, what string, cutoff time.Time,
	prune func(ctx context.Context, cutoff time.Time, batch int) (int, error)) (int, error) {
	total := 0
	for {
		n, err := prune(ctx, cutoff, pruneBatch)
		total += n
		if err != nil {
			return total, fmt.Errorf("prune %s: %w", what, err)
		}
		if n < pruneBatch {
			if total > 0 {
				p.log.LogAttrs(ctx, slog.LevelInfo, "pruned "+what, slog.Int("count", total), slog.Time("older_than", cutoff))
			}
			return total, nil
		}
	}
}

// Run prunes at once and then every hour until ctx ends.
func (p *EventPruner) Run(ctx context.Context) {
	every(ctx, pruneEvery, func() {
		if _, err := p.Prune(ctx); err != nil && ctx.Err() == nil {
			p.log.LogAttrs(ctx, slog.LevelWarn, "pruning idempotency locks", slog.String("error", err.Error()))
		}
		if _, err := p.PruneEmails(ctx); err != nil && ctx.Err() == nil {
			p.log.LogAttrs(ctx, slog.LevelWarn, "pruning email reservations", slog.String("error", err.Error()))
		}
	})
}

// every calls fn at once and then every interval until ctx ends.
func every(ctx context.Context, interval time.Duration, fn func()) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		fn()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
