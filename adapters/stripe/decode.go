package stripe

import (
	"bytes"
	"encoding/json/jsontext"
	"encoding/json/v2"
	"fmt"
	"strings"
	"sync"
	"time"

	stripego "github.com/stripe/stripe-go/v76"

	"github.com/recoupdev/recoup/domain"
)

// envelope is a Stripe event as delivered. stripe-go's Event would also
// decode data.object into a map[string]interface{} that recoup never
// reads, which costs more than the rest of the delivery; here the object
// is decoded once, with stripe-go's own type.
//
// Events are decoded with encoding/json/v2: names match exactly, as Stripe
// writes them, and a body with a duplicate member name or invalid UTF-8 is
// refused rather than read one way here and another elsewhere.
type envelope struct {
	ID         string     `json:"id"`
	Object     string     `json:"object"`
	Type       string     `json:"type"`
	Account    string     `json:"account"`
	Livemode   bool       `json:"livemode"`
	APIVersion string     `json:"api_version"`
	Created    int64      `json:"created"`
	Data       *eventData `json:"data"`
}

// eventData is an event's data. The event's type comes after its data in
// the body, so the object's own "object" member, which Stripe writes
// second (after "id"), tells ahead what it is: an invoice, a charge or a
// subscription is decoded on the way, in the one pass over the body. Any
// other object, or one whose kind does not come early, is kept raw.
type eventData struct {
	payload []byte // the whole body, to look ahead in; nil: keep the object raw
	object  eventObject
	// paymentMethodChanged: previous_attributes names
	// invoice_settings.default_payment_method (a customer.updated that
	// changed it).
	paymentMethodChanged bool
}

// eventObject is data.object: decoded into the stripe-go type of its kind,
// or kept raw.
type eventObject struct {
	present       bool   // data.object was there, and not null
	kind          string // its "object" member, once known
	invoice       *stripego.Invoice
	charge        *stripego.Charge
	subscription  *stripego.Subscription
	customer      *stripego.Customer
	paymentMethod *stripego.PaymentMethod
	card          *stripego.Card
	raw           jsontext.Value
}

// decodeAs decodes the object dec is at into the stripe-go type of kind and
// reports true, or, for another kind, reads nothing and reports false.
func (o *eventObject) decodeAs(kind string, dec *jsontext.Decoder) (bool, error) {
	var err error
	switch kind {
	case "invoice":
		o.invoice = newInvoice()
		err = json.UnmarshalDecode(dec, (*invoiceObject)(o.invoice))
		o.kind = o.invoice.Object
	case "charge":
		o.charge = new(stripego.Charge)
		err = json.UnmarshalDecode(dec, (*chargeObject)(o.charge))
		o.kind = o.charge.Object
	case "subscription":
		o.subscription = new(stripego.Subscription)
		err = json.UnmarshalDecode(dec, (*subscriptionObject)(o.subscription))
		o.kind = o.subscription.Object
	case "customer":
		o.customer = new(stripego.Customer)
		err = json.UnmarshalDecode(dec, (*customerObject)(o.customer))
		o.kind = o.customer.Object
	case "payment_method":
		o.paymentMethod = new(stripego.PaymentMethod)
		err = json.UnmarshalDecode(dec, (*paymentMethodObject)(o.paymentMethod))
		o.kind = o.paymentMethod.Object
	case "card":
		o.card = new(stripego.Card)
		err = json.UnmarshalDecode(dec, (*cardObject)(o.card))
		o.kind = o.card.Object
	default:
		return false, nil
	}
	return true, err
}

// invoices recycles the stripe-go Invoice the object is decoded into (a
// kilobyte, every delivery of an invoice event); domain.Invoice keeps none
// of it. Only the struct is reused: what it pointed to is left behind.
var invoices = sync.Pool{New: func() any { return new(stripego.Invoice) }}

func newInvoice() *stripego.Invoice { return invoices.Get().(*stripego.Invoice) }

