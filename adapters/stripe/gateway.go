package stripe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	stripego "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// DefaultTimeout bounds one Stripe request when GatewayConfig sets neither
// Timeout nor HTTPClient.
const DefaultTimeout = 30 * time.Second

// GatewayConfig configures a Gateway.
type GatewayConfig struct {
	// APIKey is the platform's secret key (STRIPE_API_KEY). Empty: every
	// call fails with a Permanent PaymentError, and nothing is sent.
	APIKey string
	// APIBase replaces https://api.stripe.com (STRIPE_API_BASE; tests point
	// it at stripe-mock).
	APIBase string
	// HTTPClient sends the requests; nil means a default client. It is
	// copied, not changed.
	HTTPClient *http.Client
	// Timeout bounds one request when HTTPClient has no timeout of its own;
	// 0 means DefaultTimeout. A request never waits without bound.
	Timeout time.Duration
}

// Gateway is the PaymentGateway on the Stripe API. It is safe for
// concurrent use.
type Gateway struct {
	api *client.API // nil when there is no API key
	key string      // only to scrub it from error messages
}

var _ ports.PaymentGateway = (*Gateway)(nil)

// NewGateway returns a Gateway with its own stripe-go backend: stripe-go's
// retries are off (MaxNetworkRetries 0) because the worker owns retrying,
// with its backoff and its attempt count, and its logging is off because
// every failure comes back to the worker as an error.
func NewGateway(cfg GatewayConfig) *Gateway {
	if cfg.APIKey == "" {
		return &Gateway{}
	}
	hc := &http.Client{}
	if cfg.HTTPClient != nil {
		c := *cfg.HTTPClient // a copy: its Transport is wrapped below
		hc = &c
	}
	if hc.Timeout == 0 {
		hc.Timeout = cfg.Timeout
	}
	if hc.Timeout == 0 {
		hc.Timeout = DefaultTimeout
	}
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	hc.Transport = statusRecorder{base: base}

	backend := func(typ stripego.SupportedBackend, url string) stripego.Backend {
		cfg := &stripego.BackendConfig{
			HTTPClient:        hc,
			LeveledLogger:     &stripego.LeveledLogger{Level: stripego.LevelNull},
			MaxNetworkRetries: stripego.Int64(0),
			EnableTelemetry:   stripego.Bool(false),
		}
		if url != "" {
			cfg.URL = stripego.String(url)
		}
		return stripego.GetBackendWithConfig(typ, cfg)
	}
	apiBase := strings.TrimRight(cfg.APIBase, "/")
	return &Gateway{key: cfg.APIKey, api: client.New(cfg.APIKey, &stripego.Backends{
		API:     backend(stripego.APIBackend, apiBase),
		Connect: backend(stripego.ConnectBackend, ""),
		Uploads: backend(stripego.UploadsBackend, ""),
	})}
}

// errNoAPIKey is what every call answers without an API key.
var errNoAPIKey = &domain.PaymentError{Kind: domain.PaymentPermanent, Message: "payment retries are disabled: no Stripe API key is configured"}

// Invoice re-reads an invoice on the connected account. An unknown invoice
// is a Permanent PaymentError that wraps domain.ErrNotFound.
func (g *Gateway) Invoice(ctx context.Context, account, invoiceID string) (domain.Invoice, error) {
	if err := g.check(account, invoiceID); err != nil {
		return domain.Invoice{}, err
	}
	ctx, status := withStatus(ctx)
	params := &stripego.InvoiceParams{}
	params.Context = ctx
	params.SetStripeAccount(account)
	// The latest charge and the payment intent tell why the last payment
	// failed, in the same request.
	params.AddExpand("charge")
	params.AddExpand("payment_intent")
	inv, err := g.api.Invoices.Get(invoiceID, params)
	if err != nil {
		return domain.Invoice{}, g.classify(ctx, err, *status, "read invoice "+invoiceID)
	}
	d := invoiceFromStripe(inv)
	d.DeclineCode, d.DeclinedAt = lastDecline(inv)
	return d, nil
}

// Customer reads a customer of the connected account.
func (g *Gateway) Customer(ctx context.Context, account, customerID string) (domain.Customer, error) {
	if err := g.check(account, customerID); err != nil {
		return domain.Customer{}, err
	}
	ctx, status := withStatus(ctx)
	params := &stripego.CustomerParams{}
	params.Context = ctx
	params.SetStripeAccount(account)
	c, err := g.api.Customers.Get(customerID, params)
	if err != nil {
		return domain.Customer{}, g.classify(ctx, err, *status, "read customer "+customerID)
	}
	return domain.Customer{ID: c.ID, Email: freeText(c.Email)}, nil
}

