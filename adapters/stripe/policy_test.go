package stripe_test

import (
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/stripetest"
)

// TestDefaultPolicyFromStripeEvents runs every row of the default dunning
// policy from realistic event JSON, through the Verifier's decoding, the
// fact the event reports merged into an invoice's record, to the policy's
// decision.
func TestDefaultPolicyFromStripeEvents(t *testing.T) {
	const day = 24 * time.Hour
	const merchant = domain.MerchantID("5f0c6f0e-8a55-4d8b-9a1c-2f4f6d7e8a9b")
	stripeRetries := now.Add(3 * day)
	failed := func(attempt int, next *time.Time) stripetest.Event {
		return stripetest.Event{Type: domain.EventInvoicePaymentFailed, Account: "acct_1", Created: now, Object: stripetest.Invoice{
			ID: "in_1", Customer: "cus_1", CustomerEmail: "jenny@example.com", AmountDue: 2000, Currency: "usd",
			AttemptCount: attempt, NextPaymentAttempt: next, HostedInvoiceURL: "https://invoice.stripe.com/i/in_1", Subscription: "sub_1", Charge: "ch_1", Status: "open",
		}}
	}
	type task struct {
		typ   domain.TaskType
		after time.Duration // run_at - now
	}
	emails := []task{{domain.TypeNotifyPaymentFailed, 0}, {domain.TypeNotifyReminder, 3 * day}, {domain.TypeNotifyReminder, 7 * day}}
	with := func(more ...task) []task { return append(append([]task{}, emails...), more...) }
	retryOrEnd := []domain.TaskType{domain.TypeRetryPayment, domain.TypeEndDunning}
	cancel := func(reason string, types ...domain.TaskType) []domain.CancelSelector {
		return []domain.CancelSelector{{InvoiceID: "in_1", Types: types, Reason: reason}}
	}
	cases := []struct {
		name   string
		ev     stripetest.Event
		action string
		tasks  []task
		cancel []domain.CancelSelector
		fact   domain.FactKind // "": the event reports none
	}{
		{"payment failed, attempt 1, Stripe will not retry", failed(1, nil), domain.ActionScheduled,
			with(task{domain.TypeRetryPayment, 1 * day}), cancel(domain.ReasonSuperseded, domain.TypeEndDunning), domain.FactFailed},
		{"payment failed, attempt 2, Stripe will not retry", failed(2, nil), domain.ActionScheduled,
			with(task{domain.TypeRetryPayment, 3 * day}), cancel(domain.ReasonSuperseded, domain.TypeEndDunning), domain.FactFailed},
		{"payment failed, attempt 3, Stripe will not retry", failed(3, nil), domain.ActionScheduled,
			with(task{domain.TypeRetryPayment, 5 * day}), cancel(domain.ReasonSuperseded, domain.TypeEndDunning), domain.FactFailed},
		{"payment failed, attempt 4, Stripe will not retry", failed(4, nil), domain.ActionScheduled,
			with(task{domain.TypeRetryPayment, 7 * day}), cancel(domain.ReasonSuperseded, domain.TypeEndDunning), domain.FactFailed},
		{"payment failed, attempt 5: no entry left, dunning ends", failed(5, nil), domain.ActionScheduled,
			with(task{domain.TypeEndDunning, 0}), cancel(domain.ReasonNoSchedule, domain.TypeRetryPayment), domain.FactFailed},
		{"payment failed, attempt 8: the budget is spent", failed(8, nil), domain.ActionScheduled,
			with(task{domain.TypeEndDunning, 0}), cancel(domain.ReasonAttemptBudget, domain.TypeRetryPayment), domain.FactFailed},
		{"payment failed, Stripe will retry", failed(1, &stripeRetries), domain.ActionScheduled,
			emails, cancel(domain.ReasonStripeRetrying, retryOrEnd...), domain.FactFailed},
		{"payment failed, attempt 4, Stripe will retry", failed(4, &stripeRetries), domain.ActionScheduled,
			emails, cancel(domain.ReasonStripeRetrying, retryOrEnd...), domain.FactFailed},
		{"payment action required", stripetest.Event{Type: domain.EventInvoicePaymentActionRequired, Account: "acct_1", Object: stripetest.Invoice{
			ID: "in_1", Customer: "cus_1", CustomerEmail: "jenny@example.com", AmountDue: 2000, AttemptCount: 1, HostedInvoiceURL: "https://invoice.stripe.com/i/in_1", Subscription: "sub_1", Charge: "ch_1",
		}}, domain.ActionScheduled, []task{{domain.TypeNotifyActionRequired, 0}}, nil, ""},
		{"charge failed outside an invoice", stripetest.Event{Type: domain.EventChargeFailed, Account: "acct_1", Object: stripetest.Charge{
			ID: "ch_9", Customer: "cus_1", BillingEmail: "jenny@example.com", Amount: 700,
		}}, domain.ActionScheduled, []task{{domain.TypeNotifyChargeFailed, 0}}, nil, ""},
		{"charge failed of an invoice, before its failure is known", stripetest.Event{Type: domain.EventChargeFailed, Account: "acct_1", Object: stripetest.Charge{
			ID: "ch_1", Customer: "cus_1", Invoice: "in_1", Amount: 2000, DeclineCode: "stolen_card",
		}}, domain.ActionNothingToDo, nil, nil, domain.FactDeclined},
		{"subscription deleted", stripetest.Event{Type: domain.EventCustomerSubscriptionDeleted, Account: "acct_1", Object: stripetest.Subscription{ID: "sub_1", Customer: "cus_1"}},
			domain.ActionCancelled, nil, []domain.CancelSelector{{SubscriptionID: "sub_1", Reason: domain.ReasonSubscriptionDeleted}}, ""},
		{"invoice paid", stripetest.Event{Type: domain.EventInvoicePaid, Account: "acct_1", Object: stripetest.Invoice{ID: "in_1", AmountDue: 2000, AmountPaid: 2000, Status: "paid", AttemptCount: 2}},
			domain.ActionCancelled, nil, []domain.CancelSelector{{InvoiceID: "in_1", Reason: domain.ReasonPaid}}, domain.FactPaid},
		{"invoice voided", stripetest.Event{Type: domain.EventInvoiceVoided, Account: "acct_1", Object: stripetest.Invoice{ID: "in_1", AmountDue: 2000, Status: "void"}},
			domain.ActionCancelled, nil, []domain.CancelSelector{{InvoiceID: "in_1", Reason: domain.ReasonVoided}}, domain.FactClosed},
		{"invoice marked uncollectible", stripetest.Event{Type: domain.EventInvoiceMarkedUncollectible, Account: "acct_1", Object: stripetest.Invoice{ID: "in_1", AmountDue: 2000, Status: "uncollectible"}},
			domain.ActionCancelled, nil, []domain.CancelSelector{{InvoiceID: "in_1", Reason: domain.ReasonUncollectible}}, domain.FactClosed},
		{"another invoice event", stripetest.Event{Type: "invoice.finalized", Account: "acct_1", Object: stripetest.Invoice{ID: "in_1"}},
			domain.ActionIgnored, nil, nil, ""},
		{"another type altogether", stripetest.Event{Type: "customer.created", Account: "acct_1", Object: map[string]any{"id": "cus_1", "object": "customer"}},
			domain.ActionIgnored, nil, nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			tc.ev.ID = "evt_row"
			ev := verify(t, tc.ev)
			fact, ok := domain.FactOf(ev, now)
			is.Equal(ok, tc.fact != "") // the fact the event reports
			var rec domain.InvoiceRecord
			if ok {
				is.Equal(fact.Kind, tc.fact)
				is.Equal(fact.InvoiceID, "in_1")
				rec = rec.Apply(fact)
			}
			d, err := domain.Decide(ev, rec, domain.DefaultDunningPolicy(), merchant, now)
			is.NoErr(err) // the decoded event is all the policy needs

			is.Equal(d.Action, tc.action)
			is.Equal(len(d.Schedule), len(tc.tasks)) // the row's tasks
			for i, want := range tc.tasks {
				got := d.Schedule[i]
				is.Equal(got.Type, want.typ)
				is.Equal(got.RunAt.Sub(now), want.after) // due after the row's delay
				is.Equal(got.MerchantID, merchant)
				is.Equal(got.Status, domain.StatusPending)
				is.Equal(got.StripeEventID, "evt_row")
				is.Equal(got.StripeCustomerID, "cus_1")
				is.Equal(got.CustomerEmail, "jenny@example.com") // whom to email
				if inv := ev.Invoice; inv != nil {
					is.Equal(got.StripeInvoiceID, "in_1")
					is.Equal(got.StripeSubscriptionID, "sub_1")
					is.Equal(got.StripeChargeID, "ch_1")
					is.Equal(got.AmountDue, int64(2000))
					is.Equal(got.Currency, "usd")
					is.Equal(got.HostedInvoiceURL, "https://invoice.stripe.com/i/in_1") // the link for the customer
				} else {
					is.Equal(got.StripeChargeID, "ch_9")
					is.Equal(got.AmountDue, int64(700))
					is.Equal(got.DeclineCode, "generic_decline") // the charge's decline
				}
				switch got.Type {
				case domain.TypeNotifyPaymentFailed, domain.TypeNotifyActionRequired:
					is.Equal(got.InvoiceAttempt, ev.Invoice.AttemptCount) // keys "at most one per attempt"
				case domain.TypeRetryPayment, domain.TypeEndDunning:
					is.Equal(got.InvoiceAttempt, rec.Attempts()) // the attempts it follows
				}
			}
			is.Equal(d.Cancel, tc.cancel) // cancels the row's selection
		})
	}
}

