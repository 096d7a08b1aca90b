package stripetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// API is a Stripe API for tests that remembers and can be scripted, which
// stripe-mock cannot: it keeps invoices, charges, subscriptions and events
// per connected account, pays or declines as a test scripts it, keeps
// Stripe's idempotency promise, and fails on demand. It answers the
// requests recoup's Stripe adapter sends, in the shapes of API version
// 2023-10-16 (rendered by this package's builders), with Stripe's
// statuses and error JSON:
//
//	GET    /v1/invoices/{id}                     expand[]: charge, payment_intent
//	POST   /v1/invoices/{id}/pay
//	POST   /v1/invoices/{id}/mark_uncollectible
//	DELETE /v1/subscriptions/{id}
//	GET    /v1/subscriptions/{id}
//	GET    /v1/customers/{id}
//	POST   /v1/billing_portal/sessions           customer, return_url (PortalSessions)
//	GET    /v1/events                            limit, starting_after, ending_before,
//	                                             type, types[], created, delivery_success
//
// Every other route is Stripe's 404. A request needs "Authorization:
// Bearer sk_…" (or rk_…), else it is Stripe's 401. Objects live in the
// account named by the Stripe-Account header; without the header the
// request is on the platform's own account (""), where a test rarely puts
// anything, so a request that forgets the header finds nothing (404), as
// it would on Stripe.
//
// Idempotency is Stripe's (API v1): a POST whose Idempotency-Key the
// account has seen replays the first answer, status and body, with
// Idempotent-Replayed: true and no effect; the same key with another
// method, path or parameters is a 400 idempotency_error. Answers given
// before an endpoint runs (401, 404 for an unknown route, a missing
// parameter, a scripted 429 or 409) are not kept, so a retry runs. Stripe
// ignores idempotency keys on GET and DELETE, and so does the API: a
// second DELETE of a subscription answers as Stripe does for a canceled
// one, 404 resource_missing.
//
// An API is safe for concurrent use: it answers one request at a time,
// so that the code under test may call it from many goroutines. The
// methods that set it up (Put…, DeclinePays, AddEvent, FailNext) fail the
// test on a mistake, so call them from the test's goroutine.
type API struct {
	t   TB
	srv *httptest.Server

	mu       sync.Mutex
	now      func() time.Time
	accounts map[string]*account
	failures []*failure
	holds    map[string]time.Duration // by method and path
	hooks    []*hook
	log      []Request
}

// Request is one request the API answered, as the code under test sent it.
type Request struct {
	Method         string
	Path           string // without the query
	Account        string // the Stripe-Account header; "" is the platform
	IdempotencyKey string
	// Form holds the query and body parameters, keys without the array
	// index stripe-go adds (expand[0], expand[1] → expand), values in
	// index order: Form["expand"] is every expansion asked for.
	Form     url.Values
	Status   int  // the status answered
	Replayed bool // an idempotent replay: the first answer again, no effect
	// Key is the API key of the Authorization header, which tells apart
	// callers that use different keys.
	Key string
	// Received and Answered are when the request came in and when its
	// answer was ready, to be written; between them it may have been
	// held (Hold).
	Received, Answered time.Time
}

// account is one connected account's objects.
type account struct {
	invoices  map[string]*invoiceState
	charges   map[string]*chargeState
	ordered   []*chargeState // charges in the order they were made, for Charges
	subs      map[string]*subState
	customers map[string]map[string]any
	portals   []PortalSession     // the sessions made, oldest first
	pays      map[string][]string // decline codes of the next pays, by invoice ("" = succeed)
	events    []*storedEvent      // newest first, as Stripe lists them
	seq       int                 // orders events created in the same second
	saved     map[string]*savedAnswer
}

type invoiceState struct {
	inv  Invoice        // the state in the builder's terms
	base map[string]any // rendered once, so ids and line items stay the same across reads
	// intent is the invoice's payment intent, from its first payment
	// through the API on (Stripe makes one per invoice); nil before.
	intent          map[string]any
	intentID        string
	paidAt          time.Time
	uncollectibleAt time.Time
}

type chargeState struct {
	c   Charge
	obj map[string]any
}

type subState struct {
	sub        Subscription
	base       map[string]any
	canceledAt time.Time
}

type storedEvent struct {
	id, typ   string
	created   int64
	seq       int
	delivered bool
	payload   json.RawMessage
}

// savedAnswer is what an idempotency key answers again.
type savedAnswer struct {
	fingerprint string // method, path and parameters of the first request
	ans         answer
}

