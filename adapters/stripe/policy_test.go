package stripe_test

import (
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/stripetest"
)

// TestDefaultPolicyFromStripeEvents runs every row of the default dunning
// policy from realistic event JSON, through the Verifier's decoding, to the
// policy's effects.
func TestDefaultPolicyFromStripeEvents(t *testing.T) {
	const day = 24 * time.Hour
	const merchant = domain.MerchantID("5f0c6f0e-8a55-4d8b-9a1c-2f4f6d7e8a9b")
	stripeRetries := now.Add(3 * day)
	failed := func(attempt int, next *time.Time) stripetest.Event {
		return stripetest.Event{Type: domain.EventInvoicePaymentFailed, Account: "acct_1", Object: stripetest.Invoice{
			ID: "in_1", Customer: "cus_1", CustomerEmail: "jenny@example.com", AmountDue: 2000, Currency: "usd",
			AttemptCount: attempt, NextPaymentAttempt: next, HostedInvoiceURL: "https://invoice.stripe.com/i/in_1", Subscription: "sub_1", Charge: "ch_1", Status: "open",
		}}
	}
	type task struct {
		typ   domain.TaskType
		after time.Duration // run_at - now
	}
	cases := []struct {
		name      string
		ev        stripetest.Event
		action    string
		tasks     []task
		cancel    *domain.CancelSelector
		failed    bool
		recovered bool
	}{
		{"payment failed, attempt 1, Stripe will not retry", failed(1, nil), domain.ActionScheduled,
			[]task{{domain.TypeNotifyPaymentFailed, 0}, {domain.TypeRetryPayment, 1 * day}}, nil, true, false},
		{"payment failed, attempt 2, Stripe will not retry", failed(2, nil), domain.ActionScheduled,
			[]task{{domain.TypeNotifyPaymentFailed, 0}, {domain.TypeRetryPayment, 3 * day}}, nil, true, false},
		{"payment failed, attempt 3, Stripe will not retry", failed(3, nil), domain.ActionScheduled,
			[]task{{domain.TypeNotifyPaymentFailed, 0}, {domain.TypeRetryPayment, 5 * day}}, nil, true, false},
		{"payment failed, attempt 4, Stripe will not retry", failed(4, nil), domain.ActionScheduled,
			[]task{{domain.TypeNotifyPaymentFailed, 0}, {domain.TypeRetryPayment, 7 * day}}, nil, true, false},
		{"payment failed, attempt 5: no more retries", failed(5, nil), domain.ActionScheduled,
			[]task{{domain.TypeNotifyPaymentFailed, 0}}, nil, true, false},
		{"payment failed, Stripe will retry", failed(1, &stripeRetries), domain.ActionScheduled,
			[]task{{domain.TypeNotifyPaymentFailed, 0}}, nil, true, false},
		{"payment failed, attempt 4, Stripe will retry", failed(4, &stripeRetries), domain.ActionScheduled,
			[]task{{domain.TypeNotifyPaymentFailed, 0}}, nil, true, false},
		{"payment action required", stripetest.Event{Type: domain.EventInvoicePaymentActionRequired, Account: "acct_1", Object: stripetest.Invoice{
			ID: "in_1", Customer: "cus_1", CustomerEmail: "jenny@example.com", AmountDue: 2000, AttemptCount: 1, HostedInvoiceURL: "https://invoice.stripe.com/i/in_1", Subscription: "sub_1", Charge: "ch_1",
		}}, domain.ActionScheduled, []task{{domain.TypeNotifyActionRequired, 0}}, nil, false, false},
		{"charge failed outside an invoice", stripetest.Event{Type: domain.EventChargeFailed, Account: "acct_1", Object: stripetest.Charge{
			ID: "ch_9", Customer: "cus_1", BillingEmail: "jenny@example.com", Amount: 700,
		}}, domain.ActionScheduled, []task{{domain.TypeNotifyChargeFailed, 0}}, nil, false, false},
		{"charge failed of an invoice", stripetest.Event{Type: domain.EventChargeFailed, Account: "acct_1", Object: stripetest.Charge{
			ID: "ch_1", Customer: "cus_1", Invoice: "in_1", Amount: 2000,
		}}, domain.ActionNothingToDo, nil, nil, false, false},
		{"subscription deleted", stripetest.Event{Type: domain.EventCustomerSubscriptionDeleted, Account: "acct_1", Object: stripetest.Subscription{ID: "sub_1", Customer: "cus_1"}},
			domain.ActionCancelled, nil, &domain.CancelSelector{SubscriptionID: "sub_1"}, false, false},
		{"invoice paid", stripetest.Event{Type: domain.EventInvoicePaid, Account: "acct_1", Object: stripetest.Invoice{ID: "in_1", AmountDue: 2000, AmountPaid: 2000, Status: "paid", AttemptCount: 2}},
			domain.ActionCancelled, nil, &domain.CancelSelector{InvoiceID: "in_1"}, false, true},
		{"invoice voided", stripetest.Event{Type: domain.EventInvoiceVoided, Account: "acct_1", Object: stripetest.Invoice{ID: "in_1", AmountDue: 2000, Status: "void"}},
			domain.ActionCancelled, nil, &domain.CancelSelector{InvoiceID: "in_1"}, false, false},
		{"invoice marked uncollectible", stripetest.Event{Type: domain.EventInvoiceMarkedUncollectible, Account: "acct_1", Object: stripetest.Invoice{ID: "in_1", AmountDue: 2000, Status: "uncollectible"}},
			domain.ActionCancelled, nil, &domain.CancelSelector{InvoiceID: "in_1"}, false, false},
		{"another invoice event", stripetest.Event{Type: "invoice.finalized", Account: "acct_1", Object: stripetest.Invoice{ID: "in_1"}},
			domain.ActionIgnored, nil, nil, false, false},
		{"another type altogether", stripetest.Event{Type: "customer.created", Account: "acct_1", Object: map[string]any{"id": "cus_1", "object": "customer"}},
			domain.ActionIgnored, nil, nil, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			tc.ev.ID = "evt_row"
			ev := verify(t, tc.ev)
			eff, err := domain.DefaultPolicy().Apply(ev, merchant, now)
			is.NoErr(err) // the decoded event is all the policy needs

			is.Equal(eff.Action, tc.action)
			is.Equal(len(eff.Schedule), len(tc.tasks)) // the row's tasks
			for i, want := range tc.tasks {
				got := eff.Schedule[i]
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
					is.Equal(got.InvoiceAttempt, inv.AttemptCount)                      // keys "at most one per attempt"
				} else {
					is.Equal(got.StripeChargeID, "ch_9")
					is.Equal(got.AmountDue, int64(700))
				}
			}
			if tc.cancel == nil {
				is.True(eff.Cancel == nil) // cancels nothing
			} else {
				is.True(eff.Cancel != nil)
				is.Equal(*eff.Cancel, *tc.cancel) // cancels the row's selection
			}
			is.Equal(eff.Failed != nil, tc.failed) // records a failure
			if tc.failed {
				is.Equal(*eff.Failed, domain.InvoiceAmount{InvoiceID: "in_1", Amount: 2000, Currency: "usd"})
			}
			is.Equal(eff.Recovered != nil, tc.recovered) // records a recovery
			if tc.recovered {
				is.Equal(*eff.Recovered, domain.InvoiceAmount{InvoiceID: "in_1", Amount: 2000, Currency: "usd"})
			}
		})
	}
}

