package domain

import "time"

// RecoverySource says what recovered a failed invoice.
type RecoverySource string

// The sources of a recovery.
const (
	// RecoveredByRecoupRetry: recoup's own payment attempt paid it.
	RecoveredByRecoupRetry RecoverySource = "recoup_retry"
	// RecoveredByStripeRetry: one of Stripe's automatic retries paid it.
	RecoveredByStripeRetry RecoverySource = "stripe_retry"
	// RecoveredByCardUpdate: a payment after the customer changed their
	// payment method paid it.
	RecoveredByCardUpdate RecoverySource = "card_update"
	// RecoveredByCustomer: any other payment (the customer paid the
	// hosted invoice, say).
	RecoveredByCustomer RecoverySource = "customer_paid"
)

// RecoverySources lists every source, in the order figures show them.
var RecoverySources = []RecoverySource{RecoveredByRecoupRetry, RecoveredByStripeRetry, RecoveredByCardUpdate, RecoveredByCustomer}

// The statuses of a closed invoice (Invoice.Status and
// InvoiceRecord.Status); an open one has none in the record.
const (
	InvoicePaid          = "paid"
	InvoiceVoid          = "void"
	InvoiceUncollectible = "uncollectible"
)

// InvoiceRecord is recoup's record of one merchant's invoice whose payment
// failed: the facts the dunning policy plans from (Plan) and the recovery
// figures count. Facts arrive out of order, from Stripe's events and from
// recoup's own calls; Apply merges each so that the order does not matter.
type InvoiceRecord struct {
	MerchantID     MerchantID
	InvoiceID      string
	CustomerID     string
	SubscriptionID string
	Currency       string
	AmountDue      int64 // minor units
	// FirstFailedAt is when its first failed attempt happened; zero while
	// no failure is known (a decline code may arrive before it).
	FirstFailedAt time.Time
	// LastFailedAt is when its latest failed attempt happened.
	LastFailedAt time.Time
	// StripeAttempts is the highest attempt_count Stripe reported.
	StripeAttempts int
	// RecoupAttempts counts recoup's own declined payment attempts, which
	// Stripe's attempt_count leaves out.
	RecoupAttempts int
	// StripeRetryAt is when Stripe retries on its own, as its latest
	// failure said; nil when it will not.
	StripeRetryAt *time.Time
	// DeclineCode is the latest known decline's code, DeclinedAt when that
	// decline happened.
	DeclineCode string
	DeclinedAt  time.Time
	// CardUpdatedAt is when the customer's payment method last changed.
	CardUpdatedAt time.Time
	// RecoupPaid is set when recoup's own payment attempt paid it:
	// recoup_retry, or card_update when the method changed since the last
	// failure.
	RecoupPaid RecoverySource
	// Status is empty while the invoice is open, else paid, void or
	// uncollectible, since ClosedAt.
	Status   string
	ClosedAt time.Time
	// PaidAmount is what the paid invoice was paid, in minor units.
	PaidAmount int64
	// RecoveredBy says what paid it, once a failed invoice is paid.
	RecoveredBy RecoverySource
}

// Failed reports whether a failed attempt is known.
func (r InvoiceRecord) Failed() bool { return !r.FirstFailedAt.IsZero() }

// Recovered reports whether the invoice was paid after a failure.
func (r InvoiceRecord) Recovered() bool { return r.Status == InvoicePaid && r.RecoveredBy != "" }

// Attempts is the invoice's attempts so far, Stripe's and recoup's.
func (r InvoiceRecord) Attempts() int { return r.StripeAttempts + r.RecoupAttempts }

// FactKind says what happened to an invoice.
type FactKind string

// The kinds of facts.
const (
	// FactFailed: Stripe reported a failed attempt (invoice.payment_failed).
	FactFailed FactKind = "failed"
	// FactDeclined: the decline code of a failure became known (a
	// charge.failed event, or a read of the invoice's payment).
	FactDeclined FactKind = "declined"
	// FactRecoupDeclined: recoup's own payment attempt was declined.
	FactRecoupDeclined FactKind = "recoup_declined"
	// FactRecoupPaid: recoup's own payment attempt paid the invoice.
	FactRecoupPaid FactKind = "recoup_paid"
	// FactPaid: Stripe reported the invoice paid (invoice.paid).
	FactPaid FactKind = "paid"
	// FactClosed: the invoice was voided or marked uncollectible.
	FactClosed FactKind = "closed"
	// FactCardUpdated: the customer's default payment method changed.
	FactCardUpdated FactKind = "card_updated"
)

