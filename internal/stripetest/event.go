package stripetest

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strconv"
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
	// PreviousAttributes, when set, is data.previous_attributes: the
	// values an *.updated event's object had before the change.
	PreviousAttributes map[string]any
}

// JSON renders the event as Stripe sends it to a webhook endpoint: members
// in Stripe's order ("id" and "object" first, then the rest alphabetically,
// so that "type" comes after "data"), indented by two spaces, one member
// per line. It panics if Object cannot be rendered, which is a mistake in
// the test.
func (e Event) JSON() []byte {
	var out bytes.Buffer
	b := e.compact()
	out.Grow(len(b) * 3 / 2)
	if err := json.Indent(&out, b, "", "  "); err != nil {
		panic(fmt.Sprintf("stripetest: indent event %s: %v", e.Type, err))
	}
	return out.Bytes()
}

// readMembers are the object members recoup's decoder reads.
var readMembers = []string{
	"id", "object", "amount", "amount_due", "amount_paid", "attempt_count", "billing_details", "charge", "currency", "customer",
	"customer_email", "hosted_invoice_url", "invoice", "next_payment_attempt", "receipt_email", "status", "subscription",
}

// MinimalJSON renders the event with only the members of its object that
// recoup reads, in Stripe's order, without whitespace: the smallest event
// recoup acts on. Stripe never sends such an event; it makes small fuzz
// seeds and the worst case of a benchmark (the least to decode).
func (e Event) MinimalJSON() []byte {
	var obj map[string]any
	b, err := json.Marshal(e.Object)
	if err == nil {
		err = json.Unmarshal(b, &obj)
	}
	if err != nil {
		panic(fmt.Sprintf("stripetest: render event %s: %v", e.Type, err))
	}
	kept := map[string]any{}
	for _, k := range readMembers {
		if v, ok := obj[k]; ok {
			kept[k] = v
		}
	}
	e.Object = kept
	return e.compact()
}

