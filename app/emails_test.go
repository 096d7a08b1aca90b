package app_test

import (
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/app"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/stripetest"
)

// reminderPolicy sends reminders 3 and 7 days after a first failure, and
// plans recoup's retries far enough that they stay out of the way.
func reminderPolicy() domain.DunningPolicy {
	p := domain.DefaultDunningPolicy()
	p.RetryDelaysHours = []int{600, 600}
	p.Emails.ReminderHours = []int{72, 168}
	return p
}

// sentOf returns the emails of the type sent so far.
func (e *engine) sentOf(typ domain.TaskType) []domain.Notification {
	var out []domain.Notification
	for _, n := range e.notifier.all() {
		if n.Type == typ {
			out = append(out, n)
		}
	}
	return out
}

func TestRemindersSentOnceAndCancelledWhenClosed(t *testing.T) {
	cases := []struct {
		name   string
		close  func(e *engine, invoice string) domain.Event
		reason string
	}{
		{"paid", func(e *engine, invoice string) domain.Event { return e.paid(e.merchant, invoice) }, domain.ReasonPaid},
		{"voided", func(e *engine, invoice string) domain.Event {
			return invoiceEvent(domain.EventInvoiceVoided, e.merchant.StripeAccountID, invoice, "sub_"+invoice)
		}, domain.ReasonVoided},
		{"marked uncollectible", func(e *engine, invoice string) domain.Event {
			return invoiceEvent(domain.EventInvoiceMarkedUncollectible, e.merchant.StripeAccountID, invoice, "sub_"+invoice)
		}, domain.ReasonUncollectible},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			e := newEngine(t)
			m := e.merchant
			e.setPolicy(t, m, reminderPolicy())
			t0 := e.clock.Now()
			invoice := nextInvoiceID()

			e.handle(t, e.failure(m, invoice, 1))
			reminders := e.invoiceTasks(t, m.ID, invoice, domain.TypeNotifyReminder)
			is.Equal(len(reminders), 2) // one per reminder_hours entry
			for i, hours := range []int{72, 168} {
				is.True(reminders[i].RunAt.Equal(t0.Add(time.Duration(hours) * time.Hour))) // hours after the first failure
				is.Equal(reminders[i].InvoiceAttempt, i+1)                                  // numbered
			}
			e.runDue(t)
			is.Equal(len(e.sentOf(domain.TypeNotifyPaymentFailed)), 1)
			is.Equal(len(e.sentOf(domain.TypeNotifyReminder)), 0) // none before its time

			e.advance(t, 72*time.Hour)
			sent := e.sentOf(domain.TypeNotifyReminder)
			is.Equal(len(sent), 1) // the first reminder
			is.Equal(sent[0].TaskID, reminders[0].ID)
			is.Equal(sent[0].To, "jenny@example.com")
			is.Equal(e.get(t, reminders[0].ID).Reason, domain.ReasonSent)

			// A later failure of the same invoice: its own email, but the
			// reminders stay counted from the first failure, once each.
			e.clock.Add(24 * time.Hour)
			e.handle(t, e.failure(m, invoice, 2))
			is.Equal(len(e.invoiceTasks(t, m.ID, invoice, domain.TypeNotifyReminder)), 2)
			is.True(e.get(t, reminders[1].ID).RunAt.Equal(t0.Add(168 * time.Hour))) // not moved
			e.runDue(t)
			is.Equal(len(e.sentOf(domain.TypeNotifyPaymentFailed)), 2)
			is.Equal(len(e.sentOf(domain.TypeNotifyReminder)), 1) // the first is not sent again

			e.clock.Add(time.Hour)
			res := e.handle(t, tc.close(e, invoice))
			is.True(contains(res.Tasks, reminders[1].ID)) // the pending reminder is cancelled
			got := e.get(t, reminders[1].ID)
			is.Equal(got.Status, domain.StatusCancelled)
			is.Equal(got.Reason, tc.reason) // saying why
			e.advance(t, 7*day)
			is.Equal(len(e.sentOf(domain.TypeNotifyReminder)), 1) // and never sent
		})
	}
}

