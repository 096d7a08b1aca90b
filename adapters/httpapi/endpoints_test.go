package httpapi_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/adapters/httpapi"
	"github.com/recoupdev/recoup/adapters/outbound"
	"github.com/recoupdev/recoup/app"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// publicURL is an endpoint the SSRF guard accepts without DNS: a public
// IP literal. Nothing is ever sent to it.
const publicURL = "https://93.184.215.14/hooks/recoup"

// endpointAnswer is POST /api/webhook-endpoints' answer, and an entry of
// the list (which has disabled_at and no secret).
type endpointAnswer struct {
	ID         string   `json:"id"`
	URL        string   `json:"url"`
	Events     []string `json:"events"`
	Secret     string   `json:"secret"`
	CreatedAt  string   `json:"created_at"`
	DisabledAt *string  `json:"disabled_at"`
}

type deliveryAnswer struct {
	ID             string  `json:"id"`
	EventType      string  `json:"event_type"`
	Status         string  `json:"status"`
	Attempts       int     `json:"attempts"`
	LastStatusCode int     `json:"last_status_code"`
	LastError      string  `json:"last_error"`
	CreatedAt      string  `json:"created_at"`
	DeliveredAt    *string `json:"delivered_at"`
}

type deliveryPage struct {
	Deliveries []deliveryAnswer `json:"deliveries"`
	NextCursor *string          `json:"next_cursor"`
}

// postEndpoint posts body to /api/webhook-endpoints as the merchant.
func (e *env) postEndpoint(key, body string) response {
	e.t.Helper()
	return e.do(http.MethodPost, "/api/webhook-endpoints", strings.NewReader(body),
		"Authorization", "Bearer "+key, "Content-Type", contentJSON)
}

// createEndpoint creates an endpoint and fails the test unless it is 201.
func (e *env) createEndpoint(key, rawURL string, events ...string) endpointAnswer {
	e.t.Helper()
	body, _ := json.Marshal(map[string]any{"url": rawURL, "events": events})
	r := e.postEndpoint(key, string(body))
	if r.status != http.StatusCreated {
		e.t.Fatalf("create endpoint: %d %s", r.status, r.body)
	}
	var a endpointAnswer
	r.decode(e.t, &a)
	return a
}

// endpointsOf reads the merchant's endpoints straight from the store.
func (e *env) endpointsOf(m domain.MerchantID) []domain.WebhookEndpoint {
	e.t.Helper()
	list, err := e.mem.Endpoints().ListEndpoints(context.Background(), m)
	if err != nil {
		e.t.Fatalf("list endpoints: %v", err)
	}
	return list
}

func TestEndpointCreateListDelete(t *testing.T) {
	is := is.New(t)
	e := newEnv(t)
	alice := e.createMerchant("Alice")

	created := e.createEndpoint(alice.Key, publicURL, domain.OutboundTaskFailed, domain.OutboundInvoiceRecovered)
	_, err := domain.ParseUUID(created.ID)
	is.NoErr(err) // the id is a UUID
	is.Equal(created.URL, publicURL)
	is.Equal(created.Events, []string{domain.OutboundInvoiceRecovered, domain.OutboundTaskFailed})
	parseTime(t, created.CreatedAt)

	// The secret shown is the stored one, as Standard Webhooks spells it.
	raw, ok := strings.CutPrefix(created.Secret, "whsec_")
	is.True(ok) // the secret reads whsec_…
	key, err := base64.StdEncoding.DecodeString(raw)
	is.NoErr(err)
	stored := e.endpointsOf(alice.ID)
	is.Equal(len(stored), 1)
	is.Equal(key, stored[0].Secret) // the secret shown is the signing key

	r := e.api(http.MethodGet, "/api/webhook-endpoints", alice.Key)
	is.Equal(r.status, http.StatusOK)
	is.True(!bytes.Contains(r.body, []byte("secret"))) // the list never shows the secret
	is.True(!bytes.Contains(r.body, []byte(raw)))      // in any form
	is.True(bytes.Contains(r.body, []byte(`"disabled_at":null`)))
	var list struct {
		Endpoints []endpointAnswer `json:"endpoints"`
	}
	r.decode(t, &list)
	is.Equal(len(list.Endpoints), 1)
	got := list.Endpoints[0]
	is.Equal(got.ID, created.ID)
	is.Equal(got.URL, publicURL)
	is.Equal(got.Events, created.Events)
	is.Equal(got.CreatedAt, created.CreatedAt)
	is.True(got.DisabledAt == nil)

	r = e.api(http.MethodDelete, "/api/webhook-endpoints/"+created.ID, alice.Key)
	is.Equal(r.status, http.StatusNoContent)
	is.Equal(len(e.endpointsOf(alice.ID)), 0) // deleted
	r = e.api(http.MethodDelete, "/api/webhook-endpoints/"+created.ID, alice.Key)
	is.Equal(r.status, http.StatusNotFound)
	is.Equal(r.errorMessage(t), "webhook endpoint "+created.ID+" not found")

	r = e.api(http.MethodGet, "/api/webhook-endpoints", alice.Key)
	is.Equal(string(r.body), "{\"endpoints\":[]}\n") // an empty list, not null
}

