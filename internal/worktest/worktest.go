// Package worktest has the stand-ins the worker benchmarks share: a payment
// gateway that answers at once, a notifier that sends nothing, and a queue
// that counts claims.
package worktest

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// InstantGateway answers at once: every invoice is open, every payment
// succeeds. Done is closed when it has seen the payments it waits for.
type InstantGateway struct {
	want int64
	pays atomic.Int64
	done chan struct{}
}

var _ ports.PaymentGateway = (*InstantGateway)(nil)

// NewInstantGateway returns a gateway that waits for want payments.
func NewInstantGateway(want int) *InstantGateway {
	return &InstantGateway{want: int64(want), done: make(chan struct{})}
}

// Done is closed once the gateway has seen the payments it waits for.
func (g *InstantGateway) Done() <-chan struct{} { return g.done }

// Invoice answers that the invoice is open.
func (g *InstantGateway) Invoice(_ context.Context, _, id string) (domain.Invoice, error) {
	return domain.Invoice{ID: id, Status: "open"}, nil
}

// PayInvoice succeeds.
func (g *InstantGateway) PayInvoice(context.Context, string, string, string) error {
	if g.pays.Add(1) == g.want {
		close(g.done)
	}
	return nil
}

// CancelSubscription succeeds.
func (g *InstantGateway) CancelSubscription(context.Context, string, string, string) error {
	return nil
}

// MarkUncollectible succeeds.
func (g *InstantGateway) MarkUncollectible(context.Context, string, string, string) error { return nil }

// Customer answers a customer without an email.
func (g *InstantGateway) Customer(_ context.Context, _, id string) (domain.Customer, error) {
	return domain.Customer{ID: id}, nil
}

// PortalSession answers a fixed URL.
func (g *InstantGateway) PortalSession(context.Context, string, string, string) (string, error) {
	return "https://billing.stripe.com/p/session/test", nil
}

// Events lists none.
func (g *InstantGateway) Events(context.Context, string, ports.EventQuery) (ports.EventPage, error) {
	return ports.EventPage{}, nil
}

// DiscardNotifier sends nothing.
type DiscardNotifier struct{}

// Notify does nothing.
func (DiscardNotifier) Notify(context.Context, domain.Notification) error { return nil }

// CountingQueue counts the claims made through it into Claims.
type CountingQueue struct {
	ports.TaskQueue
	Claims *atomic.Int64
}

// ClaimDue counts the claim and passes it on.
func (q CountingQueue) ClaimDue(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]ports.Claim, error) {
	q.Claims.Add(1)
	return q.TaskQueue.ClaimDue(ctx, now, lease, limit)
}

// CountingStorage is a storage whose queue counts claims into Claims.
type CountingStorage struct {
	ports.Storage
	Claims *atomic.Int64
}

// Queue returns the storage's queue, counting its claims.
func (s CountingStorage) Queue() ports.TaskQueue {
	return CountingQueue{TaskQueue: s.Storage.Queue(), Claims: s.Claims}
}
