package stripe_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/matryer/is"

	recoupstripe "github.com/recoupdev/recoup/adapters/stripe"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/stripetest"
	"github.com/recoupdev/recoup/ports"
)

const apiKey = "sk_test_recoup0123456789"

// TestGatewayAgainstStripeMock sends the real request shapes to stripe-mock,
// which validates them against Stripe's OpenAPI spec of 2023-10-16.
func TestGatewayAgainstStripeMock(t *testing.T) {
	base := stripetest.StartMock(t)
	g := recoupstripe.NewGateway(recoupstripe.GatewayConfig{APIKey: apiKey, APIBase: base, Timeout: 10 * time.Second})
	ctx := context.Background()

	t.Run("Invoice", func(t *testing.T) {
		is := is.New(t)
		inv, err := g.Invoice(ctx, "acct_1", "in_123")
		is.NoErr(err)              // stripe-mock accepts the request
		is.Equal(inv.ID, "in_123") // and answers with the invoice asked for
		is.True(inv.Status != "")  // decoded from Stripe's invoice shape
		is.True(inv.Currency != "")
	})
	t.Run("PayInvoice", func(t *testing.T) {
		is := is.New(t)
		is.NoErr(g.PayInvoice(ctx, "acct_1", "in_123", "task-1:attempt-1")) // stripe-mock accepts the request
	})
	t.Run("PayInvoice repeated with the same key", func(t *testing.T) {
		is := is.New(t)
		is.NoErr(g.PayInvoice(ctx, "acct_1", "in_123", "task-1:attempt-1")) // a repeat is accepted
	})
	t.Run("the recovery engine's calls", func(t *testing.T) {
		is := is.New(t)
		is.NoErr(g.CancelSubscription(ctx, "acct_1", "sub_123", "task-2:end")) // stripe-mock accepts the request
		is.NoErr(g.MarkUncollectible(ctx, "acct_1", "in_123", "task-3:end"))   // and this one
		_, err := g.Customer(ctx, "acct_1", "cus_123")                         // and this one
		is.NoErr(err)
		url, err := g.PortalSession(ctx, "acct_1", "cus_123", "https://invoice.stripe.com/i/x")
		is.NoErr(err)      // and the portal session
		is.True(url != "") // which has a URL
		page, err := g.Events(ctx, "acct_1", ports.EventQuery{Types: []string{"invoice.payment_failed", "invoice.paid"},
			Since: time.Now().Add(-72 * time.Hour), Undelivered: true, Limit: 100})
		is.NoErr(err)                   // the events list, with every filter reconciliation sends
		is.True(len(page.Payloads) > 0) // stripe-mock answers a page of events
		is.True(page.LastID != "")      // whose last id pages on
		_, err = recoupstripe.Decoder{}.DecodeEvent(page.Payloads[0])
		is.NoErr(err) // in the shape the decoder reads
	})
	t.Run("a key stripe-mock refuses", func(t *testing.T) {
		is := is.New(t)
		const badKey = "not-a-stripe-key"
		g := recoupstripe.NewGateway(recoupstripe.GatewayConfig{APIKey: badKey, APIBase: base})
		err := g.PayInvoice(ctx, "acct_1", "in_123", "k")
		kind, _ := domain.PaymentErrorKindOf(err)
		is.Equal(kind, domain.PaymentPermanent)         // a wrong key is not retried
		is.True(!strings.Contains(err.Error(), badKey)) // and never shown, though stripe-mock echoes it
	})
}

// request is what the scripted server saw of one request.
type request struct {
	method, path, account, idempotencyKey, auth, version string
}

// scriptedStripe is an httptest server answering like Stripe would for each
// invoice id, and recording what it saw.
type scriptedStripe struct {
	*httptest.Server
	release chan struct{} // closed at cleanup: lets a held ("slow") request finish
	mu      sync.Mutex
	seen    []request
}

type answer struct {
	status int
	body   string
	slow   bool // hold the answer until the client gives up
}

func cardError(declineCode, code, msg string) string {
	dc := ""
	if declineCode != "" {
		dc = `"decline_code": "` + declineCode + `", `
	}
	return `{"error": {"charge": "ch_1", "code": "` + code + `", ` + dc + `"doc_url": "https://stripe.com/docs/error-codes/` + code + `", "message": "` + msg + `", "request_log_url": "https://dashboard.stripe.com/test/logs/req_1", "type": "card_error"}}`
}