// TestEndpointCreateIdempotencyKey: a POST repeated with its
// Idempotency-Key (a retry after a timeout) answers with the endpoint the
// first one created, secret included, and creates no other; the key with
// another body is a 409, and a key that is not printable ASCII a 400.
func TestEndpointCreateIdempotencyKey(t *testing.T) {
	is := is.New(t)
	e := newEnv(t)
	alice := e.createMerchant("Alice")
	post := func(key, body string) response {
		t.Helper()
		return e.do(http.MethodPost, "/api/webhook-endpoints", strings.NewReader(body),
			"Authorization", "Bearer "+alice.Key, "Content-Type", contentJSON, "Idempotency-Key", key)
	}
	body := `{"url":"` + publicURL + `","events":["*"]}`
	var first, again endpointAnswer
	r := post("retry-1", body)
	is.Equal(r.status, http.StatusCreated)
	r.decode(t, &first)
	r = post("retry-1", body)
	is.Equal(r.status, http.StatusCreated) // the same answer
	r.decode(t, &again)
	is.Equal(again, first)                    // the same endpoint, secret included
	is.Equal(len(e.endpointsOf(alice.ID)), 1) // and only one

	r = post("retry-1", `{"url":"`+publicURL+`/other","events":["*"]}`)
	is.Equal(r.status, http.StatusConflict) // the key with another body
	is.True(strings.Contains(string(r.body), "idempotency key already created an endpoint"))
	r = post("order 42 / retry #1", body)
	is.Equal(r.status, http.StatusCreated) // any printable ASCII
	r = post(strings.Repeat("k", domain.MaxIdempotencyKey+1), body)
	is.Equal(r.status, http.StatusBadRequest) // too long
	is.True(strings.Contains(string(r.body), "Idempotency-Key"))
	r = post("café", body)
	is.Equal(r.status, http.StatusBadRequest) // not ASCII
	is.Equal(len(e.endpointsOf(alice.ID)), 2) // nothing else created: the first and "order 42"
}

