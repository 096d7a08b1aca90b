package stripe

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	stripego "github.com/stripe/stripe-go/v76"

	"github.com/recoupdev/recoup/domain"
)

// decodeEvent maps a parsed Stripe event to the domain's. data.object is
// decoded with stripe-go's own type when the event type's family
// (invoice.*, charge.*, customer.subscription.*) and the object's "object"
// field agree: charge.dispute.* events, say, carry a dispute, which is left
// undecoded like the object of any other type.
func decodeEvent(ev stripego.Event) (domain.Event, error) {
	if ev.Object != "event" || ev.ID == "" || ev.Type == "" {
		return domain.Event{}, fmt.Errorf("%w: body is not a Stripe event: want object \"event\" with an id and a type", domain.ErrInvalid)
	}
	out := domain.Event{
		ID:         ev.ID,
		Type:       string(ev.Type),
		Account:    ev.Account,
		Livemode:   ev.Livemode,
		APIVersion: ev.APIVersion,
		Created:    time.Unix(ev.Created, 0).UTC(),
	}
	if ev.Data == nil || len(ev.Data.Raw) == 0 {
		if domain.Handles(out.Type) {
			return domain.Event{}, fmt.Errorf("%w: body is not a Stripe event: %s without data.object", domain.ErrInvalid, out.Type)
		}
		return out, nil
	}
	kind, _ := ev.Data.Object["object"].(string)
	var err error
	switch typ := out.Type; {
	case strings.HasPrefix(typ, "invoice.") && kind == "invoice":
		var inv stripego.Invoice
		if err = json.Unmarshal(ev.Data.Raw, &inv); err == nil {
			d := invoiceFromStripe(&inv)
			out.Invoice = &d
		}
	case strings.HasPrefix(typ, "charge.") && kind == "charge":
		var ch stripego.Charge
		if err = json.Unmarshal(ev.Data.Raw, &ch); err == nil {
			out.Charge = chargeFromStripe(&ch)
		}
	case strings.HasPrefix(typ, "customer.subscription.") && kind == "subscription":
		var sub stripego.Subscription
		if err = json.Unmarshal(ev.Data.Raw, &sub); err == nil {
			out.Subscription = &domain.Subscription{ID: sub.ID, CustomerID: customerID(sub.Customer)}
		}
	}
	if err != nil {
		return domain.Event{}, fmt.Errorf("%w: body is not a Stripe event: data.object of %s: %v", domain.ErrInvalid, out.Type, err)
	}
	if domain.Handles(out.Type) && out.Invoice == nil && out.Charge == nil && out.Subscription == nil {
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