func releaseInvoice(inv *stripego.Invoice) {
	*inv = stripego.Invoice{}
	invoices.Put(inv)
}

// stripe-go's Invoice, Charge and Subscription also decode from a bare id
// (their UnmarshalJSON, for expandable fields), which makes encoding/json
// read the object twice. data.object is always an object, so it is
// decoded through these conversions, which drop that method, in one pass.
type (
	invoiceObject       stripego.Invoice
	chargeObject        stripego.Charge
	subscriptionObject  stripego.Subscription
	customerObject      stripego.Customer
	paymentMethodObject stripego.PaymentMethod
	cardObject          stripego.Card
)

// UnmarshalJSONFrom reads data, decoding or keeping its object.
func (d *eventData) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	if tok, err := dec.ReadToken(); err != nil {
		return err
	} else if tok.Kind() != '{' {
		return fmt.Errorf("data is %v, not an object", tok.Kind())
	}
	for dec.PeekKind() != '}' {
		name, err := dec.ReadToken()
		if err != nil {
			return err
		}
		if name.String() == "previous_attributes" && dec.PeekKind() == '{' {
			var prev struct {
				InvoiceSettings map[string]jsontext.Value `json:"invoice_settings"`
			}
			if err := json.UnmarshalDecode(dec, &prev); err != nil {
				return err
			}
			_, d.paymentMethodChanged = prev.InvoiceSettings["default_payment_method"]
			continue
		}
		if name.String() != "object" || dec.PeekKind() == 'n' {
			if err := dec.SkipValue(); err != nil {
				return err
			}
			continue
		}
		o := &d.object
		o.present = true
		kind := ""
		if d.payload != nil {
			kind = kindAhead(d.payload[dec.InputOffset():])
		}
		if decoded, err := o.decodeAs(kind, dec); decoded {
			if err != nil {
				return err
			}
			continue
		}
		v, err := dec.ReadValue()
		if err != nil {
			return err
		}
		o.raw = v.Clone()
	}
	_, err := dec.ReadToken()
	return err
}

// kindAhead returns the "object" member of the JSON object at the start of
// rest (after the name's colon) when it comes first, or second after a
// plain string "id", as Stripe writes them; else "". It reads only those
// few bytes; whatever it returns, the object is then decoded in full.
func kindAhead(rest []byte) string {
	i := skipSpace(rest, 0)
	if i < len(rest) && rest[i] == ':' {
		i = skipSpace(rest, i+1)
	}
	if i >= len(rest) || rest[i] != '{' {
		return ""
	}
	i++
	for range 2 {
		name, j, ok := plainString(rest, skipSpace(rest, i))
		if !ok {
			return ""
		}
		j = skipSpace(rest, j)
		if j >= len(rest) || rest[j] != ':' {
			return ""
		}
		value, k, ok := plainString(rest, skipSpace(rest, j+1))
		switch {
		case !ok:
			return ""
		case name == "object":
			return value
		case name != "id":
			return ""
		}
		k = skipSpace(rest, k)
		if k >= len(rest) || rest[k] != ',' {
			return ""
		}
		i = k + 1
	}
	return ""
}

// plainString reads the JSON string at b[i:] if it has no escape, and
// returns it with the index after it.
func plainString(b []byte, i int) (string, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return "", 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return string(b[i+1 : j]), j + 1, true
		case c == '\\' || c < 0x20:
			return "", 0, false
		}
	}
	return "", 0, false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// decodeEvent decodes a verified payload. The data.object of an event the
// policy handles must be the kind of object its type carries (an invoice
// for invoice.*, a charge for charge.failed, a subscription for
// customer.subscription.deleted); the object of any other event is not
// read.
//
// The one pass decodes an invoice, a charge or a subscription whatever the
// event's type; when that fails, the body is decoded again keeping the
// object raw, so that a malformed object of an event type recoup does not
// handle does not refuse the event.
func decodeEvent(payload []byte) (domain.Event, error) { return decode(payload, true) }

