package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// EndpointService manages each merchant's outbound webhook endpoints. Like
// the task use cases, every use case takes the merchant and its storage
// query is scoped to it; another merchant's endpoint is ErrForbidden.
type EndpointService struct {
	endpoints ports.WebhookEndpoints
	sender    ports.WebhookSender
	clock     ports.Clock
}

// NewEndpointService returns the endpoint use cases; sender checks every
// new endpoint's URL (the SSRF guard).
func NewEndpointService(endpoints ports.WebhookEndpoints, sender ports.WebhookSender, clock ports.Clock) *EndpointService {
	if clock == nil {
		clock = ports.SystemClock{}
	}
	return &EndpointService{endpoints: endpoints, sender: sender, clock: clock}
}

// Create adds an endpoint for the merchant and returns it with its secret,
// which is shown this once. ErrInvalid for a bad URL or event type, or a
// URL the sender refuses (not https, an address in loopback, private or
// link-local space); ErrConflict past the merchant's limit of endpoints.
func (s *EndpointService) Create(ctx context.Context, m domain.Merchant, url string, events []string) (domain.WebhookEndpoint, error) {
	return s.CreateOnce(ctx, m, "", url, events)
}

// CreateOnce is Create under an idempotency key (none when empty; else at
// most domain.MaxIdempotencyKey printable ASCII characters, ErrInvalid
// otherwise): the first request with the key creates the endpoint, and
// every later one with the same URL and events gets that endpoint back,
// secret included, without creating another; with other ones,
// ErrConflict. Keys are the merchant's own.
func (s *EndpointService) CreateOnce(ctx context.Context, m domain.Merchant, key, url string, events []string) (domain.WebhookEndpoint, error) {
	if err := domain.CheckIdempotencyKey(key); err != nil {
		return domain.WebhookEndpoint{}, err
	}
	// At storage's precision, so that the endpoint returned (the only
	// one with the secret) reads as every later one will.
	e, err := domain.NewWebhookEndpoint(m.ID, url, events, s.clock.Now().UTC().Truncate(time.Microsecond))
	if err != nil {
		return domain.WebhookEndpoint{}, err
	}
	if err := s.sender.CheckURL(ctx, e.URL); err != nil {
		return domain.WebhookEndpoint{}, err
	}
	e.IdempotencyKey = key
	stored, err := s.endpoints.CreateEndpoint(ctx, m.ID, e)
	if err != nil {
		return domain.WebhookEndpoint{}, fmt.Errorf("store endpoint: %w", err)
	}
	return stored, nil
}

// List returns the merchant's endpoints, oldest first.
func (s *EndpointService) List(ctx context.Context, m domain.Merchant) ([]domain.WebhookEndpoint, error) {
	return s.endpoints.ListEndpoints(ctx, m.ID)
}

// Delete removes the merchant's endpoint: ErrForbidden if another merchant
// owns it, ErrNotFound if there is none.
func (s *EndpointService) Delete(ctx context.Context, m domain.Merchant, id domain.EndpointID) error {
	return s.explainMiss(ctx, id, s.endpoints.DeleteEndpoint(ctx, m.ID, id))
}

// Deliveries returns one page of the endpoint's deliveries, newest first;
// ErrForbidden / ErrNotFound as Delete.
func (s *EndpointService) Deliveries(ctx context.Context, m domain.Merchant, id domain.EndpointID, f domain.DeliveryFilter) (domain.DeliveryPage, error) {
	if f.Limit == 0 {
		f.Limit = domain.DefaultPageSize
	}
	if f.Limit < 1 || f.Limit > domain.MaxPageSize {
		return domain.DeliveryPage{}, fmt.Errorf("%w: limit must be between 1 and %d", domain.ErrInvalid, domain.MaxPageSize)
	}
	page, err := s.endpoints.Deliveries(ctx, m.ID, id, f)
	return page, s.explainMiss(ctx, id, err)
}

// explainMiss turns a scoped miss into ErrForbidden when the endpoint
// exists for another merchant; the scoped query already decided that
// nothing happens.
func (s *EndpointService) explainMiss(ctx context.Context, id domain.EndpointID, err error) error {
	if !errors.Is(err, domain.ErrNotFound) {
		return err
	}
	exists, xerr := s.endpoints.EndpointExists(ctx, id)
	if xerr != nil {
		return fmt.Errorf("endpoint lookup: %w", xerr)
	}
	if exists {
		return domain.ErrForbidden
	}
	return err
}
