//go:build browser

package browser

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/stripetest"
)

// TestDashboard signs in to the dashboard of a real `recoup serve` in
// headless Chromium, on each storage adapter, and does what a merchant
// does there: reads the figures (which must be those of GET /api/stats),
// retries a failed payment retry with a click, deletes a task, filters
// the list, changes the policy through its form (read back from GET
// /api/policy) and sees the API's message for a bad one, adds a webhook
// endpoint, and signs out, after which the old session cookie opens
// nothing.
func TestDashboard(t *testing.T) {
	browser := chromium(t)
	binary := buildRecoup(t, t.TempDir())
	adapters := map[string]func(t *testing.T) []string{
		"memory": func(*testing.T) []string { return nil },
		"postgres": func(t *testing.T) []string {
			return []string{"DATABASE_URL=" + migratedDatabase(t, binary)}
		},
	}
	for name, env := range adapters {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			api := stripetest.NewAPI(t)
			s := startServe(t, binary, append(env(t),
				"STRIPE_API_KEY=sk_test_browser", "STRIPE_API_BASE="+api.URL(),
				// The worker runs only when a delivery wakes it, so that
				// nothing changes behind the pages' back.
				"RECOUP_WORKER_POLL=1h", "RECOUP_RECONCILE_INTERVAL=0",
				// The webhook endpoint the test adds is on loopback.
				"RECOUP_WEBHOOK_ALLOW_PRIVATE=true")...)
			shop := seed(t, s, api)
			b := newTab(t, browser, s.base)
			signIn(t, b, shop)
			overview(t, b, s, shop)
			tasksPage(t, b, s, api, shop)
			editPolicy(t, b, s, shop)
			addEndpoint(t, b, s, shop)
			signOut(t, b, s)
		})
	}
}

// shop is a seeded merchant.
type shop struct {
	key    string
	failed task // a payment retry Stripe declined: failed, so it can be retried
}

