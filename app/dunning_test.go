package app_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/domain"
)

const day = 24 * time.Hour

// TestDunningDeclineCodePlansTheRetry: the decline code of a failure,
// whichever way recoup learns it, sets the invoice's retry: a code with
// its own delays uses them, another code the general schedule, and a
// hard decline leaves no retry and ends dunning when the window does.
func TestDunningDeclineCodePlansTheRetry(t *testing.T) {
	sources := []struct {
		name string
		// learn delivers what tells recoup the failure and its code; it
		// reports whether the plan is made before the worker runs.
		learn func(t *testing.T, e *engine, invoice, code string) (planned bool)
	}{
		{"charge.failed after invoice.payment_failed", func(t *testing.T, e *engine, invoice, code string) bool {
			e.handle(t, e.failure(e.merchant, invoice, 1))
			res := e.handle(t, e.chargeFailed(e.merchant, invoice, code))
			if res.Action != domain.ActionScheduled {
				t.Errorf("charge.failed with %s: action %s, want it to re-plan", code, res.Action)
			}
			return true
		}},
		{"charge.failed before invoice.payment_failed", func(t *testing.T, e *engine, invoice, code string) bool {
			res := e.handle(t, e.chargeFailed(e.merchant, invoice, code))
			if res.Action != domain.ActionNothingToDo || len(res.Tasks) != 0 {
				t.Errorf("charge.failed before its invoice's failure: %+v, want no task", res)
			}
			e.handle(t, e.failure(e.merchant, invoice, 1))
			return true
		}},
		{"read from Stripe by the payment-failed email", func(t *testing.T, e *engine, invoice, code string) bool {
			e.handle(t, e.failure(e.merchant, invoice, 1))
			return false
		}},
	}
	codes := []struct {
		code       string
		retryAfter time.Duration // 0: a hard decline, no retry
	}{
		{"insufficient_funds", 72 * time.Hour}, // delays_by_decline_code
		{"generic_decline", 24 * time.Hour},    // retry_delays_hours
		{"stolen_card", 0},                     // hard_decline_codes
		{"expired_card", 0},
	}
	for _, src := range sources {
		for _, c := range codes {
			t.Run(src.name+"/"+c.code, func(t *testing.T) {
				is := is.New(t)
				e := newEngine(t)
				m := e.merchant
				e.setPolicy(t, m, quietPolicy())
				t0 := e.clock.Now()
				invoice := nextInvoiceID()

				check := func() {
					t.Helper()
					retry, pending := e.pendingOf(t, m.ID, invoice, domain.TypeRetryPayment)
					end, ending := e.pendingOf(t, m.ID, invoice, domain.TypeEndDunning)
					if c.retryAfter > 0 {
						is.True(pending)                                 // a retry is planned
						is.True(retry.RunAt.Equal(t0.Add(c.retryAfter))) // when the code's schedule says
						is.Equal(retry.DeclineCode, c.code)              // and says why
						is.True(!ending)                                 // dunning goes on
						return
					}
					is.True(!pending)                          // a hard decline leaves no retry
					is.True(ending)                            // dunning ends
					is.True(end.RunAt.Equal(t0.Add(30 * day))) // when the retry window does
					for _, r := range e.invoiceTasks(t, m.ID, invoice, domain.TypeRetryPayment) {
						is.Equal(r.Status, domain.StatusCancelled)   // the planned retry was withdrawn
						is.Equal(r.Reason, domain.ReasonHardDecline) // because of the decline
					}
				}
				if src.learn(t, e, invoice, c.code) {
					check()
				}
				e.stripe.declined(invoice, c.code) // what Stripe says of the payment
				e.runDue(t)
				check()

				sent := e.notifier.all()
				is.Equal(len(sent), 1) // the payment-failed email
				is.Equal(sent[0].Type, domain.TypeNotifyPaymentFailed)
				is.Equal(sent[0].NewCardNeeded, c.retryAfter == 0) // asks for a new card after a hard decline only
				notice := e.invoiceTasks(t, m.ID, invoice, domain.TypeNotifyPaymentFailed)[0]
				is.Equal(notice.DeclineCode, c.code) // the email's task shows the code it read
				is.Equal(len(e.gateway.payCalls()), 0)
			})
		}
	}
}

