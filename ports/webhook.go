package ports

import "github.com/recoupdev/recoup/domain"

// WebhookVerifier turns a raw webhook delivery into an event after checking
// its signature.
type WebhookVerifier interface {
	// CheckHeader refuses, before the body is read, a delivery whose
	// Stripe-Signature header could never be accepted: missing, malformed,
	// or with a timestamp outside the tolerance. Every rejection is
	// ErrInvalid (wrapped, with a message fit for the sender).
	CheckHeader(signatureHeader string) error
	// VerifyEvent checks the Stripe-Signature header against the payload and
	// decodes the event. Every rejection is ErrInvalid (wrapped, with a
	// message fit for the sender). It must not keep payload, nor anything
	// that shares its memory, after it returns: the caller reuses it.
	VerifyEvent(payload []byte, signatureHeader string) (domain.Event, error)
}

// EventDecoder decodes an event's JSON body exactly as a webhook delivery's
// is decoded, without a signature: for events recoup fetched from Stripe
// itself (reconciliation). Every rejection is ErrInvalid.
type EventDecoder interface {
	// DecodeEvent decodes one event's JSON body; ErrInvalid when it is not
	// a Stripe event recoup can read.
	DecodeEvent(payload []byte) (domain.Event, error)
}
