package domain_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/recoupdev/recoup/domain"
)

// FuzzParseTaskID checks the task-id parser against anything a URL path
// can carry: it never panics, refuses with ErrInvalid, and accepts only
// what is one spelling of a UUID, returning the canonical (lower-case)
// one, which parses to itself.
func FuzzParseTaskID(f *testing.F) {
	for _, s := range []string{
		"0b6c3f3e-5d55-4c5b-9f4e-6a9d1c2b7e10",
		"0B6C3F3E-5D55-4C5B-9F4E-6A9D1C2B7E10",
		"00000000-0000-0000-0000-000000000000",
		"0b6c3f3e5d554c5b9f4e6a9d1c2b7e10",
		"{0b6c3f3e-5d55-4c5b-9f4e-6a9d1c2b7e10}",
		"urn:uuid:0b6c3f3e-5d55-4c5b-9f4e-6a9d1c2b7e10",
		"0b6c3f3e-5d55-4c5b-9f4e-6a9d1c2b7e1",
		"0b6c3f3e-5d55-4c5b-9f4e-6a9d1c2b7e100",
		"0b6c3f3e_5d55_4c5b_9f4e_6a9d1c2b7e10",
		"0b6c3f3e-5d55-4c5b-9f4e-6a9d1c2b7eZZ",
		"0b6c3f3e-5d55-4c5b-9f4e-6a9d1c2b7é",
		"",
		"../../etc/passwd",
		"1 OR 1=1",
		strings.Repeat("a", 36),
		strings.Repeat("-", 36),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := domain.ParseTaskID(s)
		if err != nil {
			if !errors.Is(err, domain.ErrInvalid) {
				t.Fatalf("ParseTaskID(%q) error does not wrap ErrInvalid: %v", s, err)
			}
			if id != "" {
				t.Fatalf("ParseTaskID(%q) failed but returned %q", s, id)
			}
			return
		}
		if len(s) != 36 || !strings.EqualFold(string(id), s) {
			t.Fatalf("ParseTaskID(%q) = %q: not a spelling of the input's UUID", s, id)
		}
		if string(id) != strings.ToLower(string(id)) {
			t.Fatalf("ParseTaskID(%q) = %q: not canonical", s, id)
		}
		again, err := domain.ParseTaskID(string(id))
		if err != nil || again != id {
			t.Fatalf("ParseTaskID(%q) = %q, %v: the canonical form does not parse to itself", id, again, err)
		}
	})
}

// FuzzDecide drives the default policy with arbitrary decoded events,
// including the field values a forged or odd Stripe payload could carry
// (negative or huge attempt counts, empty ids, unknown types), through the
// fact each reports and the record it makes. It never panics, refuses only
// with ErrInvalid, schedules only pending tasks of the merchant and event,
// emails due no earlier than now, and plans at most one retry or one end
// of dunning, never a retry while Stripe retries or past the budget.
func FuzzDecide(f *testing.F) {
	types := []string{
		domain.EventInvoicePaymentFailed, domain.EventInvoicePaymentActionRequired,
		domain.EventCustomerSubscriptionDeleted, domain.EventChargeFailed,
		domain.EventInvoicePaid, domain.EventInvoiceVoided, domain.EventInvoiceMarkedUncollectible,
		"customer.created", "",
	}
	for i, typ := range types {
		for object := range uint8(4) {
			f.Add(typ, "in_1", int64(2000), i-1, i%2 == 0, object, "ch_1")
		}
	}
	f.Add(domain.EventInvoicePaymentFailed, "in_1", int64(-1), -9223372036854775807, false, uint8(1), "")
	f.Add(domain.EventInvoicePaymentFailed, "in_1", int64(1), 9223372036854775807, false, uint8(1), "")
	f.Add(domain.EventInvoicePaymentFailed, "", int64(1), 1, false, uint8(1), "")
	f.Add(domain.EventChargeFailed, "", int64(1), 1, false, uint8(2), "")

	const merchant = domain.MerchantID("6f1d2c3b-4a59-4e68-8d7c-0b1a2f3e4d5c")
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	policy := domain.DefaultDunningPolicy()
	f.Fuzz(func(t *testing.T, typ, objectID string, amount int64, attempt int, stripeRetries bool, object uint8, related string) {
		ev := domain.Event{ID: "evt_fuzz", Type: typ, Account: "acct_fuzz", Created: now}
		switch object % 4 {
		case 1:
			ev.Invoice = &domain.Invoice{ID: objectID, AmountDue: amount, AmountPaid: amount, AttemptCount: attempt, ChargeID: related, Currency: "usd"}
			if stripeRetries {
				next := now.Add(time.Hour)
				ev.Invoice.NextPaymentAttempt = &next
			}
		case 2:
			ev.Charge = &domain.Charge{ID: objectID, InvoiceID: related, Amount: amount, Currency: "usd", DeclineCode: "stolen_card"}
		case 3:
			ev.Subscription = &domain.Subscription{ID: objectID}
		}
		var rec domain.InvoiceRecord
		if fact, ok := domain.FactOf(ev, now); ok {
			rec = rec.Apply(fact)
		}
		d, err := domain.Decide(ev, rec, policy, merchant, now)
		if err != nil {
			if !errors.Is(err, domain.ErrInvalid) {
				t.Fatalf("Decide error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		if d.Action == "" {
			t.Fatalf("Decide(%s) returned no action", typ)
		}
		planned := 0
		for _, task := range d.Schedule {
			if task.MerchantID != merchant || task.StripeEventID != ev.ID || task.Status != domain.StatusPending {
				t.Fatalf("scheduled task not of this merchant and event, or not pending: %+v", task)
			}
			if !task.Type.Valid() {
				t.Fatalf("scheduled task of unknown type %q", task.Type)
			}
			if task.Type.IsNotification() && task.RunAt.Before(now) {
				t.Fatalf("email %s due %s, before now", task.Type, task.RunAt)
			}
			switch task.Type {
			case domain.TypeRetryPayment:
				planned++
				if stripeRetries || rec.Attempts() >= policy.MaxAttempts {
					t.Fatalf("retry planned after %d attempts (Stripe retries: %v)", rec.Attempts(), stripeRetries)
				}
			case domain.TypeEndDunning:
				planned++
			}
		}
		if planned > 1 {
			t.Fatalf("%d retries and ends planned in one decision", planned)
		}
	})
}