func TestEndpointCreateRefusesBadInput(t *testing.T) {
	e := newEnv(t)
	alice := e.createMerchant("Alice")
	for _, c := range []struct {
		name, body, message string
	}{
		{"not JSON", `{"url":`, "invalid JSON body: unexpected end"},
		{"no url", `{"events":["*"]}`, "url: is required"},
		{"no events", `{"url":"` + publicURL + `"}`, "events: is required"},
		{"no event", `{"url":"` + publicURL + `","events":[]}`, "events must list at least one type"},
		{"unknown event", `{"url":"` + publicURL + `","events":["task.exploded"]}`, "unknown event type"},
		{"unknown field", `{"url":"` + publicURL + `","events":["*"],"secret":"whsec_mine"}`, "secret"},
		{"credentials", `{"url":"https://user:pw@93.184.215.14/","events":["*"]}`, "url must not carry credentials"},
		{"not a URL", `{"url":"https://a b/","events":["*"]}`, "url is not a valid URL"},
		// The SSRF guard, through the use case.
		{"http", `{"url":"http://93.184.215.14/hooks","events":["*"]}`, "url must be https"},
		{"localhost", `{"url":"https://localhost/hooks","events":["*"]}`, "url's host resolves to a loopback address ("},
		{"private", `{"url":"https://10.0.0.1/hooks","events":["*"]}`, "url's host is a private address"},
		{"metadata", `{"url":"https://169.254.169.254/latest/meta-data/","events":["*"]}`, "url's host is the cloud metadata address"},
		{"loopback v6", `{"url":"https://[::1]/hooks","events":["*"]}`, "url's host is a loopback address"},
		{"unspecified", `{"url":"https://0.0.0.0/hooks","events":["*"]}`, "url's host is an unspecified address"},
		{"mapped", `{"url":"https://[::ffff:192.168.0.1]/hooks","events":["*"]}`, "url's host is a private address"},
	} {
		t.Run(c.name, func(t *testing.T) {
			is := is.New(t)
			e := e.with(t)
			r := e.postEndpoint(alice.Key, c.body)
			is.Equal(r.status, http.StatusBadRequest)
			if msg := r.errorMessage(t); !strings.Contains(msg, c.message) {
				t.Fatalf("message %q does not say %q", msg, c.message)
			}
			is.Equal(len(e.endpointsOf(alice.ID)), 0) // nothing was stored
		})
	}
}

func TestEndpointLimitPerMerchant(t *testing.T) {
	is := is.New(t)
	e := newEnv(t)
	alice := e.createMerchant("Alice")
	for range domain.MaxEndpointsPerShop {
		e.createEndpoint(alice.Key, publicURL, "*")
	}
	r := e.postEndpoint(alice.Key, `{"url":"`+publicURL+`","events":["*"]}`)
	is.Equal(r.status, http.StatusConflict)
	is.Equal(r.errorMessage(t), "a merchant has at most 20 webhook endpoints")
}

// TestEndpointOtherMerchant: another merchant's endpoint is 403 with the
// fixed body, and nothing happens to it; an id nobody has is 404.
func TestEndpointOtherMerchant(t *testing.T) {
	is := is.New(t)
	e := newEnv(t)
	alice, bob := e.createMerchant("Alice"), e.createMerchant("Bob")
	ep := e.createEndpoint(alice.Key, publicURL, "*")
	enqueue(t, e.mem, alice.ID, 1)

	for _, c := range []struct{ method, path string }{
		{http.MethodDelete, "/api/webhook-endpoints/" + ep.ID},
		{http.MethodGet, "/api/webhook-endpoints/" + ep.ID + "/deliveries"},
	} {
		r := e.api(c.method, c.path, bob.Key)
		is.Equal(r.status, http.StatusForbidden)
		is.Equal(string(r.body), "{\"error\":\"Forbidden\"}\n")
	}
	r := e.api(http.MethodGet, "/api/webhook-endpoints", bob.Key)
	is.Equal(string(r.body), "{\"endpoints\":[]}\n") // Bob lists none of Alice's

	// Alice's endpoint and its delivery are untouched.
	is.Equal(len(e.endpointsOf(alice.ID)), 1)
	var page deliveryPage
	e.api(http.MethodGet, "/api/webhook-endpoints/"+ep.ID+"/deliveries", alice.Key).decode(t, &page)
	is.Equal(len(page.Deliveries), 1)

	nobody := domain.NewID()
	r = e.api(http.MethodDelete, "/api/webhook-endpoints/"+nobody, bob.Key)
	is.Equal(r.status, http.StatusNotFound)
	r = e.api(http.MethodGet, "/api/webhook-endpoints/"+nobody+"/deliveries", bob.Key)
	is.Equal(r.status, http.StatusNotFound)
	is.Equal(r.errorMessage(t), "webhook endpoint "+nobody+" not found")

	r = e.api(http.MethodDelete, "/api/webhook-endpoints/not-an-id", alice.Key)
	is.Equal(r.status, http.StatusBadRequest)
	r = e.api(http.MethodGet, "/api/webhook-endpoints/"+ep.ID+"0/deliveries", alice.Key)
	is.Equal(r.status, http.StatusBadRequest)

	r = e.do(http.MethodGet, "/api/webhook-endpoints", nil)
	is.Equal(r.status, http.StatusUnauthorized)
	r = e.do(http.MethodPost, "/api/webhook-endpoints", strings.NewReader(`{"url":"`+publicURL+`","events":["*"]}`))
	is.Equal(r.status, http.StatusUnauthorized)
	is.Equal(len(e.endpointsOf(alice.ID)), 1)

	r = e.api(http.MethodPut, "/api/webhook-endpoints", alice.Key)
	is.Equal(r.status, http.StatusMethodNotAllowed)
	is.Equal(r.header.Get("Allow"), "GET, POST")
	r = e.api(http.MethodGet, "/api/webhook-endpoints/"+ep.ID, alice.Key)
	is.Equal(r.status, http.StatusMethodNotAllowed)
	is.Equal(r.header.Get("Allow"), "DELETE")
}

