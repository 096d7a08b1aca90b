package stripe

import (
	"encoding/json/jsontext"
	"encoding/json/v2"
	"fmt"
	"time"

	stripego "github.com/stripe/stripe-go/v76"

	"github.com/recoupdev/recoup/domain"
)

// envelope is a Stripe event as delivered, with data.object left raw.
// stripe-go's Event would also decode the object into a
// map[string]interface{} that recoup never reads, which costs more than
// the rest of the delivery; the object is decoded once, with stripe-go's
// own type, and only for the event types the policy acts on.
//
// Events are decoded with encoding/json/v2: names match exactly, as Stripe
// writes them, and a body with a duplicate member name or invalid UTF-8 is
// refused rather than read one way here and another elsewhere.
type envelope struct {
	ID         string `json:"id"`
	Object     string `json:"object"`
	Type       string `json:"type"`
	Account    string `json:"account"`
	Livemode   bool   `json:"livemode"`
	APIVersion string `json:"api_version"`
	Created    int64  `json:"created"`
	Data       *struct {
		Object jsontext.Value `json:"object"`
	} `json:"data"`
}

// stripe-go's Invoice, Charge and Subscription also decode from a bare id
// (their UnmarshalJSON, for expandable fields), which makes encoding/json
// read the object twice. data.object is always an object, so it is
// decoded through these conversions, which drop that method, in one pass.
type (
	invoiceObject      stripego.Invoice
	chargeObject       stripego.Charge
	subscriptionObject stripego.Subscription
)

// decodeEvent decodes a verified payload. The data.object of an event the
// policy handles must be the kind of object its type carries (an invoice
// for invoice.*, a charge for charge.failed, a subscription for
// customer.subscription.deleted); any other event is decoded without its
// object, which nothing reads.
func decodeEvent(payload []byte) (domain.Event, error) {
	var env envelope
	if err := json.Unmarshal(payload, &env); err != nil {
		return domain.Event{}, fmt.Errorf("%w: body is not a Stripe event: %v", domain.ErrInvalid, err)
	}
	if env.Object != "event" || env.ID == "" || env.Type == "" {
		return domain.Event{}, fmt.Errorf("%w: body is not a Stripe event: want object \"event\" with an id and a type", domain.ErrInvalid)
	}
	out := domain.Event{
		ID:         env.ID,
		Type:       env.Type,
		Account:    env.Account,
		Livemode:   env.Livemode,
		APIVersion: env.APIVersion,
		Created:    time.Unix(env.Created, 0).UTC(),
	}
	if !domain.Handles(out.Type) {
		return out, nil
	}
	var raw []byte
	if env.Data != nil {
		raw = env.Data.Object
	}
	if len(raw) == 0 || string(raw) == "null" {
		return domain.Event{}, fmt.Errorf("%w: body is not a Stripe event: %s without data.object", domain.ErrInvalid, out.Type)
	}
	var kind string
	var err error
	switch out.Type {
	case domain.EventChargeFailed:
		var ch stripego.Charge
		if err = json.Unmarshal(raw, (*chargeObject)(&ch)); err == nil && ch.Object == "charge" {
			out.Charge = chargeFromStripe(&ch)
		}
		kind = ch.Object
	case domain.EventCustomerSubscriptionDeleted:
		var sub stripego.Subscription
		if err = json.Unmarshal(raw, (*subscriptionObject)(&sub)); err == nil && sub.Object == "subscription" {
			out.Subscription = &domain.Subscription{ID: sub.ID, CustomerID: customerID(sub.Customer)}
		}
		kind = sub.Object
	default: // the invoice.* events
		var inv stripego.Invoice
		if err = json.Unmarshal(raw, (*invoiceObject)(&inv)); err == nil && inv.Object == "invoice" {
			d := invoiceFromStripe(&inv)
			out.Invoice = &d
		}
		kind = inv.Object
	}
	if err != nil {
		return domain.Event{}, fmt.Errorf("%w: body is not a Stripe event: data.object of %s: %v", domain.ErrInvalid, out.Type, err)
	}
	if out.Invoice == nil && out.Charge == nil && out.Subscription == nil {
		return domain.Event{}, fmt.Errorf("%w: body is not a Stripe event: data.object of %s is %q", domain.ErrInvalid, out.Type, kind)
	}
	return out, nil
}

// invoiceFromStripe keeps what the policy and the worker read. Expandable
// fields (customer, subscription, charge) decode from an id or an expanded
// object alike; either way stripe-go fills in the ID.
func invoiceFromStripe(inv *stripego.Invoice) domain.Invoice {
	d := domain.Invoice{
		ID:               inv.ID,
		Status:           string(inv.Status),
		CustomerID:       customerID(inv.Customer),
		CustomerEmail:    inv.CustomerEmail,
		AmountDue:        inv.AmountDue,
		AmountPaid:       inv.AmountPaid,
		Currency:         string(inv.Currency),
		HostedInvoiceURL: inv.HostedInvoiceURL,
		AttemptCount:     int(inv.AttemptCount),
	}
	if d.CustomerEmail == "" && inv.Customer != nil {
		d.CustomerEmail = inv.Customer.Email
	}
	if inv.Subscription != nil {
		d.SubscriptionID = inv.Subscription.ID
	}
	if inv.Charge != nil {
		d.ChargeID = inv.Charge.ID
	}
	// Stripe sends null when it will not retry on its own; stripe-go
	// decodes null as 0.
	if inv.NextPaymentAttempt > 0 {
		t := time.Unix(inv.NextPaymentAttempt, 0).UTC()
		d.NextPaymentAttempt = &t
	}
	return d
}

// chargeFromStripe takes the customer's email from the billing details,
// else the receipt email, else an expanded customer.
func chargeFromStripe(ch *stripego.Charge) *domain.Charge {
	d := &domain.Charge{
		ID:         ch.ID,
		CustomerID: customerID(ch.Customer),
		Amount:     ch.Amount,
		Currency:   string(ch.Currency),
	}
	switch {
	case ch.BillingDetails != nil && ch.BillingDetails.Email != "":
		d.CustomerEmail = ch.BillingDetails.Email
	case ch.ReceiptEmail != "":
		d.CustomerEmail = ch.ReceiptEmail
	case ch.Customer != nil:
		d.CustomerEmail = ch.Customer.Email
	}
	if ch.Invoice != nil {
		d.InvoiceID = ch.Invoice.ID
	}
	return d
}

func customerID(c *stripego.Customer) string {
	if c == nil {
		return ""
	}
	return c.ID
}
