package stripe_test

import (
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/stripetest"
)

// verify signs and verifies ev, failing the test on a rejection.
func verify(t *testing.T, ev stripetest.Event) domain.Event {
	t.Helper()
	v := newVerifier(t, []string{secret})
	payload := ev.JSON()
	got, err := v.VerifyEvent(payload, stripetest.Sign(payload, secret, now))
	if err != nil {
		t.Fatalf("VerifyEvent(%s): %v", ev.Type, err)
	}
	return got
}

func TestDecodeInvoice(t *testing.T) {
	next := now.Add(72 * time.Hour)
	created := now.Add(-time.Minute)

	t.Run("every field", func(t *testing.T) {
		is := is.New(t)
		ev := verify(t, stripetest.Event{ID: "evt_1", Type: domain.EventInvoicePaymentFailed, Account: "acct_1", Livemode: true, Created: created, Object: stripetest.Invoice{
			ID: "in_1", Customer: "cus_1", CustomerEmail: "jenny@example.com", AmountDue: 2000, AmountPaid: 300, Currency: "eur",
			AttemptCount: 2, NextPaymentAttempt: &next, HostedInvoiceURL: "https://invoice.stripe.com/i/1", Subscription: "sub_1", Charge: "ch_1", Status: "open",
		}})
		is.Equal(ev.ID, "evt_1")
		is.Equal(ev.Type, domain.EventInvoicePaymentFailed)
		is.Equal(ev.Account, "acct_1")
		is.True(ev.Livemode)
		is.Equal(ev.APIVersion, "2023-10-16")
		is.True(ev.Created.Equal(created.Truncate(time.Second))) // created, to the second
		is.True(ev.Charge == nil && ev.Subscription == nil)      // only the invoice
		next := next.Truncate(time.Second)
		is.Equal(*ev.Invoice, domain.Invoice{
			ID: "in_1", Status: "open", CustomerID: "cus_1", CustomerEmail: "jenny@example.com", SubscriptionID: "sub_1", ChargeID: "ch_1",
			AmountDue: 2000, AmountPaid: 300, Currency: "eur", HostedInvoiceURL: "https://invoice.stripe.com/i/1", AttemptCount: 2,
			NextPaymentAttempt: ev.Invoice.NextPaymentAttempt,
		})
		is.True(ev.Invoice.NextPaymentAttempt != nil && ev.Invoice.NextPaymentAttempt.Equal(next)) // Stripe's next retry
	})

	t.Run("nulls", func(t *testing.T) {
		is := is.New(t)
		ev := verify(t, stripetest.Event{Type: domain.EventInvoicePaymentFailed, Account: "acct_1", Object: stripetest.Invoice{ID: "in_1", AttemptCount: 1}})
		inv := ev.Invoice
		is.True(inv.NextPaymentAttempt == nil) // null: Stripe will not retry
		is.Equal(inv.CustomerID, "")
		is.Equal(inv.CustomerEmail, "")
		is.Equal(inv.SubscriptionID, "")
		is.Equal(inv.ChargeID, "")
		is.Equal(inv.HostedInvoiceURL, "")
	})

	t.Run("expanded customer, subscription and charge", func(t *testing.T) {
		is := is.New(t)
		m := stripetest.Invoice{ID: "in_1", AttemptCount: 1}.Map()
		m["customer"] = map[string]any{"id": "cus_x", "object": "customer", "email": "expanded@example.com"}
		m["subscription"] = stripetest.Subscription{ID: "sub_x", Customer: "cus_x", Status: "past_due"}.Map()
		m["charge"] = stripetest.Charge{ID: "ch_x", Customer: "cus_x", Invoice: "in_1"}.Map()
		ev := verify(t, stripetest.Event{Type: domain.EventInvoicePaymentFailed, Account: "acct_1", Object: m})
		is.Equal(ev.Invoice.CustomerID, "cus_x")                   // id of the expanded customer
		is.Equal(ev.Invoice.CustomerEmail, "expanded@example.com") // its email when customer_email is null
		is.Equal(ev.Invoice.SubscriptionID, "sub_x")               // id of the expanded subscription
		is.Equal(ev.Invoice.ChargeID, "ch_x")                      // id of the expanded charge
	})

	for _, typ := range []string{domain.EventInvoicePaymentActionRequired, domain.EventInvoicePaid, domain.EventInvoiceVoided, domain.EventInvoiceMarkedUncollectible} {
		t.Run(typ, func(t *testing.T) {
			is := is.New(t)
			ev := verify(t, stripetest.Event{Type: typ, Account: "acct_1", Object: stripetest.Invoice{ID: "in_9", Status: "paid"}})
			is.Equal(ev.Type, typ)
			is.True(ev.Invoice != nil) // every handled invoice.* event carries its invoice
			is.Equal(ev.Invoice.ID, "in_9")
			is.Equal(ev.Invoice.Status, "paid")
		})
	}
}