// TestDunningRecoupDeclines: recoup's own declined attempt counts, and its
// decline code picks the next delay: the code's list while it reaches,
// else the general schedule; a hard decline stops retrying.
func TestDunningRecoupDeclines(t *testing.T) {
	cases := []struct {
		name      string
		policy    func(p *domain.DunningPolicy)
		code      string
		nextAfter time.Duration // after the declined attempt; 0: none
	}{
		{"insufficient funds: its second delay", nil, "insufficient_funds", 168 * time.Hour},
		{"a code without a list: the general second delay", nil, "do_not_honor", 72 * time.Hour},
		{"a code whose list is too short: the general second delay", func(p *domain.DunningPolicy) {
			p.RetryDelaysHours = []int{24, 48}
			p.DelaysByDeclineCode = map[string][]int{"insufficient_funds": {96}}
		}, "insufficient_funds", 48 * time.Hour},
		{"a merchant's own code list", func(p *domain.DunningPolicy) {
			p.DelaysByDeclineCode = map[string][]int{"do_not_honor": {6, 12}}
		}, "do_not_honor", 12 * time.Hour},
		{"a hard decline: no further attempt", nil, "lost_card", 0},
		{"a code the merchant made hard", func(p *domain.DunningPolicy) {
			p.HardDeclineCodes = []string{"do_not_honor"}
		}, "do_not_honor", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			e := newEngine(t)
			m := e.merchant
			p := quietPolicy()
			if tc.policy != nil {
				tc.policy(&p)
			}
			e.setPolicy(t, m, p)
			t0 := e.clock.Now()
			invoice := nextInvoiceID()
			e.handle(t, e.failure(m, invoice, 1))
			e.runDue(t)
			first := e.mustPending(t, m.ID, invoice, domain.TypeRetryPayment)
			is.True(first.RunAt.Equal(t0.Add(time.Duration(p.RetryDelaysHours[0]) * time.Hour))) // the first delay
			is.Equal(first.InvoiceAttempt, 1)                                                    // after Stripe's one attempt

			e.stripe.declineNext(invoice, tc.code)
			e.clock.Add(first.RunAt.Sub(t0))
			is.Equal(runOnceOK(t, e.worker), 1) // the retry, alone

			ran := e.get(t, first.ID)
			is.Equal(ran.Status, domain.StatusFailed)                               // the attempt failed
			is.Equal(ran.Reason, domain.ReasonDeclined)                             // declined
			is.Equal(ran.DeclineCode, tc.code)                                      // with its code
			is.True(strings.Contains(ran.LastError, "card declined ("+tc.code+")")) // which the merchant reads
			pays := e.gateway.payCalls()
			is.Equal(len(pays), 1)
			is.Equal(pays[0].Key, domain.RunKey(first)) // keyed by the run

			next, ok := e.pendingOf(t, m.ID, invoice, domain.TypeRetryPayment)
			if tc.nextAfter == 0 {
				is.True(!ok) // no further attempt after a hard decline
				end := e.mustPending(t, m.ID, invoice, domain.TypeEndDunning)
				is.True(end.RunAt.Equal(t0.Add(30 * day))) // dunning ends with the window
				return
			}
			is.True(ok)                                                // a further attempt
			is.True(next.ID != first.ID)                               // as a task of its own
			is.True(next.RunAt.Equal(e.clock.Now().Add(tc.nextAfter))) // the delay after failed attempt 2
			is.Equal(next.InvoiceAttempt, 2)                           // Stripe's attempt and recoup's
			is.Equal(next.DeclineCode, tc.code)
			_, ending := e.pendingOf(t, m.ID, invoice, domain.TypeEndDunning)
			is.True(!ending)
		})
	}
}

// TestDunningRecoupPaymentEndsThePlan: once recoup's own attempt paid the
// invoice, no further attempt is planned, even before Stripe's
// invoice.paid arrives.
func TestDunningRecoupPaymentEndsThePlan(t *testing.T) {
	is := is.New(t)
	e := newEngine(t)
	m := e.merchant
	e.setPolicy(t, m, quietPolicy())
	invoice := nextInvoiceID()
	e.handle(t, e.failure(m, invoice, 1))
	e.runDue(t)
	retry := e.mustPending(t, m.ID, invoice, domain.TypeRetryPayment)

	e.advance(t, day)
	got := e.get(t, retry.ID)
	is.Equal(got.Status, domain.StatusSucceeded) // the retry paid
	is.Equal(got.Reason, domain.ReasonPaid)
	is.Equal(e.stripe.invoiceStatus(invoice), domain.InvoicePaid)
	_, again := e.pendingOf(t, m.ID, invoice, domain.TypeRetryPayment)
	is.True(!again) // and no further attempt is planned
	is.Equal(len(e.invoiceTasks(t, m.ID, invoice, domain.TypeRetryPayment)), 1)
	_, ending := e.pendingOf(t, m.ID, invoice, domain.TypeEndDunning)
	is.True(!ending) // nor an end

	// A card update before Stripe's invoice.paid plans nothing either.
	e.clock.Add(time.Minute)
	e.handle(t, e.cardUpdated(t, m, "cus_jenny"))
	_, again = e.pendingOf(t, m.ID, invoice, domain.TypeRetryPayment)
	is.True(!again)
	is.Equal(len(e.gateway.payCalls()), 1) // one payment in all
}