func apiError(typ, code, msg string) string {
	c := ""
	if code != "" {
		c = `"code": "` + code + `", `
	}
	return `{"error": {` + c + `"message": "` + msg + `", "type": "` + typ + `"}}`
}

var script = map[string]answer{
	"in_stolen":      {402, cardError("stolen_card", "card_declined", "Your card was declined."), false},
	"in_lost":        {402, cardError("lost_card", "card_declined", "Your card was declined."), false},
	"in_fraudulent":  {402, cardError("fraudulent", "card_declined", "Your card was declined."), false},
	"in_donothonor":  {402, cardError("do_not_honor", "card_declined", "Your card was declined."), false},
	"in_expired":     {402, cardError("", "expired_card", "Your card has expired."), false},
	"in_incorrect":   {402, cardError("", "incorrect_number", "Your card number is incorrect."), false},
	"in_sca":         {402, cardError("authentication_required", "card_declined", "Your card was declined. This transaction requires authentication."), false},
	"in_funds":       {402, cardError("insufficient_funds", "card_declined", "Your card has insufficient funds."), false},
	"in_generic":     {402, cardError("generic_decline", "card_declined", "Your card was declined."), false},
	"in_velocity":    {402, cardError("card_velocity_exceeded", "card_declined", "Your card was declined."), false},
	"in_later":       {402, cardError("try_again_later", "card_declined", "Your card was declined."), false},
	"in_processing":  {402, cardError("", "processing_error", "An error occurred while processing your card. Try again in a little bit."), false},
	"in_500":         {500, apiError("api_error", "", "An unknown error occurred"), false},
	"in_503html":     {503, "<html><body>Service Unavailable</body></html>", false},
	"in_429":         {429, apiError("invalid_request_error", "rate_limit", "Too many requests made to the API too quickly"), false},
	"in_lock":        {409, apiError("invalid_request_error", "lock_timeout", "This object cannot be accessed right now because another API request or Stripe process is currently accessing it."), false},
	"in_404":         {404, apiError("invalid_request_error", "resource_missing", "No such invoice: 'in_404'"), false},
	"in_400":         {400, apiError("invalid_request_error", "invoice_not_editable", "Invoice is already paid"), false},
	"in_idempotency": {400, apiError("idempotency_error", "", "Keys for idempotent requests can only be used with the same parameters they were first used with."), false},
	"in_401":         {401, apiError("invalid_request_error", "", "Invalid API Key provided: sk_test_****6789"), false},
	"in_slow":        {200, `{"id": "in_slow", "object": "invoice", "status": "paid"}`, true},
	"in_paid":        {200, `{"id": "in_paid", "object": "invoice", "status": "paid", "amount_due": 2000, "amount_paid": 2000, "currency": "usd", "customer": "cus_1", "customer_email": "jenny@example.com", "hosted_invoice_url": "https://invoice.stripe.com/i/in_paid", "attempt_count": 2, "next_payment_attempt": null, "subscription": "sub_1", "charge": "ch_1"}`, false},
	"in_garbage_200": {200, `not json`, false},
}

func newScriptedStripe(t *testing.T) *scriptedStripe {
	s := &scriptedStripe{release: make(chan struct{})}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.seen = append(s.seen, request{r.Method, r.URL.Path, r.Header.Get("Stripe-Account"), r.Header.Get("Idempotency-Key"), r.Header.Get("Authorization"), r.Header.Get("Stripe-Version")})
		s.mu.Unlock()
		id := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v1/invoices/"), "/pay")
		a, ok := script[id]
		if !ok {
			a = answer{404, apiError("invalid_request_error", "resource_missing", "No such invoice"), false}
		}
		if a.slow {
			select {
			case <-r.Context().Done():
			case <-s.release:
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Request-Id", "req_1")
		w.WriteHeader(a.status)
		_, _ = w.Write([]byte(a.body))
	}))
	t.Cleanup(func() {
		close(s.release)
		s.Close()
	})
	return s
}

func (s *scriptedStripe) requests() []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]request(nil), s.seen...)
}