// PortalSession creates a customer portal session on the connected account.
func (g *Gateway) PortalSession(ctx context.Context, account, customerID, returnURL string) (string, error) {
	if err := g.check(account, customerID); err != nil {
		return "", err
	}
	ctx, status := withStatus(ctx)
	params := &stripego.BillingPortalSessionParams{Customer: stripego.String(customerID)}
	if returnURL != "" {
		params.ReturnURL = stripego.String(returnURL)
	}
	params.Context = ctx
	params.SetStripeAccount(account)
	sess, err := g.api.BillingPortalSessions.New(params)
	if err != nil {
		return "", g.classify(ctx, err, *status, "create portal session for "+customerID)
	}
	return sess.URL, nil
}

// Events lists one page of the connected account's events.
func (g *Gateway) Events(ctx context.Context, account string, q ports.EventQuery) (ports.EventPage, error) {
	if err := g.check(account, "events"); err != nil {
		return ports.EventPage{}, err
	}
	ctx, status := withStatus(ctx)
	params := &stripego.EventListParams{CreatedRange: &stripego.RangeQueryParams{GreaterThanOrEqual: q.Since.Unix()}}
	for _, t := range q.Types {
		params.Types = append(params.Types, stripego.String(t))
	}
	if q.Undelivered {
		params.DeliverySuccess = stripego.Bool(false)
	}
	if q.StartingAfter != "" {
		params.StartingAfter = stripego.String(q.StartingAfter)
	}
	if q.Limit > 0 {
		params.Limit = stripego.Int64(int64(q.Limit))
	}
	params.Single = true // one page: the caller pages, with its own back-off
	params.Context = ctx
	params.SetStripeAccount(account)
	it := g.api.Events.List(params)
	if err := it.Err(); err != nil {
		return ports.EventPage{}, g.classify(ctx, err, *status, "list events of "+account)
	}
	// The page as Stripe sent it: each event's body, raw, so that it is
	// decoded exactly as a webhook body is.
	var page struct {
		Data []json.RawMessage `json:"data"`
		More bool              `json:"has_more"`
	}
	list := it.EventList()
	if list == nil || list.LastResponse == nil {
		return ports.EventPage{}, &domain.PaymentError{Kind: domain.PaymentTransient, Op: "list events of " + account, Message: "no answer from Stripe"}
	}
	if err := json.Unmarshal(list.LastResponse.RawJSON, &page); err != nil {
		return ports.EventPage{}, &domain.PaymentError{Kind: domain.PaymentTransient, Op: "list events of " + account, Message: "unreadable answer from Stripe", Err: err}
	}
	out := ports.EventPage{HasMore: page.More}
	for _, raw := range page.Data {
		out.Payloads = append(out.Payloads, []byte(raw))
	}
	if n := len(list.Data); n > 0 {
		out.LastID = list.Data[n-1].ID
	}
	return out, nil
}

// lastDecline is the decline code of the invoice's latest failed payment
// and when it happened: the payment intent's last error (its decline
// code, else its code), else the failed latest charge's; "" if neither
// failed.
func lastDecline(inv *stripego.Invoice) (string, time.Time) {
	var at time.Time
	ch := inv.Charge
	failedCharge := ch != nil && ch.Status == stripego.ChargeStatusFailed
	if failedCharge && ch.Created > 0 {
		at = time.Unix(ch.Created, 0).UTC()
	}
	if pi := inv.PaymentIntent; pi != nil && pi.LastPaymentError != nil {
		if c := string(pi.LastPaymentError.DeclineCode); domain.ValidDeclineCode(c) {
			return c, at
		}
		if c := string(pi.LastPaymentError.Code); domain.ValidDeclineCode(c) {
			return c, at
		}
	}
	if failedCharge {
		return chargeDeclineCode(ch), at
	}
	return "", time.Time{}
}

// CancelSubscription cancels the subscription at once on the connected
// account.
func (g *Gateway) CancelSubscription(ctx context.Context, account, subscriptionID, idempotencyKey string) error {
	if err := g.checkKeyed(account, subscriptionID, idempotencyKey); err != nil {
		return err
	}
	ctx, status := withStatus(ctx)
	params := &stripego.SubscriptionCancelParams{}
	params.Context = ctx
	params.SetStripeAccount(account)
	params.SetIdempotencyKey(idempotencyKey)
	_, err := g.api.Subscriptions.Cancel(subscriptionID, params)
	if err == nil {
		return nil
	}
	pe := g.classify(ctx, err, *status, "cancel subscription "+subscriptionID)
	if pe.Kind != domain.PaymentPermanent {
		return pe
	}
	// A DELETE is not idempotent at Stripe: a repeat after a crash finds
	// the subscription gone (a 404) or already canceled. That is done.
	if canceled, rerr := g.subscriptionCanceled(ctx, account, subscriptionID); rerr == nil && canceled {
		return nil
	}
	return pe
}