type failure struct {
	method, path string
	status, left int
}

type hook struct {
	method, path string
	fn           func(Request)
}

// answer is a response as the API keeps it for an idempotent replay.
type answer struct {
	status    int
	body      []byte
	requestID string
	// unsaved: turned away before an endpoint ran, so Stripe keeps no
	// idempotent result and a retry with the same key runs.
	unsaved bool
}

// NewAPI starts an API on a loopback port for the length of the test.
func NewAPI(t TB) *API {
	t.Helper()
	a := &API{t: t, now: time.Now, accounts: map[string]*account{}}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serveHTTP))
	t.Cleanup(a.srv.Close)
	return a
}

// URL is the API's base URL (http://127.0.0.1:port), for
// GatewayConfig.APIBase or STRIPE_API_BASE.
func (a *API) URL() string { return a.srv.URL }

// SetClock makes the API stamp declines, payments, cancellations and
// sessions with now instead of time.Now, for a test whose code under test
// runs on a fixed clock. (The builders' own "an hour ago" stamps stay on
// the real clock.)
func (a *API) SetClock(now func() time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.now = now
}

// PutInvoice stores the invoice on the account, replacing one with its
// ID, which it needs. Zero fields take the builder's defaults (status
// open, currency usd). When Charge names a charge PutCharge did not
// store, the API makes it up from the invoice: a succeeded charge of a
// paid invoice, else a failed one (generic_decline), since an unpaid
// invoice's latest charge is one that failed.
func (a *API) PutInvoice(account string, inv Invoice) {
	a.t.Helper()
	if inv.ID == "" {
		a.t.Fatalf("stripetest: PutInvoice: the invoice needs an ID")
	}
	if inv.Currency == "" {
		inv.Currency = "usd"
	}
	if inv.Status == "" {
		inv.Status = "open"
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	acct := a.account(account)
	st := &invoiceState{inv: inv, base: inv.Map()}
	switch now := a.now(); inv.Status {
	case "paid":
		st.paidAt = now
	case "uncollectible":
		st.uncollectibleAt = now
	}
	acct.invoices[inv.ID] = st
	if inv.Charge != "" && acct.charges[inv.Charge] == nil {
		status := "failed"
		if inv.Status == "paid" {
			status = "succeeded"
		}
		acct.putCharge(Charge{
			ID: inv.Charge, Customer: inv.Customer, Invoice: inv.ID, Amount: inv.AmountDue - inv.AmountPaid,
			Currency: inv.Currency, Status: status, Created: a.now().Add(-time.Minute), Livemode: inv.Livemode,
		})
	}
}

// Invoice is the invoice's state now, in the builder's terms (Status,
// AmountPaid, AttemptCount and Charge change as requests act on it);
// false if the account has no such invoice.
func (a *API) Invoice(account, id string) (Invoice, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.account(account).invoices[id]
	if st == nil {
		return Invoice{}, false
	}
	return st.inv, true
}

// PutCharge stores the charge on the account, replacing one with its ID,
// which it needs: the latest charge of an invoice put with Charge set to
// it, when a test wants its decline code. Zero fields take the builder's
// defaults (a failed charge, generic_decline).
func (a *API) PutCharge(account string, c Charge) {
	a.t.Helper()
	if c.ID == "" {
		a.t.Fatalf("stripetest: PutCharge: the charge needs an ID")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if c.Created.IsZero() {
		c.Created = a.now().Add(-time.Minute)
	}
	a.account(account).putCharge(c)
}

// Charges are the account's charges of the invoice, oldest first: those
// put and those its pays made, one per payment that ran (a replay makes
// none), so a test counts payments by counting them.
func (a *API) Charges(account, invoiceID string) []Charge {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []Charge
	for _, cs := range a.account(account).ordered {
		if cs.c.Invoice == invoiceID {
			out = append(out, cs.c)
		}
	}
	return out
}

// DeclinePays scripts the next pays of the invoice, one outcome per pay
// that runs: a decline code (insufficient_funds, stolen_card,
// expired_card…) declines it, "" lets it succeed. With nothing left to
// play a pay succeeds.
func (a *API) DeclinePays(account, invoiceID string, declineCodes ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	acct := a.account(account)
	acct.pays[invoiceID] = append(acct.pays[invoiceID], declineCodes...)
}

// PutCustomer stores a customer of the account (GET /v1/customers/{id}):
// its id and email, in a customer object of Stripe's shape (Customer),
// delinquent since its invoice failed.
func (a *API) PutCustomer(account, id, email string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.account(account).customers[id] = Customer{ID: id, Email: email, Delinquent: true, Created: a.now()}.Map()
}

// PutSubscription stores the subscription on the account, replacing one
// with its ID, which it needs. Set Status (active, past_due…): the
// builder's default is canceled, which a DELETE cannot cancel again.
func (a *API) PutSubscription(account string, sub Subscription) {
	a.t.Helper()
	if sub.ID == "" {
		a.t.Fatalf("stripetest: PutSubscription: the subscription needs an ID")
	}
	if sub.Status == "" {
		sub.Status = "canceled"
	}
	if sub.Currency == "" {
		sub.Currency = "usd"
	}
	base := sub.Map()
	sub.Customer = base["customer"].(string) // the builder's fresh cus_… when unset, kept
	a.mu.Lock()
	defer a.mu.Unlock()
	st := &subState{sub: sub, base: base}
	if sub.Status == "canceled" {
		st.canceledAt = a.now()
	}
	a.account(account).subs[sub.ID] = st
}

// Subscription is the subscription's state now (Status changes when it is
// canceled); false if the account has no such subscription.
func (a *API) Subscription(account, id string) (Subscription, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.account(account).subs[id]
	if st == nil {
		return Subscription{}, false
	}
	return st.sub, true
}

// AddEvent stores an event of the account for GET /v1/events: payload
// as Event.JSON renders it (its id, type and created are read from it),
// delivered whether every webhook endpoint has acknowledged it, which
// delivery_success filters on. An id the account already has fails the
// test.
func (a *API) AddEvent(account string, payload []byte, delivered bool) {
	a.t.Helper()
	var head struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Type    string `json:"type"`
		Created int64  `json:"created"`
	}
	if err := json.Unmarshal(payload, &head); err != nil || head.ID == "" || head.Object != "event" {
		a.t.Fatalf("stripetest: AddEvent: not a Stripe event (want id and \"object\": \"event\"): %v", err)
	}
	var compact bytes.Buffer
	_ = json.Compact(&compact, payload) // it parsed above
	a.mu.Lock()
	defer a.mu.Unlock()
	acct := a.account(account)
	for _, e := range acct.events {
		if e.id == head.ID {
			a.t.Fatalf("stripetest: AddEvent: account %q already has event %s", account, head.ID)
		}
	}
	acct.seq++
	acct.events = append(acct.events, &storedEvent{
		id: head.ID, typ: head.Type, created: head.Created, seq: acct.seq, delivered: delivered, payload: compact.Bytes(),
	})
	slices.SortStableFunc(acct.events, func(x, y *storedEvent) int {
		if x.created != y.created {
			return int(y.created - x.created)
		}
		return y.seq - x.seq
	})
}

// FailNext makes the next times requests with this method and path (on
// any account) fail with status and Stripe's error JSON for it: 429
// rate_limit, 409 lock_timeout, 5xx api_error, another 4xx a plain
// invalid_request_error. A failure below 500 comes before the endpoint
// and its idempotency store, as Stripe's rate limiter does: nothing is
// kept and a retry with the same key runs. A 5xx comes from the endpoint,
// so, as Stripe documents, it is kept under the request's idempotency key
// and a retry with that key gets the 500 again; neither has any effect.
func (a *API) FailNext(method, path string, status, times int) {
	a.t.Helper()
	if status < 400 || status > 599 || times < 1 {
		a.t.Fatalf("stripetest: FailNext(%s %s): status %d and times %d: want an error status and at least one time", method, path, status, times)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.failures = append(a.failures, &failure{method: method, path: path, status: status, left: times})
}

// Hold makes every request with this method and path (on any account)
// wait d before it is answered, without keeping other requests waiting:
// a slow endpoint, which widens the time the code under test spends in
// it, for a test about what overlaps what.
func (a *API) Hold(method, path string, d time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.holds == nil {
		a.holds = map[string]time.Duration{}
	}
	a.holds[method+" "+path] = d
}

// OnAnswer calls fn with every request of this method and path once the
// API has answered it (its effects made, its status set) and before the
// answer goes back, on the request's goroutine and outside the API's
// lock, so fn may block. A test kills the caller there to play a crash
// between Stripe's effect and the caller hearing of it.
func (a *API) OnAnswer(method, path string, fn func(Request)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.hooks = append(a.hooks, &hook{method: method, path: path, fn: fn})
}

// Requests are the requests answered so far, in the order they were.
func (a *API) Requests() []Request {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]Request, len(a.log))
	for i, r := range a.log {
		r.Form = maps.Clone(r.Form)
		out[i] = r
	}
	return out
}