// TestTwoEventIDsOneFailure: Stripe may send one change as two events; both
// decode to the same (invoice, attempt), which is what the storage's "at
// most one" rules key on.
func TestTwoEventIDsOneFailure(t *testing.T) {
	is := is.New(t)
	obj := stripetest.Invoice{ID: "in_1", Customer: "cus_1", AmountDue: 2000, AttemptCount: 2}
	a := verify(t, stripetest.Event{ID: "evt_a", Type: domain.EventInvoicePaymentFailed, Account: "acct_1", Object: obj})
	b := verify(t, stripetest.Event{ID: "evt_b", Type: domain.EventInvoicePaymentFailed, Account: "acct_1", Object: obj})
	ea, err := domain.DefaultPolicy().Apply(a, "m", now)
	is.NoErr(err)
	eb, err := domain.DefaultPolicy().Apply(b, "m", now)
	is.NoErr(err)
	is.True(a.ID != b.ID)         // two events
	is.Equal(len(ea.Schedule), 2) // notify and retry
	for i := range ea.Schedule {
		is.Equal(ea.Schedule[i].Type, eb.Schedule[i].Type)
		is.Equal(ea.Schedule[i].StripeInvoiceID, eb.Schedule[i].StripeInvoiceID) // one invoice
		is.Equal(ea.Schedule[i].InvoiceAttempt, eb.Schedule[i].InvoiceAttempt)   // one attempt
	}
}
