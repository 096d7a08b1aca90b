package recoup_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/matryer/is"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/recoupdev/recoup"
	"github.com/recoupdev/recoup/adapters/httpapi"
	"github.com/recoupdev/recoup/adapters/memory"
	"github.com/recoupdev/recoup/adapters/postgres"
	"github.com/recoupdev/recoup/app"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/clocktest"
	"github.com/recoupdev/recoup/internal/pgtest"
	"github.com/recoupdev/recoup/internal/stripetest"
	"github.com/recoupdev/recoup/ports"
)

const testSecret = "whsec_test_recoup"

func TestNewRefusesUnworkableOptions(t *testing.T) {
	tests := []struct {
		name string
		opts recoup.Options
	}{
		{"no webhook secret", recoup.Options{}},
		{"only empty webhook secrets", recoup.Options{WebhookSecrets: []string{""}}},
		{"negative worker concurrency", recoup.Options{WebhookSecrets: []string{testSecret}, Worker: app.WorkerConfig{Concurrency: -1}}},
		{"task timeout past the lease", recoup.Options{WebhookSecrets: []string{testSecret}, Worker: app.WorkerConfig{Lease: time.Second, TaskTimeout: time.Minute}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			svc, err := recoup.New(tt.opts)
			is.True(errors.Is(err, domain.ErrInvalid)) // refused as invalid
			is.Equal(svc, nil)
		})
	}
}

func TestMountRefusesMalformedPrefix(t *testing.T) {
	svc := newService(t, recoup.Options{})
	for _, prefix := range []string{"", "/", "billing", "/billing/"} {
		t.Run(fmt.Sprintf("%q", prefix), func(t *testing.T) {
			is := is.New(t)
			defer func() {
				is.True(recover() != nil) // Mount panics at wiring time
			}()
			svc.Mount(http.NewServeMux(), prefix, recoup.HandlerOptions{})
		})
	}
}

// TestMountedOnMemory runs the default Service (memory storage, recoup's
// API keys) under a prefix of a host mux: the webhook, the task API, the
// tenant rules, readiness and JSON 404s all work below the prefix, and the
// host's routes are untouched.
func TestMountedOnMemory(t *testing.T) {
	is := is.New(t)
	svc := newService(t, recoup.Options{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "host home") })
	svc.Mount(mux, "/billing", recoup.HandlerOptions{})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	exerciseTenantRules(t, svc, srv.URL+"/billing")

	status, _ := call(t, srv, http.MethodGet, "/billing/readyz", nil)
	is.Equal(status, http.StatusOK) // readiness below the prefix
	status, body := call(t, srv, http.MethodGet, "/billing/nothing-here", nil)
	is.Equal(status, http.StatusNotFound) // unknown paths below the prefix answer recoup's JSON 404
	is.True(strings.Contains(body, `"error"`))
	status, body = call(t, srv, http.MethodGet, "/", nil)
	is.Equal(status, http.StatusOK) // the host's own route
	is.Equal(body, "host home")
}

// TestAdminAPIUnderPrefix: the admin API mounts like the task API, and is
// off without a token.
func TestAdminAPIUnderPrefix(t *testing.T) {
	is := is.New(t)
	svc := newService(t, recoup.Options{})
	mux := http.NewServeMux()
	mux.Handle("/ops/admin/", http.StripPrefix("/ops", svc.AdminAPI("admin-token")))
	mux.Handle("/off/admin/", http.StripPrefix("/off", svc.AdminAPI("")))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	body := []byte(`{"name": "Shop", "stripe_account_id": "` + stripetest.NewID("acct_") + `"}`)
	status, got := call(t, srv, http.MethodPost, "/ops/admin/merchants", body, "Authorization", "Bearer admin-token")
	is.Equal(status, http.StatusCreated) // merchant created through the mounted admin API
	is.True(strings.Contains(got, `"api_key":"rk_`))
	status, _ = call(t, srv, http.MethodPost, "/ops/admin/merchants", body, "Authorization", "Bearer wrong")
	is.Equal(status, http.StatusUnauthorized) // a wrong token is refused
	status, _ = call(t, srv, http.MethodPost, "/off/admin/merchants", body, "Authorization", "Bearer ")
	is.Equal(status, http.StatusNotFound) // no token: no admin API
}