// PortalSession is a customer portal session the API made.
type PortalSession struct {
	ID        string // bps_…
	Customer  string
	ReturnURL string // "" when none was asked for
	URL       string // where the session sends the customer
}

// PortalSessions are the customer portal sessions made on the account,
// oldest first (an idempotent replay makes none).
func (a *API) PortalSessions(account string) []PortalSession {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.account(account).portals)
}

// account returns the account's objects, creating them. a.mu is held.
func (a *API) account(id string) *account {
	acct := a.accounts[id]
	if acct == nil {
		acct = &account{
			invoices:  map[string]*invoiceState{},
			charges:   map[string]*chargeState{},
			subs:      map[string]*subState{},
			customers: map[string]map[string]any{},
			pays:      map[string][]string{},
			saved:     map[string]*savedAnswer{},
		}
		a.accounts[id] = acct
	}
	return acct
}

// putCharge stores the charge, with the builder's defaults filled in so
// that Charges reports what the API renders.
func (acct *account) putCharge(c Charge) {
	if c.Currency == "" {
		c.Currency = "usd"
	}
	if c.Status == "" {
		c.Status = "failed"
	}
	if c.Status == "failed" && c.FailureCode == "" {
		c.FailureCode = "card_declined"
	}
	if c.Status == "failed" && c.DeclineCode == "" {
		c.DeclineCode = "generic_decline"
	}
	cs := &chargeState{c: c, obj: c.Map()}
	if old := acct.charges[c.ID]; old != nil {
		*old = *cs // keeps its place in the order
		return
	}
	acct.charges[c.ID] = cs
	acct.ordered = append(acct.ordered, cs)
}

