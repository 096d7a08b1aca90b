package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// UpdateLinkService opens the Stripe customer portal for a customer's
// update link: the token names merchant, customer and invoice, signed, so
// a link can only ever open its own customer's portal on its own
// merchant's account.
type UpdateLinkService struct {
	keys      domain.LinkKeys
	merchants *merchantCache
	gateway   ports.PaymentGateway
	clock     ports.Clock
}

// NewUpdateLinkService returns the update-link use case. gateway may be
// nil (no Stripe key): every link then answers ErrUnavailable.
func NewUpdateLinkService(keys domain.LinkKeys, merchants ports.MerchantDirectory, gateway ports.PaymentGateway, clock ports.Clock) *UpdateLinkService {
	if clock == nil {
		clock = ports.SystemClock{}
	}
	return &UpdateLinkService{keys: keys, merchants: newMerchantCache(merchants), gateway: gateway, clock: clock}
}

// PortalURL returns the URL of a portal session for the link's customer,
// on the link's merchant's connected account, returning to the invoice's
// hosted page. A bad, tampered or expired token, or one whose merchant or
// invoice is gone, is ErrNotFound; Stripe unreachable (or no Stripe key)
// is ErrUnavailable.
func (s *UpdateLinkService) PortalURL(ctx context.Context, token string) (string, error) {
	l, err := s.keys.Parse(token, s.clock.Now())
	if err != nil {
		return "", err
	}
	m, err := s.merchants.byMerchantID(ctx, l.Merchant)
	if err != nil {
		return "", fmt.Errorf("update link's merchant: %w", err)
	}
	if s.gateway == nil {
		return "", fmt.Errorf("%w: no Stripe API key is configured", domain.ErrUnavailable)
	}
	returnURL := ""
	if l.Invoice != "" {
		inv, err := s.gateway.Invoice(ctx, m.StripeAccountID, l.Invoice)
		if err != nil {
			return "", stripeFailure("read the link's invoice", err)
		}
		returnURL = inv.HostedInvoiceURL
	}
	url, err := s.gateway.PortalSession(ctx, m.StripeAccountID, l.Customer, returnURL)
	if err != nil {
		return "", stripeFailure("open the customer portal", err)
	}
	return url, nil
}

// stripeFailure says what a failed Stripe call means for a link: the
// object is gone (ErrNotFound), or Stripe could not do it now
// (ErrUnavailable).
func stripeFailure(what string, err error) error {
	if errors.Is(err, domain.ErrNotFound) {
		return fmt.Errorf("%s: %w", what, err)
	}
	return fmt.Errorf("%s: %w: %w", what, domain.ErrUnavailable, err)
}