func TestEmailSwitches(t *testing.T) {
	nothingMade := func(t *testing.T, e *engine, res app.WebhookResult) {
		is := is.New(t)
		is.Equal(res.Action, domain.ActionNothingToDo) // the event makes no task
		is.Equal(len(e.all(t, e.merchant.ID)), 0)
	}
	cases := []struct {
		name     string
		off      func(p *domain.EmailPolicy)
		silenced domain.TaskType // the email that must not go out
		event    func(t *testing.T, e *engine) domain.Event
		check    func(t *testing.T, e *engine, res app.WebhookResult)
	}{
		{"payment_failed: the email still reads the decline and re-plans, but sends nothing",
			func(p *domain.EmailPolicy) { p.PaymentFailed = false }, domain.TypeNotifyPaymentFailed,
			func(t *testing.T, e *engine) domain.Event {
				e.stripe.declined("in_switch", "stolen_card")
				return e.failure(e.merchant, "in_switch", 1)
			},
			func(t *testing.T, e *engine, _ app.WebhookResult) {
				is := is.New(t)
				notice := e.invoiceTasks(t, e.merchant.ID, "in_switch", domain.TypeNotifyPaymentFailed)
				is.Equal(len(notice), 1)
				is.Equal(notice[0].Status, domain.StatusCancelled)
				is.Equal(notice[0].Reason, domain.ReasonPolicyOff) // says why
				is.Equal(notice[0].DeclineCode, "stolen_card")
				_, retrying := e.pendingOf(t, e.merchant.ID, "in_switch", domain.TypeRetryPayment)
				is.True(!retrying) // the hard decline was read all the same
				e.mustPending(t, e.merchant.ID, "in_switch", domain.TypeEndDunning)
			}},
		{"action_required", func(p *domain.EmailPolicy) { p.ActionRequired = false }, domain.TypeNotifyActionRequired,
			func(t *testing.T, e *engine) domain.Event {
				ev := e.failure(e.merchant, "in_switch", 1)
				ev.Type = domain.EventInvoicePaymentActionRequired
				return ev
			}, nothingMade},
		{"charge_failed", func(p *domain.EmailPolicy) { p.ChargeFailed = false }, domain.TypeNotifyChargeFailed,
			func(t *testing.T, e *engine) domain.Event { return e.chargeFailed(e.merchant, "", "generic_decline") },
			nothingMade},
		{"card_expiring", func(p *domain.EmailPolicy) { p.CardExpiring = false }, domain.TypeNotifyCardExpiring,
			func(t *testing.T, e *engine) domain.Event {
				return e.cardExpiring(t, e.merchant, "cus_jenny", "card_1", 4, 2026)
			}, nothingMade},
		{"no reminder_hours", func(p *domain.EmailPolicy) { p.ReminderHours = nil }, domain.TypeNotifyReminder,
			func(t *testing.T, e *engine) domain.Event { return e.failure(e.merchant, "in_switch", 1) },
			func(t *testing.T, e *engine, _ app.WebhookResult) {
				is := is.New(t)
				is.Equal(len(e.invoiceTasks(t, e.merchant.ID, "in_switch", domain.TypeNotifyReminder)), 0)
				is.Equal(len(e.sentOf(domain.TypeNotifyPaymentFailed)), 1) // the other emails still go
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t)
			p := reminderPolicy()
			tc.off(&p.Emails)
			e.setPolicy(t, e.merchant, p)
			res := e.handle(t, tc.event(t, e))
			e.advance(t, 8*day) // everything due, reminders included
			tc.check(t, e, res)
			if n := len(e.sentOf(tc.silenced)); n != 0 {
				t.Errorf("%d %s emails went out with their switch off", n, tc.silenced)
			}
		})
	}
}