func (a *API) serveHTTP(w http.ResponseWriter, r *http.Request) {
	received := time.Now()
	raw, parseErr := requestParams(r)
	key, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	req := Request{
		Method: r.Method, Path: r.URL.Path, Account: r.Header.Get("Stripe-Account"),
		IdempotencyKey: r.Header.Get("Idempotency-Key"), Form: withoutIndexes(raw),
		Key: strings.TrimSpace(key), Received: received,
	}
	a.mu.Lock()
	hold := a.holds[r.Method+" "+r.URL.Path]
	a.mu.Unlock()
	if hold > 0 {
		select {
		case <-time.After(hold):
		case <-r.Context().Done():
		}
	}
	a.mu.Lock()
	ans, replayed := a.answer(r.Header.Get("Authorization"), req, raw, parseErr)
	req.Status, req.Replayed, req.Answered = ans.status, replayed, time.Now()
	a.log = append(a.log, req)
	var hooks []func(Request)
	for _, h := range a.hooks {
		if h.method == req.Method && h.path == req.Path {
			hooks = append(hooks, h.fn)
		}
	}
	a.mu.Unlock()
	for _, fn := range hooks {
		fn(req)
	}

	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Request-Id", ans.requestID)
	h.Set("Stripe-Version", APIVersion)
	if req.IdempotencyKey != "" {
		h.Set("Idempotency-Key", req.IdempotencyKey)
	}
	if replayed {
		h.Set("Idempotent-Replayed", "true")
	}
	w.WriteHeader(ans.status)
	_, _ = w.Write(ans.body)
}

// answer decides the response, in Stripe's order: authentication, then
// the rate limiter, then the idempotency store, then the endpoint. a.mu
// is held, so that a request's lookup and its effects are one step.
func (a *API) answer(authorization string, req Request, raw url.Values, parseErr error) (answer, bool) {
	if ans, ok := authenticate(authorization); !ok {
		return ans, false
	}
	if parseErr != nil {
		return unsaved(apiError(http.StatusBadRequest, "invalid_request_error", "", "", "Invalid request body: "+parseErr.Error())), false
	}
	if ans, ok := a.scriptedFailure(req.Method, req.Path, false); ok {
		return ans, false
	}
	acct := a.account(req.Account)
	keyed := req.Method == http.MethodPost && req.IdempotencyKey != ""
	fingerprint := req.Method + " " + req.Path + "?" + raw.Encode()
	if keyed {
		if s, ok := acct.saved[req.IdempotencyKey]; ok {
			if s.fingerprint != fingerprint {
				return unsaved(apiError(http.StatusBadRequest, "idempotency_error", "", "",
					"Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '"+
						req.IdempotencyKey+"' if you meant to execute a different request.")), false
			}
			return s.ans, true
		}
	}
	ans, failed := a.scriptedFailure(req.Method, req.Path, true)
	if !failed {
		ans = a.route(acct, req)
	}
	if keyed && !ans.unsaved {
		acct.saved[req.IdempotencyKey] = &savedAnswer{fingerprint: fingerprint, ans: ans}
	}
	return ans, false
}

