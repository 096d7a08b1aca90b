package dashboard_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// The element contract the browser tests rely on, page by page.
var contract = map[string][]string{
	"/dashboard/": {`id="recovery-rate"`, `<table id="amounts">`, `<svg id="series-chart" role="img"`,
		`aria-describedby="series-table"`, `<table id="series-table">`, `<table id="by-decline-code">`, `<table id="by-source">`,
		`<caption>`, `scope="col"`},
	"/dashboard/tasks":    {`<form id="task-filters" class="filters" method="get" action="/dashboard/tasks">`, `<label for="status">`, `<table id="tasks">`},
	"/dashboard/policy":   {`<form id="policy-form" class="card form" method="post" action="/dashboard/policy">`, `name="max_attempts"`, `name="delays_by_decline_code"`},
	"/dashboard/webhooks": {`<table id="endpoints">`, `<form id="endpoint-form"`, `<label for="endpoint-url">`},
}

var layout = []string{`id="nav-overview" href="/dashboard/"`, `id="nav-tasks" href="/dashboard/tasks"`,
	`id="nav-policy" href="/dashboard/policy"`, `id="nav-webhooks" href="/dashboard/webhooks"`,
	`<form id="signout-form" method="post" action="/dashboard/signout">`, `id="signout-submit"`}

