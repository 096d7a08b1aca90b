package app_test

import (
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/stripetest"
)

// cardUpdates are the events that tell of a new default payment method.
var cardUpdates = []struct {
	name  string
	event func(e *engine, t *testing.T, m domain.Merchant, customer string) domain.Event
}{
	{"customer.updated with a new default payment method", (*engine).cardUpdated},
	{"payment_method.attached", (*engine).cardAttached},
}

// failFor is an invoice.payment_failed of a fresh invoice of the customer.
func (e *engine) failFor(m domain.Merchant, customer string) domain.Event {
	ev := e.failure(m, stripetest.NewID("in_"), 1)
	ev.Invoice.CustomerID = customer
	return ev
}

func TestCardUpdateRetriesOpenFailedInvoicesNow(t *testing.T) {
	for _, tc := range cardUpdates {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			e := newEngine(t)
			m := e.merchant
			other := e.addMerchant(t, "Other Shop", "acct_1Other")
			e.setPolicy(t, m, quietPolicy())
			t0 := e.clock.Now()

			a, b := e.failFor(m, "cus_jenny"), e.failFor(m, "cus_jenny") // the customer's two failed invoices
			elsewhere := e.failFor(m, "cus_other")                       // another customer's
			settled := e.failFor(m, "cus_jenny")                         // one the customer paid since
			theirs := e.failFor(other, "cus_jenny")                      // the same customer id at another merchant
			for _, ev := range []domain.Event{a, b, elsewhere, settled, theirs} {
				e.handle(t, ev)
			}
			e.handle(t, e.paid(m, settled.Invoice.ID))
			e.runDue(t)
			retryA := e.mustPending(t, m.ID, a.Invoice.ID, domain.TypeRetryPayment)
			retryB := e.mustPending(t, m.ID, b.Invoice.ID, domain.TypeRetryPayment)

			e.clock.Add(2 * time.Hour)
			update := tc.event(e, t, m, "cus_jenny")
			res := e.handle(t, update)
			is.True(res.Processed)
			is.Equal(res.Action, domain.ActionScheduled)
			is.Equal(sorted(res.Tasks), sorted([]domain.TaskID{retryA.ID, retryB.ID})) // the customer's two retries, no other
			now := e.clock.Now()
			for _, want := range []domain.Task{retryA, retryB} {
				got := e.mustPending(t, m.ID, want.StripeInvoiceID, domain.TypeRetryPayment)
				is.Equal(got.ID, want.ID)              // the one pending retry of the invoice
				is.True(got.RunAt.Equal(now))          // now due
				is.Equal(got.StripeEventID, update.ID) // by the card update
			}
			is.True(e.mustPending(t, m.ID, elsewhere.Invoice.ID, domain.TypeRetryPayment).RunAt.Equal(t0.Add(day))) // another customer's waits
			_, ok := e.pendingOf(t, m.ID, settled.Invoice.ID, domain.TypeRetryPayment)
			is.True(!ok)                                                                                             // a paid invoice is not retried
			is.True(e.mustPending(t, other.ID, theirs.Invoice.ID, domain.TypeRetryPayment).RunAt.Equal(t0.Add(day))) // nor another merchant's

			e.handleDuplicate(t, update) // a copy of the event changes nothing
			e.runDue(t)
			var paid []string
			for _, p := range e.gateway.payCalls() {
				paid = append(paid, p.Invoice)
			}
			is.Equal(len(paid), 2) // each invoice paid once
			is.True(contains(paid, a.Invoice.ID) && contains(paid, b.Invoice.ID))
		})
	}
}

// TestCardUpdateDuplicateAfterADecline: the retry a card update made was
// declined since; a copy of the card update must not bring it back.
func TestCardUpdateDuplicateAfterADecline(t *testing.T) {
	for _, tc := range cardUpdates {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			e := newEngine(t)
			m := e.merchant
			e.setPolicy(t, m, quietPolicy())
			failed := e.failFor(m, "cus_jenny")
			invoice := failed.Invoice.ID
			e.handle(t, failed)
			e.runDue(t)

			e.clock.Add(time.Hour)
			update := tc.event(e, t, m, "cus_jenny")
			e.handle(t, update)
			e.stripe.declineNext(invoice, "insufficient_funds")
			is.Equal(e.runDue(t), 1) // the retry, at once
			next := e.mustPending(t, m.ID, invoice, domain.TypeRetryPayment)
			is.True(next.RunAt.Equal(e.clock.Now().Add(168 * time.Hour))) // insufficient_funds' second delay

			e.clock.Add(time.Minute)
			e.handleDuplicate(t, update)
			is.Equal(e.runDue(t), 0)               // nothing due
			is.Equal(len(e.gateway.payCalls()), 1) // one attempt for one card update

			// Another card update, a distinct event, retries again.
			e.clock.Add(time.Minute)
			e.handle(t, tc.event(e, t, m, "cus_jenny"))
			again := e.mustPending(t, m.ID, invoice, domain.TypeRetryPayment)
			is.Equal(again.ID, next.ID)
			is.True(again.RunAt.Equal(e.clock.Now()))
		})
	}
}