func TestChargeDeclineCode(t *testing.T) {
	for name, c := range map[string]struct {
		m    func(map[string]any)
		want string
	}{
		"the issuer's reason": {func(m map[string]any) {}, "do_not_honor"},
		"a block: the failure code": {func(m map[string]any) {
			m["outcome"].(map[string]any)["type"] = "blocked"
			m["outcome"].(map[string]any)["reason"] = "highest_risk_level"
		}, "card_declined"},
		"no outcome: the failure code": {func(m map[string]any) { m["outcome"], m["failure_code"] = nil, "expired_card" }, "expired_card"},
		"not a code: none":             {func(m map[string]any) { m["outcome"], m["failure_code"] = nil, "Expired Card" }, ""},
	} {
		t.Run(name, func(t *testing.T) {
			is := is.New(t)
			m := stripetest.Charge{ID: "ch_1", DeclineCode: "do_not_honor"}.Map()
			c.m(m)
			ev := verify(t, stripetest.Event{Type: domain.EventChargeFailed, Account: "acct_1", Object: m})
			is.Equal(ev.Charge.DeclineCode, c.want)
		})
	}
}

func TestDecodeCharge(t *testing.T) {
	cases := []struct {
		name      string
		ch        stripetest.Charge
		wantEmail string
	}{
		{"billing email first", stripetest.Charge{BillingEmail: "bill@example.com", ReceiptEmail: "receipt@example.com"}, "bill@example.com"},
		{"else the receipt email", stripetest.Charge{ReceiptEmail: "receipt@example.com"}, "receipt@example.com"},
		{"else none", stripetest.Charge{}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			tc.ch.ID, tc.ch.Customer, tc.ch.Amount, tc.ch.Currency = "ch_1", "cus_1", 1500, "usd"
			tc.ch.DeclineCode, tc.ch.Created = "insufficient_funds", now
			ev := verify(t, stripetest.Event{Type: domain.EventChargeFailed, Account: "acct_1", Object: tc.ch})
			is.True(ev.Invoice == nil && ev.Subscription == nil) // only the charge
			is.Equal(*ev.Charge, domain.Charge{ID: "ch_1", CustomerID: "cus_1", CustomerEmail: tc.wantEmail, Amount: 1500, Currency: "usd",
				DeclineCode: "insufficient_funds", Created: now})
		})
	}
	t.Run("of an invoice, expanded", func(t *testing.T) {
		is := is.New(t)
		m := stripetest.Charge{ID: "ch_1"}.Map()
		m["invoice"] = stripetest.Invoice{ID: "in_1"}.Map()
		ev := verify(t, stripetest.Event{Type: domain.EventChargeFailed, Account: "acct_1", Object: m})
		is.Equal(ev.Charge.InvoiceID, "in_1") // the expanded invoice's id
	})
	t.Run("of an invoice, by id", func(t *testing.T) {
		is := is.New(t)
		ev := verify(t, stripetest.Event{Type: domain.EventChargeFailed, Account: "acct_1", Object: stripetest.Charge{ID: "ch_1", Invoice: "in_1"}})
		is.Equal(ev.Charge.InvoiceID, "in_1")
	})
}

func TestDecodeSubscription(t *testing.T) {
	is := is.New(t)
	ev := verify(t, stripetest.Event{Type: domain.EventCustomerSubscriptionDeleted, Account: "acct_1", Object: stripetest.Subscription{ID: "sub_1", Customer: "cus_1"}})
	is.True(ev.Invoice == nil && ev.Charge == nil)
	is.Equal(*ev.Subscription, domain.Subscription{ID: "sub_1", CustomerID: "cus_1"})
}