// decode is decodeEvent, trying the one pass first if onePass.
func decode(payload []byte, onePass bool) (domain.Event, error) {
	var env envelope
	if onePass {
		env.Data = &eventData{payload: payload}
	}
	err := json.Unmarshal(payload, &env)
	if err != nil && onePass {
		env = envelope{}
		err = json.Unmarshal(payload, &env)
	}
	if err != nil {
		return domain.Event{}, fmt.Errorf("%w: body is not a Stripe event: %v", domain.ErrInvalid, err)
	}
	defer func() {
		if env.Data != nil && env.Data.object.invoice != nil {
			releaseInvoice(env.Data.object.invoice)
		}
	}()
	if env.Object != "event" || env.ID == "" || env.Type == "" || !plainID(env.ID) || !plainID(env.Type) {
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
	if env.Data == nil || !env.Data.object.present {
		return domain.Event{}, fmt.Errorf("%w: body is not a Stripe event: %s without data.object", domain.ErrInvalid, out.Type)
	}
	o := &env.Data.object
	want := objectKind(out.Type)
	if o.raw != nil {
		if _, err := o.decodeAs(want, jsontext.NewDecoder(bytes.NewReader(o.raw))); err != nil {
			return domain.Event{}, fmt.Errorf("%w: body is not a Stripe event: data.object of %s: %v", domain.ErrInvalid, out.Type, err)
		}
	}
	if o.kind != want {
		return domain.Event{}, fmt.Errorf("%w: body is not a Stripe event: data.object of %s is %q", domain.ErrInvalid, out.Type, o.kind)
	}
	switch want {
	case "charge":
		out.Charge = chargeFromStripe(o.charge)
	case "subscription":
		out.Subscription = &domain.Subscription{ID: o.subscription.ID, CustomerID: customerID(o.subscription.Customer)}
	case "customer":
		out.Customer = &domain.Customer{ID: o.customer.ID, Email: freeText(o.customer.Email),
			DefaultPaymentMethodChanged: env.Data.paymentMethodChanged && hasDefaultPaymentMethod(o.customer)}
	case "payment_method":
		out.PaymentMethod = &domain.PaymentMethod{ID: o.paymentMethod.ID, CustomerID: customerID(o.paymentMethod.Customer)}
	case "card":
		out.Card = &domain.Card{ID: o.card.ID, CustomerID: customerID(o.card.Customer),
			ExpMonth: int(o.card.ExpMonth), ExpYear: int(o.card.ExpYear)}
	default:
		d := invoiceFromStripe(o.invoice)
		out.Invoice = &d
	}
	if err := checkIDs(out); err != nil {
		return domain.Event{}, err
	}
	return out, nil
}

// maxIDLen bounds an id recoup keeps; Stripe's are a few dozen characters.
const maxIDLen = 255

// checkIDs refuses an event whose ids are not plain printable text: a
// Stripe id is letters, digits and underscores, and an id holding a NUL
// or a space could only be a forgery that storage would refuse or keep in
// a form no lookup finds.
func checkIDs(ev domain.Event) error {
	ids := []string{ev.ID, ev.Type, ev.Account}
	switch {
	case ev.Invoice != nil:
		ids = append(ids, ev.Invoice.ID, ev.Invoice.CustomerID, ev.Invoice.SubscriptionID, ev.Invoice.ChargeID)
	case ev.Charge != nil:
		ids = append(ids, ev.Charge.ID, ev.Charge.CustomerID, ev.Charge.InvoiceID)
	case ev.Subscription != nil:
		ids = append(ids, ev.Subscription.ID, ev.Subscription.CustomerID)
	case ev.Customer != nil:
		ids = append(ids, ev.Customer.ID)
	case ev.PaymentMethod != nil:
		ids = append(ids, ev.PaymentMethod.ID, ev.PaymentMethod.CustomerID)
	case ev.Card != nil:
		ids = append(ids, ev.Card.ID, ev.Card.CustomerID)
	}
	for _, id := range ids {
		if !plainID(id) {
			return fmt.Errorf("%w: body is not a Stripe event: an id or type is not plain printable text", domain.ErrInvalid)
		}
	}
	return nil
}

// plainID accepts printable ASCII without spaces, or nothing (an optional
// id that is absent).
func plainID(s string) bool {
	if len(s) > maxIDLen {
		return false
	}
	for i := range len(s) {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// freeText makes text recoup keeps from an event storable by every
// adapter: a NUL, which PostgreSQL's text cannot hold, becomes U+FFFD, as
// any other unreadable character would.
func freeText(s string) string {
	if strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(s, "\x00", "\uFFFD")
}

// objectKind is the kind of data.object an event type the policy handles
// carries.
func objectKind(eventType string) string {
	switch eventType {
	case domain.EventChargeFailed:
		return "charge"
	case domain.EventCustomerSubscriptionDeleted:
		return "subscription"
	case domain.EventCustomerUpdated:
		return "customer"
	case domain.EventPaymentMethodAttached:
		return "payment_method"
	case domain.EventCustomerSourceExpiring:
		return "card"
	}
	return "invoice"
}

// invoiceFromStripe keeps what the policy and the worker read. Expandable
// fields (customer, subscription, charge) decode from an id or an expanded
// object alike; either way stripe-go fills in the ID.
func invoiceFromStripe(inv *stripego.Invoice) domain.Invoice {
	d := domain.Invoice{
		ID:               inv.ID,
		Status:           string(inv.Status),
		CustomerID:       customerID(inv.Customer),
		CustomerEmail:    freeText(inv.CustomerEmail),
		AmountDue:        inv.AmountDue,
		AmountPaid:       inv.AmountPaid,
		Currency:         freeText(string(inv.Currency)),
		HostedInvoiceURL: freeText(inv.HostedInvoiceURL),
		AttemptCount:     int(inv.AttemptCount),
	}
	if d.CustomerEmail == "" && inv.Customer != nil {
		d.CustomerEmail = freeText(inv.Customer.Email)
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
		ID:          ch.ID,
		CustomerID:  customerID(ch.Customer),
		Amount:      ch.Amount,
		Currency:    freeText(string(ch.Currency)),
		DeclineCode: chargeDeclineCode(ch),
	}
	if ch.Created > 0 {
		d.Created = time.Unix(ch.Created, 0).UTC()
	}
	switch {
	case ch.BillingDetails != nil && ch.BillingDetails.Email != "":
		d.CustomerEmail = freeText(ch.BillingDetails.Email)
	case ch.ReceiptEmail != "":
		d.CustomerEmail = freeText(ch.ReceiptEmail)
	case ch.Customer != nil:
		d.CustomerEmail = freeText(ch.Customer.Email)
	}
	if ch.Invoice != nil {
		d.InvoiceID = ch.Invoice.ID
	}
	return d
}

// chargeDeclineCode is why a charge failed: the issuer's decline code,
// which Stripe gives as the outcome's reason of an issuer decline, else
// its failure code (card_declined, expired_card, …). A code that is not
// plain lowercase (a forgery) is dropped.
func chargeDeclineCode(ch *stripego.Charge) string {
	code := ch.FailureCode
	if o := ch.Outcome; o != nil && o.Type == "issuer_declined" && o.Reason != "" {
		code = o.Reason
	}
	if !domain.ValidDeclineCode(code) {
		return ""
	}
	return code
}

func customerID(c *stripego.Customer) string {
	if c == nil {
		return ""
	}
	return c.ID
}

// hasDefaultPaymentMethod reports whether the customer has a default
// payment method for its invoices: a customer.updated that removed it
// brings no card to retry with.
func hasDefaultPaymentMethod(c *stripego.Customer) bool {
	return c.InvoiceSettings != nil && c.InvoiceSettings.DefaultPaymentMethod != nil && c.InvoiceSettings.DefaultPaymentMethod.ID != ""
}
