package stripetest

import (
	"encoding/json"
	"strings"
	"time"
)

// PaymentIntent is a Stripe payment intent, the object an invoice pays
// through: by default one that succeeded, and one whose last payment was
// declined when DeclineCode is set.
type PaymentIntent struct {
	ID           string // "" → a fresh pi_… id
	Customer     string // cus_…
	Invoice      string // in_…; "" → null: a payment outside any invoice
	Amount       int64
	Currency     string // "" → usd
	Status       string // "" → succeeded, or requires_payment_method when DeclineCode is set
	LatestCharge string // ch_…; "" → null
	// DeclineCode is the decline of the last payment: it renders
	// last_payment_error as Stripe does for that decline (code
	// card_declined and this decline_code, or this code alone for
	// expired_card, incorrect_number…). "" → null: no failed payment.
	DeclineCode string
	Created     time.Time // zero → a minute ago
	Livemode    bool
}

// Map renders the payment intent object as a map, with every member of
// Stripe's sample payment intent of API version 2023-10-16.
func (p PaymentIntent) Map() map[string]any {
	if p.ID == "" {
		p.ID = NewID("pi_")
	}
	if p.Currency == "" {
		p.Currency = "usd"
	}
	if p.Status == "" {
		p.Status = "succeeded"
		if p.DeclineCode != "" {
			p.Status = "requires_payment_method"
		}
	}
	if p.Created.IsZero() {
		p.Created = time.Now().Add(-time.Minute)
	}
	var lastError any
	if p.DeclineCode != "" {
		e := decline(p.DeclineCode)
		e.charge = p.LatestCharge
		lastError = e.Map()
	}
	var received int64
	if p.Status == "succeeded" {
		received = p.Amount
	}
	var description any
	if p.Invoice != "" {
		description = "Subscription update"
	}
	return map[string]any{
		"id":                                   p.ID,
		"object":                               "payment_intent",
		"amount":                               p.Amount,
		"amount_capturable":                    0,
		"amount_details":                       map[string]any{"tip": map[string]any{}},
		"amount_received":                      received,
		"application":                          nil,
		"application_fee_amount":               nil,
		"automatic_payment_methods":            nil,
		"canceled_at":                          nil,
		"cancellation_reason":                  nil,
		"capture_method":                       "automatic",
		"client_secret":                        p.ID + "_secret_" + strings.TrimPrefix(p.ID, "pi_"),
		"confirmation_method":                  "automatic",
		"created":                              p.Created.Unix(),
		"currency":                             p.Currency,
		"customer":                             nullable(p.Customer),
		"description":                          description,
		"invoice":                              nullable(p.Invoice),
		"last_payment_error":                   lastError,
		"latest_charge":                        nullable(p.LatestCharge),
		"livemode":                             p.Livemode,
		"metadata":                             map[string]any{},
		"next_action":                          nil,
		"on_behalf_of":                         nil,
		"payment_method":                       NewID("pm_"),
		"payment_method_configuration_details": nil,
		"payment_method_options":               map[string]any{},
		"payment_method_types":                 []any{"card"},
		"processing":                           nil,
		"receipt_email":                        nil,
		"review":                               nil,
		"setup_future_usage":                   "off_session",
		"shipping":                             nil,
		"statement_descriptor":                 nil,
		"statement_descriptor_suffix":          nil,
		"status":                               p.Status,
		"transfer_data":                        nil,
		"transfer_group":                       nil,
	}
}

// MarshalJSON renders the payment intent object.
func (p PaymentIntent) MarshalJSON() ([]byte, error) { return json.Marshal(stripeOrder(p.Map())) }

// cardError is a card_error as Stripe reports a declined payment: in the
// 402 answer to the request that tried it, and as a payment intent's
// last_payment_error.
type cardError struct {
	code        string // card_declined, or expired_card, incorrect_number…
	declineCode string // the issuer's reason; "" when code says it all
	message     string // written for the customer
	charge      string // the failed charge; "" → no member
}

// ownCodes are the card errors Stripe reports under their own error code,
// without a decline_code (Stripe's test cards: "Decline code: n/a"), and
// their messages.
var ownCodes = map[string]string{
	"expired_card":         "Your card has expired.",
	"incorrect_cvc":        "Your card's security code is incorrect.",
	"incorrect_number":     "Your card number is incorrect.",
	"incorrect_zip":        "Your card's zip code failed validation.",
	"invalid_cvc":          "Your card's security code is invalid.",
	"invalid_expiry_month": "Your card's expiration month is invalid.",
	"invalid_expiry_year":  "Your card's expiration year is invalid.",
	"invalid_number":       "Your card number is invalid.",
	"processing_error":     "An error occurred while processing your card. Try again in a little bit.",
}

// declineMessages are Stripe's messages for declines that say more than
// "Your card was declined."
var declineMessages = map[string]string{
	"insufficient_funds":      "Your card has insufficient funds.",
	"authentication_required": "Your card was declined. This transaction requires authentication.",
	"card_velocity_exceeded":  "Your card was declined for making repeated attempts too frequently or exceeding its amount limit.",
}

// decline is the card error Stripe reports for a decline: the code itself
// for the errors in ownCodes, else card_declined with the code as
// decline_code.
func decline(code string) cardError {
	if msg, ok := ownCodes[code]; ok {
		return cardError{code: code, message: msg}
	}
	msg, ok := declineMessages[code]
	if !ok {
		msg = "Your card was declined."
	}
	return cardError{code: "card_declined", declineCode: code, message: msg}
}

// Map renders the error object (Stripe's api_errors schema).
func (e cardError) Map() map[string]any {
	m := map[string]any{
		"code":    e.code,
		"doc_url": docURL(e.code),
		"message": e.message,
		"type":    "card_error",
	}
	if e.declineCode != "" {
		m["decline_code"] = e.declineCode
	}
	if e.charge != "" {
		m["charge"] = e.charge
	}
	return m
}

// docURL is the page Stripe links from an error with that code.
func docURL(code string) string {
	return "https://stripe.com/docs/error-codes/" + strings.ReplaceAll(code, "_", "-")
}
