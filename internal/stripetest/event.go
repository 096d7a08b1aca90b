package stripetest

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"time"
)

// APIVersion is the Stripe API version the events are rendered in.
const APIVersion = "2023-10-16"

// Event is a Stripe event. Zero fields get realistic defaults when rendered.
type Event struct {
	ID         string // "" → a fresh evt_… id
	Type       string // invoice.payment_failed, …
	Account    string // the connected account; "" → no "account" key (a platform event)
	Livemode   bool
	APIVersion string    // "" → APIVersion
	Created    time.Time // zero → now
	// Object is data.object: an Invoice, Charge or Subscription, a
	// map[string]any, a json.RawMessage, or anything json.Marshal renders.
	Object any
}

// JSON renders the event as Stripe sends it to a webhook endpoint, members
// in Stripe's order ("id" and "object" first, then the rest alphabetically,
// so that "type" comes after "data"). It panics if Object cannot be
// rendered, which is a mistake in the test.
func (e Event) JSON() []byte {
	if e.ID == "" {
		e.ID = NewID("evt_")
	}
	if e.APIVersion == "" {
		e.APIVersion = APIVersion
	}
	if e.Created.IsZero() {
		e.Created = time.Now()
	}
	obj := e.Object
	if obj == nil {
		obj = map[string]any{}
	}
	m := map[string]any{
		"id":               e.ID,
		"object":           "event",
		"api_version":      e.APIVersion,
		"created":          e.Created.Unix(),
		"data":             map[string]any{"object": obj},
		"livemode":         e.Livemode,
		"pending_webhooks": 1,
		"request":          map[string]any{"id": nil, "idempotency_key": nil},
		"type":             e.Type,
	}
	if e.Account != "" {
		m["account"] = e.Account
	}
	b, err := json.Marshal(stripeOrder(m))
	if err != nil {
		panic(fmt.Sprintf("stripetest: render event %s: %v", e.Type, err))
	}
	return b
}

// NewID returns a random Stripe-like id with the prefix (evt_, in_, ch_…).
func NewID(prefix string) string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	var b [24]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return prefix + string(b[:])
}

// Invoice is a Stripe invoice. Zero fields render as Stripe renders them
// when they are unset: null for a missing customer_email,
// hosted_invoice_url, subscription, charge or next_payment_attempt.
type Invoice struct {
	ID                 string // "" → a fresh in_… id
	Customer           string // cus_…
	CustomerEmail      string
	AmountDue          int64
	AmountPaid         int64
	Currency           string // "" → usd
	AttemptCount       int
	NextPaymentAttempt *time.Time // nil → null: Stripe will not retry on its own
	HostedInvoiceURL   string
	Subscription       string // sub_…
	Charge             string // ch_…
	Status             string // "" → open
	Livemode           bool
}

// Map renders the invoice object as a map.
func (i Invoice) Map() map[string]any {
	if i.ID == "" {
		i.ID = NewID("in_")
	}
	if i.Currency == "" {
		i.Currency = "usd"
	}
	if i.Status == "" {
		i.Status = "open"
	}
	created := time.Now().Add(-time.Hour).Unix()
	billingReason := "manual"
	if i.Subscription != "" {
		billingReason = "subscription_cycle"
	}
	return map[string]any{
		"id":                   i.ID,
		"object":               "invoice",
		"account_country":      "US",
		"amount_due":           i.AmountDue,
		"amount_paid":          i.AmountPaid,
		"amount_remaining":     i.AmountDue - i.AmountPaid,
		"attempt_count":        i.AttemptCount,
		"attempted":            i.AttemptCount > 0,
		"auto_advance":         true,
		"billing_reason":       billingReason,
		"charge":               nullable(i.Charge),
		"collection_method":    "charge_automatically",
		"created":              created,
		"currency":             i.Currency,
		"customer":             nullable(i.Customer),
		"customer_email":       nullable(i.CustomerEmail),
		"customer_name":        nil,
		"description":          nil,
		"due_date":             nil,
		"hosted_invoice_url":   nullable(i.HostedInvoiceURL),
		"invoice_pdf":          nil,
		"livemode":             i.Livemode,
		"metadata":             map[string]any{},
		"next_payment_attempt": unixOrNull(i.NextPaymentAttempt),
		"number":               nil,
		"paid":                 i.Status == "paid",
		"paid_out_of_band":     false,
		"payment_intent":       nil,
		"period_end":           created,
		"period_start":         created,
		"status":               i.Status,
		"subscription":         nullable(i.Subscription),
		"subtotal":             i.AmountDue,
		"total":                i.AmountDue,
	}
}

