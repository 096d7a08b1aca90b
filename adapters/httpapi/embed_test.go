package httpapi_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/adapters/httpapi"
	"github.com/recoupdev/recoup/adapters/memory"
	"github.com/recoupdev/recoup/adapters/stripe"
	"github.com/recoupdev/recoup/app"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/stripetest"
	"github.com/recoupdev/recoup/ports"
)

// TestMountedUnderPrefix mounts the handlers in a host service's own mux
// under /billing/, with the host's own authentication deciding the
// merchant: the webhook, the task API and the tenant rules work there as
// at the root.
func TestMountedUnderPrefix(t *testing.T) {
	is := is.New(t)
	store := memory.New(nil)
	clock := ports.SystemClock{}
	merchants := app.NewMerchantService(store.Merchants(), clock)
	alice, _, err := merchants.Create(t.Context(), "Alice's shop", stripetest.NewID("acct_"))
	is.NoErr(err)
	bob, _, err := merchants.Create(t.Context(), "Bob's shop", stripetest.NewID("acct_"))
	is.NoErr(err)

	// The host's login: a session header naming a user, each user
	// belonging to one merchant.
	users := map[string]domain.MerchantID{"alice": alice.ID, "bob": bob.ID}
	resolver := httpapi.MerchantResolverFunc(func(r *http.Request) (domain.Merchant, error) {
		id, ok := users[r.Header.Get("X-Session-User")]
		if !ok {
			return domain.Merchant{}, fmt.Errorf("%w: log in first", httpapi.ErrUnauthenticated)
		}
		return store.Merchants().MerchantByID(r.Context(), id)
	})
	verifier, err := stripe.NewVerifier([]string{testSecret})
	is.NoErr(err)
	webhooks := app.NewWebhookService(store, app.WebhookConfig{Clock: clock})
	tasks := app.NewTaskService(store.Tasks(), store.Ledger(), clock)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "host home") })
	mux.Handle("POST /billing/stripe", httpapi.NewWebhookHandler(verifier, webhooks, nil, nil))
	mux.Handle("/billing/api/", http.StripPrefix("/billing", httpapi.NewTaskAPI(tasks, resolver, httpapi.TaskAPIOptions{})))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	call := func(method, path, user string, body []byte, headers ...string) (int, string) {
		req, err := http.NewRequest(method, srv.URL+path, bytes.NewReader(body))
		is.NoErr(err)
		if user != "" {
			req.Header.Set("X-Session-User", user)
		}
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		res, err := srv.Client().Do(req)
		is.NoErr(err)
		defer res.Body.Close()
		var b bytes.Buffer
		_, err = b.ReadFrom(res.Body)
		is.NoErr(err)
		return res.StatusCode, b.String()
	}

	p := paymentFailed(stripetest.NewID("evt_"), bob.StripeAccountID, stripetest.NewID("in_"))
	status, body := call(http.MethodPost, "/billing/stripe", "", p, "Stripe-Signature", stripetest.Sign(p, testSecret, time.Now()))
	is.Equal(status, http.StatusOK) // the webhook works under the prefix
	is.True(strings.Contains(body, `"processed":true`))

	page, err := store.Tasks().List(t.Context(), bob.ID, domain.TaskFilter{Limit: 10})
	is.NoErr(err)
	is.Equal(len(page.Tasks), tasksPerFailure)
	bobTask := string(page.Tasks[0].ID)

	status, body = call(http.MethodGet, "/billing/api/tasks", "bob", nil)
	is.Equal(status, http.StatusOK) // the host's login decides the merchant
	is.True(strings.Contains(body, bobTask))
	status, _ = call(http.MethodGet, "/billing/api/tasks/"+bobTask, "bob", nil)
	is.Equal(status, http.StatusOK)

	status, body = call(http.MethodGet, "/billing/api/tasks/"+bobTask, "alice", nil)
	is.Equal(status, http.StatusForbidden) // the tenant rules hold with any resolver
	is.Equal(strings.TrimSpace(body), `{"error":"Forbidden"}`)
	status, body = call(http.MethodGet, "/billing/api/tasks", "alice", nil)
	is.Equal(status, http.StatusOK)
	is.True(!strings.Contains(body, bobTask)) // nor does Alice's list show it

	status, body = call(http.MethodGet, "/billing/api/tasks", "", nil)
	is.Equal(status, http.StatusUnauthorized) // the resolver's refusal
	is.True(strings.Contains(body, "log in first"))

	status, body = call(http.MethodGet, "/", "", nil)
	is.Equal(status, http.StatusOK) // the host's own routes are untouched
	is.Equal(body, "host home")
}

// A resolver that lets a request through without naming a merchant is a
// bug; the task API fails closed.
func TestResolverWithoutMerchantFailsClosed(t *testing.T) {
	is := is.New(t)
	store := memory.New(nil)
	tasks := app.NewTaskService(store.Tasks(), store.Ledger(), ports.SystemClock{})
	h := httpapi.NewTaskAPI(tasks, httpapi.MerchantResolverFunc(func(*http.Request) (domain.Merchant, error) {
		return domain.Merchant{}, nil
	}), httpapi.TaskAPIOptions{})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/tasks", nil))
	is.Equal(rec.Code, http.StatusInternalServerError) // refused, not served
}

// ExampleNewTaskAPI mounts recoup's task API under a host service's
// /billing/ prefix, with the host's own authentication.
func ExampleNewTaskAPI() {
	store := memory.New(nil)
	tasks := app.NewTaskService(store.Tasks(), store.Ledger(), ports.SystemClock{})
	// The host's own login decides the merchant.
	resolver := httpapi.MerchantResolverFunc(func(r *http.Request) (domain.Merchant, error) {
		id := domain.MerchantID(r.Header.Get("X-Merchant")) // e.g. from a verified session
		if id == "" {
			return domain.Merchant{}, fmt.Errorf("%w: log in first", httpapi.ErrUnauthenticated)
		}
		return store.Merchants().MerchantByID(r.Context(), id)
	})

	mux := http.NewServeMux()
	// The task API routes on /api/…; strip the host's prefix in front.
	mux.Handle("/billing/api/", http.StripPrefix("/billing", httpapi.NewTaskAPI(tasks, resolver, httpapi.TaskAPIOptions{})))

	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/billing/api/tasks", nil))
	fmt.Println(rec.Code, strings.TrimSpace(rec.Body.String()))
	// Output: 401 {"error":"Unauthorized: log in first"}
}
