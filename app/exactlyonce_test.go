package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/domain"
)

// TestEngineEventsApplyOnce: a copy of any event the engine acts on,
// delivered after its effects were changed since (by the worker, by the
// merchant, by time), is a duplicate and changes nothing, where applying
// the event again would.
func TestEngineEventsApplyOnce(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name string
		// deliver delivers the event once and changes its effects since;
		// it returns the event.
		deliver func(t *testing.T, e *engine, m domain.Merchant) domain.Event
	}{
		{"invoice.payment_failed, its tasks deleted since", func(t *testing.T, e *engine, m domain.Merchant) domain.Event {
			ev := e.failure(m, "in_1", 1)
			for _, id := range e.handle(t, ev).Tasks {
				if err := e.store.Tasks().Delete(ctx, m.ID, id); err != nil {
					t.Fatal(err)
				}
			}
			return ev
		}},
		{"charge.failed on an invoice, its retry deleted since", func(t *testing.T, e *engine, m domain.Merchant) domain.Event {
			e.handle(t, e.failure(m, "in_1", 1))
			ev := e.chargeFailed(m, "in_1", "insufficient_funds")
			e.handle(t, ev)
			retry := e.mustPending(t, m.ID, "in_1", domain.TypeRetryPayment)
			if err := e.store.Tasks().Delete(ctx, m.ID, retry.ID); err != nil {
				t.Fatal(err)
			}
			return ev
		}},
		{"charge.failed outside an invoice, its email deleted since", func(t *testing.T, e *engine, m domain.Merchant) domain.Event {
			ev := e.chargeFailed(m, "", "generic_decline")
			for _, id := range e.handle(t, ev).Tasks {
				if err := e.store.Tasks().Delete(ctx, m.ID, id); err != nil {
					t.Fatal(err)
				}
			}
			return ev
		}},
		{"customer.updated, its retry declined since", func(t *testing.T, e *engine, m domain.Merchant) domain.Event {
			e.handle(t, e.failure(m, "in_1", 1))
			e.clock.Add(time.Hour)
			ev := e.cardUpdated(t, m, "cus_jenny")
			e.handle(t, ev)
			e.stripe.declineNext("in_1", "do_not_honor")
			e.runDue(t)
			return ev
		}},
		{"payment_method.attached, its retry declined since", func(t *testing.T, e *engine, m domain.Merchant) domain.Event {
			e.handle(t, e.failure(m, "in_1", 1))
			e.clock.Add(time.Hour)
			ev := e.cardAttached(t, m, "cus_jenny")
			e.handle(t, ev)
			e.stripe.declineNext("in_1", "do_not_honor")
			e.runDue(t)
			return ev
		}},
		{"customer.source.expiring, its email deleted since", func(t *testing.T, e *engine, m domain.Merchant) domain.Event {
			ev := e.cardExpiring(t, m, "cus_jenny", "card_1", 6, 2026)
			for _, id := range e.handle(t, ev).Tasks {
				if err := e.store.Tasks().Delete(ctx, m.ID, id); err != nil {
					t.Fatal(err)
				}
			}
			return ev
		}},
		{"invoice.paid, a cancelled reminder retried since", func(t *testing.T, e *engine, m domain.Merchant) domain.Event {
			e.handle(t, e.failure(m, "in_1", 1))
			ev := e.paid(m, "in_1")
			e.handle(t, ev)
			reminder := e.invoiceTasks(t, m.ID, "in_1", domain.TypeNotifyReminder)[0]
			if _, err := e.store.Tasks().Retry(ctx, m.ID, reminder.ID, e.clock.Now()); err != nil {
				t.Fatal(err)
			}
			return ev
		}},
		{"customer.subscription.deleted, a cancelled retry retried since", func(t *testing.T, e *engine, m domain.Merchant) domain.Event {
			e.handle(t, e.failure(m, "in_1", 1))
			ev := domain.Event{ID: "evt_sub_deleted", Type: domain.EventCustomerSubscriptionDeleted, Account: m.StripeAccountID,
				Subscription: &domain.Subscription{ID: "sub_in_1", CustomerID: "cus_jenny"}}
			e.handle(t, ev)
			retry := e.invoiceTasks(t, m.ID, "in_1", domain.TypeRetryPayment)[0]
			if _, err := e.store.Tasks().Retry(ctx, m.ID, retry.ID, e.clock.Now()); err != nil {
				t.Fatal(err)
			}
			return ev
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			e := newEngine(t)
			m := e.merchant
			ev := tc.deliver(t, e, m)
			e.clock.Add(time.Minute)
			records, err := e.store.Ledger().Recovery(ctx, m.ID)
			is.NoErr(err)

			e.handleDuplicate(t, ev) // answered as a duplicate, no task changed
			again, err := e.store.Ledger().Recovery(ctx, m.ID)
			is.NoErr(err)
			is.Equal(again, records) // nor the recovery figures
		})
	}
}