// seed makes a merchant and gives it, through signed Stripe webhooks over
// the last days, figures in two currencies and a failed task:
//
//   - in_A, 45.00 USD, failed two days ago and paid by Stripe's retry a day
//     later: recovered;
//   - in_B, 120.00 EUR, failed 20 hours ago (insufficient_funds): its
//     retry is due in days;
//   - in_C, 20.00 USD, failed two hours ago; the customer then attached a
//     new card, so its retry ran at once, and Stripe declined it;
//   - in_D, 30.00 USD, failed 10 hours ago on a stolen card: no retry.
//
// Every failure is recent enough that no retry is due before the
// payment-failed email has read its decline code.
func seed(t *testing.T, s *server, api *stripetest.API) shop {
	t.Helper()
	account := stripetest.NewID("acct_")
	key := s.createMerchant(t, "Browser Test Shop", account)
	now := time.Now().UTC()
	// One retry of recoup's own: after it, nothing more is planned, so
	// that the declined one can be retried (an invoice has at most one
	// pending retry).
	p := s.policy(t, key)
	p["retry_delays_hours"] = []int{24}
	s.request(t, http.MethodPut, "/api/policy", key, p, http.StatusOK, nil)

	type failure struct {
		currency    string
		amount      int64
		declineCode string
		at          time.Time
		stripeRetry bool // Stripe will retry: recoup plans none
	}
	invoices := map[string]failure{
		"in_A": {"usd", 4500, "insufficient_funds", now.Add(-50 * time.Hour), true},
		"in_B": {"eur", 12000, "insufficient_funds", now.Add(-20 * time.Hour), false},
		"in_C": {"usd", 2000, "generic_decline", now.Add(-2 * time.Hour), false},
		"in_D": {"usd", 3000, "stolen_card", now.Add(-10 * time.Hour), false},
	}
	ids := map[string]string{} // in_A… → the invoice's Stripe id
	customer := func(name string) string { return "cus_" + strings.TrimPrefix(name, "in_") }
	invoice := func(name string, f failure) stripetest.Invoice {
		inv := stripetest.Invoice{ID: ids[name], Customer: customer(name), CustomerEmail: "jenny.rosen@example.com",
			AmountDue: f.amount, Currency: f.currency, AttemptCount: 1,
			HostedInvoiceURL: "https://invoice.stripe.com/i/" + ids[name]}
		if f.stripeRetry {
			next := now.Add(48 * time.Hour)
			inv.NextPaymentAttempt = &next
		}
		return inv
	}
	for _, name := range []string{"in_A", "in_B", "in_C", "in_D"} {
		f := invoices[name]
		ids[name] = stripetest.NewID("in_")
		charge := stripetest.NewID("ch_")
		api.PutCustomer(account, customer(name), "jenny.rosen@example.com")
		api.PutCharge(account, stripetest.Charge{ID: charge, Invoice: ids[name], Customer: customer(name),
			Amount: f.amount, Currency: f.currency, DeclineCode: f.declineCode, Created: f.at})
		inv := invoice(name, f)
		inv.Charge = charge
		api.PutInvoice(account, inv)
		s.deliver(t, stripetest.Event{Type: "invoice.payment_failed", Account: account, Created: f.at,
			Object: invoice(name, f)}.JSON())
		s.settle(t, key) // the payment-failed email reads the decline code
	}

	// Stripe's second attempt pays in_A.
	paid := invoice("in_A", invoices["in_A"])
	paid.Status, paid.AmountPaid, paid.AttemptCount, paid.NextPaymentAttempt = "paid", 4500, 2, nil
	api.PutInvoice(account, paid)
	s.deliver(t, stripetest.Event{Type: "invoice.paid", Account: account, Created: now.Add(-26 * time.Hour), Object: paid}.JSON())

	// in_C's customer attaches a card: its retry runs now, and is declined.
	api.DeclinePays(account, ids["in_C"], "do_not_honor")
	s.deliver(t, stripetest.Event{Type: "payment_method.attached", Account: account,
		Object: map[string]any{"id": stripetest.NewID("pm_"), "object": "payment_method", "type": "card", "customer": customer("in_C")}}.JSON())
	s.settle(t, key)

	for _, f := range s.tasks(t, key, "failed") {
		if f.Type == "retry_payment" && f.Invoice == ids["in_C"] {
			return shop{key: key, failed: f}
		}
	}
	t.Fatalf("no failed retry of in_C after Stripe declined it; tasks: %+v\n%s", s.tasks(t, key, ""), s.logs.String())
	return shop{}
}

// signIn: without a session the dashboard sends the browser to sign in; a
// wrong key is refused there, the merchant's key lets it in.
func signIn(t *testing.T, b *tab, shop shop) {
	b.open("/dashboard/")
	if p := b.path(); p != "/dashboard/signin" {
		t.Fatalf("without a session /dashboard/ shows %s; want /dashboard/signin", p)
	}
	b.screenshot("signin")

	b.fill("#api_key", "rk_notakey_notasecret")
	b.click("#signin-submit", http.StatusUnauthorized)
	if b.count("p.error") == 0 {
		t.Errorf("a wrong API key shows no error")
	}
	b.screenshot("signin-refused")

	b.fill("#api_key", shop.key)
	b.click("#signin-submit", http.StatusOK)
	if p := b.path(); p != "/dashboard/" {
		t.Fatalf("after signing in the tab shows %s; want /dashboard/", p)
	}
}

