package domain

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// The event types recoup sends to a merchant's webhook endpoints.
const (
	OutboundTaskSucceeded    = "task.succeeded"
	OutboundTaskFailed       = "task.failed"
	OutboundInvoiceRecovered = "invoice.recovered"
	OutboundDunningExhausted = "dunning.exhausted"
)

// OutboundEventTypes lists the event types an endpoint may subscribe to;
// "*" subscribes to all.
var OutboundEventTypes = []string{OutboundTaskSucceeded, OutboundTaskFailed, OutboundInvoiceRecovered, OutboundDunningExhausted}

// EndpointID identifies a merchant's webhook endpoint (a UUID).
type EndpointID string

// WebhookEndpoint is where a merchant receives recoup's events.
type WebhookEndpoint struct {
	ID         EndpointID
	MerchantID MerchantID
	URL        string
	// Events are the types sent to it; "*" is every type.
	Events []string
	// Secret signs what is sent (Standard Webhooks: the HMAC-SHA256 key),
	// 24 random bytes; shown once, as "whsec_" and its base64.
	Secret    []byte
	CreatedAt time.Time
	// DisabledAt, when set, is when a 410 answer disabled it: nothing is
	// sent to it any more.
	DisabledAt time.Time
	// IdempotencyKey, when set, is the key of the request that created
	// it: the same request again (a retry after a timeout, a reloaded
	// form) gets this endpoint back instead of a second one.
	IdempotencyKey string
}

// ErrKeyReused is the ErrConflict of an idempotency key that created an
// endpoint from another URL or other event types.
var ErrKeyReused = fmt.Errorf("%w: idempotency key already used for another request", ErrConflict)

// MaxIdempotencyKey is the longest idempotency key accepted.
const MaxIdempotencyKey = 255

// CheckIdempotencyKey accepts an empty key (none) or up to
// MaxIdempotencyKey printable ASCII characters; ErrInvalid otherwise.
func CheckIdempotencyKey(key string) error {
	if len(key) > MaxIdempotencyKey {
		return fmt.Errorf("%w: idempotency key longer than %d characters", ErrInvalid, MaxIdempotencyKey)
	}
	for i := range len(key) {
		if key[i] < 0x20 || key[i] > 0x7e {
			return fmt.Errorf("%w: idempotency key must be printable ASCII", ErrInvalid)
		}
	}
	return nil
}

// SameRequest reports whether o was created from the same URL and event
// types as e, in the same order: what a repeated request must ask for.
func (e WebhookEndpoint) SameRequest(o WebhookEndpoint) bool {
	return e.URL == o.URL && slices.Equal(e.Events, o.Events)
}

// Subscribed reports whether the endpoint receives events of this type.
func (e WebhookEndpoint) Subscribed(eventType string) bool {
	return e.DisabledAt.IsZero() && (slices.Contains(e.Events, "*") || slices.Contains(e.Events, eventType))
}

// EncodedSecret is the secret as the merchant is shown it once:
// "whsec_" and the base64 of its bytes.
func (e WebhookEndpoint) EncodedSecret() string {
	return "whsec_" + base64.StdEncoding.EncodeToString(e.Secret)
}

// Limits of an endpoint.
const (
	MaxEndpointURL       = 2048
	MaxEndpointsPerShop  = 20
	endpointSecretLength = 24
)

