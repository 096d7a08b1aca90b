package domain

import "time"

// Event is a Stripe event in the terms the dunning policy needs. The Stripe
// adapter decodes the raw webhook into it; nothing here knows Stripe's JSON.
type Event struct {
	ID         string // evt_…
	Type       string // invoice.payment_failed, …
	Account    string // the connected account (acct_…) the event is about
	Livemode   bool
	APIVersion string
	Created    time.Time

	// The event's data object, decoded by type; at most one is set.
	Invoice       *Invoice
	Charge        *Charge
	Subscription  *Subscription
	Customer      *Customer
	PaymentMethod *PaymentMethod
	Card          *Card
}

// Invoice is the part of a Stripe invoice the policy reads.
type Invoice struct {
	ID                 string
	Status             string // draft, open, paid, uncollectible, void
	CustomerID         string
	CustomerEmail      string
	SubscriptionID     string
	ChargeID           string
	AmountDue          int64
	AmountPaid         int64
	Currency           string
	HostedInvoiceURL   string
	AttemptCount       int
	NextPaymentAttempt *time.Time // nil: Stripe will not retry on its own
	// DeclineCode is the decline code of its latest failed payment, when
	// a read of the invoice told it (events do not), DeclinedAt when that
	// payment failed.
	DeclineCode string
	DeclinedAt  time.Time
}

// Settled reports whether the invoice needs nothing more: paid, void, or
// marked uncollectible. A task about a settled invoice is cancelled rather
// than run, since Stripe's events arrive out of order.
func (inv Invoice) Settled() bool {
	switch inv.Status {
	case "paid", "void", "uncollectible":
		return true
	}
	return false
}

// Charge is the part of a Stripe charge the policy reads.
type Charge struct {
	ID            string
	CustomerID    string
	CustomerEmail string
	InvoiceID     string // empty: a charge outside any invoice
	Amount        int64
	Currency      string
	// DeclineCode is why the charge failed: the issuer's decline code
	// when there is one, else Stripe's failure code.
	DeclineCode string
	Created     time.Time
}

// Subscription is the part of a Stripe subscription the policy reads.
type Subscription struct {
	ID         string
	CustomerID string
}

// Customer is the part of a Stripe customer the policy reads.
type Customer struct {
	ID    string
	Email string
	// DefaultPaymentMethodChanged: a customer.updated event says its
	// default payment method changed to a new one (its previous_attributes
	// name invoice_settings.default_payment_method, and the customer has
	// one now: a removal is no card update).
	DefaultPaymentMethodChanged bool
}

// PaymentMethod is the part of a Stripe payment method the policy reads.
type PaymentMethod struct {
	ID         string
	CustomerID string // empty: attached to no customer
}

// Card is a customer's card, as customer.source.expiring tells of it.
type Card struct {
	ID         string
	CustomerID string
	ExpMonth   int
	ExpYear    int
}

// The event types the policy acts on.
const (
	EventInvoicePaymentFailed         = "invoice.payment_failed"
	EventInvoicePaymentActionRequired = "invoice.payment_action_required"
	EventCustomerSubscriptionDeleted  = "customer.subscription.deleted"
	EventChargeFailed                 = "charge.failed"
	EventInvoicePaid                  = "invoice.paid"
	EventInvoiceVoided                = "invoice.voided"
	EventInvoiceMarkedUncollectible   = "invoice.marked_uncollectible"
	EventCustomerUpdated              = "customer.updated"
	EventPaymentMethodAttached        = "payment_method.attached"
	EventCustomerSourceExpiring       = "customer.source.expiring"
)

// Handles reports whether the policy acts on events of this type.
func Handles(eventType string) bool {
	switch eventType {
	case EventInvoicePaymentFailed, EventInvoicePaymentActionRequired, EventCustomerSubscriptionDeleted,
		EventChargeFailed, EventInvoicePaid, EventInvoiceVoided, EventInvoiceMarkedUncollectible,
		EventCustomerUpdated, EventPaymentMethodAttached, EventCustomerSourceExpiring:
		return true
	}
	return false
}

// CardUpdate returns the customer whose default payment method an event
// says changed (customer.updated with the change, or payment_method.attached
// to a customer), and false for any other event.
func CardUpdate(ev Event) (customerID string, ok bool) {
	switch {
	case ev.Type == EventCustomerUpdated && ev.Customer != nil && ev.Customer.DefaultPaymentMethodChanged:
		return ev.Customer.ID, ev.Customer.ID != ""
	case ev.Type == EventPaymentMethodAttached && ev.PaymentMethod != nil:
		return ev.PaymentMethod.CustomerID, ev.PaymentMethod.CustomerID != ""
	}
	return "", false
}