// TestChargeDeclineReplans: a charge.failed of an invoice whose failure is
// known tells its decline code, and the plan follows it: a hard decline
// cancels the pending retry and ends dunning at the window's end.
func TestChargeDeclineReplans(t *testing.T) {
	is := is.New(t)
	p := domain.DefaultDunningPolicy()
	ev := verify(t, stripetest.Event{ID: "evt_fail", Type: domain.EventInvoicePaymentFailed, Account: "acct_1", Created: now,
		Object: stripetest.Invoice{ID: "in_1", Customer: "cus_1", AmountDue: 2000, AttemptCount: 1}})
	fact, _ := domain.FactOf(ev, now)
	rec := domain.InvoiceRecord{}.Apply(fact)
	charge := verify(t, stripetest.Event{ID: "evt_charge", Type: domain.EventChargeFailed, Account: "acct_1", Created: now,
		Object: stripetest.Charge{ID: "ch_1", Customer: "cus_1", Invoice: "in_1", Amount: 2000, DeclineCode: "stolen_card", Created: now}})
	is.Equal(charge.Charge.DeclineCode, "stolen_card") // the issuer's reason
	fact, ok := domain.FactOf(charge, now)
	is.True(ok)
	rec = rec.Apply(fact)
	d, err := domain.Decide(charge, rec, p, "m", now)
	is.NoErr(err)
	is.Equal(d.Action, domain.ActionScheduled)
	is.Equal(d.Cancel, []domain.CancelSelector{{InvoiceID: "in_1", Types: []domain.TaskType{domain.TypeRetryPayment}, Reason: domain.ReasonHardDecline}})
	is.Equal(len(d.Schedule), 1)
	is.Equal(d.Schedule[0].Type, domain.TypeEndDunning)     // no retry: dunning ends
	is.Equal(d.Schedule[0].RunAt, now.Add(30*24*time.Hour)) // when the window does
	is.Equal(d.Schedule[0].DeclineCode, "stolen_card")
}

