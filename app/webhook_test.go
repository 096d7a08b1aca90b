package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/app"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/stripetest"
	"github.com/recoupdev/recoup/ports"
)

// duplicateWords is what the webhook's contract says of a duplicate.
const duplicateWords = "handled by parallel worker (idempotency lock)"

// tasksPerFailure is what a first failed attempt makes under the default
// policy: its email, two reminders and a retry.
const tasksPerFailure = 4

func TestWebhookLockThenDispatch(t *testing.T) {
	is := is.New(t)
	u, fs := withFaultyStore(t)
	m := u.merchant(t, "Acme")
	invoice := stripetest.NewID("in_")

	failed := u.handle(t, paymentFailedEvent(m.StripeAccountID, invoice, "sub_1", 1))
	is.True(failed.Processed)                                     // the event was processed
	is.Equal(failed.Action, domain.ActionScheduled)               // by scheduling
	is.Equal(failed.MerchantID, m.ID)                             // for the account's merchant
	is.Equal(sorted(failed.Tasks), sortedIDs(u.tasksOf(t, m.ID))) // the answer names the stored tasks
	paid := u.handle(t, invoiceEvent(domain.EventInvoicePaid, m.StripeAccountID, invoice, "sub_1"))
	is.Equal(paid.Action, domain.ActionCancelled)

	is.Equal(fs.unitsOfWork(), [][]string{
		{stepLock, stepFailure, stepCancel, stepSchedule}, // the lock first, then the effects, in one unit of work
		{stepLock, stepPaid, stepCancel},
	})
}

func TestWebhookDuplicateChangesNothing(t *testing.T) {
	t.Run("payment failed, its tasks deleted since", func(t *testing.T) {
		is := is.New(t)
		u, fs := withFaultyStore(t)
		m := u.merchant(t, "Acme")
		ev := paymentFailedEvent(m.StripeAccountID, stripetest.NewID("in_"), "sub_1", 1)
		first := u.handle(t, ev)
		is.Equal(len(first.Tasks), tasksPerFailure)
		// The merchant deletes the tasks: applying the event again would
		// make them anew.
		for _, id := range first.Tasks {
			is.NoErr(u.tasks.Delete(context.Background(), m, id))
		}
		figures := u.recovery(t, m.ID)

		again := u.handle(t, ev)
		is.Equal(again.Processed, false)                        // a duplicate is not processed
		is.Equal(again.Action, domain.ActionIgnored)            // it is ignored
		is.True(strings.Contains(again.Reason, duplicateWords)) // and says why
		is.True(strings.Contains(again.Reason, ev.ID))          // naming the event
		is.Equal(again.Tasks, nil)                              // it lists no tasks
		is.Equal(again.MerchantID, m.ID)                        // the merchant was found all the same
		is.Equal(len(u.tasksOf(t, m.ID)), 0)                    // no task was made again
		is.Equal(u.recovery(t, m.ID), figures)                  // nor a failure recorded again
		is.Equal(fs.unitsOfWork()[1], []string{stepLock})       // the duplicate stopped at the lock
		is.Equal(u.obs.count(ports.DeliveryDuplicate), 1)       // and was observed as one
	})

	t.Run("invoice paid, a task retried since", func(t *testing.T) {
		is := is.New(t)
		u := newUseCases(t, nil)
		m := u.merchant(t, "Acme")
		invoice := stripetest.NewID("in_")
		u.handle(t, paymentFailedEvent(m.StripeAccountID, invoice, "sub_1", 1))
		paid := invoiceEvent(domain.EventInvoicePaid, m.StripeAccountID, invoice, "sub_1")
		first := u.handle(t, paid)
		is.Equal(len(first.Tasks), tasksPerFailure) // every task cancelled
		// The merchant sends one back to pending: applying the event again
		// would cancel it again.
		retried, err := u.tasks.Retry(context.Background(), m, first.Tasks[0])
		is.NoErr(err)
		before := u.tasksOf(t, m.ID)

		again := u.handle(t, paid)
		is.Equal(again.Processed, false)
		is.True(strings.Contains(again.Reason, duplicateWords))
		is.Equal(u.get(t, m.ID, retried.ID).Status, domain.StatusPending) // the retried task stays pending
		is.Equal(u.tasksOf(t, m.ID), before)                              // nothing changed at all
	})
}

