package app_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
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

// sentMessage is one message the fakeSender was asked to send, as it would
// have gone on the wire.
type sentMessage struct {
	delivery domain.Delivery
	url      string
	header   http.Header // the Standard Webhooks headers
	body     []byte
	// deadline is the send's context deadline, if it had one, and ctxErr
	// its error when the send was done.
	deadline    time.Time
	hasDeadline bool
	ctxErr      error
}

// fakeSender is a WebhookSender that sends nothing. It signs each message
// as a Standard Webhooks sender does, with the key the delivery carries,
// so that a test can check the headers with the secret the merchant was
// shown; it answers what answer says (200 by default). Its CheckURL is a
// stand-in for the network guard: https only, and no loopback, private or
// link-local literal address, unless allowPrivate.
type fakeSender struct {
	allowPrivate bool

	mu      sync.Mutex
	checked []string
	sent    []sentMessage // in the order the sends ended
	calls   map[domain.DeliveryID]int
	// answer, if set, decides the answer to the call-th send (1-based) of
	// a delivery.
	answer func(d domain.Delivery, call int) (int, error)
	// before, if set, runs at each send before it answers, on the
	// sender's goroutine and without its lock.
	before func(d domain.Delivery)
}

var _ ports.WebhookSender = (*fakeSender)(nil)

func (s *fakeSender) CheckURL(_ context.Context, rawURL string) error {
	s.mu.Lock()
	s.checked = append(s.checked, rawURL)
	s.mu.Unlock()
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("%w: url is not a valid URL", domain.ErrInvalid)
	}
	if u.Scheme != "https" && !(s.allowPrivate && u.Scheme == "http") {
		return fmt.Errorf("%w: url must be https://…", domain.ErrInvalid)
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); !s.allowPrivate && (host == "localhost" ||
		ip != nil && (ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsUnspecified())) {
		return fmt.Errorf("%w: url resolves to a loopback, private or link-local address", domain.ErrInvalid)
	}
	return nil
}

// sign returns the Standard Webhooks headers of a message.
func sign(id string, at time.Time, body, secret []byte) http.Header {
	ts := strconv.FormatInt(at.Unix(), 10)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	h := http.Header{}
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", ts)
	h.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	return h
}

func (s *fakeSender) Send(ctx context.Context, d domain.Delivery, at time.Time) (int, error) {
	msg := sentMessage{delivery: d, url: d.URL, header: sign(string(d.ID), at, d.Payload, d.Secret), body: slices.Clone(d.Payload)}
	msg.deadline, msg.hasDeadline = ctx.Deadline()
	s.mu.Lock()
	if s.calls == nil {
		s.calls = map[domain.DeliveryID]int{}
	}
	s.calls[d.ID]++
	call := s.calls[d.ID]
	answer, before := s.answer, s.before
	s.mu.Unlock()
	if before != nil {
		before(d)
	}
	msg.ctxErr = ctx.Err()
	s.mu.Lock()
	s.sent = append(s.sent, msg)
	s.mu.Unlock()
	if answer == nil {
		return http.StatusOK, nil
	}
	status, err := answer(d, call)
	if err == nil && (status < 200 || status > 299) {
		err = fmt.Errorf("endpoint answered %d", status)
	}
	return status, err
}

func (s *fakeSender) messages() []sentMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sent)
}

func (s *fakeSender) checkedURLs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.checked)
}

// verifyStandardWebhook checks a message's headers as a merchant's
// receiver does, per the Standard Webhooks specification, with the secret
// the merchant was shown ("whsec_" and base64) and a tolerance of five
// minutes around now. It returns the message's id.
func verifyStandardWebhook(secret string, h http.Header, body []byte, now time.Time) (string, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil || !strings.HasPrefix(secret, "whsec_") {
		return "", fmt.Errorf("secret %q is not whsec_<base64>", secret)
	}
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return "", errors.New("missing webhook-id, webhook-timestamp or webhook-signature")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return "", fmt.Errorf("webhook-timestamp %q is not Unix seconds", ts)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return "", fmt.Errorf("webhook-timestamp %s is %s away from now", ts, d)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "." + string(body)))
	want := mac.Sum(nil)
	for sig := range strings.FieldsSeq(sigs) {
		version, b64, ok := strings.Cut(sig, ",")
		got, err := base64.StdEncoding.DecodeString(b64)
		if ok && version == "v1" && err == nil && hmac.Equal(got, want) {
			return id, nil
		}
	}
	return "", errors.New("no webhook-signature matches")
}

// observedAttempt is one outbound attempt an Observer was told of.
type observedAttempt struct{ eventType, outcome string }