// TestEmailSwitchedOffAfterScheduling: a policy stored after a reminder
// was scheduled decides, when it comes due, whether it is sent; its
// run_at is kept.
func TestEmailSwitchedOffAfterScheduling(t *testing.T) {
	is := is.New(t)
	e := newEngine(t)
	m := e.merchant
	e.setPolicy(t, m, reminderPolicy())
	t0 := e.clock.Now()
	e.handle(t, e.failure(m, "in_1", 1))
	reminders := e.invoiceTasks(t, m.ID, "in_1", domain.TypeNotifyReminder)
	is.Equal(len(reminders), 2)

	p := reminderPolicy()
	p.Emails.ReminderHours = []int{72} // the second reminder is dropped
	e.setPolicy(t, m, p)
	is.True(e.get(t, reminders[1].ID).RunAt.Equal(t0.Add(168 * time.Hour))) // kept as scheduled

	e.advance(t, 8*day)
	is.Equal(e.get(t, reminders[0].ID).Reason, domain.ReasonSent)
	second := e.get(t, reminders[1].ID)
	is.Equal(second.Status, domain.StatusCancelled) // not sent
	is.Equal(second.Reason, domain.ReasonPolicyOff) // because the policy no longer sends it
	is.Equal(len(e.sentOf(domain.TypeNotifyReminder)), 1)
}

func TestEmailCapPerCustomerAndWeek(t *testing.T) {
	is := is.New(t)
	e := newEngine(t)
	m := e.merchant
	other := e.addMerchant(t, "Other Shop", "acct_1Other")
	p := quietPolicy()
	p.MaxEmailsPerCustomerPerWeek = 2
	e.setPolicy(t, m, p)
	e.setPolicy(t, other, p)
	failFor := func(m domain.Merchant, customer string) domain.Event {
		ev := e.failure(m, stripetest.NewID("in_"), 1)
		ev.Invoice.CustomerID = customer
		return ev
	}

	// Three invoices of one customer fail at once.
	for range 3 {
		e.handle(t, failFor(m, "cus_jenny"))
	}
	e.handle(t, failFor(m, "cus_other"))     // another customer of the merchant
	e.handle(t, failFor(other, "cus_jenny")) // the same customer id at another merchant
	e.runDue(t)

	var sent, capped int
	for _, task := range e.all(t, m.ID) {
		if task.Type != domain.TypeNotifyPaymentFailed || task.StripeCustomerID != "cus_jenny" {
			continue
		}
		switch task.Status {
		case domain.StatusSucceeded:
			sent++
		case domain.StatusCancelled:
			capped++
			is.Equal(task.Reason, domain.ReasonEmailCap) // a capped email says why
		}
	}
	is.Equal(sent, 2)                  // the cap
	is.Equal(capped, 1)                // and no more
	is.Equal(len(e.notifier.all()), 4) // two to cus_jenny, one to cus_other, one from the other merchant
	theirs := e.all(t, other.ID)
	for _, task := range theirs {
		if task.Type == domain.TypeNotifyPaymentFailed {
			is.Equal(task.Status, domain.StatusSucceeded) // another merchant's emails do not count
		}
	}

	// Within the week, no more to that customer, whatever the invoice.
	e.clock.Add(6 * day)
	e.handle(t, failFor(m, "cus_jenny"))
	e.runDue(t)
	is.Equal(len(e.notifier.all()), 4) // still capped six days on

	e.clock.Add(day + time.Minute) // the first two are more than 7 days old
	late := failFor(m, "cus_jenny")
	e.handle(t, late)
	e.runDue(t)
	is.Equal(len(e.notifier.all()), 5) // a new week, a new email
	notice := e.invoiceTasks(t, m.ID, late.Invoice.ID, domain.TypeNotifyPaymentFailed)
	is.Equal(notice[0].Reason, domain.ReasonSent)
}
