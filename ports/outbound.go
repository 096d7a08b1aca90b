package ports

import (
	"context"
	"time"

	"github.com/recoupdev/recoup/domain"
)

// WebhookEndpoints stores merchants' outbound webhook endpoints and shows
// their deliveries. Every method but EndpointExists takes the merchant and
// reaches that merchant's endpoints only; an empty merchant is ErrInvalid.
type WebhookEndpoints interface {
	// CreateEndpoint stores a new endpoint of the merchant (its MerchantID
	// must be merchant) and returns it; ErrConflict if the merchant has
	// domain.MaxEndpointsPerShop already. When e has an IdempotencyKey
	// that an endpoint of the merchant was created with, it stores nothing
	// and returns that endpoint, secret included, if it has e's URL and
	// events (domain.WebhookEndpoint.SameRequest), and ErrConflict if not.
	CreateEndpoint(ctx context.Context, merchant domain.MerchantID, e domain.WebhookEndpoint) (domain.WebhookEndpoint, error)
	// ListEndpoints returns the merchant's endpoints, oldest first.
	ListEndpoints(ctx context.Context, merchant domain.MerchantID) ([]domain.WebhookEndpoint, error)
	// DeleteEndpoint removes the merchant's endpoint and its deliveries;
	// ErrNotFound if the merchant has no such endpoint.
	DeleteEndpoint(ctx context.Context, merchant domain.MerchantID, id domain.EndpointID) error
	// EndpointExists reports whether an endpoint with this id exists for
	// any merchant: the one unscoped read, used only after a scoped one
	// found nothing, to tell 403 from 404.
	EndpointExists(ctx context.Context, id domain.EndpointID) (bool, error)
	// Deliveries returns one page of the merchant's endpoint's
	// deliveries, newest first (CreatedAt, then ID, descending), without
	// their payloads; ErrNotFound if the merchant has no such endpoint.
	Deliveries(ctx context.Context, merchant domain.MerchantID, id domain.EndpointID, f domain.DeliveryFilter) (domain.DeliveryPage, error)
}

// Outbox holds outbound messages from the change they report until they
// are delivered: enqueued in the unit of work of the change (no change
// without its message, no message without its change), then handed out
// to delivery workers like tasks.
type Outbox interface {
	// Enqueue stores msg once for each of the merchant's endpoints that
	// is subscribed to msg.Type and not disabled, as a pending delivery
	// with a fresh id, created at the store's current time and due at
	// msg.At, and returns how many it stored.
	Enqueue(ctx context.Context, merchant domain.MerchantID, msg domain.OutboundMessage) (int, error)
	// ClaimDeliveries marks up to limit due deliveries in flight until
	// now+lease and returns them with Attempts incremented and the
	// endpoint's URL and secret. Due means pending with NextAttemptAt <=
	// now and not in flight, or in flight with a lease expired before
	// now. No delivery is handed to two callers at once, also across
	// processes; deliveries of a disabled endpoint are not handed out.
	ClaimDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]domain.Delivery, error)
	// FinishDelivery records how the attempt of the claim with this
	// attempt number ended; res.DisableEndpoint disables its endpoint.
	// ErrConflict if the claim no longer holds, or the delivery is gone
	// (its endpoint deleted); nothing changes then.
	FinishDelivery(ctx context.Context, id domain.DeliveryID, attempt int, res domain.DeliveryResult) error
}

// WebhookSender sends outbound messages to merchants' endpoints, signed
// per the Standard Webhooks specification, and guards the network: an
// endpoint may not reach loopback, private, link-local or multicast
// addresses unless the deployment allows it.
type WebhookSender interface {
	// CheckURL says whether an endpoint URL may be used: https (or http
	// where private addresses are allowed), and a host whose every
	// address is allowed. Every refusal is ErrInvalid with a message for
	// the merchant.
	CheckURL(ctx context.Context, rawURL string) error
	// Send posts d's payload to d.URL once, signed with d.Secret, with
	// d.ID as the webhook-id and at as the webhook-timestamp, without
	// following redirects. It returns the answer's status (0 when none
	// came) and an error for anything but a 2xx.
	Send(ctx context.Context, d domain.Delivery, at time.Time) (status int, err error)
}