// outboundObserver records what a delivery worker tells its Observer.
type outboundObserver struct {
	ports.NopObserver
	mu       sync.Mutex
	attempts []observedAttempt
	enqueued map[string]int
}

func (o *outboundObserver) OutboundEnqueued(eventType string, n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.enqueued == nil {
		o.enqueued = map[string]int{}
	}
	o.enqueued[eventType] += n
}

func (o *outboundObserver) OutboundAttempt(eventType, outcome string, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.attempts = append(o.attempts, observedAttempt{eventType, outcome})
}

func (o *outboundObserver) seen() ([]observedAttempt, map[string]int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.attempts), o.enqueued
}

// deliveryFixture is the use cases with endpoints, a fake sender and an
// observer of outbound attempts.
type deliveryFixture struct {
	*useCases
	sender    *fakeSender
	endpoints *app.EndpointService
	obs       *outboundObserver
}

func newDeliveryFixture(t *testing.T) *deliveryFixture {
	t.Helper()
	u := newUseCases(t, nil)
	f := &deliveryFixture{useCases: u, sender: &fakeSender{}, obs: &outboundObserver{}}
	f.endpoints = app.NewEndpointService(u.mem.Endpoints(), f.sender, u.clock)
	return f
}

// endpoint registers an endpoint of m through the endpoint use case.
func (f *deliveryFixture) endpoint(t *testing.T, m domain.Merchant, url string, events ...string) domain.WebhookEndpoint {
	t.Helper()
	if len(events) == 0 {
		events = []string{"*"}
	}
	ep, err := f.endpoints.Create(context.Background(), m, url, events)
	if err != nil {
		t.Fatalf("create endpoint %s: %v", url, err)
	}
	return ep
}

// deliveryTestConfig is the tests' delivery configuration: the defaults
// but a lease the tests can outlive.
func deliveryTestConfig() app.DeliveryConfig {
	return app.DeliveryConfig{Concurrency: 4, Lease: time.Minute}
}

func (f *deliveryFixture) worker(cfg app.DeliveryConfig) *app.DeliveryWorker {
	return f.workerOn(cfg, f.mem.Outbox())
}

func (f *deliveryFixture) workerOn(cfg app.DeliveryConfig, outbox ports.Outbox) *app.DeliveryWorker {
	log := slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return app.NewDeliveryWorker(cfg, outbox, f.sender, f.clock, log, f.obs)
}

// enqueue stores a message of m for its subscribed endpoints, as the
// engine does with a change, and returns its payload.
func (f *deliveryFixture) enqueue(t *testing.T, m domain.Merchant, typ string, data any) []byte {
	t.Helper()
	payload, err := domain.OutboundPayload(typ, f.clock.Now(), data)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.mem.Outbox().Enqueue(context.Background(), m.ID, domain.OutboundMessage{Type: typ, Payload: payload, At: f.clock.Now()}); err != nil {
		t.Fatalf("enqueue %s: %v", typ, err)
	}
	return payload
}

// deliveries returns every delivery of the merchant's endpoint, newest
// first, through the endpoint use case.
func (f *deliveryFixture) deliveries(t *testing.T, m domain.Merchant, ep domain.EndpointID) []domain.Delivery {
	t.Helper()
	page, err := f.endpoints.Deliveries(context.Background(), m, ep, domain.DeliveryFilter{Limit: domain.MaxPageSize})
	if err != nil {
		t.Fatalf("deliveries of %s: %v", ep, err)
	}
	return page.Deliveries
}

// runDeliveries runs one round of the worker and fails the test on an
// error.
func runDeliveries(t *testing.T, w *app.DeliveryWorker) int {
	t.Helper()
	n, err := w.RunOnce(context.Background())
	if err != nil {
		t.Fatalf("deliver: %v", err)
	}
	return n
}

