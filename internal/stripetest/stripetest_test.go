package stripetest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"
	stripego "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/recoupdev/recoup/internal/stripetest"
)

func TestSignIsStripesSignature(t *testing.T) {
	is := is.New(t)
	payload := stripetest.Event{Type: "invoice.paid", Account: "acct_1", Object: stripetest.Invoice{}}.JSON()
	at := time.Now()
	header := stripetest.Sign(payload, "whsec_test", at)

	is.True(strings.HasPrefix(header, "t="))                                                                                   // the header starts with the timestamp
	is.NoErr(webhook.ValidatePayload(payload, header, "whsec_test"))                                                           // stripe-go accepts it
	is.True(webhook.ValidatePayload(payload, header, "whsec_other") != nil)                                                    // another secret does not
	is.True(webhook.ValidatePayload(append(payload, ' '), header, "whsec_test") != nil)                                        // a changed body does not
	is.True(webhook.ValidatePayload(payload, stripetest.Sign(payload, "whsec_test", at.Add(-time.Hour)), "whsec_test") != nil) // an old one does not
}

// TestEventDecodesWithStripeGo decodes the builders' output with stripe-go's
// own types, the way the adapters do, and checks every field recoup reads.
func TestEventDecodesWithStripeGo(t *testing.T) {
	next := time.Unix(1_800_000_000, 0)
	created := time.Unix(1_700_000_000, 0)

	t.Run("invoice", func(t *testing.T) {
		is := is.New(t)
		payload := stripetest.Event{ID: "evt_1", Type: "invoice.payment_failed", Account: "acct_1", Created: created, Object: stripetest.Invoice{
			ID: "in_1", Customer: "cus_1", CustomerEmail: "jenny@example.com", AmountDue: 2000, AmountPaid: 5, Currency: "eur",
			AttemptCount: 3, NextPaymentAttempt: &next, HostedInvoiceURL: "https://invoice.example/1", Subscription: "sub_1", Charge: "ch_1", Status: "open",
		}}.JSON()
		var ev stripego.Event
		is.NoErr(json.Unmarshal(payload, &ev)) // an event
		is.Equal(ev.ID, "evt_1")
		is.Equal(ev.Object, "event")
		is.Equal(ev.APIVersion, stripego.APIVersion) // the version stripe-go pins
		is.Equal(ev.Account, "acct_1")
		is.Equal(ev.Created, created.Unix())
		is.Equal(string(ev.Type), "invoice.payment_failed")
		is.Equal(ev.PendingWebhooks, int64(1))
		var inv stripego.Invoice
		is.NoErr(json.Unmarshal(ev.Data.Raw, &inv)) // an invoice
		is.Equal(inv.ID, "in_1")
		is.Equal(inv.Customer.ID, "cus_1")
		is.Equal(inv.CustomerEmail, "jenny@example.com")
		is.Equal(inv.AmountDue, int64(2000))
		is.Equal(inv.AmountPaid, int64(5))
		is.Equal(string(inv.Currency), "eur")
		is.Equal(inv.AttemptCount, int64(3))
		is.Equal(inv.NextPaymentAttempt, next.Unix())
		is.Equal(inv.HostedInvoiceURL, "https://invoice.example/1")
		is.Equal(inv.Subscription.ID, "sub_1")
		is.Equal(inv.Charge.ID, "ch_1")
		is.Equal(string(inv.Status), "open")
	})

	t.Run("invoice defaults render null", func(t *testing.T) {
		is := is.New(t)
		m := stripetest.Invoice{}.Map()
		for _, k := range []string{"next_payment_attempt", "customer_email", "hosted_invoice_url", "subscription", "charge", "customer"} {
			v, ok := m[k]
			is.True(ok)      // the key is there…
			is.Equal(v, nil) // …and null
		}
		is.True(strings.HasPrefix(m["id"].(string), "in_")) // a fresh invoice id
		is.Equal(m["status"], "open")
		is.Equal(m["currency"], "usd")
	})

	t.Run("charge", func(t *testing.T) {
		is := is.New(t)
		payload := stripetest.Event{Type: "charge.failed", Account: "acct_1", Object: stripetest.Charge{
			ID: "ch_1", Customer: "cus_1", Invoice: "in_1", BillingEmail: "bill@example.com", ReceiptEmail: "receipt@example.com", Amount: 700, Currency: "gbp",
		}}.JSON()
		var ev stripego.Event
		is.NoErr(json.Unmarshal(payload, &ev))
		var ch stripego.Charge
		is.NoErr(json.Unmarshal(ev.Data.Raw, &ch)) // a charge
		is.Equal(ch.ID, "ch_1")
		is.Equal(ch.Customer.ID, "cus_1")
		is.Equal(ch.Invoice.ID, "in_1")
		is.Equal(ch.BillingDetails.Email, "bill@example.com")
		is.Equal(ch.ReceiptEmail, "receipt@example.com")
		is.Equal(ch.Amount, int64(700))
		is.Equal(string(ch.Currency), "gbp")
		is.Equal(string(ch.Status), "failed")
		is.Equal(ch.FailureCode, "card_declined")
	})

	t.Run("subscription", func(t *testing.T) {
		is := is.New(t)
		payload := stripetest.Event{Type: "customer.subscription.deleted", Account: "acct_1", Object: stripetest.Subscription{ID: "sub_1", Customer: "cus_1"}}.JSON()
		var ev stripego.Event
		is.NoErr(json.Unmarshal(payload, &ev))
		var sub stripego.Subscription
		is.NoErr(json.Unmarshal(ev.Data.Raw, &sub)) // a subscription
		is.Equal(sub.ID, "sub_1")
		is.Equal(sub.Customer.ID, "cus_1")
		is.Equal(string(sub.Status), "canceled")
	})

	t.Run("payment intent", func(t *testing.T) {
		is := is.New(t)
		payload := stripetest.Event{Type: "payment_intent.payment_failed", Account: "acct_1", Object: stripetest.PaymentIntent{
			ID: "pi_1", Customer: "cus_1", Invoice: "in_1", Amount: 2000, LatestCharge: "ch_1", DeclineCode: "stolen_card", Created: created,
		}}.JSON()
		var ev stripego.Event
		is.NoErr(json.Unmarshal(payload, &ev))
		var pi stripego.PaymentIntent
		is.NoErr(json.Unmarshal(ev.Data.Raw, &pi)) // a payment intent
		is.Equal(pi.ID, "pi_1")
		is.Equal(pi.Customer.ID, "cus_1")
		is.Equal(pi.Invoice.ID, "in_1")
		is.Equal(pi.LatestCharge.ID, "ch_1")
		is.Equal(pi.Created, created.Unix())
		is.Equal(string(pi.Status), "requires_payment_method") // a declined payment leaves it waiting for another method
		is.True(pi.LastPaymentError != nil)
		is.Equal(string(pi.LastPaymentError.Type), "card_error")
		is.Equal(string(pi.LastPaymentError.Code), "card_declined")
		is.Equal(string(pi.LastPaymentError.DeclineCode), "stolen_card")
		is.Equal(pi.LastPaymentError.ChargeID, "ch_1")

		var expired stripego.PaymentIntent
		b, err := json.Marshal(stripetest.PaymentIntent{DeclineCode: "expired_card"})
		is.NoErr(err)
		is.NoErr(json.Unmarshal(b, &expired))
		is.Equal(string(expired.LastPaymentError.Code), "expired_card") // its own code…
		is.Equal(string(expired.LastPaymentError.DeclineCode), "")      // …and no decline code, as Stripe reports it
	})

	t.Run("platform event has no account", func(t *testing.T) {
		is := is.New(t)
		var m map[string]any
		is.NoErr(json.Unmarshal(stripetest.Event{Type: "invoice.paid", Object: stripetest.Invoice{}}.JSON(), &m))
		_, ok := m["account"]
		is.True(!ok)                                         // no "account" key
		is.True(strings.HasPrefix(m["id"].(string), "evt_")) // a fresh event id
	})
}