func TestCardUpdateLiftsAHardDecline(t *testing.T) {
	for _, tc := range cardUpdates {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			e := newEngine(t)
			m := e.merchant
			e.setPolicy(t, m, quietPolicy())
			t0 := e.clock.Now()
			failed := e.failFor(m, "cus_jenny")
			invoice := failed.Invoice.ID
			e.handle(t, failed)
			e.stripe.declined(invoice, "expired_card")
			e.runDue(t)
			_, retrying := e.pendingOf(t, m.ID, invoice, domain.TypeRetryPayment)
			is.True(!retrying) // blocked by the hard decline
			end := e.mustPending(t, m.ID, invoice, domain.TypeEndDunning)
			is.Equal(e.sentOf(domain.TypeNotifyPaymentFailed)[0].NewCardNeeded, true)

			e.advance(t, 3*day)
			is.Equal(len(e.gateway.payCalls()), 0) // no attempt while blocked
			e.handle(t, tc.event(e, t, m, "cus_jenny"))
			retry := e.mustPending(t, m.ID, invoice, domain.TypeRetryPayment)
			is.True(retry.RunAt.Equal(e.clock.Now())) // the block is lifted: an attempt at once
			ended := e.get(t, end.ID)
			is.Equal(ended.Status, domain.StatusCancelled) // and dunning goes on
			is.Equal(ended.Reason, domain.ReasonSuperseded)

			// The new card is declined too, for good: blocked again until
			// the window ends.
			e.stripe.declineNext(invoice, "stolen_card")
			e.runDue(t)
			got := e.get(t, retry.ID)
			is.Equal(got.Status, domain.StatusFailed)
			is.Equal(got.DeclineCode, "stolen_card")
			_, retrying = e.pendingOf(t, m.ID, invoice, domain.TypeRetryPayment)
			is.True(!retrying)
			again := e.mustPending(t, m.ID, invoice, domain.TypeEndDunning)
			is.True(again.RunAt.Equal(t0.Add(30 * day)))
			is.Equal(len(e.gateway.payCalls()), 1)
		})
	}
}

func TestCardUpdateKeepsTheAttemptBudgetAndWindow(t *testing.T) {
	cases := []struct {
		name   string
		policy func(p *domain.DunningPolicy)
		after  time.Duration // from the failure to the card update
	}{
		{"attempts used up", func(p *domain.DunningPolicy) { p.MaxAttempts = 2 }, time.Hour},
		{"past the retry window", func(p *domain.DunningPolicy) { p.RetryWindowDays = 2 }, 3 * day}, // the hard decline's end not run yet
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			e := newEngine(t)
			m := e.merchant
			p := quietPolicy()
			p.RetryDelaysHours = []int{24, 24}
			tc.policy(&p)
			e.setPolicy(t, m, p)
			failed := e.failure(m, nextInvoiceID(), 2)
			invoice := failed.Invoice.ID
			e.handle(t, failed)
			e.stripe.declined(invoice, "stolen_card")
			e.runDue(t)

			e.clock.Add(tc.after)
			e.handle(t, e.cardUpdated(t, m, "cus_jenny"))
			_, retrying := e.pendingOf(t, m.ID, invoice, domain.TypeRetryPayment)
			is.True(!retrying) // no attempt beyond the budget or the window
			e.runDue(t)
			is.Equal(len(e.gateway.payCalls()), 0)
			ends := e.invoiceTasks(t, m.ID, invoice, domain.TypeEndDunning)
			is.True(len(ends) > 0)
			is.Equal(ends[len(ends)-1].Status, domain.StatusSucceeded) // dunning ended instead
		})
	}
}