// MarshalJSON renders the invoice object.
func (i Invoice) MarshalJSON() ([]byte, error) { return json.Marshal(stripeOrder(i.Map())) }

// Charge is a Stripe charge, by default a failed card charge.
type Charge struct {
	ID           string // "" → a fresh ch_… id
	Customer     string // cus_…
	Invoice      string // in_…; "" → null: a charge outside any invoice
	BillingEmail string // billing_details.email
	ReceiptEmail string // receipt_email
	Amount       int64
	Currency     string // "" → usd
	Status       string // "" → failed
	FailureCode  string // "" → card_declined when Status is failed
	Livemode     bool
}

// Map renders the charge object as a map.
func (c Charge) Map() map[string]any {
	if c.ID == "" {
		c.ID = NewID("ch_")
	}
	if c.Currency == "" {
		c.Currency = "usd"
	}
	if c.Status == "" {
		c.Status = "failed"
	}
	var failureCode, failureMessage, outcome any
	if c.Status == "failed" {
		if c.FailureCode == "" {
			c.FailureCode = "card_declined"
		}
		failureCode, failureMessage = c.FailureCode, "Your card was declined."
		outcome = map[string]any{
			"network_status": "declined_by_network",
			"reason":         "generic_decline",
			"risk_level":     "normal",
			"risk_score":     32,
			"seller_message": "The bank did not return any further details with this decline.",
			"type":           "issuer_declined",
		}
	}
	return map[string]any{
		"id":                  c.ID,
		"object":              "charge",
		"amount":              c.Amount,
		"amount_captured":     0,
		"amount_refunded":     0,
		"balance_transaction": nil,
		"billing_details": map[string]any{
			"address": map[string]any{"city": nil, "country": nil, "line1": nil, "line2": nil, "postal_code": nil, "state": nil},
			"email":   nullable(c.BillingEmail),
			"name":    nil,
			"phone":   nil,
		},
		"captured":        false,
		"created":         time.Now().Add(-time.Minute).Unix(),
		"currency":        c.Currency,
		"customer":        nullable(c.Customer),
		"description":     nil,
		"disputed":        false,
		"failure_code":    failureCode,
		"failure_message": failureMessage,
		"fraud_details":   map[string]any{},
		"invoice":         nullable(c.Invoice),
		"livemode":        c.Livemode,
		"metadata":        map[string]any{},
		"outcome":         outcome,
		"paid":            c.Status == "succeeded",
		"payment_intent":  nil,
		"receipt_email":   nullable(c.ReceiptEmail),
		"refunded":        false,
		"status":          c.Status,
	}
}

// MarshalJSON renders the charge object.
func (c Charge) MarshalJSON() ([]byte, error) { return json.Marshal(stripeOrder(c.Map())) }

// Subscription is a Stripe subscription, by default a cancelled one (as in
// customer.subscription.deleted).
type Subscription struct {
	ID       string // "" → a fresh sub_… id
	Customer string // "" → a fresh cus_… id (Stripe's subscription always has one)
	Status   string // "" → canceled
	Currency string // "" → usd
	Livemode bool
}

// Map renders the subscription object as a map.
func (s Subscription) Map() map[string]any {
	if s.ID == "" {
		s.ID = NewID("sub_")
	}
	if s.Status == "" {
		s.Status = "canceled"
	}
	if s.Currency == "" {
		s.Currency = "usd"
	}
	if s.Customer == "" {
		s.Customer = NewID("cus_")
	}
	now := time.Now()
	var ended any
	if s.Status == "canceled" {
		ended = now.Unix()
	}
	return map[string]any{
		"id":                   s.ID,
		"object":               "subscription",
		"billing_cycle_anchor": now.AddDate(0, -1, 0).Unix(),
		"cancel_at":            nil,
		"cancel_at_period_end": false,
		"canceled_at":          ended,
		"cancellation_details": map[string]any{"comment": nil, "feedback": nil, "reason": "payment_failed"},
		"collection_method":    "charge_automatically",
		"created":              now.AddDate(0, -1, 0).Unix(),
		"currency":             s.Currency,
		"current_period_end":   now.Unix(),
		"current_period_start": now.AddDate(0, -1, 0).Unix(),
		"customer":             s.Customer,
		"ended_at":             ended,
		"latest_invoice":       nil,
		"livemode":             s.Livemode,
		"metadata":             map[string]any{},
		"start_date":           now.AddDate(0, -1, 0).Unix(),
		"status":               s.Status,
	}
}

// MarshalJSON renders the subscription object.
func (s Subscription) MarshalJSON() ([]byte, error) { return json.Marshal(stripeOrder(s.Map())) }

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func unixOrNull(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.Unix()
}