func TestDeliverySignsAndSendsToEachSubscribedEndpoint(t *testing.T) {
	is := is.New(t)
	f := newDeliveryFixture(t)
	a, b := f.merchant(t, "A"), f.merchant(t, "B")
	all := f.endpoint(t, a, "https://hooks.a.example/all")
	failures := f.endpoint(t, a, "https://hooks.a.example/failures", domain.OutboundTaskFailed)
	successes := f.endpoint(t, a, "https://hooks.a.example/successes", domain.OutboundTaskSucceeded)
	other := f.endpoint(t, b, "https://hooks.b.example/all")
	secrets := map[string]domain.WebhookEndpoint{all.URL: all, successes.URL: successes}
	task := domain.Task{ID: domain.TaskID(domain.NewID()), MerchantID: a.ID, Type: domain.TypeRetryPayment, Status: domain.StatusSucceeded}
	payload := f.enqueue(t, a, domain.OutboundTaskSucceeded, task)
	w := f.worker(deliveryTestConfig())

	is.Equal(runDeliveries(t, w), 2) // one delivery per subscribed endpoint of A

	sent := f.sender.messages()
	is.Equal(len(sent), 2)
	ids := map[string]bool{}
	for _, msg := range sent {
		ep, ok := secrets[msg.url]
		is.True(ok)                                 // sent to A's subscribed endpoints only
		is.Equal(string(msg.body), string(payload)) // the message as enqueued
		is.Equal(msg.delivery.EventType, domain.OutboundTaskSucceeded)
		id, err := verifyStandardWebhook(ep.EncodedSecret(), msg.header, msg.body, f.clock.Now())
		is.NoErr(err) // signed with the secret the merchant was shown
		is.True(strings.HasPrefix(id, "msg_"))
		is.Equal(msg.header.Get("webhook-timestamp"), strconv.FormatInt(f.clock.Now().Unix(), 10)) // stamped now
		ids[id] = true
		for _, stranger := range []domain.WebhookEndpoint{other, failures} {
			_, err := verifyStandardWebhook(stranger.EncodedSecret(), msg.header, msg.body, f.clock.Now())
			is.True(err != nil) // another endpoint's secret does not verify it
		}
		tampered := append(slices.Clone(msg.body), ' ')
		_, err = verifyStandardWebhook(ep.EncodedSecret(), msg.header, tampered, f.clock.Now())
		is.True(err != nil) // nor does a changed body
	}
	is.Equal(len(ids), 2) // each delivery its own webhook-id

	for _, ep := range []domain.WebhookEndpoint{all, successes} {
		got := f.deliveries(t, a, ep.ID)
		is.Equal(len(got), 1)
		d := got[0]
		is.Equal(d.Status, domain.DeliveryDelivered) // delivered
		is.Equal(d.Attempts, 1)                      // at the first attempt
		is.Equal(d.LastStatusCode, 200)
		is.Equal(d.LastError, "")
		is.True(d.DeliveredAt.Equal(f.clock.Now()))
		is.True(ids[string(d.ID)]) // under the id it was sent with
	}
	is.Equal(len(f.deliveries(t, a, failures.ID)), 0) // nothing for an endpoint not subscribed
	is.Equal(len(f.deliveries(t, b, other.ID)), 0)    // nor for another merchant's

	is.Equal(runDeliveries(t, w), 0) // delivered once
	is.Equal(len(f.sender.messages()), 2)
	attempts, enqueued := f.obs.seen()
	is.Equal(attempts, []observedAttempt{{domain.OutboundTaskSucceeded, ports.OutboundDelivered}, {domain.OutboundTaskSucceeded, ports.OutboundDelivered}})
	is.Equal(enqueued, map[string]int{domain.OutboundTaskSucceeded: 2})
}

// outboundBody is an outbound message's body.
type outboundBody struct {
	Type      string         `json:"type"`
	Timestamp string         `json:"timestamp"`
	Data      map[string]any `json:"data"`
}