// TestWebhookWakesWorker: a delivery that schedules a task due now gets it
// run at once, although the worker's poll is an hour.
func TestWebhookWakesWorker(t *testing.T) {
	is := is.New(t)
	notified := make(chan domain.Notification, 4)
	svc := newService(t, recoup.Options{
		Notifier: notifierFunc(func(_ context.Context, n domain.Notification) error { notified <- n; return nil }),
		Worker:   app.WorkerConfig{Poll: time.Hour},
	})
	m, _, err := svc.Merchants().Create(t.Context(), "Shop", stripetest.NewID("acct_"))
	is.NoErr(err)

	ctx, stop := context.WithCancel(t.Context())
	ran := make(chan error, 1)
	go func() { ran <- svc.RunWorker(ctx) }()

	hook := svc.WebhookHandler()
	for i := range 2 {
		// The first task may be found by the worker's first claim; the
		// second comes after that claim, so only a wake can find it
		// before the hour-long poll.
		rec := httptest.NewRecorder()
		hook.ServeHTTP(rec, signedEvent(t, "/", paymentFailed(m.StripeAccountID, "in_"+fmt.Sprint(i))))
		is.Equal(rec.Code, http.StatusOK) // delivered
		select {
		case n := <-notified:
			is.Equal(n.InvoiceID, "in_"+fmt.Sprint(i)) // the task just scheduled ran
		case <-time.After(time.Minute):
			t.Fatalf("task %d not run: the webhook did not wake the worker", i)
		}
	}
	stop()
	is.NoErr(<-ran) // RunWorker ends cleanly when its context does
}

// TestObserverSeesDeliveries: the Observer of Options is the webhook's.
func TestObserverSeesDeliveries(t *testing.T) {
	is := is.New(t)
	obs := &recordingObserver{}
	svc := newService(t, recoup.Options{Observer: obs})
	m, _, err := svc.Merchants().Create(t.Context(), "Shop", stripetest.NewID("acct_"))
	is.NoErr(err)
	ev := paymentFailed(m.StripeAccountID, stripetest.NewID("in_"))
	for range 2 {
		rec := httptest.NewRecorder()
		svc.WebhookHandler().ServeHTTP(rec, signedEvent(t, "/", ev))
		is.Equal(rec.Code, http.StatusOK) // delivered
	}
	is.Equal(obs.outcomes(), []string{ports.DeliveryProcessed, ports.DeliveryDuplicate}) // both deliveries observed
}

// TestPruneEvents: idempotency locks older than the retention are pruned,
// after which the same event is processed again; a negative retention
// keeps them.
func TestPruneEvents(t *testing.T) {
	for _, tt := range []struct {
		name      string
		retention time.Duration
		pruned    int
	}{
		{"retention one hour", time.Hour, 1},
		{"negative retention keeps locks", -1, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			clock := clocktest.New(time.Now().UTC())
			svc := newService(t, recoup.Options{Clock: clock, EventRetention: tt.retention})
			m, _, err := svc.Merchants().Create(t.Context(), "Shop", stripetest.NewID("acct_"))
			is.NoErr(err)
			ev := paymentFailed(m.StripeAccountID, stripetest.NewID("in_"))
			deliver := func() string {
				rec := httptest.NewRecorder()
				svc.WebhookHandler().ServeHTTP(rec, signedEventAt(t, "/", ev, clock.Now()))
				is.Equal(rec.Code, http.StatusOK) // delivered
				return rec.Body.String()
			}
			is.True(strings.Contains(deliver(), `"processed":true`)) // first delivery processed

			clock.Add(2 * time.Hour)
			n, err := svc.PruneEvents(t.Context())
			is.NoErr(err)
			is.Equal(n, tt.pruned) // locks pruned per the retention

			again := strings.Contains(deliver(), `"processed":true`)
			is.Equal(again, tt.pruned == 1) // a pruned lock lets the event in again
		})
	}
}