// subscriptionCanceled reports whether the subscription is canceled.
func (g *Gateway) subscriptionCanceled(ctx context.Context, account, subscriptionID string) (bool, error) {
	ctx, status := withStatus(ctx)
	params := &stripego.SubscriptionParams{}
	params.Context = ctx
	params.SetStripeAccount(account)
	sub, err := g.api.Subscriptions.Get(subscriptionID, params)
	if err != nil {
		return false, g.classify(ctx, err, *status, "read subscription "+subscriptionID)
	}
	return sub.Status == stripego.SubscriptionStatusCanceled, nil
}

// MarkUncollectible marks the invoice uncollectible on the connected
// account.
func (g *Gateway) MarkUncollectible(ctx context.Context, account, invoiceID, idempotencyKey string) error {
	if err := g.checkKeyed(account, invoiceID, idempotencyKey); err != nil {
		return err
	}
	ctx, status := withStatus(ctx)
	params := &stripego.InvoiceMarkUncollectibleParams{}
	params.Context = ctx
	params.SetStripeAccount(account)
	params.SetIdempotencyKey(idempotencyKey)
	if _, err := g.api.Invoices.MarkUncollectible(invoiceID, params); err != nil {
		return g.classify(ctx, err, *status, "mark invoice "+invoiceID+" uncollectible")
	}
	return nil
}

// PayInvoice asks Stripe to pay the invoice now with the customer's default
// payment method, off session. The idempotency key makes a repeat of the
// same attempt (after a crash, a timeout) return the first outcome instead
// of charging again.
func (g *Gateway) PayInvoice(ctx context.Context, account, invoiceID, idempotencyKey string) error {
	if err := g.check(account, invoiceID); err != nil {
		return err
	}
	if err := g.checkKeyed(account, invoiceID, idempotencyKey); err != nil {
		return err
	}
	ctx, status := withStatus(ctx)
	params := &stripego.InvoicePayParams{}
	params.Context = ctx
	params.SetStripeAccount(account)
	params.SetIdempotencyKey(idempotencyKey)
	if _, err := g.api.Invoices.Pay(invoiceID, params); err != nil {
		return g.classify(ctx, err, *status, "pay invoice "+invoiceID)
	}
	return nil
}

func (g *Gateway) check(account, id string) error {
	if g.api == nil {
		return errNoAPIKey
	}
	if account == "" || id == "" {
		return &domain.PaymentError{Kind: domain.PaymentPermanent, Message: "a connected account and an object id are required", Err: domain.ErrInvalid}
	}
	return nil
}

// checkKeyed is check for a call that changes something, which needs an
// idempotency key.
func (g *Gateway) checkKeyed(account, id, idempotencyKey string) error {
	if err := g.check(account, id); err != nil {
		return err
	}
	if idempotencyKey == "" {
		return &domain.PaymentError{Kind: domain.PaymentPermanent, Message: "an idempotency key is required", Err: domain.ErrInvalid}
	}
	return nil
}

// hardDeclines are the decline (or card error) codes another attempt cannot
// turn into a payment: the card is gone, blocked or refused for good, or
// the payment needs the customer (authentication), who is not there when
// the worker retries. Every other card error is a soft decline.
var hardDeclines = map[string]bool{
	"stolen_card":                            true,
	"lost_card":                              true,
	"fraudulent":                             true,
	"pickup_card":                            true,
	"restricted_card":                        true,
	"merchant_blacklist":                     true,
	"do_not_honor":                           true,
	"do_not_try_again":                       true,
	"invalid_account":                        true,
	"new_account_information_available":      true,
	"card_not_supported":                     true,
	"currency_not_supported":                 true,
	"invalid_card_type":                      true,
	"incorrect_number":                       true,
	"invalid_number":                         true,
	"invalid_expiry_month":                   true,
	"invalid_expiry_year":                    true,
	"expired_card":                           true,
	"revocation_of_authorization":            true,
	"revocation_of_all_authorizations":       true,
	"security_violation":                     true,
	"service_not_allowed":                    true,
	"stop_payment_order":                     true,
	"transaction_not_allowed":                true,
	"authentication_required":                true,
	"invoice_payment_intent_requires_action": true,
	"payment_intent_authentication_failure":  true,
}