func TestDeliveryOfWhatTheEngineReports(t *testing.T) {
	t.Run("a task's run", func(t *testing.T) {
		is := is.New(t)
		f := newDeliveryFixture(t)
		m := f.merchant(t, "Acme")
		ep := f.endpoint(t, m, "https://hooks.example.com/recoup")
		now := f.clock.Now()
		task := func(invoice string) domain.Task {
			return domain.Task{
				ID: domain.TaskID(domain.NewID()), MerchantID: m.ID, Type: domain.TypeRetryPayment, Status: domain.StatusPending,
				StripeEventID: "evt_1", StripeCustomerID: "cus_1", StripeInvoiceID: invoice, CustomerEmail: "jenny@example.com",
				AmountDue: 2000, Currency: "usd", InvoiceAttempt: 1, RunAt: now, CreatedAt: now, UpdatedAt: now,
			}
		}
		paid, declined := task(stripetest.NewID("in_")), task(stripetest.NewID("in_"))
		_, err := f.mem.Tasks().Schedule(context.Background(), m.ID, []domain.Task{paid, declined})
		is.NoErr(err)
		gateway := &scriptedGateway{pay: func(_ context.Context, _, invoice, _ string) error {
			if invoice == declined.StripeInvoiceID {
				return &domain.PaymentError{Kind: domain.PaymentHardDecline, Code: "stolen_card", Message: "Your card was declined."}
			}
			return nil
		}}
		worker, err := app.NewWorker(workerTestConfig(), app.WorkerPorts{Storage: f.mem, Gateway: gateway, Notifier: &recordingNotifier{}, Clock: f.clock})
		is.NoErr(err)
		n, err := worker.RunOnce(context.Background())
		is.NoErr(err)
		is.Equal(n, 2)

		is.Equal(runDeliveries(t, f.worker(deliveryTestConfig())), 2) // the two outcomes

		byTask := map[string]outboundBody{}
		for _, msg := range f.sender.messages() {
			_, err := verifyStandardWebhook(ep.EncodedSecret(), msg.header, msg.body, f.clock.Now())
			is.NoErr(err)
			var body outboundBody
			is.NoErr(json.Unmarshal(msg.body, &body))
			is.Equal(body.Type, msg.delivery.EventType)                // the body names its type
			is.Equal(body.Timestamp, domain.FormatTime(f.clock.Now())) // and when it happened
			byTask[body.Data["id"].(string)] = body
		}
		is.Equal(len(byTask), 2)
		ok := byTask[string(paid.ID)]
		is.Equal(ok.Type, domain.OutboundTaskSucceeded) // the paid task succeeded
		is.Equal(ok.Data["status"], "succeeded")        // carrying the task as it ended
		is.Equal(ok.Data["merchant_id"], string(m.ID))
		is.Equal(ok.Data["stripe_invoice_id"], paid.StripeInvoiceID)
		bad := byTask[string(declined.ID)]
		is.Equal(bad.Type, domain.OutboundTaskFailed) // the declined one failed
		is.Equal(bad.Data["status"], "failed")
		is.Equal(bad.Data["decline_code"], "stolen_card")
		is.True(bad.Data["last_error"] != "")
	})

	t.Run("a failed invoice paid", func(t *testing.T) {
		is := is.New(t)
		f := newDeliveryFixture(t)
		m := f.merchant(t, "Acme")
		ep := f.endpoint(t, m, "https://hooks.example.com/recoup", domain.OutboundInvoiceRecovered)
		invoice := stripetest.NewID("in_")
		f.handle(t, paymentFailedEvent(m.StripeAccountID, invoice, "sub_1", 1))
		paid := invoiceEvent(domain.EventInvoicePaid, m.StripeAccountID, invoice, "sub_1")
		f.handle(t, paid)
		f.handle(t, paid) // a duplicate reports nothing again

		is.Equal(runDeliveries(t, f.worker(deliveryTestConfig())), 1)

		sent := f.sender.messages()
		is.Equal(len(sent), 1)
		_, err := verifyStandardWebhook(ep.EncodedSecret(), sent[0].header, sent[0].body, f.clock.Now())
		is.NoErr(err)
		var body outboundBody
		is.NoErr(json.Unmarshal(sent[0].body, &body))
		is.Equal(body.Type, domain.OutboundInvoiceRecovered)
		is.Equal(body.Data, map[string]any{"invoice_id": invoice, "amount": float64(2000), "currency": "usd"})
	})
}

func TestDeliveryRetriesThenFails(t *testing.T) {
	is := is.New(t)
	f := newDeliveryFixture(t)
	m := f.merchant(t, "Acme")
	ep := f.endpoint(t, m, "https://hooks.example.com/down")
	f.sender.answer = func(domain.Delivery, int) (int, error) { return http.StatusServiceUnavailable, nil }
	f.enqueue(t, m, domain.OutboundTaskFailed, map[string]string{"id": "t1"})
	created := f.clock.Now()
	w := f.worker(app.DeliveryConfig{}) // the defaults

	var waits []time.Duration
	var d domain.Delivery
	for attempt := 1; attempt < 100; attempt++ {
		is.Equal(runDeliveries(t, w), 1) // the due attempt is made
		d = f.deliveries(t, m, ep.ID)[0]
		is.Equal(d.Attempts, attempt)
		is.Equal(d.LastStatusCode, http.StatusServiceUnavailable)
		is.True(d.LastError != "")
		if d.Status != domain.DeliveryPending {
			break
		}
		wait := d.NextAttemptAt.Sub(f.clock.Now())
		waits = append(waits, wait)
		f.clock.Add(wait - time.Second)
		is.Equal(runDeliveries(t, w), 0) // not tried before it is due
		f.clock.Add(time.Second)
	}
	is.Equal(d.Status, domain.DeliveryFailed) // it ends failed
	is.True(len(waits) >= 5)                  // after several retries
	is.True(waits[0] > 0)
	is.True(waits[0] <= 30*time.Second) // the first within 30 s
	for i := 1; i < len(waits); i++ {
		is.True(waits[i] >= waits[i-1]) // then growing delays
	}
	tried := f.clock.Now().Sub(created)
	is.True(tried >= 48*time.Hour) // for days
	is.True(tried <= 72*time.Hour) // up to 3
	f.clock.Add(30 * 24 * time.Hour)
	is.Equal(runDeliveries(t, w), 0) // and never again

	sent := f.sender.messages()
	is.Equal(len(sent), len(waits)+1)
	for i, msg := range sent {
		is.Equal(msg.header.Get("webhook-id"), string(d.ID)) // the same webhook-id on every attempt
		_, err := verifyStandardWebhook(ep.EncodedSecret(), msg.header, msg.body, time.Unix(mustAtoi(t, msg.header.Get("webhook-timestamp")), 0))
		is.NoErr(err)
		if i > 0 {
			is.True(msg.header.Get("webhook-timestamp") != sent[i-1].header.Get("webhook-timestamp")) // each stamped when it was made
		}
	}
	attempts, enqueued := f.obs.seen()
	is.Equal(len(attempts), len(sent))
	for i, a := range attempts {
		want := ports.OutboundRetry
		if i == len(attempts)-1 {
			want = ports.OutboundFailed
		}
		is.Equal(a, observedAttempt{domain.OutboundTaskFailed, want}) // every retry observed, then the failure
	}
	is.Equal(enqueued, map[string]int{domain.OutboundTaskFailed: 1}) // one message, however many attempts
	is.True(strings.Contains(f.logs.String(), `"level":"WARN","msg":"outbound: attempt"`))
}