// route runs the endpoint of the request.
func (a *API) route(acct *account, req Request) answer {
	rest, ok := strings.CutPrefix(req.Path, "/v1/")
	parts := strings.Split(rest, "/")
	if ok && !slices.Contains(parts, "") {
		switch m := req.Method; {
		case m == http.MethodGet && len(parts) == 2 && parts[0] == "invoices":
			return a.getInvoice(acct, parts[1], req.Form)
		case m == http.MethodPost && len(parts) == 3 && parts[0] == "invoices" && parts[2] == "pay":
			return a.payInvoice(acct, parts[1], req.Form)
		case m == http.MethodPost && len(parts) == 3 && parts[0] == "invoices" && parts[2] == "mark_uncollectible":
			return a.markUncollectible(acct, parts[1], req.Form)
		case m == http.MethodDelete && len(parts) == 2 && parts[0] == "subscriptions":
			return a.cancelSubscription(acct, parts[1])
		case m == http.MethodGet && len(parts) == 2 && parts[0] == "subscriptions":
			return a.getSubscription(acct, parts[1])
		case m == http.MethodGet && len(parts) == 2 && parts[0] == "customers":
			if c := acct.customers[parts[1]]; c != nil {
				return jsonAnswer(http.StatusOK, c)
			}
			return noSuch("customer", parts[1])
		case m == http.MethodPost && rest == "billing_portal/sessions":
			return a.createPortalSession(acct, req.Form)
		case m == http.MethodGet && rest == "events":
			return a.listEvents(acct, req.Form)
		}
	}
	return unsaved(apiError(http.StatusNotFound, "invalid_request_error", "", "",
		fmt.Sprintf("Unrecognized request URL (%s: %s). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.", req.Method, req.Path)))
}

func (a *API) getInvoice(acct *account, id string, form url.Values) answer {
	st := acct.invoices[id]
	if st == nil {
		return noSuch("invoice", id)
	}
	return a.invoiceAnswer(acct, st, form)
}

// payInvoice pays the invoice with the next scripted outcome. Stripe pays
// an open invoice and an uncollectible one (a success makes it paid, a
// decline leaves it uncollectible); a draft it finalizes first.
func (a *API) payInvoice(acct *account, id string, form url.Values) answer {
	st := acct.invoices[id]
	if st == nil {
		return noSuch("invoice", id)
	}
	inv := &st.inv
	switch inv.Status {
	case "paid":
		return apiError(http.StatusBadRequest, "invalid_request_error", "invoice_not_editable", "", "Invoice is already paid")
	case "void":
		return apiError(http.StatusBadRequest, "invalid_request_error", "invoice_not_editable", "", "This invoice is void and can no longer be paid.")
	case "draft":
		inv.Status = "open"
	}
	code := ""
	if q := acct.pays[id]; len(q) > 0 {
		code, acct.pays[id] = q[0], q[1:]
	}
	now := a.now()
	if st.intentID == "" {
		st.intentID = NewID("pi_")
	}
	ch := Charge{
		ID: NewID("ch_"), Customer: inv.Customer, Invoice: id, Amount: inv.AmountDue - inv.AmountPaid, Currency: inv.Currency,
		Status: "succeeded", PaymentIntent: st.intentID, Created: now, Livemode: inv.Livemode,
	}
	e := decline(code)
	if code != "" {
		ch.Status, ch.FailureCode, ch.DeclineCode = "failed", e.code, code
	}
	acct.putCharge(ch)
	// Any payment counts as the first attempt; later manual ones leave
	// the count, which is the retry schedule's, alone.
	inv.AttemptCount = max(inv.AttemptCount, 1)
	inv.Charge = ch.ID
	st.intent = PaymentIntent{
		ID: st.intentID, Customer: inv.Customer, Invoice: id, Amount: inv.AmountDue, Currency: inv.Currency,
		LatestCharge: ch.ID, DeclineCode: code, Created: now, Livemode: inv.Livemode,
	}.Map()
	if code != "" {
		e.charge = ch.ID
		return jsonAnswer(http.StatusPaymentRequired, map[string]any{"error": e.Map()})
	}
	inv.Status, inv.AmountPaid, st.paidAt = "paid", inv.AmountDue, now
	return a.invoiceAnswer(acct, st, form)
}

