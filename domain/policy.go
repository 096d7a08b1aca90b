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

// Decision is what one event, or a fact a task run learned, does to one
// merchant's tasks. The caller applies all of it in the unit of work that
// recorded the fact (and, for an event, took its lock).
type Decision struct {
	Action string
	// Cancel names pending tasks that become cancelled; it is applied
	// before Schedule.
	Cancel []CancelSelector
	// Schedule lists tasks to store; the storage applies the "at most
	// one" rules (a retry_payment or end_dunning replaces the invoice's
	// pending one).
	Schedule []Task
}

// FactOf returns the invoice fact an event reports, and false for an
// event that reports none. An event without a time is dated now.
func FactOf(ev Event, now time.Time) (InvoiceFact, bool) {
	at := ev.Created
	if at.IsZero() {
		at = now
	}
	switch ev.Type {
	case EventInvoicePaymentFailed:
		if inv := ev.Invoice; inv != nil {
			return InvoiceFact{Kind: FactFailed, InvoiceID: inv.ID, CustomerID: inv.CustomerID, SubscriptionID: inv.SubscriptionID,
				Currency: inv.Currency, AmountDue: inv.AmountDue, At: at, AttemptCount: inv.AttemptCount, StripeRetryAt: inv.NextPaymentAttempt}, true
		}
	case EventChargeFailed:
		if ch := ev.Charge; ch != nil && ch.InvoiceID != "" {
			if !ch.Created.IsZero() {
				at = ch.Created
			}
			return InvoiceFact{Kind: FactDeclined, InvoiceID: ch.InvoiceID, CustomerID: ch.CustomerID, Currency: ch.Currency,
				DeclineCode: ch.DeclineCode, At: at}, true
		}
	case EventInvoicePaid, EventInvoiceVoided, EventInvoiceMarkedUncollectible:
		if inv := ev.Invoice; inv != nil {
			f := InvoiceFact{InvoiceID: inv.ID, CustomerID: inv.CustomerID, SubscriptionID: inv.SubscriptionID, Currency: inv.Currency, At: at}
			switch ev.Type {
			case EventInvoicePaid:
				f.Kind, f.Amount, f.AttemptCount = FactPaid, inv.AmountPaid, inv.AttemptCount
			case EventInvoiceVoided:
				f.Kind, f.Status = FactClosed, InvoiceVoid
			default:
				f.Kind, f.Status = FactClosed, InvoiceUncollectible
			}
			return f, true
		}
	}
	return InvoiceFact{}, false
}