func mustAtoi(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestDeliveryGivesUp(t *testing.T) {
	cases := []struct {
		name     string
		cfg      app.DeliveryConfig
		attempts int
	}{
		{"past its retries", app.DeliveryConfig{Retries: []time.Duration{time.Minute, time.Minute}}, 3},
		{"past the time it is tried", app.DeliveryConfig{Retries: []time.Duration{time.Hour, time.Hour, time.Hour, time.Hour}, GiveUpAfter: 150 * time.Minute}, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			f := newDeliveryFixture(t)
			m := f.merchant(t, "Acme")
			ep := f.endpoint(t, m, "https://hooks.example.com/down")
			f.sender.answer = func(domain.Delivery, int) (int, error) { return http.StatusInternalServerError, nil }
			f.enqueue(t, m, domain.OutboundTaskFailed, map[string]string{"id": "t1"})
			w := f.worker(tc.cfg)
			for range tc.attempts {
				is.Equal(runDeliveries(t, w), 1)
				f.clock.Add(time.Hour)
			}
			d := f.deliveries(t, m, ep.ID)[0]
			is.Equal(d.Status, domain.DeliveryFailed) // given up
			is.Equal(d.Attempts, tc.attempts)         // after its last attempt
			f.clock.Add(24 * time.Hour)
			is.Equal(runDeliveries(t, w), 0)
		})
	}
}