// IsHardDecline reports whether a decline code means no further attempt
// can succeed (see the list in the source). Soft declines, such as
// insufficient_funds, generic_decline, card_velocity_exceeded,
// try_again_later or processing_error, are everything else.
func IsHardDecline(code string) bool { return hardDeclines[code] }

// classify turns a stripe-go error into a PaymentError whose text never
// holds the API key: Stripe masks it in its answers, but a proxy or a
// double (stripe-mock echoes it) may not.
func (g *Gateway) classify(ctx context.Context, err error, status int, op string) *domain.PaymentError {
	pe := classify(ctx, err, status, op)
	pe.Message = strings.ReplaceAll(pe.Message, g.key, "[redacted]")
	if pe.Err != nil && strings.Contains(pe.Err.Error(), g.key) {
		pe.Err = errors.New(strings.ReplaceAll(pe.Err.Error(), g.key, "[redacted]"))
	}
	return pe
}

// classify turns a stripe-go error into a PaymentError. status is the HTTP
// status seen on the wire (0 if no answer came), which matters when the
// body was not Stripe's error JSON (a proxy's 502 page, say). Message is
// Stripe's own for its errors (for a card error, written for the
// customer) and a fixed phrase otherwise; the wire detail (addresses,
// bodies) goes into Err, for the log only.
func classify(ctx context.Context, err error, status int, op string) *domain.PaymentError {
	var se *stripego.Error
	if errors.As(err, &se) {
		code := string(se.Code)
		if se.DeclineCode != "" {
			code = string(se.DeclineCode)
		}
		pe := &domain.PaymentError{Code: code, Op: op, Message: se.Msg}
		switch {
		case se.HTTPStatusCode == http.StatusTooManyRequests || se.HTTPStatusCode >= 500 ||
			se.Type == stripego.ErrorTypeAPI || se.Code == stripego.ErrorCodeLockTimeout:
			pe.Kind, pe.Err = domain.PaymentTransient, fmt.Errorf("answer %d from Stripe", se.HTTPStatusCode)
		case se.Type == stripego.ErrorTypeCard:
			pe.Kind = domain.PaymentSoftDecline
			if IsHardDecline(code) || IsHardDecline(string(se.Code)) {
				pe.Kind = domain.PaymentHardDecline
			}
		case se.HTTPStatusCode == http.StatusNotFound:
			pe.Kind, pe.Err = domain.PaymentPermanent, domain.ErrNotFound
		case se.HTTPStatusCode == http.StatusUnauthorized || se.HTTPStatusCode == http.StatusForbidden:
			pe.Kind, pe.Message = domain.PaymentPermanent, "Stripe refused the platform's API key or its permissions"
			pe.Err = errors.New(se.Msg)
		default:
			pe.Kind, pe.Err = domain.PaymentPermanent, fmt.Errorf("answer %d from Stripe", se.HTTPStatusCode)
		}
		return pe
	}
	// No Stripe error JSON: a transport failure (timeout, refused
	// connection, cancelled context) or a body that did not parse.
	switch {
	case status == 0 || ctx.Err() != nil:
		return &domain.PaymentError{Kind: domain.PaymentTransient, Op: op, Message: "no answer from Stripe", Err: err}
	case status == http.StatusTooManyRequests || status >= 500:
		return &domain.PaymentError{Kind: domain.PaymentTransient, Op: op, Message: fmt.Sprintf("Stripe answered %d", status), Err: err}
	case status < 300:
		// A success whose body did not parse: the request may have taken
		// effect, and a repeat with the same idempotency key is safe.
		return &domain.PaymentError{Kind: domain.PaymentTransient, Op: op, Message: "unreadable answer from Stripe", Err: err}
	default:
		return &domain.PaymentError{Kind: domain.PaymentPermanent, Op: op, Message: fmt.Sprintf("Stripe answered %d", status), Err: err}
	}
}

// statusRecorder notes the HTTP status of each answer in the request's
// context (see withStatus), for classify.
type statusRecorder struct{ base http.RoundTripper }

type statusKey struct{}

func (r statusRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.base.RoundTrip(req)
	if p, ok := req.Context().Value(statusKey{}).(*int); ok && resp != nil {
		*p = resp.StatusCode // one request per call: stripe-go's retries are off
	}
	return resp, err
}

func withStatus(ctx context.Context) (context.Context, *int) {
	p := new(int)
	return context.WithValue(ctx, statusKey{}, p), p
}
