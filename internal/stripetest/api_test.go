package stripetest_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/matryer/is"
	stripego "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/recoupdev/recoup/internal/stripetest"
)

const testKey = "sk_test_stripetest0123456789"

// reply is one answer of the API, read whole.
type reply struct {
	status int
	header http.Header
	body   []byte
	obj    map[string]any // the body, decoded
}

// errorField is a member of the error object of an error reply.
func (r reply) errorField(name string) any {
	e, _ := r.obj["error"].(map[string]any)
	return e[name]
}

// call sends a request the way stripe-go does (form parameters, in the
// query for a GET), with the test key unless the header is given.
func call(t *testing.T, api *stripetest.API, method, path, account, idempotencyKey string, form url.Values, header ...string) reply {
	t.Helper()
	var body io.Reader
	target := api.URL() + path
	if method == http.MethodGet {
		if len(form) > 0 {
			target += "?" + form.Encode()
		}
	} else {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+testKey)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	if account != "" {
		req.Header.Set("Stripe-Account", account)
	}
	if idempotencyKey != "" {
		req.Header.Set("Idempotency-Key", idempotencyKey)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := reply{status: res.StatusCode, header: res.Header, body: b}
	if err := json.Unmarshal(b, &r.obj); err != nil {
		t.Fatalf("%s %s: answer is not a JSON object: %v\n%s", method, path, err, b)
	}
	return r
}

var expandBoth = url.Values{"expand[0]": {"charge"}, "expand[1]": {"payment_intent"}}

func TestAPIInvoicePayAndDecline(t *testing.T) {
	is := is.New(t)
	api := stripetest.NewAPI(t)
	api.PutInvoice("acct_1", stripetest.Invoice{ID: "in_1", Customer: "cus_1", AmountDue: 2000, AttemptCount: 1, Subscription: "sub_1"})
	api.DeclinePays("acct_1", "in_1", "insufficient_funds")

	r := call(t, api, "GET", "/v1/invoices/in_1", "acct_1", "", nil)
	is.Equal(r.status, 200)
	is.Equal(r.obj["id"], "in_1")
	is.Equal(r.obj["status"], "open")
	is.Equal(r.obj["payment_intent"], nil) // no payment through the API yet

	before := time.Now().Add(-time.Second)
	r = call(t, api, "POST", "/v1/invoices/in_1/pay", "acct_1", "k1", nil)
	is.Equal(r.status, 402) // the scripted decline
	is.Equal(r.errorField("type"), "card_error")
	is.Equal(r.errorField("code"), "card_declined")
	is.Equal(r.errorField("decline_code"), "insufficient_funds")
	is.Equal(r.errorField("message"), "Your card has insufficient funds.")
	chargeID, _ := r.errorField("charge").(string)
	is.True(strings.HasPrefix(chargeID, "ch_")) // names the failed charge

	r = call(t, api, "GET", "/v1/invoices/in_1", "acct_1", "", expandBoth)
	is.Equal(r.status, 200)
	is.Equal(r.obj["status"], "open") // a decline leaves it open
	is.Equal(r.obj["attempted"], true)
	is.Equal(r.obj["attempt_count"], float64(1)) // a manual attempt after the first does not count
	ch := r.obj["charge"].(map[string]any)
	is.Equal(ch["id"], chargeID) // the latest charge, expanded
	is.Equal(ch["status"], "failed")
	is.Equal(ch["failure_code"], "card_declined")
	is.Equal(ch["invoice"], "in_1")
	outcome := ch["outcome"].(map[string]any)
	is.Equal(outcome["type"], "issuer_declined")
	is.Equal(outcome["reason"], "insufficient_funds")
	is.True(int64(ch["created"].(float64)) >= before.Unix()) // when the decline happened
	pi := r.obj["payment_intent"].(map[string]any)
	is.Equal(pi["status"], "requires_payment_method")
	is.Equal(pi["latest_charge"], chargeID)
	lpe := pi["last_payment_error"].(map[string]any)
	is.Equal(lpe["type"], "card_error")
	is.Equal(lpe["code"], "card_declined")
	is.Equal(lpe["decline_code"], "insufficient_funds")
	is.Equal(lpe["charge"], chargeID)

	r = call(t, api, "POST", "/v1/invoices/in_1/pay", "acct_1", "k2", nil)
	is.Equal(r.status, 200) // nothing scripted: the pay succeeds
	is.Equal(r.obj["status"], "paid")
	is.Equal(r.obj["paid"], true)
	is.Equal(r.obj["amount_paid"], float64(2000))
	is.Equal(r.obj["amount_remaining"], float64(0))
	is.True(r.obj["status_transitions"].(map[string]any)["paid_at"] != nil)
	is.Equal(r.obj["payment_intent"], pi["id"]) // the invoice's one payment intent

	r = call(t, api, "GET", "/v1/invoices/in_1", "acct_1", "", url.Values{"expand[]": {"payment_intent"}})
	pi = r.obj["payment_intent"].(map[string]any)
	is.Equal(pi["status"], "succeeded")
	is.Equal(pi["last_payment_error"], nil) // cleared by the success
	is.Equal(pi["amount_received"], float64(2000))

	r = call(t, api, "POST", "/v1/invoices/in_1/pay", "acct_1", "k3", nil)
	is.Equal(r.status, 400) // a paid invoice cannot be paid again
	is.Equal(r.errorField("type"), "invalid_request_error")
	is.Equal(r.errorField("code"), "invoice_not_editable")

	charges := api.Charges("acct_1", "in_1")
	is.Equal(len(charges), 2) // one per payment that ran
	is.Equal(charges[0].Status, "failed")
	is.Equal(charges[0].DeclineCode, "insufficient_funds")
	is.Equal(charges[1].Status, "succeeded")
	inv, ok := api.Invoice("acct_1", "in_1")
	is.True(ok)
	is.Equal(inv.Status, "paid")
	is.Equal(inv.AmountPaid, int64(2000))
	is.Equal(inv.Charge, charges[1].ID)
}

func TestAPIDeclineShapes(t *testing.T) {
	cases := []struct {
		decline, code, declineCode, message string
	}{
		{"stolen_card", "card_declined", "stolen_card", "Your card was declined."},
		{"generic_decline", "card_declined", "generic_decline", "Your card was declined."},
		{"authentication_required", "card_declined", "authentication_required", "Your card was declined. This transaction requires authentication."},
		{"expired_card", "expired_card", "", "Your card has expired."},
		{"incorrect_number", "incorrect_number", "", "Your card number is incorrect."},
		{"processing_error", "processing_error", "", "An error occurred while processing your card. Try again in a little bit."},
	}
	for _, tc := range cases {
		t.Run(tc.decline, func(t *testing.T) {
			is := is.New(t)
			api := stripetest.NewAPI(t)
			api.PutInvoice("acct_1", stripetest.Invoice{ID: "in_1", AmountDue: 500})
			api.DeclinePays("acct_1", "in_1", tc.decline)
			r := call(t, api, "POST", "/v1/invoices/in_1/pay", "acct_1", "k", nil)
			is.Equal(r.status, 402)
			is.Equal(r.errorField("code"), tc.code)
			is.Equal(r.errorField("decline_code"), map[bool]any{true: nil, false: tc.declineCode}[tc.declineCode == ""]) // absent when the code says it all
			is.Equal(r.errorField("message"), tc.message)
			is.Equal(r.errorField("doc_url"), "https://stripe.com/docs/error-codes/"+strings.ReplaceAll(tc.code, "_", "-"))

			r = call(t, api, "GET", "/v1/invoices/in_1", "acct_1", "", expandBoth)
			ch := r.obj["charge"].(map[string]any)
			is.Equal(ch["failure_code"], tc.code)
			is.Equal(ch["failure_message"], tc.message)
			is.Equal(ch["outcome"].(map[string]any)["reason"], tc.decline) // the issuer's reason, whatever the code
			lpe := r.obj["payment_intent"].(map[string]any)["last_payment_error"].(map[string]any)
			is.Equal(lpe["code"], tc.code)
			is.Equal(lpe["decline_code"], map[bool]any{true: nil, false: tc.declineCode}[tc.declineCode == ""])
		})
	}
}

func TestAPIScriptedPaysPlayInOrder(t *testing.T) {
	is := is.New(t)
	api := stripetest.NewAPI(t)
	api.PutInvoice("acct_1", stripetest.Invoice{ID: "in_1", AmountDue: 500})
	api.DeclinePays("acct_1", "in_1", "card_velocity_exceeded", "", "lost_card")
	api.DeclinePays("acct_1", "in_other", "stolen_card") // another invoice's script

	is.Equal(call(t, api, "POST", "/v1/invoices/in_1/pay", "acct_1", "k1", nil).errorField("decline_code"), "card_velocity_exceeded")
	is.Equal(call(t, api, "POST", "/v1/invoices/in_1/pay", "acct_1", "k2", nil).status, 200) // "" succeeds
	api.PutInvoice("acct_1", stripetest.Invoice{ID: "in_1", AmountDue: 500})                 // open again
	is.Equal(call(t, api, "POST", "/v1/invoices/in_1/pay", "acct_1", "k3", nil).errorField("decline_code"), "lost_card")
	is.Equal(call(t, api, "POST", "/v1/invoices/in_1/pay", "acct_1", "k4", nil).status, 200) // the script is spent
}

func TestAPIInvoiceStatuses(t *testing.T) {
	t.Run("an uncollectible invoice can still be paid", func(t *testing.T) {
		is := is.New(t)
		api := stripetest.NewAPI(t)
		api.PutInvoice("acct_1", stripetest.Invoice{ID: "in_1", AmountDue: 900})
		api.DeclinePays("acct_1", "in_1", "do_not_honor")

		r := call(t, api, "POST", "/v1/invoices/in_1/mark_uncollectible", "acct_1", "m1", nil)
		is.Equal(r.status, 200)
		is.Equal(r.obj["status"], "uncollectible")
		is.True(r.obj["status_transitions"].(map[string]any)["marked_uncollectible_at"] != nil)
		is.Equal(r.obj["next_payment_attempt"], nil)

		r = call(t, api, "POST", "/v1/invoices/in_1/mark_uncollectible", "acct_1", "m2", nil)
		is.Equal(r.status, 400) // only an open invoice, and with another key nothing is replayed

		is.Equal(call(t, api, "POST", "/v1/invoices/in_1/pay", "acct_1", "p1", nil).status, 402)
		inv, _ := api.Invoice("acct_1", "in_1")
		is.Equal(inv.Status, "uncollectible") // a decline leaves it uncollectible
		is.Equal(call(t, api, "POST", "/v1/invoices/in_1/pay", "acct_1", "p2", nil).status, 200)
		inv, _ = api.Invoice("acct_1", "in_1")
		is.Equal(inv.Status, "paid") // as on Stripe
	})
	t.Run("a void invoice cannot be paid", func(t *testing.T) {
		is := is.New(t)
		api := stripetest.NewAPI(t)
		api.PutInvoice("acct_1", stripetest.Invoice{ID: "in_1", Status: "void"})
		r := call(t, api, "POST", "/v1/invoices/in_1/pay", "acct_1", "p1", nil)
		is.Equal(r.status, 400)
		is.Equal(r.errorField("type"), "invalid_request_error")
		is.Equal(len(api.Charges("acct_1", "in_1")), 0) // no payment ran
	})
	t.Run("unknown and other accounts' invoices", func(t *testing.T) {
		is := is.New(t)
		api := stripetest.NewAPI(t)
		api.PutInvoice("acct_1", stripetest.Invoice{ID: "in_1"})
		for _, r := range []reply{
			call(t, api, "GET", "/v1/invoices/in_nope", "acct_1", "", nil),
			call(t, api, "GET", "/v1/invoices/in_1", "acct_2", "", nil), // another merchant's
			call(t, api, "GET", "/v1/invoices/in_1", "", "", nil),       // the platform's, without Stripe-Account
			call(t, api, "POST", "/v1/invoices/in_1/pay", "acct_2", "k", nil),
			call(t, api, "POST", "/v1/invoices/in_1/mark_uncollectible", "acct_2", "k2", nil),
		} {
			is.Equal(r.status, 404)
			is.Equal(r.errorField("code"), "resource_missing")
			is.Equal(r.errorField("param"), "id")
			is.True(strings.HasPrefix(r.errorField("message").(string), "No such invoice: 'in_")) // Stripe's words
		}
		inv, _ := api.Invoice("acct_1", "in_1")
		is.Equal(inv.Status, "open") // untouched
	})
	t.Run("a charge put for the invoice is its latest charge", func(t *testing.T) {
		is := is.New(t)
		api := stripetest.NewAPI(t)
		at := time.Unix(1_700_000_000, 0)
		api.PutInvoice("acct_1", stripetest.Invoice{ID: "in_1", Charge: "ch_1", AttemptCount: 1})
		r := call(t, api, "GET", "/v1/invoices/in_1", "acct_1", "", url.Values{"expand[0]": {"charge"}})
		is.Equal(r.obj["charge"].(map[string]any)["outcome"].(map[string]any)["reason"], "generic_decline") // made up: an unpaid invoice's charge failed
		api.PutCharge("acct_1", stripetest.Charge{ID: "ch_1", Invoice: "in_1", DeclineCode: "insufficient_funds", Created: at})
		r = call(t, api, "GET", "/v1/invoices/in_1", "acct_1", "", url.Values{"expand[0]": {"charge"}})
		ch := r.obj["charge"].(map[string]any)
		is.Equal(ch["outcome"].(map[string]any)["reason"], "insufficient_funds") // the charge put
		is.Equal(ch["created"], float64(at.Unix()))
		is.Equal(r.obj["payment_intent"], nil) // none until a payment through the API
		is.Equal(len(api.Charges("acct_1", "in_1")), 1)
	})
	t.Run("an expansion the API does not make", func(t *testing.T) {
		is := is.New(t)
		api := stripetest.NewAPI(t)
		api.PutInvoice("acct_1", stripetest.Invoice{ID: "in_1", Customer: "cus_1"})
		r := call(t, api, "GET", "/v1/invoices/in_1", "acct_1", "", url.Values{"expand[0]": {"customer"}})
		is.Equal(r.status, 400) // said, rather than a customer id where the test expects an object
		is.Equal(r.errorField("param"), "expand")
	})
}

func TestAPIIdempotency(t *testing.T) {
	t.Run("a repeated key replays the first answer and pays once", func(t *testing.T) {
		is := is.New(t)
		api := stripetest.NewAPI(t)
		api.PutInvoice("acct_1", stripetest.Invoice{ID: "in_1", AmountDue: 700})
		api.DeclinePays("acct_1", "in_1", "insufficient_funds")

		first := call(t, api, "POST", "/v1/invoices/in_1/pay", "acct_1", "k1", nil)
		again := call(t, api, "POST", "/v1/invoices/in_1/pay", "acct_1", "k1", nil)
		is.Equal(first.status, 402)
		is.Equal(again.status, first.status)                                     // the same status
		is.Equal(string(again.body), string(first.body))                         // byte for byte
		is.Equal(again.header.Get("Request-Id"), first.header.Get("Request-Id")) // the first request's
		is.Equal(again.header.Get("Idempotent-Replayed"), "true")
		is.Equal(first.header.Get("Idempotent-Replayed"), "")
		is.Equal(len(api.Charges("acct_1", "in_1")), 1) // one payment ran

		paid := call(t, api, "POST", "/v1/invoices/in_1/pay", "acct_1", "k2", nil)
		is.Equal(paid.status, 200) // a new key is a new attempt
		is.Equal(string(call(t, api, "POST", "/v1/invoices/in_1/pay", "acct_1", "k2", nil).body), string(paid.body))
		is.Equal(string(call(t, api, "POST", "/v1/invoices/in_1/pay", "acct_1", "k1", nil).body), string(first.body)) // still the decline
		is.Equal(len(api.Charges("acct_1", "in_1")), 2)

		var replayed []bool
		for _, r := range api.Requests() {
			replayed = append(replayed, r.Replayed)
		}
		is.Equal(replayed, []bool{false, true, false, true, true}) // the log tells replays apart
	})
	t.Run("a key reused for another request", func(t *testing.T) {
		is := is.New(t)
		api := stripetest.NewAPI(t)
		api.PutInvoice("acct_1", stripetest.Invoice{ID: "in_1", AmountDue: 700})
		api.PutInvoice("acct_1", stripetest.Invoice{ID: "in_2", AmountDue: 700})
		is.Equal(call(t, api, "POST", "/v1/invoices/in_1/pay", "acct_1", "k", nil).status, 200)

		for _, r := range []reply{
			call(t, api, "POST", "/v1/invoices/in_2/pay", "acct_1", "k", nil),                                 // another path
			call(t, api, "POST", "/v1/invoices/in_1/pay", "acct_1", "k", url.Values{"off_session": {"true"}}), // other parameters
		} {
			is.Equal(r.status, 400)
			is.Equal(r.errorField("type"), "idempotency_error")
		}
		inv, _ := api.Invoice("acct_1", "in_2")
		is.Equal(inv.Status, "open") // not paid

		is.Equal(call(t, api, "POST", "/v1/invoices/in_1/pay", "acct_2", "k", nil).status, 404) // keys are per account: acct_2 runs it
	})
	t.Run("keys on GET and DELETE do nothing, as on Stripe", func(t *testing.T) {
		is := is.New(t)
		api := stripetest.NewAPI(t)
		api.PutSubscription("acct_1", stripetest.Subscription{ID: "sub_1", Customer: "cus_1", Status: "past_due"})
		first := call(t, api, "DELETE", "/v1/subscriptions/sub_1", "acct_1", "c1", nil)
		is.Equal(first.status, 200)
		is.Equal(first.obj["status"], "canceled")
		again := call(t, api, "DELETE", "/v1/subscriptions/sub_1", "acct_1", "c1", nil)
		is.Equal(again.status, 404) // Stripe's answer for a canceled subscription, key or no key
		is.Equal(again.errorField("code"), "resource_missing")
		is.Equal(again.errorField("message"), "No such subscription: 'sub_1'")
		sub, _ := api.Subscription("acct_1", "sub_1")
		is.Equal(sub.Status, "canceled")
	})
	t.Run("answers before the endpoint are not kept", func(t *testing.T) {
		is := is.New(t)
		api := stripetest.NewAPI(t)
		r := call(t, api, "POST", "/v1/billing_portal/sessions", "acct_1", "s1", nil)
		is.Equal(r.status, 400) // customer is required
		is.Equal(r.errorField("code"), "parameter_missing")
		is.Equal(r.errorField("param"), "customer")
		r = call(t, api, "POST", "/v1/billing_portal/sessions", "acct_1", "s1", url.Values{"customer": {"cus_1"}})
		is.Equal(r.status, 200) // the same key, now with the parameter, runs
	})
}

func TestAPISubscriptions(t *testing.T) {
	is := is.New(t)
	api := stripetest.NewAPI(t)
	at := time.Unix(1_800_000_000, 0)
	api.SetClock(func() time.Time { return at })
	api.PutSubscription("acct_1", stripetest.Subscription{ID: "sub_1", Customer: "cus_1", Status: "active"})

	r := call(t, api, "DELETE", "/v1/subscriptions/sub_1", "acct_2", "", nil)
	is.Equal(r.status, 404) // not acct_2's
	r = call(t, api, "DELETE", "/v1/subscriptions/sub_1", "acct_1", "", nil)
	is.Equal(r.status, 200)
	is.Equal(r.obj["id"], "sub_1")
	is.Equal(r.obj["object"], "subscription")
	is.Equal(r.obj["status"], "canceled")
	is.Equal(r.obj["customer"], "cus_1")
	is.Equal(r.obj["canceled_at"], float64(at.Unix())) // on the API's clock
	is.Equal(r.obj["ended_at"], float64(at.Unix()))
	sub, ok := api.Subscription("acct_1", "sub_1")
	is.True(ok)
	is.Equal(sub.Status, "canceled")
	_, ok = api.Subscription("acct_2", "sub_1")
	is.True(!ok)
}

// TestAPIOnAnswer: a hook sees each request of its method and path once
// its effects are made and before the caller hears the answer, and no
// other request.
func TestAPIOnAnswer(t *testing.T) {
	is := is.New(t)
	api := stripetest.NewAPI(t)
	api.PutSubscription("acct_1", stripetest.Subscription{ID: "sub_1", Status: "active"})
	api.PutSubscription("acct_1", stripetest.Subscription{ID: "sub_2", Status: "active"})
	var seen []stripetest.Request
	api.OnAnswer(http.MethodDelete, "/v1/subscriptions/sub_1", func(r stripetest.Request) {
		seen = append(seen, r) // the caller waits for the answer: no race
		sub, _ := api.Subscription("acct_1", "sub_1")
		is.Equal(sub.Status, "canceled") // the effect is made before the hook runs
		reqs := api.Requests()
		is.Equal(reqs[len(reqs)-1].IdempotencyKey, r.IdempotencyKey) // and logged
	})

	call(t, api, "DELETE", "/v1/subscriptions/sub_2", "acct_1", "", nil) // another path
	call(t, api, "GET", "/v1/subscriptions/sub_1", "acct_1", "", nil)    // another method
	is.Equal(len(seen), 0)
	call(t, api, "DELETE", "/v1/subscriptions/sub_1", "acct_1", "key_1", nil)
	call(t, api, "DELETE", "/v1/subscriptions/sub_1", "acct_1", "key_1", nil)
	is.Equal(len(seen), 2)
	is.Equal(seen[0].Status, 200)             // with the status answered
	is.Equal(seen[0].IdempotencyKey, "key_1") // and the request's key
	is.Equal(seen[1].Status, 404)             // a DELETE is not replayed: the subscription is gone
	is.True(!seen[1].Replayed)
}

// stripeClient is stripe-go pointed at the API, with its retries off so
// that each call is one request.
func stripeClient(api *stripetest.API) *client.API {
	cfg := &stripego.BackendConfig{
		URL:               stripego.String(api.URL()),
		LeveledLogger:     &stripego.LeveledLogger{Level: stripego.LevelNull},
		MaxNetworkRetries: stripego.Int64(0),
		EnableTelemetry:   stripego.Bool(false),
	}
	return client.New(testKey, &stripego.Backends{
		API:     stripego.GetBackendWithConfig(stripego.APIBackend, cfg),
		Connect: stripego.GetBackendWithConfig(stripego.ConnectBackend, cfg),
		Uploads: stripego.GetBackendWithConfig(stripego.UploadsBackend, cfg),
	})
}

func TestAPIBillingPortalWithStripeGo(t *testing.T) {
	is := is.New(t)
	api := stripetest.NewAPI(t)
	sc := stripeClient(api)
	params := &stripego.BillingPortalSessionParams{Customer: stripego.String("cus_1"), ReturnURL: stripego.String("https://merchant.example/account")}
	params.SetStripeAccount("acct_1")
	s, err := sc.BillingPortalSessions.New(params)
	is.NoErr(err) // stripe-go decodes the session
	is.True(strings.HasPrefix(s.ID, "bps_"))
	is.Equal(s.Object, "billing_portal.session")
	is.Equal(s.Customer, "cus_1")
	is.Equal(s.ReturnURL, "https://merchant.example/account")
	is.True(strings.HasPrefix(s.URL, "https://billing.stripe.com/p/session/test_"))
	is.True(s.Created > 0)

	reqs := api.Requests()
	is.Equal(len(reqs), 1)
	is.Equal(reqs[0].Method, "POST")
	is.Equal(reqs[0].Path, "/v1/billing_portal/sessions")
	is.Equal(reqs[0].Account, "acct_1")
	is.Equal(reqs[0].Form.Get("customer"), "cus_1") // the request, recorded
	is.Equal(reqs[0].Form.Get("return_url"), "https://merchant.example/account")
	is.True(reqs[0].IdempotencyKey != "") // stripe-go keys every POST
	is.Equal(reqs[0].Status, 200)

	is.Equal(api.PortalSessions("acct_1"), []stripetest.PortalSession{{ID: s.ID, Customer: "cus_1",
		ReturnURL: "https://merchant.example/account", URL: s.URL}}) // the session made, as answered
	is.Equal(len(api.PortalSessions("acct_2")), 0) // on its account only

	// A replay of the request answers the same session and makes none.
	replay := call(t, api, "POST", "/v1/billing_portal/sessions", "acct_1", reqs[0].IdempotencyKey,
		url.Values{"customer": {"cus_1"}, "return_url": {"https://merchant.example/account"}})
	is.Equal(replay.status, 200)
	is.Equal(replay.obj["url"], s.URL)
	is.Equal(len(api.PortalSessions("acct_1")), 1)
}

// addEvents stores n events on acct_1, one a minute from start: types
// alternate between invoice.payment_failed and charge.failed, every third
// undelivered. It returns their ids, oldest first.
func addEvents(api *stripetest.API, start time.Time, n int) []string {
	var ids []string
	for i := range n {
		typ := "invoice.payment_failed"
		if i%2 == 1 {
			typ = "charge.failed"
		}
		id := fmt.Sprintf("evt_%03d", i)
		ids = append(ids, id)
		api.AddEvent("acct_1", stripetest.Event{ID: id, Type: typ, Account: "acct_1", Created: start.Add(time.Duration(i) * time.Minute), Object: stripetest.Invoice{}}.JSON(), i%3 != 0)
	}
	return ids
}

func TestAPIEventsWithStripeGo(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	api := stripetest.NewAPI(t)
	ids := addEvents(api, start, 30)
	api.AddEvent("acct_2", stripetest.Event{ID: "evt_other", Type: "charge.failed", Account: "acct_2", Created: start.Add(time.Hour)}.JSON(), false)
	sc := stripeClient(api)

	// list is what stripe-go's iterator yields, following has_more and
	// starting_after page by page.
	list := func(p *stripego.EventListParams) ([]string, error) {
		p.SetStripeAccount("acct_1")
		it := sc.Events.List(p)
		var got []string
		for it.Next() {
			got = append(got, it.Event().ID)
		}
		return got, it.Err()
	}
	newestFirst := func(keep func(i int) bool) []string {
		var out []string
		for i := len(ids) - 1; i >= 0; i-- {
			if keep(i) {
				out = append(out, ids[i])
			}
		}
		return out
	}

	t.Run("everything, newest first, in pages", func(t *testing.T) {
		is := is.New(t)
		before := len(api.Requests())
		p := &stripego.EventListParams{}
		p.Limit = stripego.Int64(7)
		got, err := list(p)
		is.NoErr(err)
		is.Equal(got, newestFirst(func(int) bool { return true })) // not acct_2's
		is.Equal(len(api.Requests())-before, 5)                    // 30 events, 7 a page
	})
	t.Run("the recovery query", func(t *testing.T) {
		is := is.New(t)
		p := &stripego.EventListParams{
			Types:           stripego.StringSlice([]string{"invoice.payment_failed"}),
			CreatedRange:    &stripego.RangeQueryParams{GreaterThanOrEqual: start.Add(10 * time.Minute).Unix()},
			DeliverySuccess: stripego.Bool(false),
		}
		p.Limit = stripego.Int64(2)
		got, err := list(p)
		is.NoErr(err)
		is.Equal(got, newestFirst(func(i int) bool { return i%2 == 0 && i >= 10 && i%3 == 0 })) // undelivered invoice failures since minute 10
		reqs := api.Requests()
		last := reqs[len(reqs)-1]
		is.Equal(last.Form["types"], []string{"invoice.payment_failed"}) // types[0] recorded as types
		is.Equal(last.Form.Get("created[gte]"), fmt.Sprint(start.Add(10*time.Minute).Unix()))
		is.Equal(last.Form.Get("delivery_success"), "false")
		is.Equal(last.Form.Get("starting_after"), got[len(got)-2]) // the iterator paged
	})
	t.Run("several types, a wildcard, delivered ones", func(t *testing.T) {
		is := is.New(t)
		p := &stripego.EventListParams{Types: stripego.StringSlice([]string{"charge.failed", "invoice.paid"})}
		got, err := list(p)
		is.NoErr(err)
		is.Equal(got, newestFirst(func(i int) bool { return i%2 == 1 }))
		got, err = list(&stripego.EventListParams{Type: stripego.String("invoice.*"), DeliverySuccess: stripego.Bool(true)})
		is.NoErr(err)
		is.Equal(got, newestFirst(func(i int) bool { return i%2 == 0 && i%3 != 0 }))
	})
}

func TestAPIEventsPaging(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	api := stripetest.NewAPI(t)
	ids := addEvents(api, start, 12)
	// Two more in the same second as the newest: the later one added is
	// the newer.
	api.AddEvent("acct_1", stripetest.Event{ID: "evt_same_a", Type: "charge.failed", Created: start.Add(11 * time.Minute)}.JSON(), true)
	api.AddEvent("acct_1", stripetest.Event{ID: "evt_same_b", Type: "charge.failed", Created: start.Add(11 * time.Minute)}.JSON(), true)

	pageIDs := func(r reply) []string {
		var out []string
		for _, e := range r.obj["data"].([]any) {
			out = append(out, e.(map[string]any)["id"].(string))
		}
		return out
	}
	is := is.New(t)
	r := call(t, api, "GET", "/v1/events", "acct_1", "", url.Values{"limit": {"3"}})
	is.Equal(r.status, 200)
	is.Equal(r.obj["object"], "list")
	is.Equal(r.obj["url"], "/v1/events")
	is.Equal(r.obj["has_more"], true)
	is.Equal(pageIDs(r), []string{"evt_same_b", "evt_same_a", ids[11]})
	ev := r.obj["data"].([]any)[0].(map[string]any)
	is.Equal(ev["object"], "event") // whole events, as added
	is.Equal(ev["type"], "charge.failed")

	r = call(t, api, "GET", "/v1/events", "acct_1", "", url.Values{"limit": {"3"}, "starting_after": {ids[2]}})
	is.Equal(pageIDs(r), []string{ids[1], ids[0]})
	is.Equal(r.obj["has_more"], false) // the last page

	r = call(t, api, "GET", "/v1/events", "acct_1", "", url.Values{"limit": {"2"}, "ending_before": {ids[5]}})
	is.Equal(pageIDs(r), []string{ids[7], ids[6]}) // the newer ones next to the cursor
	is.Equal(r.obj["has_more"], true)

	r = call(t, api, "GET", "/v1/events", "acct_1", "", url.Values{"created[lt]": {fmt.Sprint(start.Add(2 * time.Minute).Unix())}})
	is.Equal(pageIDs(r), []string{ids[1], ids[0]})
	r = call(t, api, "GET", "/v1/events", "acct_1", "", url.Values{"created": {fmt.Sprint(start.Add(4 * time.Minute).Unix())}})
	is.Equal(pageIDs(r), []string{ids[4]})

	r = call(t, api, "GET", "/v1/events", "acct_1", "", nil)
	is.Equal(len(pageIDs(r)), 10) // Stripe's default limit
	r = call(t, api, "GET", "/v1/events", "acct_9", "", nil)
	is.Equal(len(pageIDs(r)), 0) // an account without events
	is.Equal(r.obj["has_more"], false)

	for _, q := range []url.Values{
		{"limit": {"101"}},
		{"limit": {"0"}},
		{"limit": {"ten"}},
		{"delivery_success": {"maybe"}},
		{"created[gte]": {"yesterday"}},
		{"type": {"charge.failed"}, "types[0]": {"charge.failed"}},
		{"starting_after": {ids[1]}, "ending_before": {ids[3]}},
	} {
		r := call(t, api, "GET", "/v1/events", "acct_1", "", q)
		is.Equal(r.status, 400) // as Stripe refuses it
		is.Equal(r.errorField("type"), "invalid_request_error")
	}
	r = call(t, api, "GET", "/v1/events", "acct_1", "", url.Values{"starting_after": {"evt_gone"}})
	is.Equal(r.status, 404)
	is.Equal(r.errorField("code"), "resource_missing")
	is.Equal(r.errorField("param"), "starting_after")
}

func TestAPIFailNext(t *testing.T) {
	t.Run("429: turned away before the endpoint, a retry with the key runs", func(t *testing.T) {
		is := is.New(t)
		api := stripetest.NewAPI(t)
		api.PutInvoice("acct_1", stripetest.Invoice{ID: "in_1", AmountDue: 100})
		api.FailNext("POST", "/v1/invoices/in_1/pay", 429, 2)
		for range 2 {
			r := call(t, api, "POST", "/v1/invoices/in_1/pay", "acct_1", "k", nil)
			is.Equal(r.status, 429)
			is.Equal(r.errorField("type"), "invalid_request_error")
			is.Equal(r.errorField("code"), "rate_limit")
		}
		is.Equal(call(t, api, "GET", "/v1/invoices/in_1", "acct_1", "", nil).status, 200) // another route is not affected
		is.Equal(len(api.Charges("acct_1", "in_1")), 0)                                   // no effect
		r := call(t, api, "POST", "/v1/invoices/in_1/pay", "acct_1", "k", nil)
		is.Equal(r.status, 200) // the third runs, with the same key
		is.Equal(len(api.Charges("acct_1", "in_1")), 1)
	})
	t.Run("500: kept under the key, as Stripe documents", func(t *testing.T) {
		is := is.New(t)
		api := stripetest.NewAPI(t)
		api.PutInvoice("acct_1", stripetest.Invoice{ID: "in_1", AmountDue: 100})
		api.FailNext("POST", "/v1/invoices/in_1/pay", 500, 1)
		r := call(t, api, "POST", "/v1/invoices/in_1/pay", "acct_1", "k1", nil)
		is.Equal(r.status, 500)
		is.Equal(r.errorField("type"), "api_error")
		is.Equal(call(t, api, "POST", "/v1/invoices/in_1/pay", "acct_1", "k1", nil).status, 500) // replayed
		is.Equal(len(api.Charges("acct_1", "in_1")), 0)
		is.Equal(call(t, api, "POST", "/v1/invoices/in_1/pay", "acct_1", "k2", nil).status, 200) // a new key runs
	})
	t.Run("409 lock_timeout and a GET", func(t *testing.T) {
		is := is.New(t)
		api := stripetest.NewAPI(t)
		api.PutInvoice("acct_1", stripetest.Invoice{ID: "in_1"})
		api.FailNext("GET", "/v1/invoices/in_1", 409, 1)
		api.FailNext("GET", "/v1/invoices/in_1", 503, 1)
		r := call(t, api, "GET", "/v1/invoices/in_1", "acct_1", "", nil)
		is.Equal(r.status, 409)
		is.Equal(r.errorField("code"), "lock_timeout")
		is.Equal(call(t, api, "GET", "/v1/invoices/in_1", "acct_1", "", nil).status, 503)
		is.Equal(call(t, api, "GET", "/v1/invoices/in_1", "acct_1", "", nil).status, 200)
	})
}

func TestAPIAuthenticationAndRoutes(t *testing.T) {
	is := is.New(t)
	api := stripetest.NewAPI(t)
	api.PutInvoice("acct_1", stripetest.Invoice{ID: "in_1"})

	r := call(t, api, "GET", "/v1/invoices/in_1", "acct_1", "", nil, "Authorization", "")
	is.Equal(r.status, 401)
	is.True(strings.HasPrefix(r.errorField("message").(string), "You did not provide an API key."))
	r = call(t, api, "GET", "/v1/invoices/in_1", "acct_1", "", nil, "Authorization", "Bearer pk_test_0123456789abcdef")
	is.Equal(r.status, 401) // a publishable key is not a secret key
	is.Equal(r.errorField("message"), "Invalid API Key provided: pk_test_****cdef")
	is.Equal(r.errorField("type"), "invalid_request_error")
	r = call(t, api, "GET", "/v1/invoices/in_1", "acct_1", "", nil, "Authorization", "Basic c2tfdGVzdF8xOg==")
	is.Equal(r.status, 401)
	is.Equal(call(t, api, "GET", "/v1/invoices/in_1", "acct_1", "", nil, "Authorization", "Bearer rk_test_1").status, 200) // a restricted key

	for _, route := range [][2]string{
		{"DELETE", "/v1/customers/cus_1"},
		{"POST", "/v1/events"},
		{"GET", "/v1/invoices/"},
		{"GET", "/v1/invoices/in_1/lines/extra"},
		{"PUT", "/v1/invoices/in_1"},
		{"GET", "/v2/core/events"},
	} {
		r := call(t, api, route[0], route[1], "acct_1", "", nil)
		is.Equal(r.status, 404)
		is.Equal(r.errorField("type"), "invalid_request_error")
		is.Equal(r.errorField("message"), "Unrecognized request URL ("+route[0]+": "+route[1]+"). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.")
	}
	for _, req := range api.Requests() {
		is.True(req.Status != 0) // every request is logged with its answer
	}
}

// TestAPIConcurrentUse pays from many goroutines at once, each invoice
// twice with one key, while the log is read: one payment per invoice.
// Run with -race.
func TestAPIConcurrentUse(t *testing.T) {
	is := is.New(t)
	api := stripetest.NewAPI(t)
	const n = 20
	for i := range n {
		api.PutInvoice("acct_1", stripetest.Invoice{ID: fmt.Sprintf("in_%d", i), AmountDue: 100})
	}
	statuses := make(chan int, 2*n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 2 * n {
		wg.Go(func() {
			<-start
			req, _ := http.NewRequest("POST", api.URL()+fmt.Sprintf("/v1/invoices/in_%d/pay", i%n), bytes.NewReader(nil))
			req.Header.Set("Authorization", "Bearer "+testKey)
			req.Header.Set("Stripe-Account", "acct_1")
			req.Header.Set("Idempotency-Key", fmt.Sprintf("key-%d", i%n))
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				statuses <- 0
				return
			}
			_ = res.Body.Close()
			statuses <- res.StatusCode
		})
	}
	wg.Go(func() {
		<-start
		for range 50 {
			_ = api.Requests()
		}
	})
	close(start)
	wg.Wait()
	close(statuses)
	for s := range statuses {
		is.Equal(s, 200) // every pay answered: the first runs, the second replays it
	}
	for i := range n {
		is.Equal(len(api.Charges("acct_1", fmt.Sprintf("in_%d", i))), 1) // one payment each
	}
	replays := 0
	for _, r := range api.Requests() {
		if r.Replayed {
			replays++
		}
	}
	is.Equal(replays, n)
	is.True(slices.ContainsFunc(api.Requests(), func(r stripetest.Request) bool { return r.Path == "/v1/invoices/in_0/pay" }))
}

// TestAPIHold: a held endpoint answers no sooner than its hold, and the
// log says who asked and when, for tests about what overlaps what.
func TestAPIHold(t *testing.T) {
	is := is.New(t)
	api := stripetest.NewAPI(t)
	const hold = 50 * time.Millisecond
	api.Hold("GET", "/v1/events", hold)

	held := call(t, api, "GET", "/v1/events", "acct_1", "", nil)
	other := call(t, api, "GET", "/v1/customers/cus_1", "acct_1", "", nil)

	is.Equal(held.status, 200)  // a held request is answered
	is.Equal(other.status, 404) // and others as ever
	log := api.Requests()
	is.Equal(len(log), 2)
	is.Equal(log[0].Key, testKey) // the caller's key
	is.True(log[0].Answered.Sub(log[0].Received) >= hold)
	is.True(!log[1].Received.Before(log[0].Answered)) // the second came after the first was answered
	is.True(!log[1].Answered.Before(log[1].Received))
}