func TestDeliveryAnswers(t *testing.T) {
	timeout := fmt.Errorf("post https://hooks.example.com/x: %w", context.DeadlineExceeded)
	cases := []struct {
		name    string
		status  int
		err     error
		want    domain.DeliveryStatus
		outcome string
	}{
		{"200", http.StatusOK, nil, domain.DeliveryDelivered, ports.OutboundDelivered},
		{"202", http.StatusAccepted, nil, domain.DeliveryDelivered, ports.OutboundDelivered},
		{"204", http.StatusNoContent, nil, domain.DeliveryDelivered, ports.OutboundDelivered},
		{"a redirect, not followed", http.StatusFound, nil, domain.DeliveryPending, ports.OutboundRetry},
		{"400", http.StatusBadRequest, nil, domain.DeliveryPending, ports.OutboundRetry},
		{"401", http.StatusUnauthorized, nil, domain.DeliveryPending, ports.OutboundRetry},
		{"404", http.StatusNotFound, nil, domain.DeliveryPending, ports.OutboundRetry},
		{"429", http.StatusTooManyRequests, nil, domain.DeliveryPending, ports.OutboundRetry},
		{"500", http.StatusInternalServerError, nil, domain.DeliveryPending, ports.OutboundRetry},
		{"no answer in time", 0, timeout, domain.DeliveryPending, ports.OutboundRetry},
		{"connection refused", 0, errors.New("dial tcp 203.0.113.7:443: connect: connection refused"), domain.DeliveryPending, ports.OutboundRetry},
		{"410 Gone", http.StatusGone, nil, domain.DeliveryFailed, ports.OutboundFailed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			f := newDeliveryFixture(t)
			m := f.merchant(t, "Acme")
			ep := f.endpoint(t, m, "https://hooks.example.com/x")
			f.sender.answer = func(domain.Delivery, int) (int, error) { return tc.status, tc.err }
			f.enqueue(t, m, domain.OutboundTaskSucceeded, map[string]string{"id": "t1"})

			is.Equal(runDeliveries(t, f.worker(deliveryTestConfig())), 1)

			d := f.deliveries(t, m, ep.ID)[0]
			is.Equal(d.Status, tc.want) // as the answer says
			is.Equal(d.Attempts, 1)
			is.Equal(d.LastStatusCode, tc.status) // the answer's status is kept
			if tc.want == domain.DeliveryDelivered {
				is.Equal(d.LastError, "")
				is.True(d.DeliveredAt.Equal(f.clock.Now()))
			} else {
				is.True(d.LastError != "") // with why it failed
				is.True(d.DeliveredAt.IsZero())
			}
			if tc.want == domain.DeliveryPending {
				wait := d.NextAttemptAt.Sub(f.clock.Now())
				is.True(wait > 0 && wait <= 30*time.Second) // tried again within 30 s
			}
			attempts, _ := f.obs.seen()
			is.Equal(attempts, []observedAttempt{{domain.OutboundTaskSucceeded, tc.outcome}})

			eps, err := f.endpoints.List(context.Background(), m)
			is.NoErr(err)
			is.Equal(len(eps), 1)
			if tc.status != http.StatusGone {
				is.True(eps[0].DisabledAt.IsZero()) // the endpoint stays enabled
				return
			}
			is.True(eps[0].DisabledAt.Equal(f.clock.Now())) // a 410 disables it
			f.enqueue(t, m, domain.OutboundTaskSucceeded, map[string]string{"id": "t2"})
			is.Equal(len(f.deliveries(t, m, ep.ID)), 1) // nothing more is enqueued for it
			is.Equal(runDeliveries(t, f.worker(deliveryTestConfig())), 0)
			is.Equal(len(f.sender.messages()), 1) // nor sent
		})
	}

	t.Run("410 leaves the endpoint's other messages unsent", func(t *testing.T) {
		is := is.New(t)
		f := newDeliveryFixture(t)
		m := f.merchant(t, "Acme")
		gone := f.endpoint(t, m, "https://hooks.example.com/gone")
		alive := f.endpoint(t, m, "https://hooks.example.com/alive")
		f.sender.answer = func(d domain.Delivery, _ int) (int, error) {
			if d.EndpointID == gone.ID {
				return http.StatusGone, nil
			}
			return http.StatusOK, nil
		}
		f.enqueue(t, m, domain.OutboundTaskSucceeded, map[string]string{"id": "t1"})
		w := f.worker(app.DeliveryConfig{Concurrency: 1, Lease: time.Minute})
		// One at a time: the oldest first, whichever endpoint it is for.
		f.clock.Add(time.Second)
		f.enqueue(t, m, domain.OutboundTaskSucceeded, map[string]string{"id": "t2"})
		for runDeliveries(t, w) > 0 {
		}
		goneSent := 0
		for _, msg := range f.sender.messages() {
			if msg.delivery.EndpointID == gone.ID {
				goneSent++
			}
		}
		is.Equal(goneSent, 1) // the endpoint that answered 410 got one message
		for _, d := range f.deliveries(t, m, alive.ID) {
			is.Equal(d.Status, domain.DeliveryDelivered) // the other endpoint got both
		}
		left := f.deliveries(t, m, gone.ID)
		is.Equal(len(left), 2)
		is.Equal(left[1].Status, domain.DeliveryFailed)  // the first failed
		is.Equal(left[0].Status, domain.DeliveryPending) // the second waits, unsent
		is.Equal(left[0].Attempts, 0)
	})
}

func TestDeliverySendIsBounded(t *testing.T) {
	is := is.New(t)
	f := newDeliveryFixture(t)
	m := f.merchant(t, "Acme")
	f.endpoint(t, m, "https://hooks.example.com/slow")
	f.enqueue(t, m, domain.OutboundTaskSucceeded, map[string]string{"id": "t1"})
	start := time.Now()

	is.Equal(runDeliveries(t, f.worker(deliveryTestConfig())), 1)

	sent := f.sender.messages()
	is.Equal(len(sent), 1)
	is.True(sent[0].hasDeadline)                                       // a send has a deadline
	is.True(!sent[0].deadline.After(time.Now().Add(10 * time.Second))) // of 10 s at most
	is.True(sent[0].deadline.After(start))
}