// TestPostgresOnCallersDB: the Service runs on the caller's migrated
// *bun.DB through postgres.New.
func TestPostgresOnCallersDB(t *testing.T) {
	db := pgtest.NewMigratedDB(t)
	svc := newService(t, recoup.Options{Storage: postgres.New(db)})
	mux := http.NewServeMux()
	svc.Mount(mux, "/billing", recoup.HandlerOptions{})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	exerciseTenantRules(t, svc, srv.URL+"/billing")
}

// TestPostgresMigrateIntoCallersSchema: a caller with its own *bun.DB (pgx
// with its default query mode, not recoup's Open) whose own tables are in
// public puts recoup's in a schema of its choosing by naming that schema
// first in the connection's search_path: Migrate, run from code, creates
// recoup's tables there, the caller's table stays in public, and one pool
// serves both the caller's unqualified queries and the Service.
func TestPostgresMigrateIntoCallersSchema(t *testing.T) {
	is := is.New(t)
	ctx := t.Context()
	dbURL := pgtest.NewDatabase(t)
	u, err := url.Parse(pgtest.NewSchema(t, dbURL))
	is.NoErr(err)
	schema := u.Query().Get("search_path")
	q := u.Query()
	q.Set("search_path", schema+",public")
	u.RawQuery = q.Encode()
	cfg, err := pgx.ParseConfig(u.String())
	is.NoErr(err)
	db := bun.NewDB(stdlib.OpenDB(*cfg), pgdialect.New())
	t.Cleanup(func() { _ = db.Close() })

	_, err = db.ExecContext(ctx, `CREATE TABLE public.app_users (id bigserial PRIMARY KEY, email text NOT NULL)`)
	is.NoErr(err) // the caller's own table, in public
	is.NoErr(postgres.Migrate(ctx, db))

	var tables []struct {
		Schema string `bun:"table_schema"`
		Name   string `bun:"table_name"`
	}
	is.NoErr(db.NewRaw(`SELECT table_schema, table_name FROM information_schema.tables
		WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY table_name`).Scan(ctx, &tables))
	where := map[string]string{}
	for _, tb := range tables {
		where[tb.Name] = tb.Schema
	}
	is.Equal(where["app_users"], "public") // the caller's table stays where it was
	for name, s := range where {
		if name != "app_users" {
			is.Equal(s+"."+name, schema+"."+name) // every table of recoup's is in the chosen schema
		}
	}
	for _, name := range []string{"merchants", "tasks", "processed_events", "recoup_migrations"} {
		is.Equal(where[name], schema) // including these
	}

	svc := newService(t, recoup.Options{Storage: postgres.New(db)})
	mux := http.NewServeMux()
	svc.Mount(mux, "/billing", recoup.HandlerOptions{})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	exerciseTenantRules(t, svc, srv.URL+"/billing")

	_, err = db.ExecContext(ctx, `INSERT INTO app_users (email) VALUES ('ops@example.com')`)
	is.NoErr(err) // the caller's unqualified queries still reach its own table on the same pool
}

// TestPostgresInCallersTx: on a bun.Tx, recoup's writes (onboarding a
// merchant, the webhook's lock and tasks) join the caller's transaction
// and roll back with it.
func TestPostgresInCallersTx(t *testing.T) {
	is := is.New(t)
	ctx := t.Context()
	db := pgtest.NewMigratedDB(t)
	account := stripetest.NewID("acct_")

	errRollback := errors.New("roll back")
	err := db.RunInTx(ctx, &sql.TxOptions{}, func(ctx context.Context, tx bun.Tx) error {
		svc := newService(t, recoup.Options{Storage: postgres.New(tx)})
		m, _, err := svc.Merchants().Create(ctx, "Shop", account)
		is.NoErr(err)
		rec := httptest.NewRecorder()
		svc.WebhookHandler().ServeHTTP(rec, signedEvent(t, "/", paymentFailed(account, "in_1")).WithContext(ctx))
		is.Equal(rec.Code, http.StatusOK) // processed inside the caller's transaction
		page, err := svc.Tasks().List(ctx, m, domain.TaskFilter{})
		is.NoErr(err)
		is.Equal(len(page.Tasks), 4) // visible within it
		return errRollback
	})
	is.True(errors.Is(err, errRollback))

	_, err = postgres.New(db).Merchants().MerchantByStripeAccount(ctx, account)
	is.True(errors.Is(err, domain.ErrNotFound)) // the merchant rolled back with the caller's transaction
	var count int
	is.NoErr(db.NewRaw("SELECT count(*) FROM tasks").Scan(ctx, &count))
	is.Equal(count, 0) // and so did the tasks
}

