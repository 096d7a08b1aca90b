package dashboard_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/recoupdev/recoup/adapters/dashboard"
	"github.com/recoupdev/recoup/adapters/httpapi"
	"github.com/recoupdev/recoup/adapters/memory"
	"github.com/recoupdev/recoup/adapters/outbound"
	"github.com/recoupdev/recoup/adapters/postgres"
	"github.com/recoupdev/recoup/app"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/clocktest"
	"github.com/recoupdev/recoup/internal/pgtest"
	"github.com/recoupdev/recoup/internal/stripetest"
	"github.com/recoupdev/recoup/ports"
)

// start is the tests' clock: sessions expire by it, and the overview's
// default days end on its day.
var start = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

// forEachStore runs test on a fresh memory store and on a fresh migrated
// PostgreSQL schema.
func forEachStore(t *testing.T, test func(t *testing.T, st ports.Storage)) {
	t.Run("memory", func(t *testing.T) {
		t.Parallel()
		test(t, memory.New(nil))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		test(t, postgres.New(pgtest.NewMigratedDB(t)))
	})
}

func memoryStore() ports.Storage { return memory.New(nil) }

// site is the dashboard over one store's use cases, with a clock the test
// moves.
type site struct {
	t         *testing.T
	st        ports.Storage
	clock     *clocktest.Clock
	merchants *app.MerchantService
	policies  *app.PolicyService
	endpoints *app.EndpointService
	h         http.Handler
	wakes     atomic.Int32
}

type siteOption func(*dashboard.Config)

func withResolver(r dashboard.Resolver) siteOption {
	return func(c *dashboard.Config) { c.Resolver, c.CSRFKey, c.Sessions = r, []byte("csrf key for tests"), nil }
}

func withBase(base string) siteOption { return func(c *dashboard.Config) { c.BasePath = base } }

func withSecureCookies() siteOption { return func(c *dashboard.Config) { c.SecureCookies = true } }

func withLimiter(l dashboard.Limiter) siteOption { return func(c *dashboard.Config) { c.Limiter = l } }

func newSite(t *testing.T, st ports.Storage, opts ...siteOption) *site {
	t.Helper()
	clock := clocktest.New(start)
	s := &site{t: t, st: st, clock: clock, merchants: app.NewMerchantService(st.Merchants(), clock)}
	s.policies = app.NewPolicyService(st.Policies())
	s.endpoints = app.NewEndpointService(st.Endpoints(), outbound.New(outbound.Config{AllowPrivate: true}), clock)
	cfg := dashboard.Config{
		Tasks: app.NewTaskService(st.Tasks(), st.Ledger(), clock), Policies: s.policies, Endpoints: s.endpoints,
		Cursors: httpapi.NewCursors([]byte("cursor key for tests")), Sessions: app.NewSessionService(st.Sessions(), s.merchants, clock, 0),
		Wake: func() { s.wakes.Add(1) },
	}
	for _, o := range opts {
		o(&cfg)
	}
	s.h = dashboard.New(cfg)
	return s
}

// merchant makes a merchant and returns it with its API key.
func (s *site) merchant(name string) (domain.Merchant, string) {
	s.t.Helper()
	m, key, err := s.merchants.Create(context.Background(), name, stripetest.NewID("acct_"))
	if err != nil {
		s.t.Fatalf("create merchant: %v", err)
	}
	return m, key.Plain
}

// task schedules a pending task of the merchant, customerEmail its
// customer's address.
func (s *site) task(m domain.MerchantID, customerEmail string) domain.Task {
	s.t.Helper()
	now := time.Now().UTC().Truncate(time.Microsecond)
	task := domain.Task{
		ID: domain.TaskID(domain.NewID()), MerchantID: m, Type: domain.TypeRetryPayment, Status: domain.StatusPending,
		StripeEventID: "evt_" + domain.NewID()[:8], StripeCustomerID: "cus_1", StripeInvoiceID: "in_" + domain.NewID()[:12],
		CustomerEmail: customerEmail, AmountDue: 2000, Currency: "usd", InvoiceAttempt: 1,
		RunAt: now.Add(time.Hour), CreatedAt: now, UpdatedAt: now,
	}
	stored, err := s.st.Tasks().Schedule(context.Background(), m, []domain.Task{task})
	if err != nil || len(stored) != 1 {
		s.t.Fatalf("schedule: %v %v", err, stored)
	}
	return stored[0]
}