// compact renders the event in Stripe's member order, without whitespace.
func (e Event) compact() []byte {
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
		"data":             e.data(obj),
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

// data is the event's data member around obj.
func (e Event) data(obj any) map[string]any {
	d := map[string]any{"object": obj}
	if e.PreviousAttributes != nil {
		d["previous_attributes"] = e.PreviousAttributes
	}
	return d
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

// Map renders the invoice object as a map, with every member Stripe's
// own sample invoice of API version 2023-10-16 has (stripe-mock's
// fixtures3.json), so that a test decodes what a real delivery carries:
// one line item for the amount due, a subscription line when the invoice
// has a subscription.
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
	var finalized, paidAt any
	if i.Status != "draft" {
		finalized = created
	}
	if i.Status == "paid" {
		paidAt = time.Now().Unix()
	}
	return map[string]any{
		"id":                               i.ID,
		"object":                           "invoice",
		"account_country":                  "US",
		"account_name":                     "Bench Co",
		"account_tax_ids":                  nil,
		"amount_due":                       i.AmountDue,
		"amount_paid":                      i.AmountPaid,
		"amount_remaining":                 i.AmountDue - i.AmountPaid,
		"amount_shipping":                  0,
		"application":                      nil,
		"application_fee_amount":           nil,
		"attempt_count":                    i.AttemptCount,
		"attempted":                        i.AttemptCount > 0,
		"auto_advance":                     true,
		"automatic_tax":                    map[string]any{"enabled": false, "status": nil},
		"billing_reason":                   billingReason,
		"charge":                           nullable(i.Charge),
		"collection_method":                "charge_automatically",
		"created":                          created,
		"currency":                         i.Currency,
		"custom_fields":                    nil,
		"customer":                         nullable(i.Customer),
		"customer_address":                 nil,
		"customer_email":                   nullable(i.CustomerEmail),
		"customer_name":                    nil,
		"customer_phone":                   nil,
		"customer_shipping":                nil,
		"customer_tax_exempt":              "none",
		"customer_tax_ids":                 []any{},
		"default_payment_method":           nil,
		"default_source":                   nil,
		"default_tax_rates":                []any{},
		"description":                      nil,
		"discount":                         nil,
		"discounts":                        []any{},
		"due_date":                         nil,
		"effective_at":                     finalized,
		"ending_balance":                   0,
		"footer":                           nil,
		"from_invoice":                     nil,
		"hosted_invoice_url":               nullable(i.HostedInvoiceURL),
		"invoice_pdf":                      nil,
		"last_finalization_error":          nil,
		"latest_revision":                  nil,
		"lines":                            i.lines(created),
		"livemode":                         i.Livemode,
		"metadata":                         map[string]any{},
		"next_payment_attempt":             unixOrNull(i.NextPaymentAttempt),
		"number":                           nil,
		"on_behalf_of":                     nil,
		"paid":                             i.Status == "paid",
		"paid_out_of_band":                 false,
		"payment_intent":                   nil,
		"payment_settings":                 map[string]any{"default_mandate": nil, "payment_method_options": nil, "payment_method_types": nil},
		"period_end":                       created,
		"period_start":                     created,
		"post_payment_credit_notes_amount": 0,
		"pre_payment_credit_notes_amount":  0,
		"quote":                            nil,
		"receipt_number":                   nil,
		"rendering":                        nil,
		"shipping_cost":                    nil,
		"shipping_details":                 nil,
		"starting_balance":                 0,
		"statement_descriptor":             nil,
		"status":                           i.Status,
		"status_transitions":               map[string]any{"finalized_at": finalized, "marked_uncollectible_at": nil, "paid_at": paidAt, "voided_at": nil},
		"subscription":                     nullable(i.Subscription),
		"subscription_details":             map[string]any{"metadata": nil},
		"subtotal":                         i.AmountDue,
		"subtotal_excluding_tax":           i.AmountDue,
		"tax":                              nil,
		"test_clock":                       nil,
		"total":                            i.AmountDue,
		"total_discount_amounts":           []any{},
		"total_excluding_tax":              i.AmountDue,
		"total_tax_amounts":                []any{},
		"transfer_data":                    nil,
		"webhooks_delivered_at":            created,
	}
}

// lines renders the invoice's line items: one, for the amount due.
func (i Invoice) lines(created int64) map[string]any {
	item := map[string]any{
		"id":                        NewID("il_"),
		"object":                    "line_item",
		"amount":                    i.AmountDue,
		"amount_excluding_tax":      i.AmountDue,
		"currency":                  i.Currency,
		"description":               "1 × Bench plan",
		"discount_amounts":          []any{},
		"discountable":              true,
		"discounts":                 []any{},
		"livemode":                  i.Livemode,
		"metadata":                  map[string]any{},
		"period":                    map[string]any{"end": created, "start": created},
		"price":                     price(i.Currency, i.AmountDue, i.Livemode, created, i.Subscription != ""),
		"proration":                 false,
		"proration_details":         map[string]any{"credited_items": nil},
		"quantity":                  1,
		"subscription":              nullable(i.Subscription),
		"tax_amounts":               []any{},
		"tax_rates":                 []any{},
		"type":                      "invoiceitem",
		"unit_amount_excluding_tax": strconv.FormatInt(i.AmountDue, 10),
	}
	if i.Subscription != "" {
		item["type"] = "subscription"
	} else {
		item["invoice_item"] = NewID("ii_") // an invoice item's line names it
	}
	return map[string]any{
		"object":   "list",
		"data":     []any{item},
		"has_more": false,
		"url":      "/v1/invoices/" + i.ID + "/lines",
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
	// DeclineCode is the issuer's reason, outcome.reason ("" →
	// generic_decline) when Status is failed.
	DeclineCode   string
	PaymentIntent string    // pi_…; "" → null: a charge made without one
	Created       time.Time // zero → a minute ago
	Livemode      bool
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
	if c.Created.IsZero() {
		c.Created = time.Now().Add(-time.Minute)
	}
	var failureCode, failureMessage, outcome, balanceTransaction any
	var captured int64
	switch c.Status {
	case "succeeded":
		// A card charge that succeeded is captured at once (invoices
		// capture automatically) and moved money.
		captured, balanceTransaction = c.Amount, NewID("txn_")
		outcome = map[string]any{
			"network_status": "approved_by_network",
			"reason":         nil,
			"risk_level":     "normal",
			"risk_score":     32,
			"seller_message": "Payment complete.",
			"type":           "authorized",
		}
	case "failed":
		if c.FailureCode == "" {
			c.FailureCode = "card_declined"
		}
		if c.DeclineCode == "" {
			c.DeclineCode = "generic_decline"
		}
		failureCode, failureMessage = c.FailureCode, decline(c.DeclineCode).message
		outcome = map[string]any{
			"network_status": "declined_by_network",
			"reason":         c.DeclineCode,
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
		"amount_captured":     captured,
		"amount_refunded":     0,
		"balance_transaction": balanceTransaction,
		"billing_details": map[string]any{
			"address": map[string]any{"city": nil, "country": nil, "line1": nil, "line2": nil, "postal_code": nil, "state": nil},
			"email":   nullable(c.BillingEmail),
			"name":    nil,
			"phone":   nil,
		},
		"captured":                        c.Status == "succeeded",
		"created":                         c.Created.Unix(),
		"currency":                        c.Currency,
		"customer":                        nullable(c.Customer),
		"description":                     nil,
		"disputed":                        false,
		"failure_code":                    failureCode,
		"failure_message":                 failureMessage,
		"fraud_details":                   map[string]any{},
		"invoice":                         nullable(c.Invoice),
		"livemode":                        c.Livemode,
		"metadata":                        map[string]any{},
		"outcome":                         outcome,
		"paid":                            c.Status == "succeeded",
		"payment_intent":                  nullable(c.PaymentIntent),
		"receipt_email":                   nullable(c.ReceiptEmail),
		"refunded":                        false,
		"status":                          c.Status,
		"application":                     nil,
		"application_fee":                 nil,
		"application_fee_amount":          nil,
		"calculated_statement_descriptor": "RECOUP BENCH",
		"failure_balance_transaction":     nil,
		"on_behalf_of":                    nil,
		"payment_method":                  NewID("pm_"),
		"payment_method_details":          cardDetails(),
		"receipt_number":                  nil,
		"receipt_url":                     nil,
		"review":                          nil,
		"shipping":                        nil,
		"source_transfer":                 nil,
		"statement_descriptor":            nil,
		"statement_descriptor_suffix":     nil,
		"transfer_data":                   nil,
		"transfer_group":                  nil,
	}
}

// cardDetails renders a charge's payment_method_details for a Visa card.
func cardDetails() map[string]any {
	return map[string]any{
		"card": map[string]any{
			"amount_authorized":         nil,
			"brand":                     "visa",
			"checks":                    map[string]any{"address_line1_check": nil, "address_postal_code_check": nil, "cvc_check": "pass"},
			"country":                   "US",
			"exp_month":                 8,
			"exp_year":                  2030,
			"extended_authorization":    map[string]any{"status": "disabled"},
			"fingerprint":               "Xt5EWLLDS7FJjR1c",
			"funding":                   "credit",
			"incremental_authorization": map[string]any{"status": "unavailable"},
			"installments":              nil,
			"last4":                     "0341",
			"mandate":                   nil,
			"multicapture":              map[string]any{"status": "unavailable"},
			"network":                   "visa",
			"network_token":             map[string]any{"used": false},
			"overcapture":               map[string]any{"maximum_amount_capturable": 0, "status": "unavailable"},
			"three_d_secure":            nil,
			"wallet":                    nil,
		},
		"type": "card",
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
		"id":                                s.ID,
		"object":                            "subscription",
		"automatic_tax":                     map[string]any{"enabled": false},
		"billing_cycle_anchor":              now.AddDate(0, -1, 0).Unix(),
		"cancel_at":                         nil,
		"cancel_at_period_end":              false,
		"canceled_at":                       ended,
		"cancellation_details":              map[string]any{"comment": nil, "feedback": nil, "reason": "payment_failed"},
		"collection_method":                 "charge_automatically",
		"created":                           now.AddDate(0, -1, 0).Unix(),
		"currency":                          s.Currency,
		"current_period_end":                now.Unix(),
		"current_period_start":              now.AddDate(0, -1, 0).Unix(),
		"customer":                          s.Customer,
		"ended_at":                          ended,
		"items":                             s.items(now.AddDate(0, -1, 0).Unix()),
		"latest_invoice":                    nil,
		"livemode":                          s.Livemode,
		"metadata":                          map[string]any{},
		"start_date":                        now.AddDate(0, -1, 0).Unix(),
		"status":                            s.Status,
		"application":                       nil,
		"application_fee_percent":           nil,
		"billing_thresholds":                nil,
		"days_until_due":                    nil,
		"default_payment_method":            nil,
		"default_source":                    nil,
		"default_tax_rates":                 []any{},
		"description":                       nil,
		"discount":                          nil,
		"next_pending_invoice_item_invoice": nil,
		"on_behalf_of":                      nil,
		"pause_collection":                  nil,
		"payment_settings":                  map[string]any{"payment_method_options": nil, "payment_method_types": nil, "save_default_payment_method": "off"},
		"pending_invoice_item_interval":     nil,
		"pending_setup_intent":              nil,
		"pending_update":                    nil,
		"schedule":                          nil,
		"test_clock":                        nil,
		"transfer_data":                     nil,
		"trial_end":                         nil,
		"trial_settings":                    map[string]any{"end_behavior": map[string]any{"missing_payment_method": "create_invoice"}},
		"trial_start":                       nil,
	}
}

// items renders the subscription's items: one monthly price.
func (s Subscription) items(created int64) map[string]any {
	item := map[string]any{
		"id":                 NewID("si_"),
		"object":             "subscription_item",
		"billing_thresholds": nil,
		"created":            created,
		"metadata":           map[string]any{},
		"price":              price(s.Currency, 2000, s.Livemode, created, true),

		"quantity":     1,
		"subscription": s.ID,
		"tax_rates":    []any{},
	}
	return map[string]any{
		"object":   "list",
		"data":     []any{item},
		"has_more": false,
		"url":      "/v1/subscription_items?subscription=" + s.ID,
	}
}

// price renders a price of amount (a monthly one if recurring).
func price(currency string, amount int64, livemode bool, created int64, recurring bool) map[string]any {
	typ, interval := "one_time", any(nil)
	if recurring {
		typ = "recurring"
		interval = map[string]any{"aggregate_usage": nil, "interval": "month", "interval_count": 1, "usage_type": "licensed"}
	}
	return map[string]any{
		"id":                  NewID("price_"),
		"object":              "price",
		"active":              true,
		"billing_scheme":      "per_unit",
		"created":             created,
		"currency":            currency,
		"custom_unit_amount":  nil,
		"livemode":            livemode,
		"lookup_key":          nil,
		"metadata":            map[string]any{},
		"nickname":            nil,
		"product":             NewID("prod_"),
		"recurring":           interval,
		"tax_behavior":        "unspecified",
		"tiers_mode":          nil,
		"transform_quantity":  nil,
		"type":                typ,
		"unit_amount":         amount,
		"unit_amount_decimal": strconv.FormatInt(amount, 10),
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