func TestDecodeOtherTypes(t *testing.T) {
	cases := []struct {
		name string
		ev   stripetest.Event
	}{
		{"invoice.finalized, not handled", stripetest.Event{Type: "invoice.finalized", Account: "acct_1", Object: stripetest.Invoice{ID: "in_9"}}},
		{"an unhandled type with an odd object", stripetest.Event{Type: "invoice.created", Account: "acct_1", Object: "in_9"}},
		{"customer.created", stripetest.Event{Type: "customer.created", Account: "acct_1", Object: map[string]any{"id": "cus_1", "object": "customer", "email": "x@example.com"}}},
		{"a dispute under charge.*", stripetest.Event{Type: "charge.dispute.created", Account: "acct_1", Object: map[string]any{"id": "dp_1", "object": "dispute", "charge": "ch_1", "amount": 100, "status": "needs_response"}}},
		{"a platform event", stripetest.Event{Type: "account.updated", Object: map[string]any{"id": "acct_1", "object": "account"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			ev := verify(t, tc.ev)
			is.Equal(ev.Type, tc.ev.Type)                                            // decoded
			is.True(ev.Invoice == nil && ev.Charge == nil && ev.Subscription == nil) // without an object
		})
	}
}

func TestDecodeCardEvents(t *testing.T) {
	customer := map[string]any{"id": "cus_1", "object": "customer", "email": "jenny@example.com",
		"invoice_settings": map[string]any{"default_payment_method": "pm_new"}}
	t.Run("customer.updated with a new default payment method", func(t *testing.T) {
		is := is.New(t)
		ev := verify(t, stripetest.Event{Type: domain.EventCustomerUpdated, Account: "acct_1", Object: customer,
			PreviousAttributes: map[string]any{"invoice_settings": map[string]any{"default_payment_method": nil}}})
		is.Equal(*ev.Customer, domain.Customer{ID: "cus_1", Email: "jenny@example.com", DefaultPaymentMethodChanged: true})
		id, ok := domain.CardUpdate(ev)
		is.True(ok) // a card update
		is.Equal(id, "cus_1")
	})
	t.Run("customer.updated removing the default payment method", func(t *testing.T) {
		is := is.New(t)
		removed := map[string]any{"id": "cus_1", "object": "customer", "email": "jenny@example.com",
			"invoice_settings": map[string]any{"default_payment_method": nil}}
		ev := verify(t, stripetest.Event{Type: domain.EventCustomerUpdated, Account: "acct_1", Object: removed,
			PreviousAttributes: map[string]any{"invoice_settings": map[string]any{"default_payment_method": "pm_old"}}})
		is.True(!ev.Customer.DefaultPaymentMethodChanged) // no new card to retry with
		_, ok := domain.CardUpdate(ev)
		is.True(!ok) // no card update
	})
	t.Run("customer.updated changing something else", func(t *testing.T) {
		is := is.New(t)
		ev := verify(t, stripetest.Event{Type: domain.EventCustomerUpdated, Account: "acct_1", Object: customer,
			PreviousAttributes: map[string]any{"email": "old@example.com"}})
		is.True(!ev.Customer.DefaultPaymentMethodChanged)
		_, ok := domain.CardUpdate(ev)
		is.True(!ok) // no card update
	})
	t.Run("payment_method.attached", func(t *testing.T) {
		is := is.New(t)
		ev := verify(t, stripetest.Event{Type: domain.EventPaymentMethodAttached, Account: "acct_1",
			Object: map[string]any{"id": "pm_1", "object": "payment_method", "type": "card", "customer": "cus_1"}})
		is.Equal(*ev.PaymentMethod, domain.PaymentMethod{ID: "pm_1", CustomerID: "cus_1"})
		id, ok := domain.CardUpdate(ev)
		is.True(ok)
		is.Equal(id, "cus_1")
	})
	t.Run("customer.source.expiring", func(t *testing.T) {
		is := is.New(t)
		ev := verify(t, stripetest.Event{Type: domain.EventCustomerSourceExpiring, Account: "acct_1",
			Object: map[string]any{"id": "card_1", "object": "card", "customer": "cus_1", "brand": "Visa", "last4": "4242", "exp_month": 8, "exp_year": 2027}})
		is.Equal(*ev.Card, domain.Card{ID: "card_1", CustomerID: "cus_1", ExpMonth: 8, ExpYear: 2027})
	})
}