func (a *API) markUncollectible(acct *account, id string, form url.Values) answer {
	st := acct.invoices[id]
	if st == nil {
		return noSuch("invoice", id)
	}
	if st.inv.Status != "open" {
		return apiError(http.StatusBadRequest, "invalid_request_error", "invoice_not_editable", "",
			fmt.Sprintf("You can only mark an open invoice as uncollectible; this invoice is %s.", st.inv.Status))
	}
	st.inv.Status, st.uncollectibleAt = "uncollectible", a.now()
	return a.invoiceAnswer(acct, st, form)
}

// cancelSubscription cancels at once. Stripe treats a canceled
// subscription as gone for this request: "No such subscription".
func (a *API) cancelSubscription(acct *account, id string) answer {
	st := acct.subs[id]
	if st == nil || st.sub.Status == "canceled" || st.sub.Status == "incomplete_expired" {
		return noSuch("subscription", id)
	}
	st.sub.Status, st.canceledAt = "canceled", a.now()
	m := maps.Clone(st.base)
	m["status"] = st.sub.Status
	at := st.canceledAt.Unix()
	m["canceled_at"], m["ended_at"] = at, at
	m["cancellation_details"] = map[string]any{"comment": nil, "feedback": nil, "reason": "cancellation_requested"}
	return jsonAnswer(http.StatusOK, m)
}

func (a *API) getSubscription(acct *account, id string) answer {
	st := acct.subs[id]
	if st == nil {
		return noSuch("subscription", id)
	}
	m := maps.Clone(st.base)
	m["status"] = st.sub.Status
	if !st.canceledAt.IsZero() {
		at := st.canceledAt.Unix()
		m["canceled_at"], m["ended_at"] = at, at
	}
	return jsonAnswer(http.StatusOK, m)
}

func (a *API) createPortalSession(acct *account, form url.Values) answer {
	customer := form.Get("customer")
	if customer == "" {
		return unsaved(apiError(http.StatusBadRequest, "invalid_request_error", "parameter_missing", "customer", "Missing required param: customer."))
	}
	s := PortalSession{ID: NewID("bps_"), Customer: customer, ReturnURL: form.Get("return_url"),
		URL: "https://billing.stripe.com/p/session/" + NewID("test_")}
	acct.portals = append(acct.portals, s)
	return jsonAnswer(http.StatusOK, map[string]any{
		"id":            s.ID,
		"object":        "billing_portal.session",
		"configuration": NewID("bpc_"),
		"created":       a.now().Unix(),
		"customer":      customer,
		"flow":          nil,
		"livemode":      false,
		"locale":        nullable(form.Get("locale")),
		"on_behalf_of":  nullable(form.Get("on_behalf_of")),
		"return_url":    nullable(s.ReturnURL),
		"url":           s.URL,
	})
}