// InvoiceFact is one thing that happened to an invoice, as
// InvoiceRecord.Apply merges it.
type InvoiceFact struct {
	Kind      FactKind
	InvoiceID string
	// What the invoice says of itself; any kind may carry it, and empty
	// fields change nothing.
	CustomerID     string
	SubscriptionID string
	Currency       string
	AmountDue      int64
	// At is when it happened.
	At time.Time
	// AttemptCount is the invoice's attempt_count (FactFailed, FactPaid).
	AttemptCount int
	// StripeRetryAt is next_payment_attempt (FactFailed).
	StripeRetryAt *time.Time
	// DeclineCode is the decline's code (FactDeclined,
	// FactRecoupDeclined).
	DeclineCode string
	// Status is void or uncollectible (FactClosed).
	Status string
	// Amount is the amount paid (FactPaid).
	Amount int64
}

// Apply merges f into the record and returns it. Facts commute where
// their order in the world is known from their times, so that events
// arriving out of order give the record they would have given in order:
// an older failure does not undo what a newer one said, a decline older
// than a card update does not block again, and a payment counts once.
func (r InvoiceRecord) Apply(f InvoiceFact) InvoiceRecord {
	r.InvoiceID = fill(r.InvoiceID, f.InvoiceID)
	r.CustomerID = fill(r.CustomerID, f.CustomerID)
	r.SubscriptionID = fill(r.SubscriptionID, f.SubscriptionID)
	r.Currency = fill(r.Currency, f.Currency)
	if r.AmountDue == 0 {
		r.AmountDue = f.AmountDue
	}
	switch f.Kind {
	case FactFailed:
		r = r.failedAt(f.At)
		// A failure is one attempt at least, whatever a count says.
		if n := max(f.AttemptCount, 1); n >= r.StripeAttempts {
			// The latest attempt says whether Stripe will try again.
			r.StripeAttempts, r.StripeRetryAt = n, f.StripeRetryAt
			if f.AmountDue != 0 {
				r.AmountDue = f.AmountDue
			}
		}
		if r.Status == InvoicePaid && r.RecoveredBy == "" && !f.At.After(r.ClosedAt) {
			// The payment was reported first, but came after this failure.
			r.RecoveredBy = r.source(r.StripeAttempts)
		}
	case FactDeclined:
		r = r.declined(f.DeclineCode, f.At)
	case FactRecoupDeclined:
		r.RecoupAttempts++
		r = r.failedAt(f.At).declined(f.DeclineCode, f.At)
	case FactRecoupPaid:
		if r.RecoupPaid == "" {
			r.RecoupPaid = RecoveredByRecoupRetry
			if r.CardUpdatedAt.After(r.LastFailedAt) {
				r.RecoupPaid = RecoveredByCardUpdate
			}
		}
		if r.RecoveredBy != "" {
			// The payment was reported first (its webhook came before the
			// pay call's answer was recorded): recoup's call made it, as an
			// invoice is paid once.
			r.RecoveredBy = r.RecoupPaid
		}
	case FactPaid:
		if r.Status == "" {
			r.Status, r.ClosedAt, r.PaidAmount = InvoicePaid, f.At, f.Amount
			if r.Failed() && !r.FirstFailedAt.After(f.At) {
				r.RecoveredBy = r.source(f.AttemptCount)
			}
		}
	case FactClosed:
		if r.Status == "" {
			r.Status, r.ClosedAt = f.Status, f.At
		}
	case FactCardUpdated:
		if f.At.After(r.CardUpdatedAt) {
			r.CardUpdatedAt = f.At
		}
	}
	return r
}

func fill(have, given string) string {
	if have == "" {
		return given
	}
	return have
}

func (r InvoiceRecord) failedAt(at time.Time) InvoiceRecord {
	if r.FirstFailedAt.IsZero() || at.Before(r.FirstFailedAt) {
		r.FirstFailedAt = at
	}
	if at.After(r.LastFailedAt) {
		r.LastFailedAt = at
	}
	return r
}

// declined takes a decline code unless a newer one is known.
func (r InvoiceRecord) declined(code string, at time.Time) InvoiceRecord {
	if code != "" && !at.Before(r.DeclinedAt) {
		r.DeclineCode, r.DeclinedAt = code, at
	}
	return r
}

// source says what paid the invoice, the attempt_count at payment being
// paidAttempts: recoup's own call if it paid; else a payment after a card
// update; else one of Stripe's automatic retries if the count grew past
// the failures (a manual payment does not count as an attempt); else the
// customer.
func (r InvoiceRecord) source(paidAttempts int) RecoverySource {
	switch {
	case r.RecoupPaid != "":
		return r.RecoupPaid
	case r.CardUpdatedAt.After(r.LastFailedAt):
		return RecoveredByCardUpdate
	case paidAttempts > r.StripeAttempts:
		return RecoveredByStripeRetry
	}
	return RecoveredByCustomer
}