// TestCardUpdateWhileStripeRetries: recoup never retries while Stripe
// will, not even after a card update.
func TestCardUpdateWhileStripeRetries(t *testing.T) {
	is := is.New(t)
	e := newEngine(t)
	m := e.merchant
	e.setPolicy(t, m, quietPolicy())
	invoice := nextInvoiceID()
	failed := e.failure(m, invoice, 1)
	next := e.clock.Now().Add(3 * day)
	failed.Invoice.NextPaymentAttempt = &next
	e.handle(t, failed)

	e.clock.Add(time.Hour)
	e.handle(t, e.cardUpdated(t, m, "cus_jenny"))
	_, retrying := e.pendingOf(t, m.ID, invoice, domain.TypeRetryPayment)
	is.True(!retrying) // Stripe's own retry is left to do it
	e.runDue(t)
	is.Equal(len(e.gateway.payCalls()), 0)
}

func TestCustomerUpdatedWithoutACardChange(t *testing.T) {
	cases := []struct {
		name  string
		event func(t *testing.T, e *engine) domain.Event
	}{
		{"customer.updated changing the email", func(t *testing.T, e *engine) domain.Event {
			return e.decoded(t, stripetest.Event{Type: domain.EventCustomerUpdated, Account: e.merchant.StripeAccountID,
				Object:             map[string]any{"id": "cus_jenny", "object": "customer", "email": "jenny@new.example.com"},
				PreviousAttributes: map[string]any{"email": "jenny@example.com"}})
		}},
		{"payment_method.attached to no customer", func(t *testing.T, e *engine) domain.Event {
			return e.decoded(t, stripetest.Event{Type: domain.EventPaymentMethodAttached, Account: e.merchant.StripeAccountID,
				Object: map[string]any{"id": "pm_lone", "object": "payment_method", "type": "card", "customer": nil}})
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			e := newEngine(t)
			m := e.merchant
			e.setPolicy(t, m, quietPolicy())
			failed := e.failFor(m, "cus_jenny")
			e.handle(t, failed)
			before := e.all(t, m.ID)

			e.clock.Add(time.Hour)
			res := e.handle(t, tc.event(t, e))
			is.True(res.Processed)
			is.Equal(res.Action, domain.ActionNothingToDo) // acknowledged, nothing to do
			is.Equal(len(res.Tasks), 0)
			after := e.all(t, m.ID)
			is.Equal(len(after), len(before))
			for i := range before {
				is.True(sameTask(before[i], after[i])) // no task changed
			}
		})
	}
}

func TestCardExpiringEmail(t *testing.T) {
	is := is.New(t)
	e := newEngine(t)
	m := e.merchant
	expiring := e.cardExpiring(t, m, "cus_jenny", "card_1Visa", 4, 2026)

	res := e.handle(t, expiring)
	is.Equal(res.Action, domain.ActionScheduled)
	is.Equal(len(res.Tasks), 1)
	task := e.get(t, res.Tasks[0])
	is.Equal(task.Type, domain.TypeNotifyCardExpiring)
	is.Equal(task.StripeCustomerID, "cus_jenny")
	is.Equal(task.StripePaymentMethodID, "card_1Visa")
	is.True(task.RunAt.Equal(e.clock.Now())) // due now

	e.runDue(t)
	is.Equal(e.get(t, task.ID).Reason, domain.ReasonSent)
	sent := e.sentOf(domain.TypeNotifyCardExpiring)
	is.Equal(len(sent), 1)
	is.Equal(sent[0].To, "customer-of-record@example.com") // the customer's address, read from Stripe
	is.Equal(sent[0].CardExpMonth, 4)                      // naming the expiry
	is.Equal(sent[0].CardExpYear, 2026)
	is.True(strings.HasPrefix(sent[0].UpdateURL, engineLinkBase+"/update/")) // with a link to update the card

	e.handleDuplicate(t, expiring) // a copy changes nothing
	e.clock.Add(day)
	again := e.handle(t, e.cardExpiring(t, m, "cus_jenny", "card_1Visa", 4, 2026))
	is.Equal(len(again.Tasks), 0) // at most one email per card and expiry month
	e.handle(t, e.cardExpiring(t, m, "cus_jenny", "card_2Amex", 4, 2026))
	e.handle(t, e.cardExpiring(t, m, "cus_jenny", "card_1Visa", 5, 2026))
	e.runDue(t)
	is.Equal(len(e.sentOf(domain.TypeNotifyCardExpiring)), 3) // another card, or another month, is another email
}