// handleAll runs the events at once, each on its own goroutine, released
// together, and returns the results and errors by index.
func handleAll(u *useCases, events []domain.Event) ([]app.WebhookResult, []error) {
	start := make(chan struct{})
	results := make([]app.WebhookResult, len(events))
	errs := make([]error, len(events))
	var wg sync.WaitGroup
	for i, ev := range events {
		wg.Go(func() {
			<-start
			results[i], errs[i] = u.webhooks.Handle(context.Background(), ev)
		})
	}
	close(start)
	wg.Wait()
	return results, errs
}

func TestWebhookParallelDuplicatesProcessOnce(t *testing.T) {
	for _, tc := range []struct {
		name           string
		events, copies int
	}{
		{"one event, 20 copies", 1, 20},
		{"a storm: 20 events, 10 copies each", 20, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			u := newUseCases(t, nil)
			m := u.merchant(t, "Storm Inc")
			var events []domain.Event
			for range tc.events {
				ev := paymentFailedEvent(m.StripeAccountID, stripetest.NewID("in_"), "sub_1", 1)
				for range tc.copies {
					events = append(events, ev)
				}
			}

			results, errs := handleAll(u, events)

			processed := map[string][]domain.TaskID{}
			for i, res := range results {
				is.NoErr(errs[i]) // no delivery fails
				id := events[i].ID
				if res.Processed {
					is.Equal(processed[id], nil) // processed at most once
					processed[id] = res.Tasks
					is.Equal(res.Action, domain.ActionScheduled)
					continue
				}
				is.Equal(res.Action, domain.ActionIgnored)            // a duplicate is ignored
				is.True(strings.Contains(res.Reason, duplicateWords)) // and says why
				is.True(strings.Contains(res.Reason, id))             // naming its event
				is.Equal(res.Tasks, nil)                              // with no tasks
			}
			is.Equal(len(processed), tc.events) // every event processed exactly once

			stored := u.tasksOf(t, m.ID)
			is.Equal(len(stored), tasksPerFailure*tc.events) // each event's tasks exactly once
			byEvent := map[string][]domain.Task{}
			for _, task := range stored {
				byEvent[task.StripeEventID] = append(byEvent[task.StripeEventID], task)
			}
			for id, tasks := range processed {
				is.Equal(len(tasks), tasksPerFailure)           // each event made its tasks
				is.Equal(sorted(tasks), sortedIDs(byEvent[id])) // the processing delivery named its event's tasks
			}
			is.Equal(u.obs.count(ports.DeliveryProcessed), tc.events)               // observed: one processed per event
			is.Equal(u.obs.count(ports.DeliveryDuplicate), tc.events*(tc.copies-1)) // and the rest duplicates
		})
	}
}

func TestWebhookFailureAfterLockKeepsNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail string
		// invoicePaid: the event is an invoice.paid on an invoice with two
		// pending tasks; else an invoice.payment_failed.
		invoicePaid bool
	}{
		{"recording the failure fails", stepFailure, false},
		{"scheduling fails, the failure already recorded", stepSchedule, false},
		{"recording the payment fails", stepPaid, true},
		{"cancelling fails, the payment already recorded", stepCancel, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			u, fs := withFaultyStore(t)
			m := u.merchant(t, "Fragile Ltd")
			invoice := stripetest.NewID("in_")
			ev := paymentFailedEvent(m.StripeAccountID, invoice, "sub_1", 1)
			if tc.invoicePaid {
				u.handle(t, ev)
				ev = invoiceEvent(domain.EventInvoicePaid, m.StripeAccountID, invoice, "sub_1")
			}
			tasksBefore, figuresBefore := u.tasksOf(t, m.ID), u.recovery(t, m.ID)

			fs.failStep(tc.fail)
			res, err := u.webhooks.Handle(context.Background(), ev)
			is.True(errors.Is(err, errDiskFull))                    // the failure is returned
			is.Equal(res.Processed, false)                          // nothing was processed
			is.Equal(res.Tasks, nil)                                // nor any task named
			is.Equal(res.MerchantID, m.ID)                          // the merchant, for the log
			is.Equal(u.tasksOf(t, m.ID), tasksBefore)               // no effect kept on tasks
			is.Equal(u.recovery(t, m.ID), figuresBefore)            // nor on the figures
			is.True(u.lockFree(t, ev.ID))                           // and the lock was rolled back
			is.Equal(u.obs.count(ports.DeliveryFailed), 1)          // observed as failed
			is.True(strings.Contains(u.logs.String(), "disk full")) // the cause is logged

			fs.failStep("")
			redelivered := u.handle(t, ev)
			is.True(redelivered.Processed) // Stripe's redelivery processes the event
			is.Equal(len(redelivered.Tasks), tasksPerFailure)
			if tc.invoicePaid {
				is.Equal(redelivered.Action, domain.ActionCancelled) // completely
				for _, task := range u.tasksOf(t, m.ID) {
					is.Equal(task.Status, domain.StatusCancelled)
				}
				is.Equal(u.recovery(t, m.ID)["usd"].RecoveredAmount, int64(2000))
			} else {
				is.Equal(redelivered.Action, domain.ActionScheduled) // completely
				is.Equal(sorted(redelivered.Tasks), sortedIDs(u.tasksOf(t, m.ID)))
				is.Equal(u.recovery(t, m.ID)["usd"].FailedAmount, int64(2000))
			}
			again := u.handle(t, ev)
			is.Equal(again.Processed, false) // a further copy is a duplicate
			is.True(strings.Contains(again.Reason, duplicateWords))
		})
	}
}

// TestWebhookFailureWhileDuplicatesWait: copies of an event that arrive
// while its first delivery holds the lock wait for its outcome; when it
// fails, exactly one of them processes the event.
func TestWebhookFailureWhileDuplicatesWait(t *testing.T) {
	is := is.New(t)
	u, fs := withFaultyStore(t)
	m := u.merchant(t, "Patient Co")
	ev := paymentFailedEvent(m.StripeAccountID, stripetest.NewID("in_"), "sub_1", 1)

	const waiters = 10
	var schedules atomic.Int32
	inside, release := make(chan struct{}), make(chan struct{})
	fs.beforeStep(func(step string) error {
		if step == stepSchedule && schedules.Add(1) == 1 { // the first holds the lock here, then fails
			close(inside)
			<-release
			return errDiskFull
		}
		return nil
	})

	var first app.WebhookResult
	var firstErr error
	firstDone := make(chan struct{})
	go func() {
		defer close(firstDone)
		first, firstErr = u.webhooks.Handle(context.Background(), ev)
	}()
	<-inside
	copies := make([]domain.Event, waiters)
	for i := range copies {
		copies[i] = ev
	}
	var results []app.WebhookResult
	var errs []error
	copiesDone := make(chan struct{})
	go func() {
		defer close(copiesDone)
		results, errs = handleAll(u, copies)
	}()
	// Let the copies reach the store, where they wait for the first
	// delivery's outcome (the memory store makes a unit of work wait for
	// the one in flight; PostgreSQL makes the lock wait). Nothing is
	// asserted on this grace: a copy still on its way meets the same rules.
	time.Sleep(50 * time.Millisecond)
	close(release)
	<-firstDone
	<-copiesDone

	is.True(errors.Is(firstErr, errDiskFull)) // the first delivery failed
	is.Equal(first.Processed, false)
	processed := 0
	for i, res := range results {
		is.NoErr(errs[i])
		if res.Processed {
			processed++
			is.Equal(sorted(res.Tasks), sortedIDs(u.tasksOf(t, m.ID))) // its tasks are the stored ones
			continue
		}
		is.True(strings.Contains(res.Reason, duplicateWords)) // the others are duplicates of it
	}
	is.Equal(processed, 1)                             // exactly one waiter processed the event
	is.Equal(len(u.tasksOf(t, m.ID)), tasksPerFailure) // once
}