// enqueue stores n task.failed messages for the merchant's endpoints.
func enqueue(t *testing.T, store ports.Storage, m domain.MerchantID, n int) {
	t.Helper()
	for i := range n {
		payload, err := domain.OutboundPayload(domain.OutboundTaskFailed, time.Now(), map[string]int{"n": i})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Outbox().Enqueue(context.Background(), m, domain.OutboundMessage{
			Type: domain.OutboundTaskFailed, Payload: payload, At: time.Now(),
		}); err != nil {
			t.Fatalf("enqueue: %v", err)
		}
	}
}

func TestEndpointDeliveriesPages(t *testing.T) {
	is := is.New(t)
	e := newEnv(t)
	alice, bob := e.createMerchant("Alice"), e.createMerchant("Bob")
	ep := e.createEndpoint(alice.Key, publicURL, "*")
	other := e.createEndpoint(alice.Key, publicURL, "*")
	bobs := e.createEndpoint(bob.Key, publicURL, "*")
	enqueue(t, e.mem, alice.ID, 5)

	path := "/api/webhook-endpoints/" + ep.ID + "/deliveries"
	var all []deliveryAnswer
	var cursors []string
	target := path + "?limit=2"
	for {
		r := e.api(http.MethodGet, target, alice.Key)
		is.Equal(r.status, http.StatusOK)
		var page deliveryPage
		r.decode(t, &page)
		all = append(all, page.Deliveries...)
		if page.NextCursor == nil {
			is.True(bytes.Contains(r.body, []byte(`"next_cursor":null`)))
			break
		}
		is.Equal(len(page.Deliveries), 2) // a page with a next one is full
		cursors = append(cursors, *page.NextCursor)
		target = path + "?limit=2&cursor=" + url.QueryEscape(*page.NextCursor)
	}
	is.Equal(len(all), 5) // every delivery, once
	seen := map[string]bool{}
	for i, d := range all {
		is.True(strings.HasPrefix(d.ID, "msg_"))
		is.True(!seen[d.ID]) // no delivery twice
		seen[d.ID] = true
		is.Equal(d.EventType, domain.OutboundTaskFailed)
		is.Equal(d.Status, string(domain.DeliveryPending))
		is.Equal(d.Attempts, 0)
		is.Equal(d.LastStatusCode, 0)
		is.Equal(d.LastError, "")
		is.True(d.DeliveredAt == nil)
		if i > 0 {
			is.True(!parseTime(t, d.CreatedAt).After(parseTime(t, all[i-1].CreatedAt))) // newest first
		}
	}

	// A cursor is the merchant's, for this endpoint's list only.
	cursor := url.QueryEscape(cursors[0])
	for _, c := range []struct {
		name, key, path string
	}{
		{"another endpoint", alice.Key, "/api/webhook-endpoints/" + other.ID + "/deliveries?cursor=" + cursor},
		{"another merchant", bob.Key, "/api/webhook-endpoints/" + bobs.ID + "/deliveries?cursor=" + cursor},
		{"the task list", alice.Key, "/api/tasks?cursor=" + cursor},
		{"forged", alice.Key, path + "?cursor=" + strings.Repeat("A", len(cursors[0]))},
		{"bogus", alice.Key, path + "?cursor=bogus"},
		{"limit 0", alice.Key, path + "?limit=0"},
		{"limit 201", alice.Key, path + "?limit=201"},
		{"limit twice", alice.Key, path + "?limit=1&limit=2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			is := is.New(t)
			r := e.with(t).api(http.MethodGet, c.path, c.key)
			is.Equal(r.status, http.StatusBadRequest)
		})
	}
}