// exerciseTenantRules onboards two merchants, delivers a signed event for
// Bob's account through base (the mounted prefix), reads it with Bob's API
// key, and checks that Alice can neither see nor touch it.
func exerciseTenantRules(t *testing.T, svc *recoup.Service, base string) {
	t.Helper()
	is := is.New(t)
	ctx := t.Context()
	_, aliceKey, err := svc.Merchants().Create(ctx, "Alice's shop", stripetest.NewID("acct_"))
	is.NoErr(err)
	bob, bobKey, err := svc.Merchants().Create(ctx, "Bob's shop", stripetest.NewID("acct_"))
	is.NoErr(err)

	do := func(method, path, key string, req *http.Request) (int, string) {
		t.Helper()
		if req == nil {
			var err error
			req, err = http.NewRequestWithContext(ctx, method, base+path, nil)
			is.NoErr(err)
		}
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		res, err := http.DefaultClient.Do(req)
		is.NoErr(err)
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		is.NoErr(err)
		return res.StatusCode, string(b)
	}

	hook := signedEvent(t, base+"/webhooks/stripe", paymentFailed(bob.StripeAccountID, stripetest.NewID("in_")))
	hook.RequestURI = ""
	status, body := do("", "", "", hook)
	is.Equal(status, http.StatusOK) // the webhook under the prefix
	is.True(strings.Contains(body, `"processed":true`))

	status, body = do(http.MethodGet, "/api/tasks", bobKey.Plain, nil)
	is.Equal(status, http.StatusOK) // Bob lists his tasks
	var page struct {
		Tasks []struct {
			ID   string `json:"id"`
			Type string `json:"type"`
		} `json:"tasks"`
	}
	is.NoErr(json.Unmarshal([]byte(body), &page))
	is.Equal(len(page.Tasks), 4) // the notice, two reminders and the retry
	bobTask := page.Tasks[0].ID

	status, body = do(http.MethodGet, "/api/tasks/"+bobTask, aliceKey.Plain, nil)
	is.Equal(status, http.StatusForbidden) // Alice cannot read Bob's task
	is.Equal(strings.TrimSpace(body), `{"error":"Forbidden"}`)
	status, _ = do(http.MethodDelete, "/api/tasks/"+bobTask, aliceKey.Plain, nil)
	is.Equal(status, http.StatusForbidden) // nor delete it
	status, body = do(http.MethodGet, "/api/tasks", aliceKey.Plain, nil)
	is.Equal(status, http.StatusOK)
	is.True(!strings.Contains(body, bobTask)) // nor see it in her list
	status, _ = do(http.MethodGet, "/api/tasks/"+bobTask, bobKey.Plain, nil)
	is.Equal(status, http.StatusOK) // Bob's task is still there after Alice's attempts
	status, _ = do(http.MethodGet, "/api/tasks", "", nil)
	is.Equal(status, http.StatusUnauthorized) // no key, no tasks
}

func newService(t *testing.T, opts recoup.Options) *recoup.Service {
	t.Helper()
	opts.WebhookSecrets = []string{testSecret}
	svc, err := recoup.New(opts)
	if err != nil {
		t.Fatalf("recoup.New: %v", err)
	}
	return svc
}

func paymentFailed(account, invoiceID string) []byte {
	return stripetest.Event{
		Type: domain.EventInvoicePaymentFailed, Account: account,
		Object: stripetest.Invoice{
			ID: invoiceID, Customer: "cus_jenny", CustomerEmail: "jenny@example.com",
			AmountDue: 2000, AttemptCount: 1, HostedInvoiceURL: "https://invoice.stripe.com/i/test",
		},
	}.JSON()
}