func TestWebhookSameFailureTwoEventIDs(t *testing.T) {
	is := is.New(t)
	u := newUseCases(t, nil)
	m := u.merchant(t, "Twice Corp")
	invoice := stripetest.NewID("in_")
	first := u.handle(t, paymentFailedEvent(m.StripeAccountID, invoice, "sub_1", 1))
	second := u.handle(t, paymentFailedEvent(m.StripeAccountID, invoice, "sub_1", 1))
	is.True(first.Processed)
	is.Equal(len(first.Tasks), tasksPerFailure)
	is.True(second.Processed)                                      // a distinct event is processed
	is.Equal(second.Action, domain.ActionScheduled)                // as its type says
	is.Equal(len(second.Tasks), 1)                                 // the plan, made again, names the same retry
	is.Equal(second.Tasks[0], retryOf(t, u, m.ID))                 // which it keeps
	is.Equal(len(u.tasksOf(t, m.ID)), tasksPerFailure)             // one set of tasks
	is.Equal(u.recovery(t, m.ID)["usd"].FailedAmount, int64(2000)) // the invoice's failure counts once
}

// wantTask is a task a policy row must store.
type wantTask struct {
	typ     domain.TaskType
	runIn   time.Duration // RunAt after the clock's now
	attempt int           // InvoiceAttempt
}