func TestGatewayClassifiesFailures(t *testing.T) {
	srv := newScriptedStripe(t)
	g := recoupstripe.NewGateway(recoupstripe.GatewayConfig{APIKey: apiKey, APIBase: srv.URL, Timeout: 200 * time.Millisecond})
	cases := []struct {
		invoice  string
		kind     domain.PaymentErrorKind
		code     string
		notFound bool
	}{
		{"in_stolen", domain.PaymentHardDecline, "stolen_card", false},
		{"in_lost", domain.PaymentHardDecline, "lost_card", false},
		{"in_fraudulent", domain.PaymentHardDecline, "fraudulent", false},
		{"in_donothonor", domain.PaymentHardDecline, "do_not_honor", false},
		{"in_expired", domain.PaymentHardDecline, "expired_card", false},
		{"in_incorrect", domain.PaymentHardDecline, "incorrect_number", false},
		{"in_sca", domain.PaymentHardDecline, "authentication_required", false},
		{"in_funds", domain.PaymentSoftDecline, "insufficient_funds", false},
		{"in_generic", domain.PaymentSoftDecline, "generic_decline", false},
		{"in_velocity", domain.PaymentSoftDecline, "card_velocity_exceeded", false},
		{"in_later", domain.PaymentSoftDecline, "try_again_later", false},
		{"in_processing", domain.PaymentSoftDecline, "processing_error", false},
		{"in_500", domain.PaymentTransient, "", false},
		{"in_503html", domain.PaymentTransient, "", false},
		{"in_429", domain.PaymentTransient, "rate_limit", false},
		{"in_lock", domain.PaymentTransient, "lock_timeout", false},
		{"in_slow", domain.PaymentTransient, "", false},
		{"in_garbage_200", domain.PaymentTransient, "", false},
		{"in_404", domain.PaymentPermanent, "resource_missing", true},
		{"in_400", domain.PaymentPermanent, "invoice_not_editable", false},
		{"in_idempotency", domain.PaymentPermanent, "", false},
		{"in_401", domain.PaymentPermanent, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.invoice, func(t *testing.T) {
			is := is.New(t)
			before := len(srv.requests())
			err := g.PayInvoice(context.Background(), "acct_merchant", tc.invoice, "idem-"+tc.invoice)
			var pe *domain.PaymentError
			is.True(errors.As(err, &pe)) // a PaymentError
			is.Equal(pe.Kind, tc.kind)   // of the right kind
			is.Equal(pe.Code, tc.code)   // with Stripe's code
			is.True(pe.Message != "")    // and a message for last_error
			is.Equal(errors.Is(err, domain.ErrNotFound), tc.notFound)
			is.True(!strings.Contains(err.Error(), apiKey)) // never the API key
			kind, ok := domain.PaymentErrorKindOf(err)
			is.True(ok)
			is.Equal(kind, tc.kind)
			is.Equal(len(srv.requests())-before, 1) // exactly one request: stripe-go's retries are off
		})
	}
}

func TestGatewaySendsAccountAndIdempotencyKey(t *testing.T) {
	is := is.New(t)
	srv := newScriptedStripe(t)
	g := recoupstripe.NewGateway(recoupstripe.GatewayConfig{APIKey: apiKey, APIBase: srv.URL + "/"})

	is.NoErr(g.PayInvoice(context.Background(), "acct_merchant", "in_paid", "6b1f…:3"))
	inv, err := g.Invoice(context.Background(), "acct_merchant", "in_paid")
	is.NoErr(err)

	seen := srv.requests()
	is.Equal(len(seen), 2)
	pay, get := seen[0], seen[1]
	is.Equal(pay.method, http.MethodPost)
	is.Equal(pay.path, "/v1/invoices/in_paid/pay")
	is.Equal(pay.account, "acct_merchant")  // on the merchant's connected account
	is.Equal(pay.idempotencyKey, "6b1f…:3") // with the caller's idempotency key
	is.Equal(pay.auth, "Bearer "+apiKey)    // with the platform key
	is.Equal(pay.version, "2023-10-16")     // at the pinned API version
	is.Equal(get.method, http.MethodGet)
	is.Equal(get.path, "/v1/invoices/in_paid")
	is.Equal(get.account, "acct_merchant")
	is.Equal(get.idempotencyKey, "") // a read needs none

	is.Equal(inv, domain.Invoice{
		ID: "in_paid", Status: "paid", CustomerID: "cus_1", CustomerEmail: "jenny@example.com", SubscriptionID: "sub_1", ChargeID: "ch_1",
		AmountDue: 2000, AmountPaid: 2000, Currency: "usd", HostedInvoiceURL: "https://invoice.stripe.com/i/in_paid", AttemptCount: 2,
	})
}