// TestDunningStripeRetries: recoup never retries while Stripe will
// (next_payment_attempt set), and takes over when Stripe stops.
func TestDunningStripeRetries(t *testing.T) {
	stripeWill := func(e *engine, m domain.Merchant, invoice string, attempt int) domain.Event {
		ev := e.failure(m, invoice, attempt)
		next := e.clock.Now().Add(3 * day)
		ev.Invoice.NextPaymentAttempt = &next
		return ev
	}

	t.Run("no retry while Stripe retries, then recoup's schedule", func(t *testing.T) {
		is := is.New(t)
		e := newEngine(t)
		m := e.merchant
		e.setPolicy(t, m, quietPolicy())
		invoice := nextInvoiceID()
		e.handle(t, stripeWill(e, m, invoice, 1))
		is.Equal(len(e.invoiceTasks(t, m.ID, invoice, domain.TypeRetryPayment)), 0) // Stripe retries: recoup does not
		is.Equal(len(e.invoiceTasks(t, m.ID, invoice, domain.TypeEndDunning)), 0)   // nor does dunning end
		is.Equal(len(e.invoiceTasks(t, m.ID, invoice, domain.TypeNotifyPaymentFailed)), 1)

		e.advance(t, 3*day)
		is.Equal(len(e.gateway.payCalls()), 0) // nothing charged meanwhile
		e.handle(t, e.failure(m, invoice, 2))  // Stripe's retry failed, and it stops
		retry := e.mustPending(t, m.ID, invoice, domain.TypeRetryPayment)
		is.True(retry.RunAt.Equal(e.clock.Now().Add(72 * time.Hour))) // the delay after attempt 2
		is.Equal(retry.InvoiceAttempt, 2)
	})

	t.Run("a pending retry is withdrawn when Stripe retries", func(t *testing.T) {
		is := is.New(t)
		e := newEngine(t)
		m := e.merchant
		e.setPolicy(t, m, quietPolicy())
		invoice := nextInvoiceID()
		e.handle(t, e.failure(m, invoice, 1))
		retry := e.mustPending(t, m.ID, invoice, domain.TypeRetryPayment)

		e.clock.Add(time.Hour)
		res := e.handle(t, stripeWill(e, m, invoice, 2))
		is.True(contains(res.Tasks, retry.ID)) // the answer names the withdrawn retry
		got := e.get(t, retry.ID)
		is.Equal(got.Status, domain.StatusCancelled)
		is.Equal(got.Reason, domain.ReasonStripeRetrying)
		e.advance(t, 2*day)
		is.Equal(len(e.gateway.payCalls()), 0) // recoup did not attempt
	})

	t.Run("an older failure arriving late does not undo a newer one", func(t *testing.T) {
		is := is.New(t)
		e := newEngine(t)
		m := e.merchant
		e.setPolicy(t, m, quietPolicy())
		invoice := nextInvoiceID()
		older := stripeWill(e, m, invoice, 1)
		e.clock.Add(3 * day)
		e.handle(t, e.failure(m, invoice, 2)) // Stripe stopped after attempt 2
		retry := e.mustPending(t, m.ID, invoice, domain.TypeRetryPayment)

		e.handle(t, older) // attempt 1's event, delivered late
		got, ok := e.pendingOf(t, m.ID, invoice, domain.TypeRetryPayment)
		is.True(ok)                           // recoup still retries
		is.Equal(got.ID, retry.ID)            // the same retry
		is.True(got.RunAt.Equal(retry.RunAt)) // at the same time
	})
}