// listEvents lists the account's events newest first, filtered and paged
// as Stripe does.
func (a *API) listEvents(acct *account, form url.Values) answer {
	bad := func(param, msg string) answer {
		return unsaved(apiError(http.StatusBadRequest, "invalid_request_error", "", param, msg))
	}
	limit := 10
	if v := form.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return bad("limit", "Invalid integer: "+v)
		}
		if n < 1 || n > 100 {
			return bad("limit", "This value must be greater than or equal to 1 and less than or equal to 100.")
		}
		limit = n
	}
	types, typ := form["types"], form.Get("type")
	if len(types) > 0 && typ != "" {
		return bad("types", "You may pass either `type` or `types`, but not both.")
	}
	var bounds []func(int64) bool
	for op, test := range map[string]func(c, v int64) bool{
		"created":      func(c, v int64) bool { return c == v },
		"created[gt]":  func(c, v int64) bool { return c > v },
		"created[gte]": func(c, v int64) bool { return c >= v },
		"created[lt]":  func(c, v int64) bool { return c < v },
		"created[lte]": func(c, v int64) bool { return c <= v },
	} {
		if s := form.Get(op); s != "" {
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return bad(op, "Invalid integer: "+s)
			}
			bounds = append(bounds, func(c int64) bool { return test(c, v) })
		}
	}
	var delivered *bool
	if s := form.Get("delivery_success"); s != "" {
		v, err := strconv.ParseBool(s)
		if err != nil {
			return bad("delivery_success", "Invalid boolean: "+s)
		}
		delivered = &v
	}
	keep := func(e *storedEvent) bool {
		if len(types) > 0 && !slices.Contains(types, e.typ) {
			return false
		}
		if ok, _ := path.Match(typ, e.typ); typ != "" && !ok {
			return false
		}
		for _, in := range bounds {
			if !in(e.created) {
				return false
			}
		}
		return delivered == nil || *delivered == e.delivered
	}

	after, before := form.Get("starting_after"), form.Get("ending_before")
	if after != "" && before != "" {
		return bad("ending_before", "You may only specify one of these parameters: ending_before, starting_after.")
	}
	events := acct.events
	if cursor := after + before; cursor != "" {
		i := slices.IndexFunc(events, func(e *storedEvent) bool { return e.id == cursor })
		if i < 0 {
			param := "starting_after"
			if before != "" {
				param = "ending_before"
			}
			return unsaved(apiError(http.StatusNotFound, "invalid_request_error", "resource_missing", param, "No such event: '"+cursor+"'"))
		}
		if after != "" {
			events = events[i+1:]
		} else {
			events = events[:i]
		}
	}
	var matched []*storedEvent
	for _, e := range events {
		if keep(e) {
			matched = append(matched, e)
		}
	}
	page := matched
	if len(page) > limit {
		if before != "" {
			page = page[len(page)-limit:] // the page next to the cursor, still newest first
		} else {
			page = page[:limit]
		}
	}
	data := make([]any, len(page))
	for i, e := range page {
		data[i] = e.payload
	}
	return jsonAnswer(http.StatusOK, map[string]any{"object": "list", "data": data, "has_more": len(matched) > limit, "url": "/v1/events"})
}

// invoiceAnswer renders the invoice in its state now, expanding what the
// request asked for.
func (a *API) invoiceAnswer(acct *account, st *invoiceState, form url.Values) answer {
	expand := form["expand"]
	for _, e := range expand {
		if e != "charge" && e != "payment_intent" {
			return unsaved(apiError(http.StatusBadRequest, "invalid_request_error", "", "expand",
				"stripetest.API cannot expand invoice."+e+"; it expands charge and payment_intent."))
		}
	}
	inv := st.inv
	m := maps.Clone(st.base)
	m["status"] = inv.Status
	m["paid"] = inv.Status == "paid"
	m["amount_paid"] = inv.AmountPaid
	m["amount_remaining"] = inv.AmountDue - inv.AmountPaid
	m["attempt_count"] = inv.AttemptCount
	m["attempted"] = inv.AttemptCount > 0
	m["charge"] = nullable(inv.Charge)
	m["payment_intent"] = nullable(st.intentID)
	m["next_payment_attempt"] = unixOrNull(inv.NextPaymentAttempt)
	if inv.Status != "open" && inv.Status != "draft" {
		// Stripe's retry schedule ends with the invoice.
		m["next_payment_attempt"] = nil
		m["auto_advance"] = false
	}
	tr := maps.Clone(m["status_transitions"].(map[string]any))
	tr["paid_at"], tr["marked_uncollectible_at"] = unixOrNull(nonZero(st.paidAt)), unixOrNull(nonZero(st.uncollectibleAt))
	m["status_transitions"] = tr
	if slices.Contains(expand, "charge") && inv.Charge != "" {
		if cs := acct.charges[inv.Charge]; cs != nil {
			m["charge"] = cs.obj
		}
	}
	if slices.Contains(expand, "payment_intent") && st.intent != nil {
		m["payment_intent"] = st.intent
	}
	return jsonAnswer(http.StatusOK, m)
}

// scriptedFailure takes the next scripted failure of the request, of the
// kind asked: a server error (5xx) or one that comes before the endpoint.
func (a *API) scriptedFailure(method, path string, serverError bool) (answer, bool) {
	for _, f := range a.failures {
		if f.left > 0 && f.method == method && f.path == path && (f.status >= 500) == serverError {
			f.left--
			switch {
			case f.status == http.StatusTooManyRequests:
				return unsaved(apiError(f.status, "invalid_request_error", "rate_limit", "",
					"Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.")), true
			case f.status == http.StatusConflict:
				return unsaved(apiError(f.status, "invalid_request_error", "lock_timeout", "",
					"This object cannot be accessed right now because another API request or Stripe process is currently accessing it. "+
						"If you see this error intermittently, retry the request. If you see this error frequently and are making multiple "+
						"concurrent requests to a single object, make your requests serially or at a lower rate.")), true
			case serverError:
				return apiError(f.status, "api_error", "", "", "An unknown error occurred"), true
			default:
				return unsaved(apiError(f.status, "invalid_request_error", "", "", fmt.Sprintf("A failure stripetest scripted (%d).", f.status))), true
			}
		}
	}
	return answer{}, false
}