// overview: the recovery rate and the amounts per currency are those of
// GET /api/stats, and so are the rows of the series and the breakdowns.
func overview(t *testing.T, b *tab, s *server, shop shop) {
	st := s.stats(t, shop.key)
	if len(st.ByCurrency) != 2 || len(st.Series) == 0 || len(st.ByDeclineCode) == 0 {
		t.Fatalf("the seed gave unexpected figures: %+v", st)
	}
	// The span the API took by default, through the page's own form, so
	// that both show the same days even if UTC midnight passed between.
	step(b, "set from", chromedp.SetValue(chromedp.CSS("#range-form [name=from]"), st.From))
	step(b, "set to", chromedp.SetValue(chromedp.CSS("#range-form [name=to]"), st.To))
	b.click("#range-form [type=submit]", http.StatusOK)
	if got := b.path(); got != "/dashboard/" {
		t.Fatalf("the range form leads to %s", got)
	}
	// The two currencies have a rate each: "60.0% EUR" and "40.0% USD".
	rate := b.text("#recovery-rate")
	amounts := b.texts("table#amounts tbody tr")
	for cur, m := range st.ByCurrency {
		if want := words(percent(m.RecoveryRate), strings.ToUpper(cur)); !strings.Contains(words(rate), want) {
			t.Errorf("#recovery-rate shows %q; want %s in it", rate, want)
		}
		row := rowNaming(amounts, strings.ToUpper(cur))
		if row == "" {
			t.Errorf("table#amounts has no row for %s: %q", cur, amounts)
			continue
		}
		for _, want := range []string{domain.FormatAmount(m.FailedAmount, cur), domain.FormatAmount(m.RecoveredAmount, cur), percent(m.RecoveryRate)} {
			if !strings.Contains(row, want) {
				t.Errorf("table#amounts row %q does not show %s", row, want)
			}
		}
	}
	if b.count("svg#series-chart rect") == 0 {
		t.Errorf("svg#series-chart has no bars")
	}
	var series []string
	for _, d := range st.Series {
		series = append(series, words(d.Date, strings.ToUpper(d.Currency), domain.FormatAmount(d.FailedAmount, d.Currency), domain.FormatAmount(d.RecoveredAmount, d.Currency)))
	}
	if got := mapWords(b.texts("table#series-table tbody tr")); !slices.Equal(got, series) {
		t.Errorf("table#series-table shows\n%q\n/api/stats has\n%q", got, series)
	}
	var codes []string
	for code, f := range st.ByDeclineCode {
		codes = append(codes, words(code, fmt.Sprint(f.FailedInvoices), fmt.Sprint(f.RecoveredInvoices)))
	}
	if got := mapWords(b.texts("table#by-decline-code tbody tr")); !sameSet(got, codes) {
		t.Errorf("table#by-decline-code shows %q; /api/stats has %q", got, codes)
	}
	var sources []string
	for source, n := range st.BySource {
		sources = append(sources, words(source, fmt.Sprint(n)))
	}
	if got := mapWords(b.texts("table#by-source tbody tr")); !sameSet(got, sources) {
		t.Errorf("table#by-source shows %q; /api/stats has %q", got, sources)
	}
	b.screenshot("overview")
}

// rowNaming is the first row that has the word, "" if none.
func rowNaming(rows []string, word string) string {
	for _, r := range rows {
		if slices.Contains(strings.Fields(r), word) {
			return r
		}
	}
	return ""
}

// words joins the texts' words with single spaces, as a table row's
// cells read.
func words(texts ...string) string {
	return strings.Join(strings.Fields(strings.Join(texts, " ")), " ")
}

func mapWords(rows []string) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = words(r)
	}
	return out
}

// sameSet reports whether a and b hold the same strings, in any order.
func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// percent writes a rate as a percentage to one decimal: 0.6 is 60.0%.
func percent(rate float64) string {
	return fmt.Sprintf("%.1f%%", rate*100)
}