// dunningEnds are the ways an invoice runs out of attempts: each leaves
// it with a pending end_dunning, due at the time it returns.
var dunningEnds = []struct {
	name   string
	policy func(p *domain.DunningPolicy)
	// reach drives the invoice to its end, not running the end_dunning.
	reach func(t *testing.T, e *engine, invoice string) (endAt time.Time)
}{
	{"max_attempts reached by Stripe's attempts", func(p *domain.DunningPolicy) { p.MaxAttempts = 3 },
		func(t *testing.T, e *engine, invoice string) time.Time {
			e.handle(t, e.failure(e.merchant, invoice, 3))
			return e.clock.Now()
		}},
	{"max_attempts reached by recoup's declined attempt", func(p *domain.DunningPolicy) { p.MaxAttempts = 2 },
		func(t *testing.T, e *engine, invoice string) time.Time {
			e.handle(t, e.failure(e.merchant, invoice, 1))
			e.runDue(t)
			e.stripe.declineNext(invoice, "do_not_honor")
			e.clock.Add(day)
			runOnceOK(t, e.worker) // the retry
			return e.clock.Now()
		}},
	{"the next attempt would fall past retry_window_days", func(p *domain.DunningPolicy) {
		p.RetryWindowDays, p.RetryDelaysHours = 3, []int{24, 72}
	}, func(t *testing.T, e *engine, invoice string) time.Time {
		e.handle(t, e.failure(e.merchant, invoice, 1))
		e.runDue(t)
		e.stripe.declineNext(invoice, "do_not_honor")
		e.clock.Add(day)
		runOnceOK(t, e.worker) // the retry
		return e.clock.Now()
	}},
	{"the schedule has no entry for the next attempt", func(p *domain.DunningPolicy) { p.RetryDelaysHours = []int{24} },
		func(t *testing.T, e *engine, invoice string) time.Time {
			e.handle(t, e.failure(e.merchant, invoice, 2))
			return e.clock.Now()
		}},
	{"a hard decline unresolved at the window's end", nil,
		func(t *testing.T, e *engine, invoice string) time.Time {
			t0 := e.clock.Now()
			e.handle(t, e.failure(e.merchant, invoice, 1))
			e.handle(t, e.chargeFailed(e.merchant, invoice, "stolen_card"))
			return t0.Add(30 * day)
		}},
}

func TestDunningEndsWhenNoAttemptIsLeft(t *testing.T) {
	for _, tc := range dunningEnds {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			e := newEngine(t)
			m := e.merchant
			p := quietPolicy()
			p.OnExhausted = domain.ExhaustedMarkUncollectible
			if tc.policy != nil {
				tc.policy(&p)
			}
			e.setPolicy(t, m, p)
			invoice := nextInvoiceID()

			endAt := tc.reach(t, e, invoice)
			end := e.mustPending(t, m.ID, invoice, domain.TypeEndDunning)
			is.True(end.RunAt.Equal(endAt)) // the end is planned, due when the policy says
			_, retrying := e.pendingOf(t, m.ID, invoice, domain.TypeRetryPayment)
			is.True(!retrying) // with no attempt pending
			paysBefore := len(e.gateway.payCalls())

			e.clock.Add(endAt.Sub(e.clock.Now()))
			e.runDue(t)
			got := e.get(t, end.ID)
			is.Equal(got.Status, domain.StatusSucceeded) // it ran
			is.Equal(got.Reason, string(domain.ExhaustedMarkUncollectible))
			is.Equal(e.gateway.endCalls(), []paymentCall{{Account: m.StripeAccountID, Invoice: "uncollectible " + invoice, Key: domain.RunKey(end)}})
			is.Equal(len(e.gateway.payCalls()), paysBefore) // and no attempt was made
		})
	}
}