func TestWebhookPolicySchedules(t *testing.T) {
	const day = 24 * time.Hour
	next := time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC)
	failedAt := func(attempt int, nextAttempt *time.Time) func(account string) domain.Event {
		return func(account string) domain.Event {
			ev := paymentFailedEvent(account, stripetest.NewID("in_"), "sub_1", attempt)
			ev.Invoice.NextPaymentAttempt = nextAttempt
			return ev
		}
	}
	// The emails of a failed attempt: its own, now, and the reminders of
	// the default policy, 3 and 7 days after the first failure (now).
	emails := func(attempt int) []wantTask {
		return []wantTask{{domain.TypeNotifyPaymentFailed, 0, attempt}, {domain.TypeNotifyReminder, 3 * day, 1}, {domain.TypeNotifyReminder, 7 * day, 2}}
	}
	with := func(attempt int, more ...wantTask) []wantTask { return append(emails(attempt), more...) }
	cases := []struct {
		name   string
		event  func(account string) domain.Event
		action string
		tasks  []wantTask
		failed int64 // the failed amount recorded
	}{
		{"payment failed, attempt 1, Stripe will not retry", failedAt(1, nil), domain.ActionScheduled,
			with(1, wantTask{domain.TypeRetryPayment, 1 * day, 1}), 2000},
		{"payment failed, attempt 2, Stripe will not retry", failedAt(2, nil), domain.ActionScheduled,
			with(2, wantTask{domain.TypeRetryPayment, 3 * day, 2}), 2000},
		{"payment failed, attempt 3, Stripe will not retry", failedAt(3, nil), domain.ActionScheduled,
			with(3, wantTask{domain.TypeRetryPayment, 5 * day, 3}), 2000},
		{"payment failed, attempt 4, Stripe will not retry", failedAt(4, nil), domain.ActionScheduled,
			with(4, wantTask{domain.TypeRetryPayment, 7 * day, 4}), 2000},
		{"payment failed, attempt 5: no retry left, dunning ends", failedAt(5, nil), domain.ActionScheduled,
			with(5, wantTask{domain.TypeEndDunning, 0, 5}), 2000},
		{"payment failed, Stripe retries itself", failedAt(1, &next), domain.ActionScheduled,
			emails(1), 2000},
		{"payment action required", func(account string) domain.Event {
			ev := paymentFailedEvent(account, stripetest.NewID("in_"), "sub_1", 1)
			ev.Type = domain.EventInvoicePaymentActionRequired
			return ev
		}, domain.ActionScheduled, []wantTask{{domain.TypeNotifyActionRequired, 0, 1}}, 0},
		{"charge failed outside an invoice", func(account string) domain.Event {
			return domain.Event{ID: stripetest.NewID("evt_"), Type: domain.EventChargeFailed, Account: account,
				Charge: &domain.Charge{ID: "ch_lone", CustomerID: "cus_jenny", CustomerEmail: "jenny@example.com", Amount: 1500, Currency: "eur"}}
		}, domain.ActionScheduled, []wantTask{{domain.TypeNotifyChargeFailed, 0, 0}}, 0},
		{"charge failed on an invoice whose failure is not known: the invoice's events cover it", func(account string) domain.Event {
			return domain.Event{ID: stripetest.NewID("evt_"), Type: domain.EventChargeFailed, Account: account,
				Charge: &domain.Charge{ID: "ch_inv", InvoiceID: "in_1", CustomerID: "cus_jenny", Amount: 1500, Currency: "eur"}}
		}, domain.ActionNothingToDo, nil, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			u := newUseCases(t, nil)
			m := u.merchant(t, "Policy Co")
			ev := tc.event(m.StripeAccountID)

			res := u.handle(t, ev)
			is.True(res.Processed)          // the event was processed
			is.Equal(res.Action, tc.action) // with the row's action
			is.Equal(res.MerchantID, m.ID)  // for the account's merchant
			is.True(res.Tasks != nil)       // naming its tasks, none included
			stored := u.tasksOf(t, m.ID)
			is.Equal(sorted(res.Tasks), sortedIDs(stored)) // the answer names the stored tasks
			is.Equal(len(stored), len(tc.tasks))           // the row's tasks, no more
			now := u.clock.Now()
			for _, want := range tc.tasks {
				var got *domain.Task
				for i := range stored {
					if stored[i].Type == want.typ && stored[i].InvoiceAttempt == want.attempt {
						got = &stored[i]
					}
				}
				is.True(got != nil)                           // a task of each of the row's types and attempts
				is.True(got.RunAt.Equal(now.Add(want.runIn))) // due when the policy says
				is.Equal(got.Status, domain.StatusPending)    // pending
				is.Equal(got.MerchantID, m.ID)                // the merchant's
				is.Equal(got.StripeEventID, ev.ID)            // made by this event
				is.True(got.CreatedAt.Equal(now))             // now
				if inv := ev.Invoice; inv != nil {
					is.Equal(got.StripeInvoiceID, inv.ID) // of the event's invoice
					is.Equal(got.CustomerEmail, inv.CustomerEmail)
					is.Equal(got.AmountDue, inv.AmountDue)
					is.Equal(got.HostedInvoiceURL, inv.HostedInvoiceURL)
				}
				if ch := ev.Charge; ch != nil {
					is.Equal(got.StripeChargeID, ch.ID) // of the event's charge
					is.Equal(got.CustomerEmail, ch.CustomerEmail)
					is.Equal(got.AmountDue, ch.Amount)
					is.Equal(got.Currency, ch.Currency)
				}
			}
			is.Equal(u.recovery(t, m.ID)["usd"].FailedAmount, tc.failed) // a payment failure is recorded
			is.True(!u.lockFree(t, ev.ID))                               // and the event's lock kept
		})
	}
}