// authenticate checks for a Bearer secret (sk_) or restricted (rk_) key,
// and answers as Stripe does without one.
func authenticate(authorization string) (answer, bool) {
	key, ok := strings.CutPrefix(authorization, "Bearer ")
	key = strings.TrimSpace(key)
	if !ok || key == "" {
		return unsaved(apiError(http.StatusUnauthorized, "invalid_request_error", "", "",
			"You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth "+
				"(e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, "+
				"or we can help at https://support.stripe.com/.")), false
	}
	for _, p := range []string{"sk_test_", "sk_live_", "rk_test_", "rk_live_"} {
		if strings.HasPrefix(key, p) && len(key) > len(p) {
			return answer{}, true
		}
	}
	masked := "****"
	if len(key) > 12 {
		masked = key[:8] + "****" + key[len(key)-4:]
	}
	return unsaved(apiError(http.StatusUnauthorized, "invalid_request_error", "", "", "Invalid API Key provided: "+masked)), false
}

// noSuch is Stripe's 404 for an id the account does not have.
func noSuch(object, id string) answer {
	return apiError(http.StatusNotFound, "invalid_request_error", "resource_missing", "id", "No such "+object+": '"+id+"'")
}

// apiError renders Stripe's error JSON.
func apiError(status int, typ, code, param, message string) answer {
	e := map[string]any{"message": message, "type": typ}
	if code != "" {
		e["code"], e["doc_url"] = code, docURL(code)
	}
	if param != "" {
		e["param"] = param
	}
	return jsonAnswer(status, map[string]any{"error": e})
}

// jsonAnswer renders v as Stripe writes its answers: members in Stripe's
// order, indented by two spaces.
func jsonAnswer(status int, v map[string]any) answer {
	id := NewID("req_")
	if e, ok := v["error"].(map[string]any); ok {
		e["request_log_url"] = "https://dashboard.stripe.com/test/logs/" + id
	}
	b, err := json.Marshal(stripeOrder(v))
	if err != nil {
		b, _ = json.Marshal(map[string]any{"error": map[string]any{"type": "api_error", "message": "stripetest: render answer: " + err.Error()}})
		status = http.StatusInternalServerError
	}
	var out bytes.Buffer
	_ = json.Indent(&out, b, "", "  ") // b is JSON
	out.WriteByte('\n')
	return answer{status: status, body: out.Bytes(), requestID: id}
}

func unsaved(ans answer) answer {
	ans.unsaved = true
	return ans
}

func nonZero(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// requestParams reads the query and, for any method, a form body:
// stripe-go sends a DELETE's parameters in the body.
func requestParams(r *http.Request) (url.Values, error) {
	vals := r.URL.Query()
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return vals, err
	}
	if len(b) == 0 {
		return vals, nil
	}
	body, err := url.ParseQuery(string(b))
	if err != nil {
		return vals, err
	}
	for k, vs := range body {
		vals[k] = append(vals[k], vs...)
	}
	return vals, nil
}

// arrayIndex is the index stripe-go writes after an array's name:
// expand[0], or expand[] in hand-written requests.
var arrayIndex = regexp.MustCompile(`\[(\d*)\]$`)

// withoutIndexes merges expand[0], expand[1]… into expand, in index
// order.
func withoutIndexes(vals url.Values) url.Values {
	type item struct {
		key   string
		index int
	}
	var items []item
	for k := range vals {
		index := -1
		if m := arrayIndex.FindStringSubmatch(k); m != nil {
			index, _ = strconv.Atoi(m[1]) // "" (expand[]) is 0
		}
		items = append(items, item{k, index})
	}
	slices.SortFunc(items, func(x, y item) int {
		if x.index != y.index {
			return x.index - y.index
		}
		return strings.Compare(x.key, y.key)
	})
	out := url.Values{}
	for _, it := range items {
		name := it.key
		if it.index >= 0 {
			name = arrayIndex.ReplaceAllString(name, "")
		}
		out[name] = append(out[name], vals[it.key]...)
	}
	return out
}