func TestStartMockServesStripeAPI(t *testing.T) {
	is := is.New(t)
	base := stripetest.StartMock(t)
	is.True(strings.HasPrefix(base, "http://127.0.0.1:")) // on loopback

	req, err := http.NewRequest(http.MethodGet, base+"/v1/invoices/in_123", nil)
	is.NoErr(err)
	req.Header.Set("Authorization", "Bearer sk_test_123")
	res, err := http.DefaultClient.Do(req)
	is.NoErr(err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	is.NoErr(err)
	is.Equal(res.StatusCode, http.StatusOK) // stripe-mock answers
	var inv stripego.Invoice
	is.NoErr(json.Unmarshal(body, &inv)) // with an invoice
	is.Equal(inv.ID, "in_123")           // stripe-mock echoes the id asked for
}

// TestEventMemberOrder checks that events render as Stripe sends them:
// members in Stripe's order ("id" and "object" first, then the rest
// alphabetically, in the event and in its objects), indented by two spaces.
func TestEventMemberOrder(t *testing.T) {
	is := is.New(t)
	payload := string(stripetest.Event{ID: "evt_1", Type: "invoice.paid", Account: "acct_1", Object: stripetest.Invoice{ID: "in_1", Customer: "cus_1"}}.JSON())
	is.True(strings.HasPrefix(payload, "{\n  \"id\": \"evt_1\",\n  \"object\": \"event\",\n  \"account\": \"acct_1\",\n  \"api_version\": "))                      // the event's members, indented by two
	is.True(strings.Contains(payload, "\n  \"data\": {\n    \"object\": {\n      \"id\": \"in_1\",\n      \"object\": \"invoice\",\n      \"account_country\": ")) // the object's
	is.True(strings.Index(payload, `"type":`) > strings.Index(payload, `"data":`))                                                                                 // type after data
	is.True(!strings.Contains(payload, "\r"))                                                                                                                      // lines end in \n alone
}

// TestMinimalJSON checks the smallest rendering: the same event, its
// object cut down to the members recoup reads, with no whitespace.
func TestMinimalJSON(t *testing.T) {
	is := is.New(t)
	ev := stripetest.Event{ID: "evt_1", Type: "invoice.payment_failed", Account: "acct_1", Object: stripetest.Invoice{
		ID: "in_1", Customer: "cus_1", CustomerEmail: "jenny@example.com", AmountDue: 2000, AttemptCount: 1, Subscription: "sub_1",
	}}
	p := ev.MinimalJSON()
	is.True(!strings.ContainsAny(string(p), "\n ")) // no whitespace
	is.True(strings.HasPrefix(string(p), `{"id":"evt_1","object":"event","account":"acct_1",`))
	var got map[string]any
	is.NoErr(json.Unmarshal(p, &got))
	is.Equal(got["type"], "invoice.payment_failed")
	obj := got["data"].(map[string]any)["object"].(map[string]any)
	is.Equal(obj["customer_email"], "jenny@example.com") // a member recoup reads is kept
	is.Equal(obj["attempt_count"], float64(1))
	_, hasLines := obj["lines"]
	is.True(!hasLines) // one it does not read is dropped
	t.Logf("%d bytes, %d bytes as Stripe sends it", len(p), len(ev.JSON()))
}