func TestEveryPageRendersWithItsElementsAndHeaders(t *testing.T) {
	forEachStore(t, func(t *testing.T, st ports.Storage) {
		is := is.New(t)
		s := newSite(t, st)
		_, key := s.merchant("Acme")
		b := s.signedIn(key)
		for path, want := range contract {
			a := b.get(path)
			is.Equal(a.status, http.StatusOK) // the page renders
			for _, el := range append(want, layout...) {
				is.True(strings.Contains(a.body, el)) // the page has its element
			}
			is.Equal(a.header.Get("Content-Security-Policy"),
				"default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
			is.Equal(a.header.Get("X-Content-Type-Options"), "nosniff")
			is.Equal(a.header.Get("Referrer-Policy"), "same-origin")
			is.Equal(a.header.Get("Cache-Control"), "no-store")
			is.Equal(a.header.Get("Content-Type"), "text/html; charset=utf-8")
			is.True(!strings.Contains(a.body, "<script")) // no script at all
			is.True(!strings.Contains(a.body, "style="))  // nothing the CSP would block
		}

		is.True(strings.Contains(b.page("/dashboard/"), `>Nothing failed or was recovered in this period</text>`)) // an empty chart says so

		created := b.post("/dashboard/webhooks", url.Values{"csrf": {csrf(t, b.page("/dashboard/webhooks"))},
			"url": {"http://127.0.0.1:9/hooks"}, "events": {"*"}})
		is.Equal(created.status, http.StatusCreated)                                 // the endpoint is created
		is.True(strings.Contains(created.body, `<code id="endpoint-secret">whsec_`)) // its secret shown once
		list, err := s.endpoints.List(context.Background(), mustMerchant(t, s, key))
		is.NoErr(err)
		is.Equal(len(list), 1)
		again := b.page("/dashboard/webhooks")
		is.True(!strings.Contains(again, "endpoint-secret")) // and only once
		is.True(strings.Contains(again, `<form class="endpoint-delete" method="post" action="/dashboard/webhooks/`+string(list[0].ID)+`/delete">`))
		deliveries := b.page("/dashboard/webhooks/" + string(list[0].ID))
		is.True(strings.Contains(deliveries, `<table id="deliveries">`)) // the deliveries page

		css := b.get("/dashboard/assets/dashboard.css")
		is.Equal(css.status, http.StatusOK) // the stylesheet is embedded
		is.Equal(css.header.Get("Content-Type"), "text/css; charset=utf-8")
	})
}

func mustMerchant(t *testing.T, s *site, key string) domain.Merchant {
	t.Helper()
	m, err := s.merchants.Authenticate(context.Background(), key)
	if err != nil {
		t.Fatalf("authenticate: %v", err)
	}
	return m
}

func TestWithoutASessionEveryPageSendsToSignIn(t *testing.T) {
	is := is.New(t)
	s := newSite(t, memoryStore())
	m, _ := s.merchant("Acme")
	task := s.cancelledTask(m.ID)
	b := s.browser()
	for _, path := range []string{"/dashboard/", "/dashboard/tasks", "/dashboard/policy", "/dashboard/webhooks", "/dashboard/nowhere"} {
		a := b.get(path)
		is.Equal(a.status, http.StatusSeeOther)                 // not signed in
		is.Equal(a.header.Get("Location"), "/dashboard/signin") // to the sign-in
	}
	a := b.post("/dashboard/tasks/"+string(task.ID)+"/retry", url.Values{"csrf": {"x"}})
	is.Equal(a.status, http.StatusSeeOther)                       // a form too
	is.Equal(s.get(m.ID, task.ID).Status, domain.StatusCancelled) // and nothing changed
	b.cookies["recoup_session"] = &http.Cookie{Name: "recoup_session", Value: "made-up"}
	a = b.get("/dashboard/")
	is.Equal(a.status, http.StatusSeeOther) // a made-up cookie is no session
	is.Equal(a.header.Get("Location"), "/dashboard/signin")
	is.Equal(b.get("/dashboard").header.Get("Location"), "/dashboard/") // the bare path
}

func TestSignIn(t *testing.T) {
	forEachStore(t, func(t *testing.T, st ports.Storage) {
		is := is.New(t)
		s := newSite(t, st)
		m, key := s.merchant("Acme")

		b := s.browser()
		page := b.get("/dashboard/signin")
		is.Equal(page.status, http.StatusOK)
		for _, el := range []string{`<form id="signin-form" class="card narrow" method="post" action="/dashboard/signin">`,
			`<label for="api_key">`, `<input id="api_key" name="api_key" type="password"`, `<button id="signin-submit"`} {
			is.True(strings.Contains(page.body, el)) // the sign-in form's elements
		}
		is.True(!strings.Contains(page.body, `id="nav-overview"`)) // no navigation before signing in

		bad := b.post("/dashboard/signin", url.Values{"api_key": {key + "x"}, "csrf": {csrf(t, page.body)}})
		is.Equal(bad.status, http.StatusUnauthorized)                                       // a wrong key
		is.True(strings.Contains(bad.body, `<p class="error" role="alert">Sign-in failed`)) // says so, and no more
		is.Equal(b.cookies["recoup_session"], (*http.Cookie)(nil))                          // no session

		b.signIn(key)
		first := *b.cookies["recoup_session"]
		b.signIn(key)
		_, err := st.Sessions().Session(context.Background(), domain.HashSessionToken(first.Value), start)
		is.True(errors.Is(err, domain.ErrNotFound)) // signing in again ends the browser's previous session
		c := b.cookies["recoup_session"]
		is.True(c != nil)
		is.True(c.HttpOnly)                           // not for scripts
		is.Equal(c.SameSite, http.SameSiteStrictMode) // not sent cross-site
		is.Equal(c.Path, "/dashboard")                // the dashboard's only
		is.Equal(c.MaxAge, int((12 * time.Hour).Seconds()))
		is.True(!c.Secure)          // not without https
		is.True(len(c.Value) >= 43) // 32 random bytes

		sess, err := st.Sessions().Session(context.Background(), domain.HashSessionToken(c.Value), start)
		is.NoErr(err)                   // stored under the token's hash
		is.Equal(sess.MerchantID, m.ID) // for its merchant
		is.True(strings.Contains(b.page("/dashboard/"), "Acme"))

		tabs := s.browser()
		one, two := tabs.get("/dashboard/signin"), tabs.get("/dashboard/signin")
		a := tabs.post("/dashboard/signin", url.Values{"api_key": {key}, "csrf": {csrf(t, one.body)}})
		is.Equal(a.status, http.StatusSeeOther)        // the first of two open sign-in pages works
		is.Equal(csrf(t, one.body), csrf(t, two.body)) // as both carry the browser's token

		forged := s.browser()
		noCSRF := forged.post("/dashboard/signin", url.Values{"api_key": {key}})
		is.Equal(noCSRF.status, http.StatusForbidden) // a sign-in form must carry its token
		is.Equal(forged.cookies["recoup_session"], (*http.Cookie)(nil))
	})
}

func TestSecureCookiesWhenServedOverHTTPS(t *testing.T) {
	is := is.New(t)
	s := newSite(t, memoryStore(), withSecureCookies())
	_, key := s.merchant("Acme")
	b := s.signedIn(key)
	is.True(b.cookies["recoup_session"].Secure) // the session cookie
	for _, c := range b.setCookies {
		is.True(c.Secure) // and the sign-in one's removal
	}
}

// failingLimiter refuses after the first noted failure.
type failingLimiter struct{ failures int }

func (l *failingLimiter) Refused(*http.Request) (time.Duration, bool) {
	return 30 * time.Second, l.failures > 0
}
func (l *failingLimiter) NoteFailure(*http.Request, *slog.Logger) { l.failures++ }

func TestFailedSignInsCountAgainstTheLimiter(t *testing.T) {
	is := is.New(t)
	l := &failingLimiter{}
	s := newSite(t, memoryStore(), withLimiter(l))
	_, key := s.merchant("Acme")
	b := s.browser()
	page := b.get("/dashboard/signin")
	a := b.post("/dashboard/signin", url.Values{"api_key": {"rk_nope"}, "csrf": {csrf(t, page.body)}})
	is.Equal(a.status, http.StatusUnauthorized)
	is.Equal(l.failures, 1) // the failure is counted
	a = b.post("/dashboard/signin", url.Values{"api_key": {key}, "csrf": {csrf(t, a.body)}})
	is.Equal(a.status, http.StatusTooManyRequests) // then refused, even with the right key
	is.Equal(a.header.Get("Retry-After"), "30")
	is.Equal(b.cookies["recoup_session"], (*http.Cookie)(nil))
}

func TestSessionExpiresAndSignOutEndsIt(t *testing.T) {
	forEachStore(t, func(t *testing.T, st ports.Storage) {
		t.Run("expiry", func(t *testing.T) {
			is := is.New(t)
			s := newSite(t, st)
			_, key := s.merchant("Acme")
			b := s.signedIn(key)
			s.clock.Add(12*time.Hour - time.Second)
			is.Equal(b.get("/dashboard/").status, http.StatusOK) // still valid
			s.clock.Add(time.Second)
			a := b.get("/dashboard/")
			is.Equal(a.status, http.StatusSeeOther) // expired
			is.Equal(a.header.Get("Location"), "/dashboard/signin")
		})
		t.Run("sign-out", func(t *testing.T) {
			is := is.New(t)
			s := newSite(t, st)
			_, key := s.merchant("Acme")
			b := s.signedIn(key)
			old := *b.cookies["recoup_session"]
			other := s.browser()
			other.signIn(key)

			wrong := b.post("/dashboard/signout", url.Values{"csrf": {"wrong"}})
			is.Equal(wrong.status, http.StatusForbidden)         // sign-out is a form like the others
			is.Equal(b.get("/dashboard/").status, http.StatusOK) // and a forged one ends nothing

			a := b.post("/dashboard/signout", url.Values{"csrf": {csrf(t, b.page("/dashboard/"))}})
			is.Equal(a.status, http.StatusSeeOther)
			is.Equal(a.header.Get("Location"), "/dashboard/signin?done=signed-out")
			is.Equal(b.cookies["recoup_session"], (*http.Cookie)(nil)) // the cookie is deleted
			is.True(strings.Contains(b.get(a.header.Get("Location")).body, `<p id="flash" role="status">You are signed out.</p>`))

			replay := s.browser()
			replay.cookies["recoup_session"] = &old
			is.Equal(replay.get("/dashboard/").status, http.StatusSeeOther) // the old cookie no longer works
			is.Equal(other.get("/dashboard/").status, http.StatusOK)        // another session of the merchant does
		})
	})
}

func TestCSRFMissingOrWrongIsForbiddenAndChangesNothing(t *testing.T) {
	is := is.New(t)
	s := newSite(t, memoryStore())
	m, key := s.merchant("Acme")
	task := s.cancelledTask(m.ID)
	b := s.signedIn(key)
	before, err := s.policies.Get(context.Background(), m)
	is.NoErr(err)
	token := csrf(t, b.page("/dashboard/policy"))
	other := s.browser()
	_, otherKey := s.merchant("Other")
	other.signIn(otherKey)
	otherToken := csrf(t, other.page("/dashboard/"))

	for _, tc := range []struct {
		name string
		form url.Values
	}{
		{"missing", url.Values{}},
		{"empty", url.Values{"csrf": {""}}},
		{"wrong", url.Values{"csrf": {token + "x"}}},
		{"another session's", url.Values{"csrf": {otherToken}}},
	} {
		for _, path := range []string{"/dashboard/tasks/" + string(task.ID) + "/retry", "/dashboard/tasks/" + string(task.ID) + "/delete", "/dashboard/policy", "/dashboard/webhooks"} {
			form := url.Values{"max_attempts": {"2"}, "url": {"http://127.0.0.1:9/x"}, "events": {"*"}}
			for k, v := range tc.form {
				form[k] = v
			}
			a := b.post(path, form)
			is.Equal(a.status, http.StatusForbidden) // refused
			is.True(strings.Contains(a.body, `<p class="error" role="alert">Forbidden: the form&#39;s security token is missing or wrong`))
		}
	}
	is.Equal(s.get(m.ID, task.ID).Status, domain.StatusCancelled) // the task is as it was
	after, err := s.policies.Get(context.Background(), m)
	is.NoErr(err)
	is.Equal(after.MaxAttempts, before.MaxAttempts) // the policy too
	list, err := s.endpoints.List(context.Background(), m)
	is.NoErr(err)
	is.Equal(len(list), 0) // and no endpoint was made
}

func TestAnotherMerchantsTaskIsForbiddenAndUnchanged(t *testing.T) {
	forEachStore(t, func(t *testing.T, st ports.Storage) {
		is := is.New(t)
		s := newSite(t, st)
		_, key := s.merchant("Acme")
		victim, _ := s.merchant("Victim")
		theirs := s.cancelledTask(victim.ID)
		b := s.signedIn(key)
		token := csrf(t, b.page("/dashboard/tasks"))
		for _, action := range []string{"retry", "delete"} {
			a := b.post("/dashboard/tasks/"+string(theirs.ID)+"/"+action, url.Values{"csrf": {token}})
			is.Equal(a.status, http.StatusForbidden)                                         // another merchant's task
			is.True(strings.Contains(a.body, `<p class="error" role="alert">Forbidden</p>`)) // says no more
			is.True(strings.Contains(a.body, `id="nav-tasks"`))                              // within the dashboard
		}
		got := s.get(victim.ID, theirs.ID)
		is.Equal(got.Status, domain.StatusCancelled) // neither retried
		is.Equal(s.wakes.Load(), int32(0))           // nor deleted, and the worker was not woken
		missing := b.post("/dashboard/tasks/"+domain.NewID()+"/retry", url.Values{"csrf": {token}})
		is.Equal(missing.status, http.StatusNotFound) // no such task at all
	})
}

func TestRetryAndDeleteFromTheTaskList(t *testing.T) {
	forEachStore(t, func(t *testing.T, st ports.Storage) {
		is := is.New(t)
		s := newSite(t, st)
		m, key := s.merchant("Acme")
		cancelled := s.cancelledTask(m.ID)
		pending := s.task(m.ID, "ann@example.com")
		b := s.signedIn(key)
		list := b.page("/dashboard/tasks")
		row := fmt.Sprintf(`<tr data-task-id="%s">`, cancelled.ID)
		is.True(strings.Contains(list, row)) // one row per task
		is.True(strings.Contains(list, `<td class="task-status"><span class="status status-cancelled">cancelled</span></td>`))
		is.True(strings.Contains(list, `<form class="task-retry" method="post" action="/dashboard/tasks/`+string(cancelled.ID)+`/retry">`))
		is.True(strings.Contains(list, `<form class="task-delete" method="post" action="/dashboard/tasks/`+string(pending.ID)+`/delete">`))
		token := csrf(t, list)

		a := b.post("/dashboard/tasks/"+string(cancelled.ID)+"/retry", url.Values{"csrf": {token}})
		is.Equal(a.status, http.StatusSeeOther)
		is.Equal(a.header.Get("Location"), "/dashboard/tasks?done=retried")
		is.Equal(s.get(m.ID, cancelled.ID).Status, domain.StatusPending) // retried
		is.Equal(s.wakes.Load(), int32(1))                               // and the worker woken
		is.True(strings.Contains(b.page(a.header.Get("Location")), `<p id="flash" role="status">Task retried: it is pending again.</p>`))

		conflict := b.post("/dashboard/tasks/"+string(pending.ID)+"/retry", url.Values{"csrf": {token}})
		is.Equal(conflict.status, http.StatusConflict) // a pending task cannot be retried
		is.True(strings.Contains(conflict.body, "only a failed or cancelled task can be retried"))
		is.Equal(s.get(m.ID, pending.ID).Status, domain.StatusPending)

		del := b.post("/dashboard/tasks/"+string(pending.ID)+"/delete", url.Values{"csrf": {token}})
		is.Equal(del.status, http.StatusSeeOther)
		is.Equal(del.header.Get("Location"), "/dashboard/tasks?done=deleted")
		_, err := st.Tasks().Get(context.Background(), m.ID, pending.ID)
		is.True(errors.Is(err, domain.ErrNotFound)) // deleted

		bad := b.post("/dashboard/tasks/not-a-uuid/retry", url.Values{"csrf": {token}})
		is.Equal(bad.status, http.StatusBadRequest)
	})
}

func TestTaskListFiltersAndPages(t *testing.T) {
	is := is.New(t)
	s := newSite(t, memoryStore())
	m, key := s.merchant("Acme")
	for range domain.DefaultPageSize {
		s.task(m.ID, "a@example.com")
	}
	last := s.cancelledTask(m.ID)
	b := s.signedIn(key)
	first := b.page("/dashboard/tasks")
	is.Equal(strings.Count(first, "<tr data-task-id="), domain.DefaultPageSize) // a full page
	i := strings.Index(first, `<a id="next-page" href="`)
	is.True(i >= 0) // with a next page
	href := first[i+len(`<a id="next-page" href="`):]
	href = strings.ReplaceAll(href[:strings.IndexByte(href, '"')], "&amp;", "&")
	second := b.page(href)
	is.Equal(strings.Count(second, "<tr data-task-id="), 1) // the rest
	is.True(!strings.Contains(second, `id="next-page"`))    // and no more

	cancelled := b.page("/dashboard/tasks?status=cancelled")
	is.Equal(strings.Count(cancelled, "<tr data-task-id="), 1) // the filter
	is.True(strings.Contains(cancelled, string(last.ID)))
	is.True(strings.Contains(cancelled, `<option value="cancelled" selected>`))
	is.Equal(b.get("/dashboard/tasks?status=bogus").status, http.StatusBadRequest)
	is.Equal(b.get("/dashboard/tasks?cursor=forged").status, http.StatusBadRequest)
}

func TestPolicyForm(t *testing.T) {
	forEachStore(t, func(t *testing.T, st ports.Storage) {
		is := is.New(t)
		s := newSite(t, st)
		m, key := s.merchant("Acme")
		b := s.signedIn(key)
		page := b.page("/dashboard/policy")
		def := domain.DefaultDunningPolicy()
		is.True(strings.Contains(page, fmt.Sprintf(`name="max_attempts" type="number" value="%d"`, def.MaxAttempts))) // the stored policy
		form := url.Values{
			"csrf": {csrf(t, page)}, "retry_delays_hours": {"24, 72"}, "delays_by_decline_code": {"insufficient_funds: 96, 168\r\n"},
			"hard_decline_codes": {"stolen_card, lost_card"}, "max_attempts": {"3"}, "retry_window_days": {"14"},
			"emails.payment_failed": {"true"}, "emails.reminder_hours": {"48"}, "max_emails_per_customer_per_week": {"2"},
			"on_exhausted": {"mark_uncollectible"},
		}
		a := b.post("/dashboard/policy", form)
		is.Equal(a.status, http.StatusSeeOther)
		is.Equal(a.header.Get("Location"), "/dashboard/policy?done=policy")
		want := domain.DunningPolicy{
			RetryDelaysHours: []int{24, 72}, DelaysByDeclineCode: map[string][]int{"insufficient_funds": {96, 168}},
			HardDeclineCodes: []string{"stolen_card", "lost_card"}, MaxAttempts: 3, RetryWindowDays: 14,
			Emails:                      domain.EmailPolicy{PaymentFailed: true, ReminderHours: []int{48}},
			MaxEmailsPerCustomerPerWeek: 2, OnExhausted: domain.ExhaustedMarkUncollectible,
		}
		got, err := s.policies.Get(context.Background(), m)
		is.NoErr(err)
		is.Equal(fmt.Sprint(got), fmt.Sprint(want)) // stored as the form said
		shown := b.page(a.header.Get("Location"))
		is.True(strings.Contains(shown, `<p id="flash" role="status">Policy saved.</p>`))
		is.True(strings.Contains(shown, "insufficient_funds: 96, 168")) // shown back

		for _, tc := range []struct{ field, value, message string }{
			{"max_attempts", "0", "max_attempts: must be 1 to "}, // the domain's own message
			{"max_attempts", "many", `max_attempts: &#34;many&#34; is not a whole number`},
			{"delays_by_decline_code", "no colon here", "delays_by_decline_code: "},
			{"on_exhausted", "explode", "on_exhausted: must be none, cancel_subscription or mark_uncollectible"},
		} {
			bad := url.Values{}
			for k, v := range form {
				bad[k] = v
			}
			bad.Set(tc.field, tc.value)
			a := b.post("/dashboard/policy", bad)
			is.Equal(a.status, http.StatusBadRequest) // refused
			is.True(strings.Contains(a.body, `<p class="error" role="alert">`+tc.message))
			if tc.field != "on_exhausted" { // a select shows only its options
				is.True(strings.Contains(a.body, `>`+tc.value+`<`) || strings.Contains(a.body, `value="`+tc.value+`"`)) // the form keeps what was typed
			}
			after, err := s.policies.Get(context.Background(), m)
			is.NoErr(err)
			is.Equal(fmt.Sprint(after), fmt.Sprint(want)) // and nothing changed
		}
	})
}

func TestHostileDataIsEscaped(t *testing.T) {
	is := is.New(t)
	s := newSite(t, memoryStore())
	m, key := s.merchant(`<script>alert("name")</script>`)
	s.task(m.ID, `<script>alert("xss")</script>@example.com`)
	b := s.signedIn(key)
	for _, path := range []string{"/dashboard/tasks", "/dashboard/"} {
		body := b.page(path)
		is.True(!strings.Contains(body, "<script")) // never markup
		is.True(strings.Contains(body, "&lt;script&gt;"))
	}
	a := b.get("/dashboard/?from=" + url.QueryEscape(`<script>`))
	is.Equal(a.status, http.StatusBadRequest)
	is.True(!strings.Contains(a.body, "<script")) // an echoed parameter neither
}

func TestOverviewShowsTheFigures(t *testing.T) {
	forEachStore(t, func(t *testing.T, st ports.Storage) {
		is := is.New(t)
		s := newSite(t, st)
		m, key := s.merchant("Acme")
		ctx := context.Background()
		day := time.Date(2026, 3, 5, 9, 0, 0, 0, time.UTC)
		for i, f := range []domain.InvoiceFact{
			{Kind: domain.FactFailed, InvoiceID: "in_jpy", Currency: "jpy", AmountDue: 5000, At: day, AttemptCount: 1},
			{Kind: domain.FactDeclined, InvoiceID: "in_jpy", DeclineCode: "insufficient_funds", At: day},
			{Kind: domain.FactPaid, InvoiceID: "in_jpy", Amount: 5000, At: day.Add(24 * time.Hour), AttemptCount: 2},
			{Kind: domain.FactFailed, InvoiceID: "in_jpy2", Currency: "jpy", AmountDue: 15000, At: day, AttemptCount: 1},
		} {
			if _, err := st.Ledger().Record(ctx, m.ID, f); err != nil {
				t.Fatalf("record fact %d: %v", i, err)
			}
		}
		b := s.signedIn(key)
		body := b.page("/dashboard/")
		is.True(strings.Contains(body, `<p id="recovery-rate" class="big">25.0%</p>`)) // 5000 of 20000
		is.True(strings.Contains(body, `<th scope="row">JPY</th><td class="num">¥20,000</td><td class="num">¥5,000</td><td class="num">¥15,000</td>`))
		is.True(strings.Contains(body, `<th scope="row">2026-03-05</th><td>JPY</td><td class="num">¥20,000</td>`)) // the series table
		is.True(strings.Contains(body, `<rect class="bar-failed"`))                                                // the chart's bars
		is.True(strings.Contains(body, `<title id="series-chart-title">Failed and recovered amounts per day in JPY, 2026-02-09 to 2026-03-10</title>`))
		is.True(strings.Contains(body, `<code>insufficient_funds</code></th><td class="num">1</td>`)) // by decline code

		narrow := b.page("/dashboard/?from=2026-03-06&to=2026-03-06")
		is.True(strings.Contains(narrow, `value="2026-03-06"`)) // the days asked for
		is.True(!strings.Contains(narrow, `<rect class="bar-failed"`))
		tooLong := b.get("/dashboard/?from=2024-01-01&to=2026-03-06")
		is.Equal(tooLong.status, http.StatusBadRequest) // the API's limit
		is.True(strings.Contains(tooLong.body, "spans more than 366 days"))
	})
}

// headerResolver is an embedder's resolver: the merchant named by a
// header its own proxy sets.
type headerResolver struct{ merchants map[string]domain.Merchant }

func (h headerResolver) ResolveMerchant(r *http.Request) (domain.Merchant, error) {
	if m, ok := h.merchants[r.Header.Get("X-Test-Merchant")]; ok {
		return m, nil
	}
	return domain.Merchant{}, errors.New("no such user")
}

func TestWithAResolverUnderAPrefix(t *testing.T) {
	is := is.New(t)
	st := memoryStore()
	probe := newSite(t, st)
	m, _ := probe.merchant("Acme")
	other, _ := probe.merchant("Other")
	task := probe.cancelledTask(m.ID)
	s := newSite(t, st, withResolver(headerResolver{map[string]domain.Merchant{"acme": m, "other": other}}), withBase("/billing/dashboard"))
	s.h = http.StripPrefix("/billing", s.h)

	anon := s.browser()
	a := anon.get("/billing/dashboard/")
	is.Equal(a.status, http.StatusUnauthorized) // the resolver refused: no sign-in page to go to
	is.True(strings.Contains(a.body, `<p class="error" role="alert">You are not signed in.</p>`))
	is.True(anon.get("/billing/dashboard/signin").status == http.StatusUnauthorized) // there is no sign-in page

	b := s.browser()
	b.header.Set("X-Test-Merchant", "acme")
	page := b.page("/billing/dashboard/tasks")
	is.True(strings.Contains(page, `id="nav-tasks" href="/billing/dashboard/tasks"`))                         // links below the prefix
	is.True(!strings.Contains(page, `id="signout-form"`))                                                     // no sign-out: the embedder's
	is.True(strings.Contains(page, `action="/billing/dashboard/tasks/`+string(task.ID)+`/retry"`))            // forms too
	is.True(strings.Contains(page, `<link rel="stylesheet" href="/billing/dashboard/assets/dashboard.css">`)) // and the stylesheet
	token := csrf(t, page)

	o := s.browser()
	o.header.Set("X-Test-Merchant", "other")
	otherToken := csrf(t, o.page("/billing/dashboard/policy"))
	is.True(otherToken != token) // each merchant has its own token

	a = b.post("/billing/dashboard/tasks/"+string(task.ID)+"/retry", url.Values{"csrf": {otherToken}})
	is.Equal(a.status, http.StatusForbidden) // another merchant's token is refused
	is.Equal(s.get(m.ID, task.ID).Status, domain.StatusCancelled)
	a = b.post("/billing/dashboard/tasks/"+string(task.ID)+"/retry", url.Values{"csrf": {token}})
	is.Equal(a.status, http.StatusSeeOther)
	is.Equal(a.header.Get("Location"), "/billing/dashboard/tasks?done=retried") // back below the prefix
	is.Equal(s.get(m.ID, task.ID).Status, domain.StatusPending)
	is.Equal(b.get("/billing/dashboard").header.Get("Location"), "/billing/dashboard/")
}

func TestWebhookEndpointsAreTheMerchantsOwn(t *testing.T) {
	forEachStore(t, func(t *testing.T, st ports.Storage) {
		is := is.New(t)
		s := newSite(t, st)
		_, key := s.merchant("Acme")
		victim, _ := s.merchant("Victim")
		theirs, err := s.endpoints.Create(context.Background(), victim, "http://127.0.0.1:9/theirs", []string{"*"})
		is.NoErr(err)
		b := s.signedIn(key)
		token := csrf(t, b.page("/dashboard/webhooks"))

		a := b.get("/dashboard/webhooks/" + string(theirs.ID))
		is.Equal(a.status, http.StatusForbidden) // another merchant's deliveries
		a = b.post("/dashboard/webhooks/"+string(theirs.ID)+"/delete", url.Values{"csrf": {token}})
		is.Equal(a.status, http.StatusForbidden) // nor can it be deleted
		list, err := s.endpoints.List(context.Background(), victim)
		is.NoErr(err)
		is.Equal(len(list), 1) // it is still there

		bad := b.post("/dashboard/webhooks", url.Values{"csrf": {token}, "url": {"ftp://example.com/x"}, "events": {"*"}})
		is.Equal(bad.status, http.StatusBadRequest) // the use case's own refusal
		is.True(strings.Contains(bad.body, `<p class="error" role="alert">`))
		is.True(strings.Contains(bad.body, `value="ftp://example.com/x"`)) // the form keeps the URL
		none := b.post("/dashboard/webhooks", url.Values{"csrf": {token}, "url": {"http://127.0.0.1:9/x"}})
		is.Equal(none.status, http.StatusBadRequest) // no event type chosen

		created := b.post("/dashboard/webhooks", url.Values{"csrf": {token}, "url": {"http://127.0.0.1:9/mine"}, "events": {"task.failed"}})
		is.Equal(created.status, http.StatusCreated)
		mine := b.page("/dashboard/webhooks")
		i := strings.Index(mine, `<tr data-endpoint-id="`)
		is.True(i >= 0)
		id := mine[i+len(`<tr data-endpoint-id="`):]
		id = id[:strings.IndexByte(id, '"')]
		del := b.post("/dashboard/webhooks/"+id+"/delete", url.Values{"csrf": {token}})
		is.Equal(del.status, http.StatusSeeOther) // its own endpoint is deleted
		is.Equal(del.header.Get("Location"), "/dashboard/webhooks?done=endpoint-deleted")
		is.True(strings.Contains(b.page(del.header.Get("Location")), "No endpoints yet."))
	})
}

// TestReloadedEndpointFormCreatesOnce: the endpoint form carries an
// idempotency key of its own, so the same form posted again (a reload of
// the page that showed the secret) shows the same endpoint and secret and
// creates no second one; the next form has another key.
func TestReloadedEndpointFormCreatesOnce(t *testing.T) {
	forEachStore(t, func(t *testing.T, st ports.Storage) {
		is := is.New(t)
		s := newSite(t, st)
		_, key := s.merchant("Acme")
		b := s.signedIn(key)
		form := b.page("/dashboard/webhooks")
		formKey := formKeyField.FindStringSubmatch(form)
		is.True(formKey != nil) // the form has its key
		values := url.Values{"csrf": {csrf(t, form)}, "idempotency_key": {formKey[1]},
			"url": {"http://127.0.0.1:9/hooks"}, "events": {"*"}}
		first := b.post("/dashboard/webhooks", values)
		is.Equal(first.status, http.StatusCreated)
		again := b.post("/dashboard/webhooks", values)
		is.Equal(again.status, http.StatusCreated) // the reload is answered as the post was
		secret := secretShown.FindStringSubmatch(first.body)
		is.True(secret != nil)
		is.True(strings.Contains(again.body, secret[0])) // with the same secret
		list, err := s.endpoints.List(context.Background(), mustMerchant(t, s, key))
		is.NoErr(err)
		is.Equal(len(list), 1) // and one endpoint

		next := formKeyField.FindStringSubmatch(b.page("/dashboard/webhooks"))
		is.True(next != nil && next[1] != formKey[1]) // each form its own key
		values.Set("idempotency_key", next[1])
		is.Equal(b.post("/dashboard/webhooks", values).status, http.StatusCreated)
		list, err = s.endpoints.List(context.Background(), mustMerchant(t, s, key))
		is.NoErr(err)
		is.Equal(len(list), 2) // a new form creates a new endpoint
	})
}

func TestDeliveriesPage(t *testing.T) {
	is := is.New(t)
	st := memoryStore()
	s := newSite(t, st)
	m, key := s.merchant("Acme")
	e, err := s.endpoints.Create(context.Background(), m, "http://127.0.0.1:9/hooks", []string{"*"})
	is.NoErr(err)
	for range domain.DefaultPageSize + 1 {
		n, err := st.Outbox().Enqueue(context.Background(), m.ID, domain.OutboundMessage{
			Type: domain.OutboundTaskFailed, Payload: []byte(`{"type":"task.failed"}`), At: time.Now().UTC()})
		is.NoErr(err)
		is.Equal(n, 1)
	}
	b := s.signedIn(key)
	first := b.page("/dashboard/webhooks/" + string(e.ID))
	is.Equal(strings.Count(first, "<tr data-delivery-id="), domain.DefaultPageSize) // a full page
	i := strings.Index(first, `<a id="next-page" href="`)
	is.True(i >= 0) // and a link to the next
	href := first[i+len(`<a id="next-page" href="`):]
	second := b.page(strings.ReplaceAll(href[:strings.IndexByte(href, '"')], "&amp;", "&"))
	is.Equal(strings.Count(second, "<tr data-delivery-id="), 1) // the rest
	is.Equal(b.get("/dashboard/webhooks/"+string(e.ID)+"?cursor=forged").status, http.StatusBadRequest)
	is.Equal(b.get("/dashboard/webhooks/not-an-id").status, http.StatusBadRequest)
}

func TestOverviewWithSeveralCurrencies(t *testing.T) {
	is := is.New(t)
	st := memoryStore()
	s := newSite(t, st)
	m, key := s.merchant("Acme")
	day := time.Date(2026, 3, 5, 9, 0, 0, 0, time.UTC)
	for _, f := range []domain.InvoiceFact{
		{Kind: domain.FactFailed, InvoiceID: "in_eur", Currency: "eur", AmountDue: 1000, At: day, AttemptCount: 1},
		{Kind: domain.FactPaid, InvoiceID: "in_eur", Amount: 1000, At: day.Add(time.Hour), AttemptCount: 2},
		{Kind: domain.FactFailed, InvoiceID: "in_eur2", Currency: "eur", AmountDue: 1000, At: day, AttemptCount: 1},
		{Kind: domain.FactFailed, InvoiceID: "in_usd", Currency: "usd", AmountDue: 400000, At: day, AttemptCount: 1},
	} {
		_, err := st.Ledger().Record(context.Background(), m.ID, f)
		is.NoErr(err)
	}
	b := s.signedIn(key)
	body := b.page("/dashboard/")
	is.True(strings.Contains(body, `<p id="recovery-rate" class="big">50.0% EUR · 0.0% USD</p>`)) // each currency's rate
	is.True(strings.Contains(body, `<td class="num">$4,000.00</td>`))                             // amounts in their own format
	is.True(strings.Contains(body, `amounts in USD`))                                             // the chart's currency: the largest amounts
	is.True(strings.Contains(body, `also in EUR`))                                                // and where the others are
}

func TestAFormTooLargeIsRefused(t *testing.T) {
	is := is.New(t)
	s := newSite(t, memoryStore())
	m, key := s.merchant("Acme")
	b := s.signedIn(key)
	before, err := s.policies.Get(context.Background(), m)
	is.NoErr(err)
	token := csrf(t, b.page("/dashboard/policy"))
	a := b.post("/dashboard/policy", url.Values{"csrf": {token}, "max_attempts": {"2"}, "hard_decline_codes": {strings.Repeat("x", 70<<10)}})
	is.Equal(a.status, http.StatusRequestEntityTooLarge) // over the forms' limit
	is.True(strings.Contains(a.body, "The form is too large."))
	after, err := s.policies.Get(context.Background(), m)
	is.NoErr(err)
	is.Equal(after.MaxAttempts, before.MaxAttempts) // and nothing changed
}