func signedEvent(t *testing.T, url string, payload []byte) *http.Request {
	t.Helper()
	return signedEventAt(t, url, payload, time.Now())
}

func signedEventAt(t *testing.T, url string, payload []byte, at time.Time) *http.Request {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, url, bytes.NewReader(payload))
	req.Header.Set("Stripe-Signature", stripetest.Sign(payload, testSecret, at))
	return req
}

func call(t *testing.T, srv *httptest.Server, method, path string, body []byte, headers ...string) (int, string) {
	t.Helper()
	is := is.New(t)
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, bytes.NewReader(body))
	is.NoErr(err)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := srv.Client().Do(req)
	is.NoErr(err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	is.NoErr(err)
	return res.StatusCode, string(b)
}

type notifierFunc func(context.Context, domain.Notification) error

func (f notifierFunc) Notify(ctx context.Context, n domain.Notification) error { return f(ctx, n) }

// recordingObserver notes the webhook outcomes it is told.
type recordingObserver struct {
	ports.NopObserver
	mu   sync.Mutex
	seen []string
}

func (o *recordingObserver) WebhookDelivery(_, outcome string, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seen = append(o.seen, outcome)
}

func (o *recordingObserver) outcomes() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.seen)
}

// TestReplayOfAnOldDeliveryIsRefused replays a delivery captured an hour
// ago, after its idempotency lock was pruned, with a fresh timestamp
// beside the signed one in every spelling a reader could take differently
// from another: each is refused (400) and nothing changes, on both
// storages.
func TestReplayOfAnOldDeliveryIsRefused(t *testing.T) {
	for name, storage := range e2eStorages() {
		t.Run(name, func(t *testing.T) {
			is := is.New(t)
			clock := clocktest.New(time.Now().UTC().Truncate(time.Second))
			svc := newService(t, recoup.Options{Storage: storage(t), Clock: clock, EventRetention: time.Minute})
			m, _, err := svc.Merchants().Create(t.Context(), "Shop", stripetest.NewID("acct_"))
			is.NoErr(err)
			ev := paymentFailed(m.StripeAccountID, stripetest.NewID("in_"))
			signedAt := clock.Now()
			captured := stripetest.Sign(ev, testSecret, signedAt)

			deliver := func(header string) (int, string) {
				req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(ev))
				req.Header.Set("Stripe-Signature", header)
				rec := httptest.NewRecorder()
				svc.WebhookHandler().ServeHTTP(rec, req)
				return rec.Code, rec.Body.String()
			}
			status, body := deliver(captured)
			is.Equal(status, http.StatusOK)                     // the genuine delivery
			is.True(strings.Contains(body, `"processed":true`)) // is processed
			tasks := func() int {
				page, err := svc.Tasks().List(t.Context(), m, domain.TaskFilter{Limit: domain.MaxPageSize})
				is.NoErr(err)
				return len(page.Tasks)
			}
			before := tasks()

			for _, later := range []time.Duration{time.Hour, -time.Hour} {
				clock.Add(later) // an hour after it, or (for a delivery signed ahead) an hour before
				_, err = svc.PruneEvents(t.Context())
				is.NoErr(err)
				_, v1, _ := strings.Cut(captured, ",")
				fresh := "t=" + fmt.Sprint(clock.Now().Unix())
				old := "t=" + fmt.Sprint(signedAt.Unix())
				for _, header := range []string{
					captured,                                // as captured
					fresh + "," + old + "," + v1,            // a fresh t first
					old + "," + v1 + "," + fresh,            // a fresh t last
					" " + fresh + "," + old + "," + v1,      // a fresh t behind a space
					fresh + ", " + old + "," + v1,           // the signed t behind a space
					"T=" + fresh[2:] + "," + old + "," + v1, // a fresh T
					fresh + ",T=" + old[2:] + "," + v1,      // the signed t as T
				} {
					status, body := deliver(header)
					is.Equal(status, http.StatusBadRequest) // refused
					is.True(strings.Contains(body, `"error"`))
				}
				is.Equal(tasks(), before) // and nothing was scheduled again
				clock.Add(-later)
			}
		})
	}
}

