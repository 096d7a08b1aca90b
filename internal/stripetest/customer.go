package stripetest

import (
	"encoding/json"
	"time"
)

// Customer is a Stripe customer, the object of customer.updated and of
// GET /v1/customers/{id}.
type Customer struct {
	ID    string // "" → a fresh cus_… id
	Email string // "" → null
	// DefaultPaymentMethod is invoice_settings.default_payment_method
	// (pm_…); "" → null.
	DefaultPaymentMethod string
	Currency             string // "" → usd
	Delinquent           bool   // an invoice of theirs failed and is unpaid
	Created              time.Time
	Livemode             bool
}

// Map renders the customer object as a map, with every member of
// Stripe's sample customer of API version 2023-10-16.
func (c Customer) Map() map[string]any {
	if c.ID == "" {
		c.ID = NewID("cus_")
	}
	if c.Currency == "" {
		c.Currency = "usd"
	}
	if c.Created.IsZero() {
		c.Created = time.Now().AddDate(0, -1, 0)
	}
	return map[string]any{
		"id":             c.ID,
		"object":         "customer",
		"address":        nil,
		"balance":        0,
		"created":        c.Created.Unix(),
		"currency":       c.Currency,
		"default_source": nil,
		"delinquent":     c.Delinquent,
		"description":    nil,
		"discount":       nil,
		"email":          nullable(c.Email),
		"invoice_prefix": "B4749BD",
		"invoice_settings": map[string]any{
			"custom_fields": nil, "default_payment_method": nullable(c.DefaultPaymentMethod), "footer": nil, "rendering_options": nil,
		},
		"livemode":              c.Livemode,
		"metadata":              map[string]any{},
		"name":                  nil,
		"next_invoice_sequence": 1,
		"phone":                 nil,
		"preferred_locales":     []any{},
		"shipping":              nil,
		"tax_exempt":            "none",
		"test_clock":            nil,
	}
}

// MarshalJSON renders the customer object.
func (c Customer) MarshalJSON() ([]byte, error) { return json.Marshal(stripeOrder(c.Map())) }