// Decide returns what ev does for merchant at now, by the merchant's
// policy p. For an event that reports an invoice fact (FactOf), rec is the
// invoice's record with that fact merged; for any other it is ignored. An
// event of a handled type without the object it needs is ErrInvalid; an
// event of a type the policy does not handle has Action ActionIgnored and
// does nothing.
func Decide(ev Event, rec InvoiceRecord, p DunningPolicy, merchant MerchantID, now time.Time) (Decision, error) {
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
			return Decision{}, fmt.Errorf("%w: %s without an invoice", ErrInvalid, ev.Type)
		}
		fromInvoice := func(typ TaskType, runAt time.Time, attempt int) Task {
			t := newTask(typ, runAt)
			t.StripeCustomerID, t.CustomerEmail = inv.CustomerID, inv.CustomerEmail
			t.StripeInvoiceID, t.StripeSubscriptionID, t.StripeChargeID = inv.ID, inv.SubscriptionID, inv.ChargeID
			t.AmountDue, t.Currency, t.HostedInvoiceURL = inv.AmountDue, inv.Currency, inv.HostedInvoiceURL
			t.InvoiceAttempt = attempt
			return t
		}
		if ev.Type == EventInvoicePaymentActionRequired {
			if !p.Emails.ActionRequired {
				return Decision{Action: ActionNothingToDo}, nil
			}
			return Decision{Action: ActionScheduled, Schedule: []Task{fromInvoice(TypeNotifyActionRequired, now, inv.AttemptCount)}}, nil
		}
		// The email of each failed attempt always runs: it reads the
		// failure's decline code from Stripe and re-plans, and sends only
		// if the policy's switch is on when it runs.
		d := Decision{Action: ActionScheduled, Schedule: []Task{fromInvoice(TypeNotifyPaymentFailed, now, inv.AttemptCount)}}
		for i, h := range p.Emails.ReminderHours {
			if at := rec.FirstFailedAt.Add(time.Duration(h) * time.Hour); at.After(now) {
				d.Schedule = append(d.Schedule, fromInvoice(TypeNotifyReminder, at, i+1))
			}
		}
		plan := Replan(rec, p, fromInvoice(TypeRetryPayment, now, 0), now)
		d.Cancel, d.Schedule = plan.Cancel, append(d.Schedule, plan.Schedule...)
		return d, nil

	case EventChargeFailed:
		ch := ev.Charge
		if ch == nil || ch.ID == "" {
			return Decision{}, fmt.Errorf("%w: %s without a charge", ErrInvalid, ev.Type)
		}
		if ch.InvoiceID != "" {
			// The invoice's own events make its tasks; its charge tells
			// the decline code, which may change the plan.
			t := newTask(TypeRetryPayment, now)
			t.StripeCustomerID, t.CustomerEmail, t.StripeInvoiceID, t.StripeChargeID = ch.CustomerID, ch.CustomerEmail, ch.InvoiceID, ch.ID
			t.AmountDue, t.Currency, t.StripeSubscriptionID = rec.AmountDue, rec.Currency, rec.SubscriptionID
			d := Replan(rec, p, t, now)
			d.Action = ActionNothingToDo
			if len(d.Schedule) > 0 || len(d.Cancel) > 0 {
				d.Action = ActionScheduled
			}
			return d, nil
		}
		if !p.Emails.ChargeFailed {
			return Decision{Action: ActionNothingToDo}, nil
		}
		t := newTask(TypeNotifyChargeFailed, now)
		t.StripeCustomerID, t.CustomerEmail, t.StripeChargeID = ch.CustomerID, ch.CustomerEmail, ch.ID
		t.AmountDue, t.Currency, t.DeclineCode = ch.Amount, ch.Currency, ch.DeclineCode
		return Decision{Action: ActionScheduled, Schedule: []Task{t}}, nil

	case EventCustomerSubscriptionDeleted:
		sub := ev.Subscription
		if sub == nil || sub.ID == "" {
			return Decision{}, fmt.Errorf("%w: %s without a subscription", ErrInvalid, ev.Type)
		}
		return Decision{Action: ActionCancelled, Cancel: []CancelSelector{{SubscriptionID: sub.ID, Reason: ReasonSubscriptionDeleted}}}, nil

	case EventCustomerSourceExpiring:
		card := ev.Card
		if card == nil || card.ID == "" {
			return Decision{}, fmt.Errorf("%w: %s without a card", ErrInvalid, ev.Type)
		}
		if !p.Emails.CardExpiring || card.CustomerID == "" || card.ExpMonth < 1 || card.ExpMonth > 12 {
			return Decision{Action: ActionNothingToDo}, nil
		}
		t := newTask(TypeNotifyCardExpiring, now)
		t.StripeCustomerID, t.StripePaymentMethodID = card.CustomerID, card.ID
		t.InvoiceAttempt = card.ExpYear*100 + card.ExpMonth // once per card and month
		return Decision{Action: ActionScheduled, Schedule: []Task{t}}, nil

	case EventCustomerUpdated, EventPaymentMethodAttached:
		// A card update acts on every open failed invoice of the customer:
		// see DecideCardUpdate. Other changes of a customer do nothing.
		if ev.Customer == nil && ev.PaymentMethod == nil {
			return Decision{}, fmt.Errorf("%w: %s without its object", ErrInvalid, ev.Type)
		}
		return Decision{Action: ActionNothingToDo}, nil

	case EventInvoicePaid, EventInvoiceVoided, EventInvoiceMarkedUncollectible:
		inv := ev.Invoice
		if inv == nil || inv.ID == "" {
			return Decision{}, fmt.Errorf("%w: %s without an invoice", ErrInvalid, ev.Type)
		}
		reason := map[string]string{EventInvoicePaid: ReasonPaid, EventInvoiceVoided: ReasonVoided,
			EventInvoiceMarkedUncollectible: ReasonUncollectible}[ev.Type]
		return Decision{Action: ActionCancelled, Cancel: []CancelSelector{{InvoiceID: inv.ID, Reason: reason}}}, nil
	}
	return Decision{Action: ActionIgnored}, nil
}