// tasksPage: the failed retry shows as failed, with a Retry button; a
// click makes it pending, due now, and wakes the worker. Stripe is made to
// answer that run's invoice read with a 429, after which the worker backs
// the task off, pending, for minutes: so the page, reloaded once the
// worker is idle, and the API both show it pending whatever the timing.
// Then Delete removes a task, and the status filter lists one status.
func tasksPage(t *testing.T, b *tab, s *server, api *stripetest.API, shop shop) {
	b.click("#nav-tasks", http.StatusOK)
	if p := b.path(); p != "/dashboard/tasks" {
		t.Fatalf("the tasks link leads to %s", p)
	}
	row := fmt.Sprintf(`table#tasks tr[data-task-id="%s"]`, shop.failed.ID)
	if got := b.text(row + " td.task-status"); got != "failed" {
		t.Fatalf("the declined retry shows as %q; want failed", got)
	}
	all := s.tasks(t, shop.key, "")
	if got := b.count("table#tasks tbody tr[data-task-id]"); got != len(all) {
		t.Errorf("table#tasks has %d rows; the API lists %d tasks", got, len(all))
	}
	b.screenshot("tasks")

	api.FailNext(http.MethodGet, "/v1/invoices/"+shop.failed.Invoice, http.StatusTooManyRequests, 1)
	b.click(row+" form.task-retry button", http.StatusOK)
	if got := b.text(row + " td.task-status"); got != "pending" && got != "running" {
		t.Errorf("after Retry the task shows as %q; want pending (or running, if the worker is quick)", got)
	}
	if b.count("#flash") != 1 {
		t.Errorf("after Retry the page says nothing (no #flash)")
	}
	s.settle(t, shop.key)
	b.open("/dashboard/tasks")
	if got := b.text(row + " td.task-status"); got != "pending" {
		t.Errorf("after Retry the task shows as %q; want pending", got)
	}
	if got := s.task(t, shop.key, shop.failed.ID); got.Status != "pending" || got.Attempts != shop.failed.Attempts+1 {
		t.Errorf("after Retry the API has the task %s after %d attempts; want pending after %d (the retried run backed off)",
			got.Status, got.Attempts, shop.failed.Attempts+1)
	}
	b.screenshot("tasks-retried")

	// Delete removes a task: a reminder that in_A's payment cancelled.
	var reminder string
	for _, task := range all {
		if task.Type == "notify_reminder" && task.Status == "cancelled" {
			reminder = task.ID
		}
	}
	if reminder == "" {
		t.Fatalf("no cancelled reminder to delete among %+v", all)
	}
	gone := fmt.Sprintf(`table#tasks tr[data-task-id="%s"]`, reminder)
	b.click(gone+" form.task-delete button", http.StatusOK)
	if b.count(gone) != 0 {
		t.Errorf("after Delete the task is still listed")
	}
	s.request(t, http.MethodGet, "/api/tasks/"+reminder, shop.key, nil, http.StatusNotFound, nil)

	// The status filter shows the failed tasks alone.
	step(b, "choose a status", chromedp.SetValue(chromedp.CSS("#task-filters select[name=status]"), "failed"))
	b.click("#task-filters [type=submit]", http.StatusOK)
	statuses := b.texts("table#tasks td.task-status")
	if want := len(s.tasks(t, shop.key, "failed")); len(statuses) != want || slices.ContainsFunc(statuses, func(s string) bool { return s != "failed" }) {
		t.Errorf("filtered on failed, the page shows %q; the API has %d failed tasks", statuses, want)
	}
	b.screenshot("tasks-failed")
}

// editPolicy: a change through the form is what GET /api/policy then
// answers; a bad value shows the API's own message and changes nothing.
func editPolicy(t *testing.T, b *tab, s *server, shop shop) {
	b.click("#nav-policy", http.StatusOK)
	b.screenshot("policy")

	before := s.policy(t, shop.key)
	if got := b.value(`#policy-form [name="max_attempts"]`); got != fmt.Sprint(before["max_attempts"]) {
		t.Errorf("the form shows max_attempts %q; the API has %v", got, before["max_attempts"])
	}
	b.fill(`#policy-form [name="max_attempts"]`, "5")
	b.fill(`#policy-form [name="retry_delays_hours"]`, "12, 48, 96")
	b.click(`#policy-form [type="submit"]`, http.StatusOK)
	after := s.policy(t, shop.key)
	if after["max_attempts"] != float64(5) || fmt.Sprint(after["retry_delays_hours"]) != "[12 48 96]" {
		t.Errorf("after the form the API's policy has max_attempts %v, retry_delays_hours %v; want 5 and [12 48 96]",
			after["max_attempts"], after["retry_delays_hours"])
	}
	for field, v := range before {
		if field != "max_attempts" && field != "retry_delays_hours" && fmt.Sprint(after[field]) != fmt.Sprint(v) {
			t.Errorf("the form changed %s from %v to %v", field, v, after[field])
		}
	}
	b.screenshot("policy-saved")

	bad := policy{}
	for field, v := range after {
		bad[field] = v
	}
	bad["max_attempts"] = 99
	want := s.apiError(t, http.MethodPut, "/api/policy", shop.key, bad, http.StatusBadRequest)
	b.fill(`#policy-form [name="max_attempts"]`, "99")
	b.click(`#policy-form [type="submit"]`, http.StatusBadRequest)
	if got := b.texts("p.error"); !slices.ContainsFunc(got, func(e string) bool { return strings.Contains(e, want) }) {
		t.Errorf("a bad max_attempts shows %q; want the API's message %q", got, want)
	}
	if got := s.policy(t, shop.key); got["max_attempts"] != float64(5) {
		t.Errorf("a refused form changed max_attempts to %v", got["max_attempts"])
	}
	b.screenshot("policy-refused")
}