func TestWebhookPolicyCancels(t *testing.T) {
	cases := []struct {
		name  string
		event func(account, invoice, subscription string) domain.Event
		// bySubscription: the event names the subscription, else the
		// invoice.
		bySubscription bool
		recovered      int64
	}{
		{"invoice paid", func(account, inv, sub string) domain.Event {
			return invoiceEvent(domain.EventInvoicePaid, account, inv, sub)
		}, false, 2000},
		{"invoice voided", func(account, inv, sub string) domain.Event {
			return invoiceEvent(domain.EventInvoiceVoided, account, inv, sub)
		}, false, 0},
		{"invoice marked uncollectible", func(account, inv, sub string) domain.Event {
			return invoiceEvent(domain.EventInvoiceMarkedUncollectible, account, inv, sub)
		}, false, 0},
		{"subscription deleted", func(account, _, sub string) domain.Event {
			return domain.Event{ID: stripetest.NewID("evt_"), Type: domain.EventCustomerSubscriptionDeleted, Account: account,
				Subscription: &domain.Subscription{ID: sub, CustomerID: "cus_jenny"}}
		}, true, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			u := newUseCases(t, nil)
			a, b := u.merchant(t, "A"), u.merchant(t, "B")
			invX, invY := stripetest.NewID("in_"), stripetest.NewID("in_")
			subX, subY := stripetest.NewID("sub_"), stripetest.NewID("sub_")
			failed := func(m domain.Merchant, inv, sub string) []domain.TaskID {
				res := u.handle(t, paymentFailedEvent(m.StripeAccountID, inv, sub, 1))
				is.Equal(len(res.Tasks), tasksPerFailure)
				return res.Tasks
			}
			aX, aY := failed(a, invX, subX), failed(a, invY, subY)
			bX, bY := failed(b, invX, subX), failed(b, invY, subY) // the same Stripe ids under another merchant

			res := u.handle(t, tc.event(a.StripeAccountID, invX, subX))
			is.True(res.Processed)
			is.Equal(res.Action, domain.ActionCancelled)
			is.Equal(sorted(res.Tasks), sorted(aX)) // exactly A's tasks of that invoice or subscription
			for _, id := range aX {
				is.Equal(u.get(t, a.ID, id).Status, domain.StatusCancelled) // are cancelled
			}
			for _, id := range aY {
				is.Equal(u.get(t, a.ID, id).Status, domain.StatusPending) // A's others are not
			}
			for _, id := range append(bX, bY...) {
				is.Equal(u.get(t, b.ID, id).Status, domain.StatusPending) // nor B's, same ids or not
			}
			is.Equal(u.recovery(t, a.ID)["usd"], domain.CurrencyRecovery{FailedAmount: 4000, RecoveredAmount: tc.recovered})
			is.Equal(u.recovery(t, b.ID)["usd"], domain.CurrencyRecovery{FailedAmount: 4000}) // A's payment is not B's recovery

			again := u.handle(t, tc.event(a.StripeAccountID, invX, subX))
			is.True(again.Processed)      // another event of the same kind
			is.Equal(len(again.Tasks), 0) // finds nothing left to cancel
		})
	}
}

func TestWebhookUnhandledType(t *testing.T) {
	is := is.New(t)
	u, fs := withFaultyStore(t)
	m := u.merchant(t, "Quiet Co")
	ev := domain.Event{ID: stripetest.NewID("evt_"), Type: "customer.created", Account: m.StripeAccountID}

	res := u.handle(t, ev)
	is.Equal(res.Processed, true)                                   // acknowledged as processed
	is.Equal(res.Action, domain.ActionIgnored)                      // and ignored
	is.Equal(res.Reason, "Event type customer.created not handled") // saying why
	is.Equal(res.Tasks, nil)
	is.Equal(len(fs.unitsOfWork()), 0) // no unit of work at all
	is.True(u.lockFree(t, ev.ID))      // so no lock
	is.Equal(u.pendingAnywhere(t), 0)  // and no task
	got, _ := u.obs.seen()
	is.Equal(got, []observed{{ports.EventTypeOther, ports.DeliveryIgnored}}) // observed without its made-up type
}

func TestWebhookEventWithoutItsObject(t *testing.T) {
	for _, typ := range []string{
		domain.EventInvoicePaymentFailed, domain.EventInvoicePaymentActionRequired, domain.EventChargeFailed,
		domain.EventCustomerSubscriptionDeleted, domain.EventInvoicePaid, domain.EventInvoiceVoided, domain.EventInvoiceMarkedUncollectible,
	} {
		t.Run(typ, func(t *testing.T) {
			is := is.New(t)
			u := newUseCases(t, nil)
			m := u.merchant(t, "Odd Co")
			ev := domain.Event{ID: stripetest.NewID("evt_"), Type: typ, Account: m.StripeAccountID}
			_, err := u.webhooks.Handle(context.Background(), ev)
			is.True(errors.Is(err, domain.ErrInvalid))     // bad input
			is.True(u.lockFree(t, ev.ID))                  // no lock
			is.Equal(u.pendingAnywhere(t), 0)              // no task
			is.Equal(u.obs.count(ports.DeliveryFailed), 1) // observed as failed
		})
	}
}