// TestEndpointDeliveriesShowAttempts runs the delivery worker with the
// real sender against a receiver that fails once, then acknowledges: the
// list shows each attempt's outcome as the merchant should see it.
func TestEndpointDeliveriesShowAttempts(t *testing.T) {
	is := is.New(t)
	e := newEnv(t)
	alice := e.createMerchant("Alice")
	answers := make(chan int, 2)
	answers <- http.StatusServiceUnavailable
	answers <- http.StatusNoContent
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(<-answers) }))
	defer recv.Close()
	// The receiver is on loopback, which the API refuses: store the
	// endpoint directly, and send with private addresses allowed.
	ep, err := domain.NewWebhookEndpoint(alice.ID, recv.URL+"/hooks", []string{"*"}, time.Now())
	is.NoErr(err)
	_, err = e.mem.Endpoints().CreateEndpoint(context.Background(), alice.ID, ep)
	is.NoErr(err)
	enqueue(t, e.mem, alice.ID, 1)
	worker := app.NewDeliveryWorker(app.DeliveryConfig{Retries: []time.Duration{time.Millisecond}},
		e.mem.Outbox(), outbound.New(outbound.Config{AllowPrivate: true}), nil, nil, nil)

	deliveries := func() deliveryAnswer {
		t.Helper()
		var page deliveryPage
		e.api(http.MethodGet, "/api/webhook-endpoints/"+string(ep.ID)+"/deliveries", alice.Key).decode(t, &page)
		is.Equal(len(page.Deliveries), 1)
		return page.Deliveries[0]
	}

	n, err := worker.RunOnce(context.Background())
	is.NoErr(err)
	is.Equal(n, 1)
	d := deliveries()
	is.Equal(d.Status, string(domain.DeliveryPending)) // to be tried again
	is.Equal(d.Attempts, 1)
	is.Equal(d.LastStatusCode, http.StatusServiceUnavailable)
	is.Equal(d.LastError, "endpoint answered 503 Service Unavailable")
	is.True(d.DeliveredAt == nil)

	time.Sleep(5 * time.Millisecond) // past the retry's millisecond
	n, err = worker.RunOnce(context.Background())
	is.NoErr(err)
	is.Equal(n, 1)
	d = deliveries()
	is.Equal(d.Status, string(domain.DeliveryDelivered))
	is.Equal(d.Attempts, 2)
	is.Equal(d.LastStatusCode, http.StatusNoContent)
	is.True(d.DeliveredAt != nil)                                   // delivered_at is set
	is.True(time.Since(parseTime(t, *d.DeliveredAt)) < time.Minute) // to when it was
}

// TestEndpointRoutesNeedTheService: without an EndpointService the task
// API has no endpoint routes.
func TestEndpointRoutesNeedTheService(t *testing.T) {
	is := is.New(t)
	e := newEnv(t)
	alice := e.createMerchant("Alice")
	m, err := e.mem.Merchants().MerchantByID(context.Background(), alice.ID)
	is.NoErr(err)
	tasks := app.NewTaskService(e.mem.Tasks(), e.mem.Ledger(), ports.SystemClock{})
	h := httpapi.NewTaskAPI(tasks, httpapi.MerchantResolverFunc(func(*http.Request) (domain.Merchant, error) { return m, nil }), httpapi.TaskAPIOptions{})
	for _, path := range []string{"/api/webhook-endpoints", "/api/webhook-endpoints/" + domain.NewID() + "/deliveries"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		is.Equal(rec.Code, http.StatusNotFound)
	}
}