// addEndpoint: the webhooks page adds an endpoint, shows its secret once
// and lists it, as the API does.
func addEndpoint(t *testing.T, b *tab, s *server, shop shop) {
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(receiver.Close)

	b.click("#nav-webhooks", http.StatusOK)
	b.screenshot("webhooks")
	url := receiver.URL + "/recoup-events"
	b.fill(`#endpoint-form [name="url"]`, url)
	if !b.checked("#event-all") {
		step(b, "choose every event type", chromedp.Click(chromedp.CSS("#event-all")))
	}
	b.click(`#endpoint-form [type="submit"]`, http.StatusCreated)
	if secret := b.text("code#endpoint-secret"); !strings.HasPrefix(secret, "whsec_") {
		t.Errorf("the new endpoint's secret shows as %q", secret)
	}
	var listed struct {
		Endpoints []struct {
			URL string `json:"url"`
		} `json:"endpoints"`
	}
	s.request(t, http.MethodGet, "/api/webhook-endpoints", shop.key, nil, http.StatusOK, &listed)
	if len(listed.Endpoints) != 1 || listed.Endpoints[0].URL != url {
		t.Errorf("after the form the API lists %+v; want the one endpoint %s", listed.Endpoints, url)
	}
	if rows := b.texts("table#endpoints tbody tr"); !slices.ContainsFunc(rows, func(r string) bool { return strings.Contains(r, url) }) {
		t.Errorf("table#endpoints does not list %s: %q", url, rows)
	}
	b.screenshot("webhook-added")

	// Its deliveries: none yet.
	b.click(`table#endpoints tbody tr a`, http.StatusOK)
	if b.count("table#deliveries") != 1 {
		t.Errorf("the endpoint's page has no table#deliveries")
	}
	b.screenshot("webhook-deliveries")
}

// signOut: the session cookie is HttpOnly and SameSite=Strict; after sign
// out the dashboard asks to sign in again, and the old cookie, sent
// again, opens nothing.
func signOut(t *testing.T, b *tab, s *server) {
	var session []*network.Cookie
	for _, c := range b.cookies("/dashboard/") {
		if !c.HTTPOnly || c.SameSite != network.CookieSameSiteStrict {
			t.Errorf("cookie %s: HttpOnly %v, SameSite %q; want HttpOnly, Strict", c.Name, c.HTTPOnly, c.SameSite)
		}
		session = append(session, c)
	}
	if len(session) == 0 {
		t.Fatalf("signed in, the browser holds no cookie")
	}

	b.click("#signout-submit", http.StatusOK)
	if p := b.path(); p != "/dashboard/signin" {
		t.Errorf("after signing out the tab shows %s; want /dashboard/signin", p)
	}
	if b.count("#flash") != 1 {
		t.Errorf("after signing out the sign-in page says nothing (no #flash)")
	}
	b.screenshot("signed-out")
	b.open("/dashboard/tasks")
	if p := b.path(); p != "/dashboard/signin" {
		t.Errorf("after signing out /dashboard/tasks shows %s; want /dashboard/signin", p)
	}

	// The old cookie, replayed by hand, is refused.
	req, err := http.NewRequest(http.MethodGet, s.base+"/dashboard/", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range session {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode/100 != 3 || !strings.HasSuffix(loc, "/dashboard/signin") {
		t.Errorf("the signed-out session cookie gets %d (Location %q); want a redirect to /dashboard/signin", resp.StatusCode, loc)
	}
}
