package stripe_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/matryer/is"

	recoupstripe "github.com/recoupdev/recoup/adapters/stripe"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/stripetest"
)

// These tests drive the Gateway, through stripe-go, against
// stripetest.API: a Stripe that remembers what the Gateway did, so that a
// test can check effects (a payment made, an invoice marked, a
// subscription canceled) and not only the requests.

const merchant = "acct_merchant"

func scriptedGateway(t *testing.T) (*stripetest.API, *recoupstripe.Gateway) {
	api := stripetest.NewAPI(t)
	return api, recoupstripe.NewGateway(recoupstripe.GatewayConfig{APIKey: apiKey, APIBase: api.URL(), Timeout: 10 * time.Second})
}

// openInvoice is an invoice whose first automatic attempt failed.
func openInvoice(id string) stripetest.Invoice {
	return stripetest.Invoice{
		ID: id, Customer: "cus_1", CustomerEmail: "jenny@example.com", AmountDue: 2000, AttemptCount: 1,
		Subscription: "sub_1", HostedInvoiceURL: "https://invoice.stripe.com/i/" + id,
	}
}

func paymentError(t *testing.T, err error) *domain.PaymentError {
	t.Helper()
	var pe *domain.PaymentError
	if !errors.As(err, &pe) {
		t.Fatalf("want a *domain.PaymentError, got %v", err)
	}
	return pe
}

func TestScriptedInvoiceReadsTheDecline(t *testing.T) {
	for _, code := range []string{"insufficient_funds", "stolen_card", "expired_card", "incorrect_number"} {
		t.Run(code, func(t *testing.T) {
			is := is.New(t)
			api, g := scriptedGateway(t)
			at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
			api.SetClock(func() time.Time { return at })
			api.PutInvoice(merchant, openInvoice("in_1"))
			api.DeclinePays(merchant, "in_1", code)
			ctx := context.Background()

			inv, err := g.Invoice(ctx, merchant, "in_1")
			is.NoErr(err)
			is.Equal(inv.DeclineCode, "") // no payment through the API yet, so nothing to tell
			is.True(inv.DeclinedAt.IsZero())

			pe := paymentError(t, g.PayInvoice(ctx, merchant, "in_1", "run-1"))
			is.Equal(pe.Code, code) // the pay's own answer names the decline

			inv, err = g.Invoice(ctx, merchant, "in_1")
			is.NoErr(err)
			is.Equal(inv.DeclineCode, code) // read back from the expanded payment intent and charge
			is.Equal(inv.DeclinedAt, at)    // when the declined charge was made
			is.Equal(inv.Status, "open")
			is.Equal(inv.AttemptCount, 1)
			is.Equal(inv.ChargeID, api.Charges(merchant, "in_1")[0].ID) // the failed charge is the latest

			is.NoErr(g.PayInvoice(ctx, merchant, "in_1", "run-2")) // nothing more scripted: paid
			inv, err = g.Invoice(ctx, merchant, "in_1")
			is.NoErr(err)
			is.Equal(inv.Status, "paid")
			is.Equal(inv.AmountPaid, int64(2000))
			is.Equal(inv.DeclineCode, "") // the success clears it
			is.True(inv.DeclinedAt.IsZero())

			for _, r := range api.Requests() {
				is.Equal(r.Account, merchant) // every call on the merchant's account
				if r.Method == http.MethodGet {
					is.Equal(r.Form["expand"], []string{"charge", "payment_intent"}) // one read tells the decline
				}
			}
		})
	}
}

