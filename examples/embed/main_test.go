package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/pgtest"
	"github.com/recoupdev/recoup/internal/stripetest"
)

const testSecret = "whsec_embed_test"

// TestEmbeddedBilling drives the host service end to end: its users log in
// with the host's own session, connect their Stripe accounts, Stripe posts
// a signed event through the /billing/ prefix, and each user reads recoup's
// tasks through the host's auth — only their own.
func TestEmbeddedBilling(t *testing.T) {
	is := is.New(t)
	billing, err := newBilling(t.Context(), nil, testSecret, slog.New(slog.DiscardHandler))
	is.NoErr(err)
	exerciseHost(t, billing)
}

// TestEmbeddedBillingOnHostDatabase: the same, with recoup on the host's own
// *bun.DB, its tables migrated into the schema the host's URL names.
func TestEmbeddedBillingOnHostDatabase(t *testing.T) {
	is := is.New(t)
	db, err := openDatabase(t.Context(), pgtest.NewSchema(t, pgtest.NewDatabase(t)))
	is.NoErr(err)
	t.Cleanup(func() { _ = db.Close() })
	billing, err := newBilling(t.Context(), db, testSecret, slog.New(slog.DiscardHandler))
	is.NoErr(err)
	exerciseHost(t, billing)

	var schema, tasksSchema string
	is.NoErr(db.NewRaw("SELECT current_schema()").Scan(t.Context(), &schema))
	is.NoErr(db.NewRaw("SELECT table_schema FROM information_schema.tables WHERE table_name = 'tasks'").Scan(t.Context(), &tasksSchema))
	is.Equal(tasksSchema, schema) // recoup's tables are in the host's schema
}

// exerciseHost runs the host service with billing mounted, end to end.
func exerciseHost(t *testing.T, billing *recoup.Service) {
	t.Helper()
	is := is.New(t)
	srv := httptest.NewServer(newServer(billing, newAccounts()))
	t.Cleanup(srv.Close)

	alice, bob := login(t, srv, "alice"), login(t, srv, "bob")
	aliceAccount, bobAccount := stripetest.NewID("acct_"), stripetest.NewID("acct_")
	status, _ := alice.form("/settings/stripe", url.Values{"account": {aliceAccount}})
	is.Equal(status, http.StatusCreated) // Alice connects her Stripe account
	status, _ = bob.form("/settings/stripe", url.Values{"account": {bobAccount}})
	is.Equal(status, http.StatusCreated) // Bob connects his

	// Stripe posts a signed event for Bob's account under the prefix.
	payload := stripetest.Event{
		Type: domain.EventInvoicePaymentFailed, Account: bobAccount,
		Object: stripetest.Invoice{
			Customer: "cus_jenny", CustomerEmail: "jenny@example.com", AmountDue: 2000, AttemptCount: 1,
			HostedInvoiceURL: "https://invoice.stripe.com/i/test",
		},
	}.JSON()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/billing/webhooks/stripe", bytes.NewReader(payload))
	is.NoErr(err)
	req.Header.Set("Stripe-Signature", stripetest.Sign(payload, testSecret, time.Now()))
	status, body := do(t, srv.Client(), req)
	is.Equal(status, http.StatusOK) // the webhook answers under /billing/
	is.True(strings.Contains(body, `"processed":true`))

	status, body = bob.get("/billing/api/tasks")
	is.Equal(status, http.StatusOK) // Bob reads his tasks with the host's session
	var page struct {
		Tasks []struct {
			ID   string `json:"id"`
			Type string `json:"type"`
		} `json:"tasks"`
	}
	is.NoErr(json.Unmarshal([]byte(body), &page))
	is.Equal(len(page.Tasks), 4) // the notice, two reminders and the retry
	bobTask := page.Tasks[0].ID

	status, body = alice.get("/billing/api/tasks/" + bobTask)
	is.Equal(status, http.StatusForbidden) // the cross-tenant 403 holds with the host's auth
	is.Equal(strings.TrimSpace(body), `{"error":"Forbidden"}`)
	status, _ = alice.send(http.MethodDelete, "/billing/api/tasks/"+bobTask)
	is.Equal(status, http.StatusForbidden) // Alice cannot delete it either
	status, body = alice.get("/billing/api/tasks")
	is.Equal(status, http.StatusOK)
	is.True(!strings.Contains(body, bobTask)) // nor see it in her list
	status, _ = bob.get("/billing/api/tasks/" + bobTask)
	is.Equal(status, http.StatusOK) // Bob's task is untouched

	// The dashboard, under the prefix too, signed in by the host's session.
	status, body = bob.get("/billing/dashboard/tasks")
	is.Equal(status, http.StatusOK) // Bob's dashboard lists his tasks
	is.True(strings.Contains(body, `<tr data-task-id="`+bobTask+`">`))
	is.True(strings.Contains(body, `id="nav-policy" href="/billing/dashboard/policy"`)) // its links stay below /billing/
	status, body = alice.get("/billing/dashboard/policy")
	is.Equal(status, http.StatusOK)
	aliceCSRF := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(body)
	is.True(aliceCSRF != nil) // her forms carry a CSRF token
	status, _ = alice.form("/billing/dashboard/tasks/"+bobTask+"/delete", url.Values{"csrf": {aliceCSRF[1]}})
	is.Equal(status, http.StatusForbidden) // nor can she delete Bob's task from her dashboard
	status, _ = bob.get("/billing/api/tasks/" + bobTask)
	is.Equal(status, http.StatusOK)

	anonymous := session{t: t, srv: srv, client: srv.Client()}
	status, _ = anonymous.get("/billing/dashboard/")
	is.Equal(status, http.StatusUnauthorized) // the dashboard needs the host's session
	status, body = anonymous.get("/billing/api/tasks")
	is.Equal(status, http.StatusUnauthorized) // no session, no tasks
	is.True(strings.Contains(body, "log in"))
	carol := login(t, srv, "carol")
	status, _ = carol.get("/billing/api/tasks")
	is.Equal(status, http.StatusUnauthorized) // a user without a Stripe account has no merchant
	status, body = bob.get("/")
	is.Equal(status, http.StatusOK) // the host's own pages still work
	is.Equal(body, "welcome back, bob\n")
}

