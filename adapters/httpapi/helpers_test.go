package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/recoupdev/recoup/adapters/httpapi"
	"github.com/recoupdev/recoup/adapters/memory"
	"github.com/recoupdev/recoup/adapters/outbound"
	"github.com/recoupdev/recoup/adapters/stripe"
	"github.com/recoupdev/recoup/app"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/logtest"
	"github.com/recoupdev/recoup/internal/stripetest"
	"github.com/recoupdev/recoup/ports"
)

const (
	testSecret  = "whsec_test_primary"
	adminToken  = "admin-token-for-tests"
	contentJSON = "application/json"

	// tasksPerFailure is what the default policy plans for a first
	// invoice.payment_failed: the notice, two reminders and a retry.
	tasksPerFailure = 4
)

// syncBuffer is a log sink that many request goroutines write to at once.
type syncBuffer struct{ logtest.Buffer }

// lines returns the captured JSON log records.
func (b *syncBuffer) lines(t testing.TB) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(b.String()), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", line, err)
		}
		out = append(out, rec)
	}
	return out
}

// env is one recoup HTTP server on its own memory store, over real HTTP.
type env struct {
	t       testing.TB
	mem     *memory.Store
	store   ports.Storage // mem, or a wrapper of it
	srv     *httptest.Server
	logs    *syncBuffer
	secrets []string
}

type envOption func(*envConfig)

type envConfig struct {
	wrap     func(ports.Storage) ports.Storage
	secrets  []string
	admin    string
	resolver func(*app.MerchantService) httpapi.MerchantResolver
	ready    func(context.Context) error
	clock    ports.Clock
}

// withClock gives the use cases a clock of the test's (the webhook's
// signatures are still judged by the real one).
func withClock(c ports.Clock) envOption { return func(cfg *envConfig) { cfg.clock = c } }

func withStore(wrap func(ports.Storage) ports.Storage) envOption {
	return func(c *envConfig) { c.wrap = wrap }
}
func withSecrets(s ...string) envOption { return func(c *envConfig) { c.secrets = s } }
func withAdminToken(s string) envOption { return func(c *envConfig) { c.admin = s } }
func withReady(f func(context.Context) error) envOption {
	return func(c *envConfig) { c.ready = f }
}