func TestScriptedDeclineKinds(t *testing.T) {
	cases := []struct {
		code string
		kind domain.PaymentErrorKind
	}{
		{"stolen_card", domain.PaymentHardDecline},
		{"lost_card", domain.PaymentHardDecline},
		{"fraudulent", domain.PaymentHardDecline},
		{"expired_card", domain.PaymentHardDecline},
		{"incorrect_number", domain.PaymentHardDecline},
		{"authentication_required", domain.PaymentHardDecline},
		{"insufficient_funds", domain.PaymentSoftDecline},
		{"generic_decline", domain.PaymentSoftDecline},
		{"card_velocity_exceeded", domain.PaymentSoftDecline},
		{"processing_error", domain.PaymentSoftDecline},
	}
	api, g := scriptedGateway(t)
	for _, tc := range cases {
		t.Run(tc.code, func(t *testing.T) {
			is := is.New(t)
			id := "in_" + tc.code
			api.PutInvoice(merchant, openInvoice(id))
			api.DeclinePays(merchant, id, tc.code)
			pe := paymentError(t, g.PayInvoice(context.Background(), merchant, id, "run-"+tc.code))
			is.Equal(pe.Kind, tc.kind) // hard or soft, as the adapter classifies Stripe's card_error
			is.Equal(pe.Code, tc.code)
			is.True(pe.Message != "") // Stripe's words for the customer
			inv, _ := api.Invoice(merchant, id)
			is.Equal(inv.Status, "open") // a decline pays nothing
		})
	}
}

func TestScriptedIdempotency(t *testing.T) {
	ctx := context.Background()

	t.Run("PayInvoice with a repeated key pays once", func(t *testing.T) {
		is := is.New(t)
		api, g := scriptedGateway(t)
		api.PutInvoice(merchant, openInvoice("in_1"))
		api.DeclinePays(merchant, "in_1", "insufficient_funds")

		first := paymentError(t, g.PayInvoice(ctx, merchant, "in_1", "run-1"))
		again := paymentError(t, g.PayInvoice(ctx, merchant, "in_1", "run-1")) // after a crash, say
		is.Equal(again.Kind, first.Kind)                                       // the first outcome again
		is.Equal(again.Code, first.Code)
		is.Equal(len(api.Charges(merchant, "in_1")), 1) // and no second attempt

		is.NoErr(g.PayInvoice(ctx, merchant, "in_1", "run-2")) // the next run is a new attempt
		is.NoErr(g.PayInvoice(ctx, merchant, "in_1", "run-2")) // its repeat succeeds without paying again
		is.Equal(len(api.Charges(merchant, "in_1")), 2)
		inv, _ := api.Invoice(merchant, "in_1")
		is.Equal(inv.Status, "paid")
		is.Equal(inv.AmountPaid, int64(2000)) // paid once

		pe := paymentError(t, g.PayInvoice(ctx, merchant, "in_1", "run-3"))
		is.Equal(pe.Kind, domain.PaymentPermanent) // a new key on a paid invoice: Stripe refuses
		is.Equal(pe.Code, "invoice_not_editable")
		is.Equal(len(api.Charges(merchant, "in_1")), 2)
	})

	t.Run("MarkUncollectible with a repeated key marks once", func(t *testing.T) {
		is := is.New(t)
		api, g := scriptedGateway(t)
		at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
		api.SetClock(func() time.Time { return at })
		api.PutInvoice(merchant, openInvoice("in_1"))

		is.NoErr(g.MarkUncollectible(ctx, merchant, "in_1", "run-1"))
		api.SetClock(func() time.Time { return at.Add(time.Hour) })
		is.NoErr(g.MarkUncollectible(ctx, merchant, "in_1", "run-1")) // the repeat replays the first answer
		inv, _ := api.Invoice(merchant, "in_1")
		is.Equal(inv.Status, "uncollectible")
		reqs := api.Requests()
		is.Equal(len(reqs), 2)
		is.True(!reqs[0].Replayed)
		is.True(reqs[1].Replayed) // no second effect
		is.Equal(reqs[1].IdempotencyKey, "run-1")

		pe := paymentError(t, g.MarkUncollectible(ctx, merchant, "in_1", "run-2"))
		is.Equal(pe.Kind, domain.PaymentPermanent) // with a new key Stripe refuses: it is no longer open
	})

	t.Run("CancelSubscription repeated cancels once", func(t *testing.T) {
		is := is.New(t)
		api, g := scriptedGateway(t)
		api.PutSubscription(merchant, stripetest.Subscription{ID: "sub_1", Customer: "cus_1", Status: "past_due"})

		is.NoErr(g.CancelSubscription(ctx, merchant, "sub_1", "run-1"))
		sub, _ := api.Subscription(merchant, "sub_1")
		is.Equal(sub.Status, "canceled")

		// Stripe ignores idempotency keys on DELETE, and cancelling a
		// canceled subscription is its 404 "No such subscription": the
		// Gateway reads the subscription then, and a canceled one is
		// done, so that a run repeated after a crash succeeds.
		is.NoErr(g.CancelSubscription(ctx, merchant, "sub_1", "run-1"))
		sub, _ = api.Subscription(merchant, "sub_1")
		is.Equal(sub.Status, "canceled")
		var canceled int
		for _, r := range api.Requests() {
			if r.Method == http.MethodDelete && r.Status == http.StatusOK {
				canceled++
			}
		}
		is.Equal(canceled, 1) // one cancellation
	})
}