// TestRun starts the program as main does, on a free port, serves a
// request and stops cleanly when its context ends.
func TestRun(t *testing.T) {
	is := is.New(t)
	ctx, stop := context.WithCancel(t.Context())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, env(map[string]string{"STRIPE_WEBHOOK_SECRET": testSecret, "ADDR": "127.0.0.1:0"}), io.Discard, ready)
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("run ended before listening: %v", err)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+addr+"/billing/healthz", nil)
	is.NoErr(err)
	status, _ := do(t, http.DefaultClient, req)
	is.Equal(status, http.StatusOK) // recoup answers under /billing/ of the running program
	stop()
	is.NoErr(<-done) // shut down cleanly
}

func TestRunNeedsWebhookSecret(t *testing.T) {
	is := is.New(t)
	err := run(t.Context(), env(nil), io.Discard, nil)
	is.True(err != nil) // no STRIPE_WEBHOOK_SECRET: refuses to start
	is.True(strings.Contains(err.Error(), "secret"))
}

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// session is a browser of the host service: a client with its own cookies.
type session struct {
	t      *testing.T
	srv    *httptest.Server
	client *http.Client
}

func login(t *testing.T, srv *httptest.Server, user string) session {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	client := *srv.Client()
	client.Jar = jar
	s := session{t: t, srv: srv, client: &client}
	if status, body := s.form("/login", url.Values{"user": {user}}); status != http.StatusOK {
		t.Fatalf("login %s: %d %s", user, status, body)
	}
	return s
}

func (s session) get(path string) (int, string) { return s.send(http.MethodGet, path) }

func (s session) send(method, path string) (int, string) {
	s.t.Helper()
	req, err := http.NewRequestWithContext(s.t.Context(), method, s.srv.URL+path, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	return do(s.t, s.client, req)
}

func (s session) form(path string, values url.Values) (int, string) {
	s.t.Helper()
	req, err := http.NewRequestWithContext(s.t.Context(), http.MethodPost, s.srv.URL+path, strings.NewReader(values.Encode()))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return do(s.t, s.client, req)
}

func do(t *testing.T, client *http.Client, req *http.Request) (int, string) {
	t.Helper()
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(b)
}