func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	cfg := envConfig{secrets: []string{testSecret}, admin: adminToken}
	for _, o := range opts {
		o(&cfg)
	}
	mem := memory.New(nil)
	var store ports.Storage = mem
	if cfg.wrap != nil {
		store = cfg.wrap(mem)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	verifier, err := stripe.NewVerifier(cfg.secrets, stripe.WithLogger(log))
	if err != nil {
		t.Fatalf("verifier: %v", err)
	}
	var clock ports.Clock = ports.SystemClock{}
	if cfg.clock != nil {
		clock = cfg.clock
	}
	merchants := app.NewMerchantService(store.Merchants(), clock)
	var resolver httpapi.MerchantResolver
	if cfg.resolver != nil {
		resolver = cfg.resolver(merchants)
	}
	ready := cfg.ready
	if ready == nil {
		ready = store.Ping
	}
	// The real SSRF guard: the tests' endpoints are public IP literals,
	// which need no DNS.
	endpoints := app.NewEndpointService(store.Endpoints(), outbound.New(outbound.Config{}), clock)
	h := httpapi.NewServer(httpapi.Config{
		Verifier:   verifier,
		Webhooks:   app.NewWebhookService(store, app.WebhookConfig{Clock: clock, Logger: log}),
		Tasks:      app.NewTaskService(store.Tasks(), store.Ledger(), clock),
		Merchants:  merchants,
		Policies:   app.NewPolicyService(store.Policies()),
		Endpoints:  endpoints,
		Resolver:   resolver,
		AdminToken: cfg.admin,
		Ready:      ready,
		Logger:     log,
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &env{t: t, mem: mem, store: store, srv: srv, logs: logs, secrets: cfg.secrets}
}

// with returns the env reporting to t, for use inside a subtest.
func (e *env) with(t testing.TB) *env {
	c := *e
	c.t = t
	return &c
}

// response is a finished HTTP exchange.
type response struct {
	status int
	header http.Header
	body   []byte
}

// decode unmarshals the body into v, failing the test if it is not JSON.
func (r response) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
}

// errorMessage returns the "error" of a JSON error body.
func (r response) errorMessage(t testing.TB) string {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	r.decode(t, &e)
	return e.Error
}

// do sends a request; headers are name, value pairs. It returns errors
// instead of failing so that it can run on goroutines the test started.
func (e *env) send(method, path string, body io.Reader, headers ...string) (response, error) {
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		return response{}, err
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		return response{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return response{}, err
	}
	return response{status: res.StatusCode, header: res.Header, body: b}, nil
}

// do is send on the test goroutine.
func (e *env) do(method, path string, body io.Reader, headers ...string) response {
	e.t.Helper()
	r, err := e.send(method, path, body, headers...)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// api calls the task API with a merchant key.
func (e *env) api(method, path, key string) response {
	e.t.Helper()
	return e.do(method, path, nil, "Authorization", "Bearer "+key)
}

// webhookAnswer is the webhook's JSON answer.
type webhookAnswer struct {
	Processed bool     `json:"processed"`
	Action    string   `json:"action"`
	Tasks     []string `json:"tasks"`
	Reason    string   `json:"reason"`
}

// deliver signs payload with the first secret, now, and posts it.
func (e *env) deliver(payload []byte) (response, error) {
	return e.deliverSigned(payload, stripetest.Sign(payload, e.secrets[0], time.Now()))
}

func (e *env) deliverSigned(payload []byte, signature string) (response, error) {
	headers := []string{"Content-Type", contentJSON}
	if signature != "" {
		headers = append(headers, "Stripe-Signature", signature)
	}
	return e.send(http.MethodPost, "/webhooks/stripe", bytes.NewReader(payload), headers...)
}

// mustDeliver delivers on the test goroutine and decodes a 200 answer.
func (e *env) mustDeliver(payload []byte) webhookAnswer {
	e.t.Helper()
	r, err := e.deliver(payload)
	if err != nil {
		e.t.Fatalf("deliver: %v", err)
	}
	if r.status != http.StatusOK {
		e.t.Fatalf("deliver: status %d, body %s", r.status, r.body)
	}
	var a webhookAnswer
	r.decode(e.t, &a)
	return a
}

// merchant is a merchant created through the admin API.
type merchant struct {
	ID      domain.MerchantID
	Account string
	Key     string
	Prefix  string
}

func (e *env) createMerchant(name string) merchant {
	e.t.Helper()
	account := stripetest.NewID("acct_")
	body, _ := json.Marshal(map[string]string{"name": name, "stripe_account_id": account})
	r := e.do(http.MethodPost, "/admin/merchants", bytes.NewReader(body),
		"Authorization", "Bearer "+adminToken, "Content-Type", contentJSON)
	if r.status != http.StatusCreated {
		e.t.Fatalf("create merchant: %d %s", r.status, r.body)
	}
	var out struct {
		ID              string `json:"id"`
		Name            string `json:"name"`
		StripeAccountID string `json:"stripe_account_id"`
		APIKey          string `json:"api_key"`
		APIKeyPrefix    string `json:"api_key_prefix"`
	}
	r.decode(e.t, &out)
	return merchant{ID: domain.MerchantID(out.ID), Account: out.StripeAccountID, Key: out.APIKey, Prefix: out.APIKeyPrefix}
}

// tasksOf reads every task of the merchant straight from the store.
func (e *env) tasksOf(m domain.MerchantID) []domain.Task {
	e.t.Helper()
	var all []domain.Task
	f := domain.TaskFilter{Limit: domain.MaxPageSize}
	for {
		page, err := e.mem.Tasks().List(context.Background(), m, f)
		if err != nil {
			e.t.Fatalf("list tasks: %v", err)
		}
		all = append(all, page.Tasks...)
		if page.Next == nil {
			return all
		}
		f.After = page.Next
	}
}

// eventLockFree reports whether the event's idempotency lock can still be
// taken (then releases it by rolling back).
func (e *env) eventLockFree(eventID string) bool {
	e.t.Helper()
	errRollback := io.ErrNoProgress
	var free bool
	err := e.mem.InTx(context.Background(), func(ctx context.Context, tx ports.Tx) error {
		ok, err := tx.Events().AttemptEventLock(ctx, eventID)
		if err != nil {
			return err
		}
		free = ok
		return errRollback
	})
	if err != errRollback {
		e.t.Fatalf("lock probe: %v", err)
	}
	return free
}

// paymentFailed is a realistic invoice.payment_failed on an invoice Stripe
// will not retry, first attempt: it makes a notification and a retry.
func paymentFailed(eventID, account, invoiceID string) []byte {
	return stripetest.Event{
		ID: eventID, Type: domain.EventInvoicePaymentFailed, Account: account,
		Object: stripetest.Invoice{
			ID: invoiceID, Customer: "cus_jenny", CustomerEmail: "jenny@example.com",
			AmountDue: 2000, AttemptCount: 1, Subscription: "sub_jenny",
			HostedInvoiceURL: "https://invoice.stripe.com/i/test",
		},
	}.JSON()
}

func invoiceEvent(eventType, account, invoiceID, subscription string) []byte {
	return stripetest.Event{
		ID: stripetest.NewID("evt_"), Type: eventType, Account: account,
		Object: stripetest.Invoice{
			ID: invoiceID, Customer: "cus_jenny", AmountDue: 2000, AmountPaid: 2000,
			AttemptCount: 2, Subscription: subscription, Status: "paid",
		},
	}.JSON()
}