// cancelledTask is a task of the merchant that may be retried.
func (s *site) cancelledTask(m domain.MerchantID) domain.Task {
	s.t.Helper()
	task := s.task(m, "jenny@example.com")
	ids, err := s.st.Tasks().CancelPending(context.Background(), m, domain.CancelSelector{InvoiceID: task.StripeInvoiceID, Reason: domain.ReasonPaid}, time.Now())
	if err != nil || len(ids) != 1 {
		s.t.Fatalf("cancel: %v %v", err, ids)
	}
	return s.get(m, task.ID)
}

func (s *site) get(m domain.MerchantID, id domain.TaskID) domain.Task {
	s.t.Helper()
	task, err := s.st.Tasks().Get(context.Background(), m, id)
	if err != nil {
		s.t.Fatalf("get task: %v", err)
	}
	return task
}

// browser is one visitor of the site: it keeps its cookies, as a browser
// does, and follows no redirect.
type browser struct {
	t       *testing.T
	h       http.Handler
	cookies map[string]*http.Cookie
	// setCookies are the Set-Cookie lines of the last answer.
	setCookies []*http.Cookie
	// header is added to every request.
	header http.Header
}

func (s *site) browser() *browser {
	return &browser{t: s.t, h: s.h, cookies: map[string]*http.Cookie{}, header: http.Header{}}
}

// signedIn is a new browser signed in with key.
func (s *site) signedIn(key string) *browser {
	s.t.Helper()
	b := s.browser()
	b.signIn(key)
	return b
}

type answer struct {
	status int
	header http.Header
	body   string
}

func (b *browser) do(method, path string, form url.Values) answer {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	r := httptest.NewRequest(method, path, body)
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range b.header {
		r.Header[k] = v
	}
	for _, c := range b.cookies {
		r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	rec := httptest.NewRecorder()
	b.h.ServeHTTP(rec, r)
	res := rec.Result()
	b.setCookies = res.Cookies()
	for _, c := range b.setCookies {
		if c.MaxAge < 0 {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c
		}
	}
	raw, _ := io.ReadAll(res.Body)
	return answer{status: res.StatusCode, header: res.Header, body: string(raw)}
}

func (b *browser) get(path string) answer { b.t.Helper(); return b.do(http.MethodGet, path, nil) }

func (b *browser) post(path string, form url.Values) answer {
	b.t.Helper()
	return b.do(http.MethodPost, path, form)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// formKeyField finds the endpoint form's idempotency key; secretShown the
// endpoint secret shown once.
var (
	formKeyField = regexp.MustCompile(`<input type="hidden" name="idempotency_key" value="([^"]+)">`)
	secretShown  = regexp.MustCompile(`<code id="endpoint-secret">whsec_[^<]+</code>`)
)

// csrf is the CSRF token of the forms of a page.
func csrf(t *testing.T, body string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no csrf field in the page:\n%s", body)
	}
	return m[1]
}

// signIn signs the browser in with key and checks that it worked.
func (b *browser) signIn(key string) {
	b.t.Helper()
	page := b.get("/dashboard/signin")
	a := b.post("/dashboard/signin", url.Values{"api_key": {key}, "csrf": {csrf(b.t, page.body)}})
	if a.status != http.StatusSeeOther || a.header.Get("Location") != "/dashboard/" {
		b.t.Fatalf("sign in: %d %s\n%s", a.status, a.header.Get("Location"), a.body)
	}
}

// page fetches a signed-in page and checks it answered 200.
func (b *browser) page(path string) string {
	b.t.Helper()
	a := b.get(path)
	if a.status != http.StatusOK {
		b.t.Fatalf("GET %s: %d\n%s", path, a.status, a.body)
	}
	return a.body
}