// TestTwoEventIDsOneFailure: Stripe may send one change as two events; both
// decode to the same (invoice, attempt), which is what the storage's "at
// most one" rules key on.
func TestTwoEventIDsOneFailure(t *testing.T) {
	is := is.New(t)
	obj := stripetest.Invoice{ID: "in_1", Customer: "cus_1", AmountDue: 2000, AttemptCount: 2}
	a := verify(t, stripetest.Event{ID: "evt_a", Type: domain.EventInvoicePaymentFailed, Account: "acct_1", Created: now, Object: obj})
	b := verify(t, stripetest.Event{ID: "evt_b", Type: domain.EventInvoicePaymentFailed, Account: "acct_1", Created: now, Object: obj})
	decide := func(ev domain.Event, rec domain.InvoiceRecord) (domain.Decision, domain.InvoiceRecord) {
		fact, _ := domain.FactOf(ev, now)
		rec = rec.Apply(fact)
		d, err := domain.Decide(ev, rec, domain.DefaultDunningPolicy(), "m", now)
		is.NoErr(err)
		return d, rec
	}
	da, rec := decide(a, domain.InvoiceRecord{})
	db, _ := decide(b, rec)
	is.True(a.ID != b.ID) // two events
	is.Equal(len(da.Schedule), len(db.Schedule))
	for i := range da.Schedule {
		is.Equal(da.Schedule[i].Type, db.Schedule[i].Type)
		is.Equal(da.Schedule[i].StripeInvoiceID, db.Schedule[i].StripeInvoiceID) // one invoice
		is.Equal(da.Schedule[i].InvoiceAttempt, db.Schedule[i].InvoiceAttempt)   // one attempt
		is.Equal(da.Schedule[i].RunAt, db.Schedule[i].RunAt)                     // one plan
	}
}