// NewWebhookEndpoint checks a merchant's new endpoint and returns it with
// a fresh id and secret. The URL must be absolute http(s) with a host and
// no credentials; whether http and private addresses are allowed is the
// caller's decision (see the SSRF guard), not this one's. Events must be
// known types or "*", at least one. ErrInvalid names what is wrong.
func NewWebhookEndpoint(merchant MerchantID, rawURL string, events []string, now time.Time) (WebhookEndpoint, error) {
	u, err := url.Parse(rawURL)
	switch {
	case err != nil || len(rawURL) > MaxEndpointURL || !StorableText(rawURL):
		return WebhookEndpoint{}, fmt.Errorf("%w: url is not a valid URL", ErrInvalid)
	case u.Scheme != "https" && u.Scheme != "http":
		return WebhookEndpoint{}, fmt.Errorf("%w: url must be https://…", ErrInvalid)
	case u.Host == "" || u.Hostname() == "":
		return WebhookEndpoint{}, fmt.Errorf("%w: url has no host", ErrInvalid)
	case u.User != nil:
		return WebhookEndpoint{}, fmt.Errorf("%w: url must not carry credentials", ErrInvalid)
	case u.Fragment != "":
		return WebhookEndpoint{}, fmt.Errorf("%w: url must not have a fragment", ErrInvalid)
	}
	if len(events) == 0 {
		return WebhookEndpoint{}, fmt.Errorf("%w: events must list at least one type, or \"*\"", ErrInvalid)
	}
	for _, ev := range events {
		if ev != "*" && !slices.Contains(OutboundEventTypes, ev) {
			return WebhookEndpoint{}, fmt.Errorf("%w: unknown event type %.64q: must be one of %s or \"*\"", ErrInvalid, ev, strings.Join(OutboundEventTypes, ", "))
		}
	}
	secret := make([]byte, endpointSecretLength)
	_, _ = rand.Read(secret) // crypto/rand.Read never fails
	return WebhookEndpoint{
		ID: EndpointID(NewID()), MerchantID: merchant, URL: u.String(),
		Events: slices.Compact(slices.Sorted(slices.Values(events))), Secret: secret, CreatedAt: now,
	}, nil
}

// OutboundMessage is one event for a merchant's endpoints, enqueued with
// the change it reports (in its unit of work) and delivered once per
// subscribed endpoint.
type OutboundMessage struct {
	Type string // one of OutboundEventTypes
	// Payload is the JSON body sent: {"type", "timestamp", "data"}.
	Payload []byte
	At      time.Time
}

// DeliveryID identifies one message's delivery to one endpoint: the
// webhook-id header, the same on every attempt. It reads msg_<UUID>.
type DeliveryID string

// DeliveryStatus is where a delivery is in its life.
type DeliveryStatus string

// The delivery statuses.
const (
	DeliveryPending   DeliveryStatus = "pending"
	DeliveryDelivered DeliveryStatus = "delivered"
	DeliveryFailed    DeliveryStatus = "failed"
)

// Delivery is one message to one endpoint, with its attempts so far.
type Delivery struct {
	ID             DeliveryID
	MerchantID     MerchantID
	EndpointID     EndpointID
	EventType      string
	Payload        []byte
	Status         DeliveryStatus
	Attempts       int
	LastStatusCode int // 0 when no answer came
	LastError      string
	NextAttemptAt  time.Time
	CreatedAt      time.Time
	DeliveredAt    time.Time // zero until delivered
	// Set when a delivery is claimed for an attempt: where to send it and
	// with what key.
	URL    string
	Secret []byte
}

// DeliveryResult is how an attempt of a claimed delivery ended.
type DeliveryResult struct {
	Status        DeliveryStatus // pending (to try again at NextAttemptAt), delivered, failed
	StatusCode    int
	Error         string
	NextAttemptAt time.Time
	At            time.Time
	// DisableEndpoint: the endpoint answered 410 Gone; nothing more is
	// sent to it.
	DisableEndpoint bool
}

// DeliveryFilter selects a page of one endpoint's deliveries, newest
// first.
type DeliveryFilter struct {
	Limit int
	After *DeliveryCursor
}

// DeliveryCursor is the keyset position after which a page starts.
type DeliveryCursor struct {
	CreatedAt time.Time
	ID        DeliveryID
}

// DeliveryPage is one page of deliveries.
type DeliveryPage struct {
	Deliveries []Delivery
	Next       *DeliveryCursor
}

// NewDeliveryID returns a fresh delivery id.
func NewDeliveryID() DeliveryID { return DeliveryID("msg_" + NewID()) }