func TestScriptedTransientFailures(t *testing.T) {
	ctx := context.Background()

	t.Run("a rate limit, then the same key pays", func(t *testing.T) {
		is := is.New(t)
		api, g := scriptedGateway(t)
		api.PutInvoice(merchant, openInvoice("in_1"))
		api.FailNext(http.MethodPost, "/v1/invoices/in_1/pay", http.StatusTooManyRequests, 1)

		pe := paymentError(t, g.PayInvoice(ctx, merchant, "in_1", "run-1"))
		is.Equal(pe.Kind, domain.PaymentTransient) // try again later
		is.Equal(pe.Code, "rate_limit")
		is.Equal(len(api.Charges(merchant, "in_1")), 0)
		is.NoErr(g.PayInvoice(ctx, merchant, "in_1", "run-1")) // Stripe kept nothing for the key
		is.Equal(len(api.Charges(merchant, "in_1")), 1)
	})

	t.Run("a server error is kept under its key", func(t *testing.T) {
		is := is.New(t)
		api, g := scriptedGateway(t)
		api.PutInvoice(merchant, openInvoice("in_1"))
		api.FailNext(http.MethodPost, "/v1/invoices/in_1/pay", http.StatusInternalServerError, 1)

		for range 2 {
			pe := paymentError(t, g.PayInvoice(ctx, merchant, "in_1", "run-1"))
			is.Equal(pe.Kind, domain.PaymentTransient) // the same 500, replayed for the same key
		}
		is.NoErr(g.PayInvoice(ctx, merchant, "in_1", "run-2")) // only a new key (a rescheduled run) gets a new answer
		is.Equal(len(api.Charges(merchant, "in_1")), 1)
	})

	t.Run("a read during a lock timeout", func(t *testing.T) {
		is := is.New(t)
		api, g := scriptedGateway(t)
		api.PutInvoice(merchant, openInvoice("in_1"))
		api.FailNext(http.MethodGet, "/v1/invoices/in_1", http.StatusConflict, 1)
		_, err := g.Invoice(ctx, merchant, "in_1")
		is.Equal(paymentError(t, err).Kind, domain.PaymentTransient)
		inv, err := g.Invoice(ctx, merchant, "in_1")
		is.NoErr(err)
		is.Equal(inv.ID, "in_1")
	})
}

func TestScriptedTenantIsolation(t *testing.T) {
	is := is.New(t)
	api, g := scriptedGateway(t)
	api.PutInvoice("acct_a", openInvoice("in_a"))
	api.PutSubscription("acct_a", stripetest.Subscription{ID: "sub_a", Status: "active"})
	ctx := context.Background()

	_, err := g.Invoice(ctx, "acct_b", "in_a")
	is.True(errors.Is(err, domain.ErrNotFound)) // another merchant's invoice is not there
	err = g.PayInvoice(ctx, "acct_b", "in_a", "run-1")
	is.True(errors.Is(err, domain.ErrNotFound))
	err = g.CancelSubscription(ctx, "acct_b", "sub_a", "run-1")
	is.True(errors.Is(err, domain.ErrNotFound))

	inv, _ := api.Invoice("acct_a", "in_a")
	is.Equal(inv.Status, "open") // untouched
	sub, _ := api.Subscription("acct_a", "sub_a")
	is.Equal(sub.Status, "active")
	is.Equal(len(api.Charges("acct_a", "in_a")), 0)
}