func TestGatewayWithoutAPIKey(t *testing.T) {
	is := is.New(t)
	srv := newScriptedStripe(t)
	g := recoupstripe.NewGateway(recoupstripe.GatewayConfig{APIBase: srv.URL})

	err := g.PayInvoice(context.Background(), "acct_1", "in_paid", "k")
	kind, ok := domain.PaymentErrorKindOf(err)
	is.True(ok)
	is.Equal(kind, domain.PaymentPermanent)                                                                 // nothing to retry
	is.True(strings.Contains(err.Error(), "payment retries are disabled: no Stripe API key is configured")) // says why
	_, err = g.Invoice(context.Background(), "acct_1", "in_paid")
	kind, _ = domain.PaymentErrorKindOf(err)
	is.Equal(kind, domain.PaymentPermanent)
	is.Equal(len(srv.requests()), 0) // nothing was sent
}

func TestGatewayTransportFailures(t *testing.T) {
	t.Run("connection refused", func(t *testing.T) {
		is := is.New(t)
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		g := recoupstripe.NewGateway(recoupstripe.GatewayConfig{APIKey: apiKey, APIBase: url})
		err := g.PayInvoice(context.Background(), "acct_1", "in_1", "k")
		kind, ok := domain.PaymentErrorKindOf(err)
		is.True(ok)
		is.Equal(kind, domain.PaymentTransient) // try again later
		var pe *domain.PaymentError
		is.True(errors.As(err, &pe))
		is.Equal(pe.MerchantMessage(), "payment provider unreachable") // what a merchant reads
		is.True(!strings.Contains(pe.Message, "127.0.0.1"))            // never the address
		is.True(strings.Contains(err.Error(), "connection refused"))   // which the log keeps
	})
	t.Run("context cancelled", func(t *testing.T) {
		is := is.New(t)
		srv := newScriptedStripe(t)
		g := recoupstripe.NewGateway(recoupstripe.GatewayConfig{APIKey: apiKey, APIBase: srv.URL})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := g.PayInvoice(ctx, "acct_1", "in_slow", "k")
		kind, _ := domain.PaymentErrorKindOf(err)
		is.Equal(kind, domain.PaymentTransient)   // the worker stopping is no verdict on the payment
		is.True(errors.Is(err, context.Canceled)) // and the cause shows through
	})
	t.Run("missing arguments", func(t *testing.T) {
		is := is.New(t)
		g := recoupstripe.NewGateway(recoupstripe.GatewayConfig{APIKey: apiKey, APIBase: "http://127.0.0.1:1"})
		for _, err := range []error{
			g.PayInvoice(context.Background(), "", "in_1", "k"),
			g.PayInvoice(context.Background(), "acct_1", "", "k"),
			g.PayInvoice(context.Background(), "acct_1", "in_1", ""),
		} {
			kind, _ := domain.PaymentErrorKindOf(err)
			is.Equal(kind, domain.PaymentPermanent)    // a caller's mistake
			is.True(errors.Is(err, domain.ErrInvalid)) // is invalid input
		}
	})
}

func TestIsHardDecline(t *testing.T) {
	is := is.New(t)
	for _, c := range []string{"stolen_card", "lost_card", "fraudulent", "pickup_card", "restricted_card", "do_not_honor", "invalid_account",
		"card_not_supported", "currency_not_supported", "incorrect_number", "expired_card", "revocation_of_authorization", "security_violation",
		"transaction_not_allowed", "invalid_card_type"} {
		is.True(recoupstripe.IsHardDecline(c)) // hard
	}
	for _, c := range []string{"insufficient_funds", "generic_decline", "card_velocity_exceeded", "try_again_later", "processing_error", "issuer_not_available", ""} {
		is.True(!recoupstripe.IsHardDecline(c)) // soft
	}
}
