package stripetest

import (
	"time"

	"github.com/stripe/stripe-go/v76/webhook"
)

// Sign returns the Stripe-Signature header Stripe would send with payload,
// signed with secret at the given time.
func Sign(payload []byte, secret string, at time.Time) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret, Timestamp: at}).Header
}