func TestDeliveryEscapesNoAddress(t *testing.T) {
	is := is.New(t)
	f := newDeliveryFixture(t)
	m := f.merchant(t, "Acme")
	ep := f.endpoint(t, m, "https://hooks.example.com/x")
	f.sender.answer = func(domain.Delivery, int) (int, error) {
		return http.StatusInternalServerError, errors.New(`endpoint answered 500: {"error": "no customer jenny.rosen@example.com"}`)
	}
	f.enqueue(t, m, domain.OutboundTaskSucceeded, map[string]string{"id": "t1"})

	is.Equal(runDeliveries(t, f.worker(deliveryTestConfig())), 1)

	d := f.deliveries(t, m, ep.ID)[0]
	is.True(strings.Contains(d.LastError, "answered 500"))                 // the error is kept
	is.True(!strings.Contains(d.LastError, "jenny.rosen@example.com"))     // with addresses masked
	is.True(!strings.Contains(f.logs.String(), "jenny.rosen@example.com")) // in the log too
}

// TestDeliveryRacingWorkers: delivery workers of several processes share
// the outbox; each message is sent once.
func TestDeliveryRacingWorkers(t *testing.T) {
	is := is.New(t)
	f := newDeliveryFixture(t)
	m := f.merchant(t, "Acme")
	first := f.endpoint(t, m, "https://hooks.example.com/1")
	second := f.endpoint(t, m, "https://hooks.example.com/2")
	const messages = 30
	for i := range messages {
		f.enqueue(t, m, domain.OutboundTaskSucceeded, map[string]int{"n": i})
	}
	const workers = 4
	start := make(chan struct{})
	counts := make([]int, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for i := range workers {
		w := f.worker(app.DeliveryConfig{Concurrency: 3, Lease: time.Minute})
		wg.Go(func() {
			<-start
			for {
				n, err := w.RunOnce(context.Background())
				if err != nil || n == 0 {
					errs[i] = err
					return
				}
				counts[i] += n
			}
		})
	}
	close(start)
	wg.Wait()

	total := 0
	for i := range workers {
		is.NoErr(errs[i])
		total += counts[i]
	}
	is.Equal(total, 2*messages) // every delivery claimed once
	sends := map[string]int{}
	for _, msg := range f.sender.messages() {
		sends[msg.header.Get("webhook-id")]++
	}
	is.Equal(len(sends), 2*messages)
	for id, n := range sends {
		if n != 1 {
			t.Errorf("%s sent %d times", id, n) // and sent once
		}
	}
	for _, ep := range []domain.WebhookEndpoint{first, second} {
		for _, d := range f.deliveries(t, m, ep.ID) {
			is.Equal(d.Status, domain.DeliveryDelivered)
			is.Equal(d.Attempts, 1)
		}
	}
}

// TestDeliveryClaimTakenOver: a worker stuck past its lease loses the
// delivery to another, which sends it again under the same webhook-id;
// the stuck one's outcome is not recorded.
func TestDeliveryClaimTakenOver(t *testing.T) {
	is := is.New(t)
	f := newDeliveryFixture(t)
	m := f.merchant(t, "Acme")
	ep := f.endpoint(t, m, "https://hooks.example.com/x")
	f.enqueue(t, m, domain.OutboundTaskSucceeded, map[string]string{"id": "t1"})
	inside, release := make(chan struct{}), make(chan struct{})
	var sends atomic.Int32
	f.sender.before = func(domain.Delivery) {
		if sends.Add(1) == 1 { // the first send hangs
			close(inside)
			<-release
		}
	}
	f.sender.answer = func(_ domain.Delivery, call int) (int, error) {
		if call == 1 {
			return http.StatusInternalServerError, nil // what the stuck one would record
		}
		return http.StatusOK, nil
	}
	stuck, other := f.worker(deliveryTestConfig()), f.worker(deliveryTestConfig())

	done := make(chan struct{})
	var stuckN int
	var stuckErr error
	go func() {
		defer close(done)
		stuckN, stuckErr = stuck.RunOnce(context.Background())
	}()
	<-inside
	is.Equal(runDeliveries(t, other), 0) // not while the lease holds
	f.clock.Add(2 * time.Minute)         // past the one-minute lease
	is.Equal(runDeliveries(t, other), 1) // then the other takes it over
	close(release)
	<-done

	is.NoErr(stuckErr)
	is.Equal(stuckN, 1)
	sent := f.sender.messages()
	is.Equal(len(sent), 2)                                                       // sent once per claim
	is.Equal(sent[0].header.Get("webhook-id"), sent[1].header.Get("webhook-id")) // as one message
	d := f.deliveries(t, m, ep.ID)[0]
	is.Equal(d.Status, domain.DeliveryDelivered) // the takeover's outcome stands
	is.Equal(d.Attempts, 2)
	is.Equal(d.LastStatusCode, http.StatusOK)
	is.True(strings.Contains(f.logs.String(), "outbound: record attempt")) // the stuck one's is refused, and logged
	is.Equal(runDeliveries(t, other), 0)
}

func TestDeliveryToADeletedEndpoint(t *testing.T) {
	t.Run("deleted before its turn", func(t *testing.T) {
		is := is.New(t)
		f := newDeliveryFixture(t)
		m := f.merchant(t, "Acme")
		ep := f.endpoint(t, m, "https://hooks.example.com/x")
		kept := f.endpoint(t, m, "https://hooks.example.com/kept")
		f.enqueue(t, m, domain.OutboundTaskSucceeded, map[string]string{"id": "t1"})
		is.NoErr(f.endpoints.Delete(context.Background(), m, ep.ID))

		is.Equal(runDeliveries(t, f.worker(deliveryTestConfig())), 1) // only the kept endpoint's

		sent := f.sender.messages()
		is.Equal(len(sent), 1)
		is.Equal(sent[0].url, kept.URL)
	})

	t.Run("deleted while it is sent", func(t *testing.T) {
		is := is.New(t)
		f := newDeliveryFixture(t)
		m := f.merchant(t, "Acme")
		ep := f.endpoint(t, m, "https://hooks.example.com/x")
		f.enqueue(t, m, domain.OutboundTaskSucceeded, map[string]string{"id": "t1"})
		var deleteErr error
		f.sender.before = func(domain.Delivery) { deleteErr = f.endpoints.Delete(context.Background(), m, ep.ID) }

		is.Equal(runDeliveries(t, f.worker(deliveryTestConfig())), 1)

		is.NoErr(deleteErr)
		_, err := f.endpoints.Deliveries(context.Background(), m, ep.ID, domain.DeliveryFilter{})
		is.True(errors.Is(err, domain.ErrNotFound))                            // gone with its deliveries
		is.True(strings.Contains(f.logs.String(), "outbound: record attempt")) // the outcome had nowhere to go
		is.Equal(runDeliveries(t, f.worker(deliveryTestConfig())), 0)
	})
}

// signalOutbox tells claims of the outbox: how many each handed out.
type signalOutbox struct {
	ports.Outbox
	claims chan int
}

func (o signalOutbox) ClaimDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]domain.Delivery, error) {
	out, err := o.Outbox.ClaimDeliveries(ctx, now, lease, limit)
	o.claims <- len(out)
	return out, err
}