// TestPoisonEventsAnswerAlike: a signed event whose id holds a NUL is
// refused (400) and one whose free text does is processed with the NUL
// made U+FFFD, the same on both storages — never a 500 that Stripe would
// redeliver for days.
func TestPoisonEventsAnswerAlike(t *testing.T) {
	for name, storage := range e2eStorages() {
		t.Run(name, func(t *testing.T) {
			is := is.New(t)
			svc := newService(t, recoup.Options{Storage: storage(t)})
			m, _, err := svc.Merchants().Create(t.Context(), "Shop", stripetest.NewID("acct_"))
			is.NoErr(err)
			deliver := func(ev stripetest.Event) (int, string) {
				rec := httptest.NewRecorder()
				svc.WebhookHandler().ServeHTTP(rec, signedEvent(t, "/", ev.JSON()))
				return rec.Code, rec.Body.String()
			}
			inv := stripetest.Invoice{ID: stripetest.NewID("in_"), Customer: "cus_1", CustomerEmail: "jenny@example.com", AmountDue: 2000, Currency: "usd", AttemptCount: 1}
			for _, id := range []string{"evt_\x00", "evt_1\x00evt_2", "evt 1"} {
				status, _ := deliver(stripetest.Event{ID: id, Type: domain.EventInvoicePaymentFailed, Account: m.StripeAccountID, Object: inv})
				is.Equal(status, http.StatusBadRequest) // an id that is not plain text
			}
			bad := inv
			bad.ID = "in_\x00"
			status, _ := deliver(stripetest.Event{Type: domain.EventInvoicePaymentFailed, Account: m.StripeAccountID, Object: bad})
			is.Equal(status, http.StatusBadRequest) // an object id that is not plain text

			odd := inv
			odd.CustomerEmail = "jenny\x00@example.com"
			status, body := deliver(stripetest.Event{Type: domain.EventInvoicePaymentFailed, Account: m.StripeAccountID, Object: odd})
			is.Equal(status, http.StatusOK) // free text with a NUL is kept safely
			is.True(strings.Contains(body, `"processed":true`))
			page, err := svc.Tasks().List(t.Context(), m, domain.TaskFilter{Limit: 10})
			is.NoErr(err)
			is.Equal(len(page.Tasks), 4) // the notice, two reminders and the retry
			for _, task := range page.Tasks {
				is.Equal(task.CustomerEmail, "jenny\uFFFD@example.com")
			}
		})
	}
}

// TestNoWebhookService: a Service made to receive no webhooks (a worker
// process) needs no secret, runs the worker and refuses, at wiring time,
// to serve the webhook.
func TestNoWebhookService(t *testing.T) {
	is := is.New(t)
	svc, err := recoup.New(recoup.Options{NoWebhook: true})
	is.NoErr(err) // no secret needed
	ctx, stop := context.WithCancel(t.Context())
	stop()
	is.NoErr(svc.RunWorker(ctx)) // the worker runs (and stops with its context)
	defer func() {
		is.True(recover() != nil) // the webhook is a wiring mistake
	}()
	svc.WebhookHandler()
}