func TestWebhookIgnoredWithoutMerchant(t *testing.T) {
	cases := []struct {
		name     string
		livemode bool // the endpoint's
		event    func(account string) domain.Event
		reason   string
		merchant bool // whether the result names the merchant
	}{
		{"a live event at a test endpoint", false, func(account string) domain.Event {
			ev := paymentFailedEvent(account, stripetest.NewID("in_"), "sub_1", 1)
			ev.Livemode = true
			return ev
		}, "livemode=true does not match this endpoint's livemode=false", false},
		{"a test event at a live endpoint", true, func(account string) domain.Event {
			return paymentFailedEvent(account, stripetest.NewID("in_"), "sub_1", 1)
		}, "livemode=false does not match this endpoint's livemode=true", false},
		{"no connected account", false, func(string) domain.Event {
			return paymentFailedEvent("", stripetest.NewID("in_"), "sub_1", 1)
		}, "Event has no connected account", false},
		{"an unknown account", false, func(string) domain.Event {
			return paymentFailedEvent("acct_nobodyhere", stripetest.NewID("in_"), "sub_1", 1)
		}, "No merchant for account acct_nobodyhere", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			u, fs := withFaultyStore(t)
			m := u.merchant(t, "Bystander")
			obs := &recordingObserver{}
			webhooks := app.NewWebhookService(fs, app.WebhookConfig{Livemode: tc.livemode, Clock: u.clock, Observer: obs})
			ev := tc.event(m.StripeAccountID)

			res, err := webhooks.Handle(context.Background(), ev)
			is.NoErr(err)                                    // acknowledged
			is.Equal(res.Processed, false)                   // not processed
			is.Equal(res.Action, domain.ActionIgnored)       // ignored
			is.True(strings.Contains(res.Reason, tc.reason)) // saying why
			is.Equal(res.Tasks, nil)
			is.Equal(res.MerchantID, domain.MerchantID(""))
			is.Equal(len(fs.unitsOfWork()), 0) // no unit of work at all
			is.True(u.lockFree(t, ev.ID))      // so no lock, and a later delivery may still act
			is.Equal(u.pendingAnywhere(t), 0)  // no task for anyone
			is.Equal(len(u.recovery(t, m.ID)), 0)
			got, waits := obs.seen()
			is.Equal(got, []observed{{domain.EventInvoicePaymentFailed, ports.DeliveryIgnored}}) // observed as ignored
			is.Equal(waits, 0)                                                                   // without a lock taken
		})
	}
}

// TestWebhookAccountBoundLater: an event ignored for want of a merchant
// took no lock, so its redelivery after the account is bound is processed.
func TestWebhookAccountBoundLater(t *testing.T) {
	is := is.New(t)
	u := newUseCases(t, nil)
	account := stripetest.NewID("acct_")
	ev := paymentFailedEvent(account, stripetest.NewID("in_"), "sub_1", 1)
	early := u.handle(t, ev)
	is.Equal(early.Processed, false) // nobody's yet
	is.True(strings.Contains(early.Reason, "No merchant for account "+account))

	m, _, err := u.merchants.Create(context.Background(), "Late Co", account)
	is.NoErr(err)
	late := u.handle(t, ev)
	is.True(late.Processed)                            // the redelivery is processed
	is.Equal(late.MerchantID, m.ID)                    // for the new merchant
	is.Equal(len(u.tasksOf(t, m.ID)), tasksPerFailure) // with its tasks
}

