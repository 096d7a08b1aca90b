package ports

import (
	"context"
	"time"

	"github.com/recoupdev/recoup/domain"
)

// PaymentGateway acts on Stripe for a merchant's connected account.
//
// Every error it returns is a *domain.PaymentError (use errors.As or
// domain.PaymentErrorKindOf): its Kind tells the worker whether to fail the
// task, count an attempt, or back off and retry.
type PaymentGateway interface {
	// Invoice re-reads an invoice on the connected account (status,
	// amounts, email, hosted URL), with the decline code of its latest
	// failed payment when it has one.
	Invoice(ctx context.Context, account, invoiceID string) (domain.Invoice, error)
	// PayInvoice tries to pay the invoice; idempotencyKey makes a repeat
	// of the same attempt a no-op at Stripe. A decline is a PaymentError
	// of kind hard or soft decline, with its code.
	PayInvoice(ctx context.Context, account, invoiceID, idempotencyKey string) error
	// CancelSubscription cancels the subscription at once; idempotencyKey
	// makes a repeat of the same request a no-op at Stripe.
	CancelSubscription(ctx context.Context, account, subscriptionID, idempotencyKey string) error
	// MarkUncollectible marks the invoice uncollectible; idempotencyKey
	// makes a repeat of the same request a no-op at Stripe.
	MarkUncollectible(ctx context.Context, account, invoiceID, idempotencyKey string) error
	// Customer reads a customer of the connected account (its email).
	Customer(ctx context.Context, account, customerID string) (domain.Customer, error)
	// PortalSession creates a Stripe Billing customer portal session for
	// the customer on the connected account and returns its URL; the
	// portal sends the customer back to returnURL (none when empty).
	PortalSession(ctx context.Context, account, customerID, returnURL string) (string, error)
	// Events lists one page of the connected account's events, newest
	// first, as their raw JSON bodies (each decodes as a webhook body
	// does). A rate limit (429) is a transient PaymentError.
	Events(ctx context.Context, account string, q EventQuery) (EventPage, error)
}

// EventQuery selects events to list: those of Types created at Since or
// later, only those Stripe could not deliver when Undelivered, after the
// event StartingAfter (a previous page's last), Limit at most per page.
type EventQuery struct {
	Types         []string
	Since         time.Time
	Undelivered   bool
	StartingAfter string
	Limit         int
}

// EventPage is one page of events: their raw JSON bodies, the last one's
// id (for the next page), and whether more follow.
type EventPage struct {
	Payloads [][]byte
	LastID   string
	HasMore  bool
}