// TestDashboardSignInUnderPrefix: Mount serves the dashboard below the
// prefix with recoup's API-key sign-in, and its cookies are Secure and
// limited to the dashboard's path when the public URL is https.
func TestDashboardSignInUnderPrefix(t *testing.T) {
	is := is.New(t)
	svc := newService(t, recoup.Options{PublicURL: "https://billing.example"})
	mux := http.NewServeMux()
	svc.Mount(mux, "/billing", recoup.HandlerOptions{})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	_, key, err := svc.Merchants().Create(t.Context(), "Shop", stripetest.NewID("acct_"))
	is.NoErr(err)
	client := *srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	send := func(req *http.Request, cookies ...*http.Cookie) *http.Response {
		for _, c := range cookies {
			req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
		}
		res, err := client.Do(req)
		is.NoErr(err)
		t.Cleanup(func() { res.Body.Close() })
		return res
	}

	res := send(newRequest(t, http.MethodGet, srv.URL+"/billing/dashboard/", nil))
	is.Equal(res.StatusCode, http.StatusSeeOther) // not signed in
	is.Equal(res.Header.Get("Location"), "/billing/dashboard/signin")

	res = send(newRequest(t, http.MethodGet, srv.URL+"/billing/dashboard/signin", nil))
	is.Equal(res.StatusCode, http.StatusOK)
	page, err := io.ReadAll(res.Body)
	is.NoErr(err)
	token := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)
	is.True(token != nil) // the sign-in form's token
	signInCookies := res.Cookies()

	form := url.Values{"api_key": {key.Plain}, "csrf": {string(token[1])}}
	req := newRequest(t, http.MethodPost, srv.URL+"/billing/dashboard/signin", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res = send(req, signInCookies...)
	is.Equal(res.StatusCode, http.StatusSeeOther) // signed in
	is.Equal(res.Header.Get("Location"), "/billing/dashboard/")
	var session *http.Cookie
	for _, c := range res.Cookies() {
		if c.Name == "recoup_session" {
			session = c
		}
	}
	is.True(session != nil)
	is.True(session.Secure && session.HttpOnly) // https only, and not for scripts
	is.Equal(session.SameSite, http.SameSiteStrictMode)
	is.Equal(session.Path, "/billing/dashboard") // the dashboard's path below the prefix

	res = send(newRequest(t, http.MethodGet, srv.URL+"/billing/dashboard/tasks", nil), session)
	is.Equal(res.StatusCode, http.StatusOK) // the session opens the pages
	is.Equal(res.Header.Get("Content-Security-Policy"),
		"default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
}

func newRequest(t *testing.T, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, body)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	return req
}

// TestDashboardSignInsShareTheAPIsAllowance: a failed dashboard sign-in
// counts against the same per-address allowance as a failed API call.
func TestDashboardSignInsShareTheAPIsAllowance(t *testing.T) {
	is := is.New(t)
	svc := newService(t, recoup.Options{})
	srv := httptest.NewServer(svc.Handler(recoup.HandlerOptions{
		AuthLimiter: httpapi.NewAuthLimiter(httpapi.AuthLimitConfig{MaxFailures: 1}),
	}))
	t.Cleanup(srv.Close)

	res, err := srv.Client().Get(srv.URL + "/dashboard/signin")
	is.NoErr(err)
	page, err := io.ReadAll(res.Body)
	res.Body.Close()
	is.NoErr(err)
	token := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)
	is.True(token != nil)
	form := url.Values{"api_key": {"rk_wrong"}, "csrf": {string(token[1])}}
	req := newRequest(t, http.MethodPost, srv.URL+"/dashboard/signin", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range res.Cookies() {
		req.AddCookie(c)
	}
	res, err = srv.Client().Do(req)
	is.NoErr(err)
	res.Body.Close()
	is.Equal(res.StatusCode, http.StatusUnauthorized) // the failed sign-in

	status, _ := call(t, srv, http.MethodGet, "/api/tasks", nil, "Authorization", "Bearer rk_anything")
	is.Equal(status, http.StatusTooManyRequests) // used up the address's allowance on the API too
}

// foldingStorage is memory storage that keeps running sums, for all the
// composition can tell: it counts the folds RunWorker asks for.
type foldingStorage struct {
	ports.Storage
	folds chan struct{}
}

func (f foldingStorage) FoldSums(context.Context) error {
	select {
	case f.folds <- struct{}{}:
	default:
	}
	return nil
}

// TestRunWorkerFoldsSums: RunWorker folds the running sums of storage
// that keeps them (ports.SumFolder), and stops with its context.
func TestRunWorkerFoldsSums(t *testing.T) {
	is := is.New(t)
	st := foldingStorage{Storage: memory.New(ports.SystemClock{}), folds: make(chan struct{}, 1)}
	svc, err := recoup.New(recoup.Options{NoWebhook: true, Storage: st})
	is.NoErr(err)
	ctx, stop := context.WithCancel(t.Context())
	ran := make(chan error, 1)
	go func() { ran <- svc.RunWorker(ctx) }()
	select {
	case <-st.folds:
	case <-time.After(time.Minute):
		t.Fatal("RunWorker did not fold the storage's sums")
	}
	stop()
	is.NoErr(<-ran)
}