// DecideCardUpdate returns what a change of the customer's payment method
// (CardUpdate) does: for each of the customer's open failed invoices,
// whose records are given with the card update merged, the plan made
// again, which retries it at once within the attempt budget and the
// window, a hard decline's block lifted.
func DecideCardUpdate(ev Event, recs []InvoiceRecord, p DunningPolicy, merchant MerchantID, now time.Time) Decision {
	d := Decision{Action: ActionNothingToDo}
	email := ""
	if ev.Customer != nil {
		email = ev.Customer.Email
	}
	for _, rec := range recs {
		like := Task{MerchantID: merchant, StripeEventID: ev.ID, CustomerEmail: email,
			AmountDue: rec.AmountDue, Currency: rec.Currency}
		plan := Replan(rec, p, like, now)
		d.Cancel, d.Schedule = append(d.Cancel, plan.Cancel...), append(d.Schedule, plan.Schedule...)
	}
	if len(d.Schedule) > 0 {
		d.Action = ActionScheduled
	}
	return d
}

// Replan returns the tasks that carry out p.Plan(rec) for the invoice: its
// pending retry_payment and end_dunning scheduled, moved or cancelled, so
// that the merchant's task list always shows what recoup will do next.
// like is a task about the invoice whose descriptive fields (customer,
// email, amount, event…) the new tasks copy; its id and type are not
// used.
func Replan(rec InvoiceRecord, p DunningPolicy, like Task, now time.Time) Decision {
	step := p.Plan(rec)
	if !rec.Failed() {
		return Decision{}
	}
	task := func(typ TaskType, runAt time.Time) Task {
		t := like
		t.ID, t.Type, t.Status, t.RunAt = TaskID(NewID()), typ, StatusPending, runAt
		t.InvoiceAttempt, t.DeclineCode, t.Attempts, t.LastError, t.Reason = rec.Attempts(), rec.DeclineCode, 0, "", ""
		t.StripeInvoiceID = rec.InvoiceID
		t.StripeSubscriptionID = fill(rec.SubscriptionID, t.StripeSubscriptionID)
		t.StripeCustomerID = fill(rec.CustomerID, t.StripeCustomerID)
		t.CreatedAt, t.UpdatedAt = now, now
		return t
	}
	cancel := func(reason string, types ...TaskType) CancelSelector {
		return CancelSelector{InvoiceID: rec.InvoiceID, Types: types, Reason: reason}
	}
	switch {
	case !step.RetryAt.IsZero():
		return Decision{
			Cancel:   []CancelSelector{cancel(ReasonSuperseded, TypeEndDunning)},
			Schedule: []Task{task(TypeRetryPayment, step.RetryAt)},
		}
	case !step.EndAt.IsZero():
		return Decision{
			Cancel:   []CancelSelector{cancel(step.Reason, TypeRetryPayment)},
			Schedule: []Task{task(TypeEndDunning, step.EndAt)},
		}
	}
	return Decision{Cancel: []CancelSelector{cancel(step.Reason, TypeRetryPayment, TypeEndDunning)}}
}

// RecoveryStats are one merchant's recovery figures: all-time sums by
// currency and task counts, and the figures of the days of Range.
type RecoveryStats struct {
	ByCurrency    map[string]CurrencyRecovery // all time
	TasksByStatus map[TaskStatus]int          // all time
	Range         DayRange
	Figures       RecoveryFigures // of the days of Range
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