// retryOf returns the id of the merchant's one retry_payment.
func retryOf(t *testing.T, u *useCases, m domain.MerchantID) domain.TaskID {
	t.Helper()
	var found []domain.TaskID
	for _, task := range u.tasksOf(t, m) {
		if task.Type == domain.TypeRetryPayment {
			found = append(found, task.ID)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d retry_payment tasks, want one", len(found))
	}
	return found[0]
}

func TestWebhookObserverToldEachOutcome(t *testing.T) {
	is := is.New(t)
	u, fs := withFaultyStore(t)
	m := u.merchant(t, "Watched Co")
	ev := paymentFailedEvent(m.StripeAccountID, stripetest.NewID("in_"), "sub_1", 1)
	charge := domain.Event{ID: stripetest.NewID("evt_"), Type: domain.EventChargeFailed, Account: m.StripeAccountID,
		Charge: &domain.Charge{ID: "ch_1", InvoiceID: "in_1"}}

	u.handle(t, ev)                                                                                              // processed
	u.handle(t, ev)                                                                                              // duplicate
	u.handle(t, charge)                                                                                          // processed, nothing to do
	u.handle(t, domain.Event{ID: stripetest.NewID("evt_"), Type: "invoice.created", Account: m.StripeAccountID}) // not handled
	u.handle(t, paymentFailedEvent("acct_unknown", stripetest.NewID("in_"), "", 1))                              // nobody's
	fs.failStep(stepSchedule)
	_, err := u.webhooks.Handle(context.Background(), paymentFailedEvent(m.StripeAccountID, stripetest.NewID("in_"), "", 1))
	is.True(err != nil) // failed

	got, waits := u.obs.seen()
	is.Equal(got, []observed{
		{domain.EventInvoicePaymentFailed, ports.DeliveryProcessed},
		{domain.EventInvoicePaymentFailed, ports.DeliveryDuplicate},
		{domain.EventChargeFailed, ports.DeliveryProcessed},
		{ports.EventTypeOther, ports.DeliveryIgnored},
		{domain.EventInvoicePaymentFailed, ports.DeliveryIgnored},
		{domain.EventInvoicePaymentFailed, ports.DeliveryFailed},
	})
	is.Equal(waits, 4) // one lock wait per delivery that asked for the lock
}

func TestWebhookLogsEachDelivery(t *testing.T) {
	is := is.New(t)
	u, fs := withFaultyStore(t)
	m := u.merchant(t, "Logged Co")
	ev := paymentFailedEvent(m.StripeAccountID, stripetest.NewID("in_"), "sub_1", 1)
	u.handle(t, ev)
	u.handle(t, ev)
	fs.failStep(stepSchedule)
	failing := paymentFailedEvent(m.StripeAccountID, stripetest.NewID("in_"), "sub_1", 1)
	_, err := u.webhooks.Handle(context.Background(), failing)
	is.True(err != nil)

	var lines []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(u.logs.String()), "\n") {
		var rec map[string]any
		is.NoErr(json.Unmarshal([]byte(line), &rec)) // JSON lines
		lines = append(lines, rec)
	}
	is.Equal(len(lines), 3) // one line per delivery
	for i, rec := range lines {
		is.Equal(rec["event_type"], domain.EventInvoicePaymentFailed) // every line names the type
		is.Equal(rec["merchant_id"], string(m.ID))                    // and the merchant
		if i < 2 {
			is.Equal(rec["msg"], "webhook delivery")
			is.Equal(rec["level"], "INFO")
			is.Equal(rec["event_id"], ev.ID) // and the event
		}
	}
	is.Equal(lines[0]["processed"], true)
	is.Equal(lines[0]["action"], domain.ActionScheduled)
	is.Equal(lines[0]["tasks"], float64(tasksPerFailure))
	is.Equal(lines[1]["processed"], false)
	is.True(strings.Contains(lines[1]["reason"].(string), duplicateWords))
	is.Equal(lines[2]["msg"], "webhook delivery failed") // a failure is logged as one
	is.Equal(lines[2]["level"], "ERROR")
	is.Equal(lines[2]["event_id"], failing.ID)
	is.True(strings.Contains(lines[2]["reason"].(string), "disk full")) // with its cause
}
