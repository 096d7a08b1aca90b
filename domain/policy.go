package domain

import (
	"fmt"
	"time"
)

// Actions reported for a processed event (the webhook answer's "action").
const (
	ActionIgnored     = "ignored"
	ActionScheduled   = "tasks_scheduled"
	ActionCancelled   = "tasks_cancelled"
	ActionNothingToDo = "no_action"
)

// CancelSelector names pending tasks to cancel: those of one invoice or of
// one subscription (exactly one of the two is set), of the given types
// (all types when empty).
type CancelSelector struct {
	InvoiceID      string
	SubscriptionID string
	Types          []TaskType
	// Reason is recorded on each task cancelled (a Reason… constant).
	Reason string
}

// InvoiceAmount is what the recovery figures record of a failed invoice.
type InvoiceAmount struct {
	InvoiceID string
	Amount    int64
	Currency  string
}

// Effects is what one event does to one merchant's data. The webhook use case
// applies all of it, with the event's idempotency lock, in one transaction.
type Effects struct {
	Action string
	// Schedule lists the tasks to create; their ID, MerchantID and times
	// are set, the storage applies the "at most one" rules.
	Schedule []Task
	// Cancel, when set, names pending tasks that become cancelled.
	Cancel *CancelSelector
	// Failed, when set, records a failed payment on an invoice.
	Failed *InvoiceAmount
	// Recovered, when set, records that an invoice was paid (it counts as
	// recovered only if a failure was recorded for it before).
	Recovered *InvoiceAmount
}

// Policy is the dunning policy: which event makes which tasks.
type Policy struct {
	// RetryDelays[i] is how long after a failed attempt i+1 recoup retries
	// the payment itself, when Stripe will not. Attempts past the list get
	// no retry.
	RetryDelays []time.Duration
}

// DefaultPolicy is recoup's default dunning policy: retries 1, 3, 5 and 7 days after
// failed attempts 1 to 4.
func DefaultPolicy() Policy {
	const day = 24 * time.Hour
	return Policy{RetryDelays: []time.Duration{1 * day, 3 * day, 5 * day, 7 * day}}
}

// Apply returns the effects of ev for merchant at time now. An event of a
// type the policy does not handle has Action ActionIgnored and no effects.
// An event of a handled type without the object it needs is ErrInvalid.
func (p Policy) Apply(ev Event, merchant MerchantID, now time.Time) (Effects, error) {
	newTask := func(typ TaskType, runAt time.Time) Task {
		return Task{
			ID: TaskID(NewID()), MerchantID: merchant, Type: typ, Status: StatusPending,
			StripeEventID: ev.ID, RunAt: runAt, CreatedAt: now, UpdatedAt: now,
		}
	}
	switch ev.Type {
	case EventInvoicePaymentFailed, EventInvoicePaymentActionRequired:
		inv := ev.Invoice
		if inv == nil || inv.ID == "" {
			return Effects{}, fmt.Errorf("%w: %s without an invoice", ErrInvalid, ev.Type)
		}
		fromInvoice := func(typ TaskType, runAt time.Time) Task {
			t := newTask(typ, runAt)
			t.StripeCustomerID, t.CustomerEmail = inv.CustomerID, inv.CustomerEmail
			t.StripeInvoiceID, t.StripeSubscriptionID, t.StripeChargeID = inv.ID, inv.SubscriptionID, inv.ChargeID
			t.AmountDue, t.Currency, t.HostedInvoiceURL = inv.AmountDue, inv.Currency, inv.HostedInvoiceURL
			t.InvoiceAttempt = inv.AttemptCount
			return t
		}
		if ev.Type == EventInvoicePaymentActionRequired {
			return Effects{Action: ActionScheduled, Schedule: []Task{fromInvoice(TypeNotifyActionRequired, now)}}, nil
		}
		eff := Effects{
			Action:   ActionScheduled,
			Schedule: append(make([]Task, 0, 2), fromInvoice(TypeNotifyPaymentFailed, now)),
			Failed:   &InvoiceAmount{InvoiceID: inv.ID, Amount: inv.AmountDue, Currency: inv.Currency},
		}
		if n := inv.AttemptCount; inv.NextPaymentAttempt == nil && n >= 1 && n <= len(p.RetryDelays) {
			eff.Schedule = append(eff.Schedule, fromInvoice(TypeRetryPayment, now.Add(p.RetryDelays[n-1])))
		}
		return eff, nil

	case EventChargeFailed:
		ch := ev.Charge
		if ch == nil || ch.ID == "" {
			return Effects{}, fmt.Errorf("%w: %s without a charge", ErrInvalid, ev.Type)
		}
		if ch.InvoiceID != "" {
			return Effects{Action: ActionNothingToDo}, nil // the invoice's own events cover it
		}
		t := newTask(TypeNotifyChargeFailed, now)
		t.StripeCustomerID, t.CustomerEmail, t.StripeChargeID = ch.CustomerID, ch.CustomerEmail, ch.ID
		t.AmountDue, t.Currency = ch.Amount, ch.Currency
		return Effects{Action: ActionScheduled, Schedule: []Task{t}}, nil

	case EventCustomerSubscriptionDeleted:
		sub := ev.Subscription
		if sub == nil || sub.ID == "" {
			return Effects{}, fmt.Errorf("%w: %s without a subscription", ErrInvalid, ev.Type)
		}
		return Effects{Action: ActionCancelled, Cancel: &CancelSelector{SubscriptionID: sub.ID}}, nil

	case EventInvoicePaid, EventInvoiceVoided, EventInvoiceMarkedUncollectible:
		inv := ev.Invoice
		if inv == nil || inv.ID == "" {
			return Effects{}, fmt.Errorf("%w: %s without an invoice", ErrInvalid, ev.Type)
		}
		eff := Effects{Action: ActionCancelled, Cancel: &CancelSelector{InvoiceID: inv.ID}}
		if ev.Type == EventInvoicePaid {
			eff.Recovered = &InvoiceAmount{InvoiceID: inv.ID, Amount: inv.AmountPaid, Currency: inv.Currency}
		}
		return eff, nil
	}
	return Effects{Action: ActionIgnored}, nil
}

// RecoveryStats are one merchant's recovery figures.
type RecoveryStats struct {
	ByCurrency    map[string]CurrencyRecovery
	TasksByStatus map[TaskStatus]int
}

// CurrencyRecovery sums failed and recovered invoice amounts in one
// currency, in minor units.
type CurrencyRecovery struct {
	FailedAmount    int64
	RecoveredAmount int64
}

// Rate is recovered over failed, 0 when nothing failed.
func (c CurrencyRecovery) Rate() float64 {
	if c.FailedAmount == 0 {
		return 0
	}
	return float64(c.RecoveredAmount) / float64(c.FailedAmount)
}