func TestDeliveryRun(t *testing.T) {
	t.Run("wakes for a new message", func(t *testing.T) {
		is := is.New(t)
		f := newDeliveryFixture(t)
		m := f.merchant(t, "Acme")
		ep := f.endpoint(t, m, "https://hooks.example.com/x")
		outbox := signalOutbox{Outbox: f.mem.Outbox(), claims: make(chan int, 16)}
		w := f.workerOn(app.DeliveryConfig{Poll: time.Hour, Lease: time.Minute}, outbox)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			w.Run(ctx)
		}()
		is.Equal(<-outbox.claims, 0) // nothing due at first

		f.enqueue(t, m, domain.OutboundTaskSucceeded, map[string]string{"id": "t1"})
		w.Wake()
		is.Equal(<-outbox.claims, 1) // woken, long before its poll
		is.Equal(<-outbox.claims, 0) // and it looks again once that is done
		cancel()
		<-done

		d := f.deliveries(t, m, ep.ID)[0]
		is.Equal(d.Status, domain.DeliveryDelivered)
	})

	t.Run("finishes what it sends when stopped", func(t *testing.T) {
		is := is.New(t)
		f := newDeliveryFixture(t)
		m := f.merchant(t, "Acme")
		ep := f.endpoint(t, m, "https://hooks.example.com/x")
		f.enqueue(t, m, domain.OutboundTaskSucceeded, map[string]string{"id": "t1"})
		inside, release := make(chan struct{}), make(chan struct{})
		f.sender.before = func(domain.Delivery) {
			close(inside)
			<-release
		}
		w := f.worker(app.DeliveryConfig{Poll: time.Hour, Lease: time.Minute})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			w.Run(ctx)
		}()
		<-inside
		cancel() // stopped while the message is on its way
		close(release)
		<-done

		sent := f.sender.messages()
		is.Equal(len(sent), 1)
		is.NoErr(sent[0].ctxErr) // the send was not cut short
		d := f.deliveries(t, m, ep.ID)[0]
		is.Equal(d.Status, domain.DeliveryDelivered) // and its outcome was recorded
	})
}