func TestDunningOnExhausted(t *testing.T) {
	cases := []struct {
		action domain.ExhaustedAction
		call   func(invoice string) string // the gateway call; "" for none
	}{
		{domain.ExhaustedNone, func(string) string { return "" }},
		{domain.ExhaustedCancelSubscription, func(invoice string) string { return "cancel sub_" + invoice }},
		{domain.ExhaustedMarkUncollectible, func(invoice string) string { return "uncollectible " + invoice }},
	}
	for _, tc := range cases {
		t.Run(string(tc.action), func(t *testing.T) {
			is := is.New(t)
			e := newEngine(t)
			ctx := context.Background()
			m := e.merchant
			p := quietPolicy()
			p.RetryDelaysHours, p.OnExhausted = []int{24}, tc.action
			e.setPolicy(t, m, p)
			hook, err := domain.NewWebhookEndpoint(m.ID, "https://hooks.example.com/recoup", []string{domain.OutboundDunningExhausted}, e.clock.Now())
			is.NoErr(err)
			_, err = e.store.Endpoints().CreateEndpoint(ctx, m.ID, hook)
			is.NoErr(err)
			invoice := nextInvoiceID()

			exhausting := e.failure(m, invoice, 2) // no schedule entry for attempt 3
			e.handle(t, exhausting)
			end := e.mustPending(t, m.ID, invoice, domain.TypeEndDunning)
			e.runDue(t)

			got := e.get(t, end.ID)
			is.Equal(got.Status, domain.StatusSucceeded) // ran
			is.Equal(got.Reason, string(tc.action))      // recording what it did
			var want []paymentCall
			if call := tc.call(invoice); call != "" {
				want = []paymentCall{{Account: m.StripeAccountID, Invoice: call, Key: domain.RunKey(end)}}
			}
			is.Equal(e.gateway.endCalls(), want) // through the gateway, with an idempotency key, or not at all

			msgs, err := e.store.Outbox().ClaimDeliveries(ctx, e.clock.Now(), time.Minute, 10)
			is.NoErr(err)
			is.Equal(len(msgs), 1) // one dunning.exhausted for the merchant's endpoint
			var body struct {
				Type string
				Data struct {
					ID              domain.TaskID `json:"id"`
					Type            string        `json:"type"`
					Status          string        `json:"status"`
					Reason          string        `json:"reason"`
					StripeInvoiceID string        `json:"stripe_invoice_id"`
				}
			}
			is.NoErr(json.Unmarshal(msgs[0].Payload, &body))
			is.Equal(body.Type, domain.OutboundDunningExhausted)
			is.Equal(body.Data.ID, end.ID) // naming the task
			is.Equal(body.Data.Type, string(domain.TypeEndDunning))
			is.Equal(body.Data.Status, string(domain.StatusSucceeded))
			is.Equal(body.Data.Reason, string(tc.action))
			is.Equal(body.Data.StripeInvoiceID, invoice)

			// Once per invoice: a later failure, or a copy of the event,
			// ends nothing again.
			e.handleDuplicate(t, exhausting)
			e.clock.Add(time.Hour)
			e.handle(t, e.failure(m, invoice, 3))
			e.runDue(t)
			is.Equal(len(e.invoiceTasks(t, m.ID, invoice, domain.TypeEndDunning)), 1)
			is.Equal(e.gateway.endCalls(), want)
		})
	}
}

// TestDunningEndRunsByThePolicyOfItsTime: the end's action is the one
// the policy says when the end_dunning runs; an invoice without a
// subscription has none to cancel.
func TestDunningEndRunsByThePolicyOfItsTime(t *testing.T) {
	t.Run("the policy changed after the end was planned", func(t *testing.T) {
		is := is.New(t)
		e := newEngine(t)
		m := e.merchant
		p := quietPolicy()
		p.RetryDelaysHours = []int{24}
		e.setPolicy(t, m, p)
		invoice := nextInvoiceID()
		e.handle(t, e.failure(m, invoice, 1))
		e.stripe.declined(invoice, "stolen_card")
		e.runDue(t)
		end := e.mustPending(t, m.ID, invoice, domain.TypeEndDunning)

		p.OnExhausted = domain.ExhaustedCancelSubscription
		e.setPolicy(t, m, p)
		e.advance(t, 30*day)
		is.Equal(e.get(t, end.ID).Reason, string(domain.ExhaustedCancelSubscription))
		is.Equal(e.gateway.endCalls(), []paymentCall{{Account: m.StripeAccountID, Invoice: "cancel sub_" + invoice, Key: domain.RunKey(end)}})
	})
	t.Run("cancel_subscription without a subscription", func(t *testing.T) {
		is := is.New(t)
		e := newEngine(t)
		m := e.merchant
		p := quietPolicy()
		p.RetryDelaysHours, p.OnExhausted = []int{24}, domain.ExhaustedCancelSubscription
		e.setPolicy(t, m, p)
		ev := e.failure(m, nextInvoiceID(), 2)
		ev.Invoice.SubscriptionID = "" // a one-off invoice
		e.handle(t, ev)
		end := e.mustPending(t, m.ID, ev.Invoice.ID, domain.TypeEndDunning)
		e.runDue(t)
		got := e.get(t, end.ID)
		is.Equal(got.Status, domain.StatusSucceeded)
		is.Equal(got.Reason, string(domain.ExhaustedNone)) // nothing was done
		is.True(got.LastError != "")                       // and it says why
		is.Equal(len(e.gateway.endCalls()), 0)
	})
}

func contains[T comparable](list []T, v T) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
