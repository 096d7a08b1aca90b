package httpapi_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/stripetest"
)

// taskOut is a task as the API answers it.
type taskOut struct {
	ID                   string `json:"id"`
	MerchantID           string `json:"merchant_id"`
	Type                 string `json:"type"`
	Status               string `json:"status"`
	StripeEventID        string `json:"stripe_event_id"`
	StripeCustomerID     string `json:"stripe_customer_id"`
	StripeInvoiceID      string `json:"stripe_invoice_id"`
	StripeSubscriptionID string `json:"stripe_subscription_id"`
	StripeChargeID       string `json:"stripe_charge_id"`
	CustomerEmail        string `json:"customer_email"`
	AmountDue            int64  `json:"amount_due"`
	Currency             string `json:"currency"`
	HostedInvoiceURL     string `json:"hosted_invoice_url"`
	Attempts             int    `json:"attempts"`
	RunAt                string `json:"run_at"`
	LastError            string `json:"last_error"`
	CreatedAt            string `json:"created_at"`
	UpdatedAt            string `json:"updated_at"`
}

type listOut struct {
	Tasks      []taskOut `json:"tasks"`
	NextCursor *string   `json:"next_cursor"`
}

// scheduleTask stores a task for m straight through the store, as an event
// would: its own invoice and charge, so that the "at most one" rules leave
// it alone and it can be cancelled on its own.
func (e *env) scheduleTask(m domain.MerchantID, createdAt, runAt time.Time) domain.Task {
	e.t.Helper()
	t := domain.Task{
		ID: domain.TaskID(domain.NewID()), MerchantID: m, Type: domain.TypeNotifyChargeFailed,
		Status: domain.StatusPending, StripeEventID: stripetest.NewID("evt_"),
		StripeCustomerID: "cus_test", StripeInvoiceID: stripetest.NewID("in_"),
		StripeChargeID: stripetest.NewID("ch_"), CustomerEmail: "jenny@example.com",
		AmountDue: 1500, Currency: "eur", RunAt: runAt, CreatedAt: createdAt, UpdatedAt: createdAt,
	}
	stored, err := e.mem.Tasks().Schedule(context.Background(), m, []domain.Task{t})
	if err != nil || len(stored) != 1 {
		e.t.Fatalf("schedule: %v (%d stored)", err, len(stored))
	}
	return stored[0]
}

// taskIn makes a task of m in the given status. Only one task may be due
// in the store at a time for this to work: it claims what is due.
func (e *env) taskIn(m domain.MerchantID, status domain.TaskStatus) domain.Task {
	e.t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	switch status {
	case domain.StatusPending:
		return e.scheduleTask(m, now, now.Add(time.Hour))
	case domain.StatusCancelled:
		t := e.scheduleTask(m, now, now.Add(time.Hour))
		ids, err := e.mem.Tasks().CancelPending(ctx, m, domain.CancelSelector{InvoiceID: t.StripeInvoiceID}, now)
		if err != nil || len(ids) != 1 {
			e.t.Fatalf("cancel: %v %v", err, ids)
		}
		return e.get(m, t.ID)
	}
	t := e.scheduleTask(m, now, now.Add(-time.Minute))
	claimed, err := e.mem.Queue().ClaimDue(ctx, now, time.Hour, 10)
	if err != nil || len(claimed) != 1 || claimed[0].ID != t.ID {
		e.t.Fatalf("claim: %v %v", err, claimed)
	}
	if status != domain.StatusRunning {
		res := domain.TaskResult{Status: status, At: now}
		if status == domain.StatusFailed {
			res.LastError = "card_declined"
		}
		if err := e.mem.Queue().Finish(ctx, m, t.ID, claimed[0].Attempts, res); err != nil {
			e.t.Fatalf("finish: %v", err)
		}
	}
	got := e.get(m, t.ID)
	if got.Status != status {
		e.t.Fatalf("task is %s, want %s", got.Status, status)
	}
	return got
}

// get reads a task straight from the store.
func (e *env) get(m domain.MerchantID, id domain.TaskID) domain.Task {
	e.t.Helper()
	t, err := e.mem.Tasks().Get(context.Background(), m, id)
	if err != nil {
		e.t.Fatalf("get %s: %v", id, err)
	}
	return t
}

func TestCrossTenantTaskIsForbidden(t *testing.T) {
	is := is.New(t)
	e := newEnv(t)
	a, b := e.createMerchant("Alice's"), e.createMerchant("Bob's")
	bTask := e.taskIn(b.ID, domain.StatusPending)

	r := e.api(http.MethodGet, "/api/tasks/"+string(bTask.ID), a.Key)
	is.Equal(r.status, http.StatusForbidden)                           // A may not read B's task
	is.Equal(string(bytes.TrimSpace(r.body)), `{"error":"Forbidden"}`) // and learns nothing else

	r = e.api(http.MethodGet, "/api/tasks/"+string(bTask.ID), b.Key)
	is.Equal(r.status, http.StatusOK) // B may
	var got taskOut
	r.decode(t, &got)
	is.Equal(got.ID, string(bTask.ID))
	is.Equal(got.MerchantID, string(b.ID))

	r = e.api(http.MethodGet, "/api/tasks/"+domain.NewID(), a.Key)
	is.Equal(r.status, http.StatusNotFound) // no such task at all
}

func TestAuthorizationMatrix(t *testing.T) {
	e := newEnv(t)
	owner, other := e.createMerchant("Owner"), e.createMerchant("Other")
	extra := e.issueKey(owner.ID)
	r := e.do(http.MethodDelete, "/admin/merchants/"+string(owner.ID)+"/api-keys/"+extra.Prefix, nil, "Authorization", "Bearer "+adminToken)
	if r.status != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	fakeKey, _, _ := domain.NewAPIKey(owner.ID, time.Now())

	cells := []struct {
		name string
		auth string // Authorization header; "" sends none
	}{
		{"owner", "Bearer " + owner.Key},
		{"other merchant", "Bearer " + other.Key},
		{"revoked key", "Bearer " + extra.Key},
		{"unknown key", "Bearer " + fakeKey},
		{"no header", ""},
		{"malformed header", "Bearer"},
		{"wrong scheme", "Basic " + owner.Key},
	}
	endpoints := []struct {
		name   string
		method string
		path   func(id domain.TaskID) string
		want   map[string]int // status by cell; absent means 401
	}{
		{"list", http.MethodGet, func(domain.TaskID) string { return "/api/tasks?status=all" },
			map[string]int{"owner": 200, "other merchant": 200}},
		{"get", http.MethodGet, func(id domain.TaskID) string { return "/api/tasks/" + string(id) },
			map[string]int{"owner": 200, "other merchant": 403}},
		{"retry", http.MethodPost, func(id domain.TaskID) string { return "/api/tasks/" + string(id) + "/retry" },
			map[string]int{"owner": 200, "other merchant": 403}},
		{"delete", http.MethodDelete, func(id domain.TaskID) string { return "/api/tasks/" + string(id) },
			map[string]int{"owner": 204, "other merchant": 403}},
		{"stats", http.MethodGet, func(domain.TaskID) string { return "/api/stats" },
			map[string]int{"owner": 200, "other merchant": 200}},
	}
	for _, ep := range endpoints {
		for _, cell := range cells {
			t.Run(ep.name+"/"+cell.name, func(t *testing.T) {
				is := is.New(t)
				e := e.with(t)
				target := e.taskIn(owner.ID, domain.StatusCancelled) // retryable, deletable
				var headers []string
				if cell.auth != "" {
					headers = []string{"Authorization", cell.auth}
				}
				r := e.do(ep.method, ep.path(target.ID), nil, headers...)
				want, ok := ep.want[cell.name]
				if !ok {
					want = http.StatusUnauthorized
				}
				is.Equal(r.status, want) // the expected status for this cell
				switch want {
				case http.StatusUnauthorized:
					is.Equal(r.header.Get("WWW-Authenticate"), "Bearer") // a challenge
					is.True(r.errorMessage(t) != "")                     // and an error body
				case http.StatusForbidden:
					is.Equal(string(bytes.TrimSpace(r.body)), `{"error":"Forbidden"}`)
				}
				if cell.name == "other merchant" && ep.name == "list" {
					var l listOut
					r.decode(t, &l)
					for _, task := range l.Tasks {
						is.Equal(task.MerchantID, string(other.ID)) // only the caller's tasks
					}
				}
				if cell.name == "other merchant" && ep.name == "stats" {
					var s statsOut
					r.decode(t, &s)
					is.Equal(s.TasksByStatus["cancelled"], 0) // the owner's tasks are not counted
				}
				if want == http.StatusUnauthorized {
					is.Equal(e.get(owner.ID, target.ID), target) // refused before any use case ran
				}
			})
		}
	}
}

type issuedKey struct {
	Key    string `json:"api_key"`
	Prefix string `json:"api_key_prefix"`
}

func (e *env) issueKey(m domain.MerchantID) issuedKey {
	e.t.Helper()
	r := e.do(http.MethodPost, "/admin/merchants/"+string(m)+"/api-keys", nil, "Authorization", "Bearer "+adminToken)
	if r.status != http.StatusCreated {
		e.t.Fatalf("issue key: %d %s", r.status, r.body)
	}
	var k issuedKey
	r.decode(e.t, &k)
	return k
}

// walk reads every page of the list with query q and returns the tasks in
// the order they came, checking each page's size.
func (e *env) walk(t *testing.T, key string, q url.Values, limit int, between func()) ([]taskOut, error) {
	var all []taskOut
	for range 1_000 {
		r := e.api(http.MethodGet, "/api/tasks?"+q.Encode(), key)
		if r.status != http.StatusOK {
			return nil, fmt.Errorf("list %s: %d %s", q.Encode(), r.status, r.body)
		}
		var l listOut
		r.decode(t, &l)
		if len(l.Tasks) > limit {
			return nil, fmt.Errorf("page of %d tasks for limit %d", len(l.Tasks), limit)
		}
		all = append(all, l.Tasks...)
		if l.NextCursor == nil {
			return all, nil
		}
		if len(l.Tasks) == 0 {
			return nil, errors.New("empty page with a next cursor")
		}
		q.Set("cursor", *l.NextCursor)
		if between != nil {
			between()
		}
	}
	return nil, errors.New("too many pages")
}

func TestPaginationWhileTasksArrive(t *testing.T) {
	is := is.New(t)
	e := newEnv(t)
	m := e.createMerchant("Busy Shop")
	start := time.Now().UTC().Add(-time.Hour)
	before := map[string]bool{}
	for i := range 150 {
		// Ties, and times a microsecond apart: the cursor must keep both
		// apart exactly.
		created := start.Add(time.Duration(i%40)*time.Second + time.Duration(i%80/40)*time.Microsecond)
		task := e.scheduleTask(m.ID, created, start.Add(2*time.Hour))
		before[string(task.ID)] = true
	}

	// The inserter adds tasks, as events would, while the walk goes on;
	// after every page it is told to add a few more.
	tick, done := make(chan struct{}), make(chan error)
	go func() {
		var err error
		for range tick {
			for range 3 {
				now := time.Now().UTC()
				task := domain.Task{
					ID: domain.TaskID(domain.NewID()), MerchantID: m.ID, Type: domain.TypeNotifyChargeFailed,
					Status: domain.StatusPending, StripeEventID: stripetest.NewID("evt_"),
					StripeChargeID: stripetest.NewID("ch_"), RunAt: now.Add(time.Hour), CreatedAt: now, UpdatedAt: now,
				}
				if _, serr := e.mem.Tasks().Schedule(context.Background(), m.ID, []domain.Task{task}); serr != nil && err == nil {
					err = serr
				}
			}
			done <- err
		}
		close(done)
	}()
	var insertErr error
	got, err := e.walk(t, m.Key, url.Values{"limit": {"7"}, "status": {"pending"}}, 7, func() {
		tick <- struct{}{}
		if err := <-done; err != nil && insertErr == nil {
			insertErr = err
		}
	})
	close(tick)
	for range done {
	}
	is.NoErr(err)
	is.NoErr(insertErr)

	seen := map[string]bool{}
	for i, task := range got {
		is.True(!seen[task.ID]) // no task twice
		seen[task.ID] = true
		if i > 0 {
			prev := got[i-1]
			pt, ct := parseTime(t, prev.CreatedAt), parseTime(t, task.CreatedAt)
			is.True(pt.After(ct) || pt.Equal(ct) && prev.ID > task.ID) // newest first, ties by id
		}
	}
	for id := range before {
		is.True(seen[id]) // every task that was there before the walk is seen
	}
	is.True(len(got) >= len(before))
	is.True(len(e.tasksOf(m.ID)) > len(before)) // tasks did arrive meanwhile
}

// TestListStatusQuery: the status query parameter becomes the use case's
// filter; "all" and no status at all list every status.
func TestListStatusQuery(t *testing.T) {
	e := newEnv(t)
	m := e.createMerchant("Filters")
	pending := e.taskIn(m.ID, domain.StatusPending)
	cancelled := e.taskIn(m.ID, domain.StatusCancelled)
	for _, tc := range []struct {
		query string
		want  []domain.TaskID
	}{
		{"", []domain.TaskID{pending.ID, cancelled.ID}},
		{"?status=all", []domain.TaskID{pending.ID, cancelled.ID}},
		{"?status=pending", []domain.TaskID{pending.ID}},
		{"?status=cancelled", []domain.TaskID{cancelled.ID}},
		{"?status=failed", nil},
	} {
		t.Run(tc.query, func(t *testing.T) {
			is := is.New(t)
			e := e.with(t)
			r := e.api(http.MethodGet, "/api/tasks"+tc.query, m.Key)
			is.Equal(r.status, http.StatusOK)
			var l listOut
			r.decode(t, &l)
			var got []domain.TaskID
			for _, task := range l.Tasks {
				got = append(got, domain.TaskID(task.ID))
			}
			slices.Sort(got)
			want := slices.Sorted(slices.Values(tc.want))
			is.Equal(got, want) // the tasks of the statuses asked for
		})
	}
}

func parseTime(t *testing.T, s string) time.Time {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("time %q: %v", s, err)
	}
	return ts
}

func TestTaskAPIBadInput(t *testing.T) {
	e := newEnv(t)
	a, b := e.createMerchant("A"), e.createMerchant("B")
	for range 3 {
		e.scheduleTask(a.ID, time.Now().UTC(), time.Now().Add(time.Hour))
		e.scheduleTask(b.ID, time.Now().UTC(), time.Now().Add(time.Hour))
	}
	cursorOf := func(m merchant) string {
		r := e.api(http.MethodGet, "/api/tasks?limit=1", m.Key)
		var l listOut
		r.decode(t, &l)
		if l.NextCursor == nil {
			t.Fatal("no cursor")
		}
		return *l.NextCursor
	}
	aCursor, bCursor := cursorOf(a), cursorOf(b)
	flip := []byte(aCursor)
	flip[10] ^= 1
	raw, _ := base64.RawURLEncoding.DecodeString(aCursor)
	raw[5]++ // another position, same MAC
	edited := base64.RawURLEncoding.EncodeToString(raw)
	bigID := strings.Repeat("a", 10<<10)

	cases := []struct {
		name, method, path, message string
	}{
		{"unknown status", "GET", "/api/tasks?status=lost", `unknown status "lost"`},
		{"status twice", "GET", "/api/tasks?status=pending&status=failed", `"status" given more than once`},
		{"limit 0", "GET", "/api/tasks?limit=0", "invalid limit"},
		{"limit 201", "GET", "/api/tasks?limit=201", "invalid limit"},
		{"limit abc", "GET", "/api/tasks?limit=abc", "invalid limit"},
		{"limit -1", "GET", "/api/tasks?limit=-1", "invalid limit"},
		{"limit empty", "GET", "/api/tasks?limit=", "invalid limit"},
		{"forged cursor", "GET", "/api/tasks?cursor=" + strings.Repeat("A", len(aCursor)), "invalid cursor"},
		{"garbage cursor", "GET", "/api/tasks?cursor=not-a-cursor", "invalid cursor"},
		{"flipped cursor", "GET", "/api/tasks?cursor=" + string(flip), "invalid cursor"},
		{"edited cursor", "GET", "/api/tasks?cursor=" + edited, "invalid cursor"},
		{"truncated cursor", "GET", "/api/tasks?cursor=" + aCursor[:len(aCursor)-3], "invalid cursor"},
		{"another merchant's cursor", "GET", "/api/tasks?cursor=" + bCursor, "invalid cursor"},
		{"non-UUID id", "GET", "/api/tasks/not-a-uuid", "invalid task id"},
		{"UUID without dashes", "GET", "/api/tasks/" + strings.ReplaceAll(domain.NewID(), "-", ""), "invalid task id"},
		{"10 KB id", "GET", "/api/tasks/" + bigID, "invalid task id"},
		{"10 KB id, retry", "POST", "/api/tasks/" + bigID + "/retry", "invalid task id"},
		{"10 KB id, delete", "DELETE", "/api/tasks/" + bigID, "invalid task id"},
		{"non-UUID id, retry", "POST", "/api/tasks/123/retry", "invalid task id"},
		{"non-UUID id, delete", "DELETE", "/api/tasks/%2e%2e", "invalid task id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			e := e.with(t)
			r := e.api(tc.method, tc.path, a.Key)
			is.Equal(r.status, http.StatusBadRequest) // bad input is a 400
			msg := r.errorMessage(t)
			is.True(strings.Contains(msg, tc.message)) // with a clear message
			is.True(len(msg) < 300)                    // that does not echo a huge input
		})
	}
	t.Run("valid cursor works", func(t *testing.T) {
		is := is.New(t)
		e := e.with(t)
		r := e.api(http.MethodGet, "/api/tasks?limit=1&cursor="+aCursor, a.Key)
		is.Equal(r.status, http.StatusOK)
	})
}

// TestRetryAndDeleteAnswers: how the outcomes of retry and delete are
// answered. Which statuses allow them is the use case's (app).
func TestRetryAndDeleteAnswers(t *testing.T) {
	t.Run("retry", func(t *testing.T) {
		is := is.New(t)
		e := newEnv(t) // taskIn needs a store where nothing else is due
		m := e.createMerchant("Rules Inc")
		failed := e.taskIn(m.ID, domain.StatusFailed)
		r := e.api(http.MethodPost, "/api/tasks/"+string(failed.ID)+"/retry", m.Key)
		is.Equal(r.status, http.StatusOK) // the task, back to pending
		var got taskOut
		r.decode(t, &got)
		is.Equal(got.ID, string(failed.ID))
		is.Equal(got.Status, "pending")
		runAt, err := time.Parse(time.RFC3339Nano, got.RunAt)
		is.NoErr(err)
		is.True(time.Since(runAt) < time.Minute && time.Until(runAt) < time.Second) // due now

		r = e.api(http.MethodPost, "/api/tasks/"+string(failed.ID)+"/retry", m.Key)
		is.Equal(r.status, http.StatusConflict) // pending now: a conflict
		is.Equal(r.errorMessage(t), "task "+string(failed.ID)+": only a failed or cancelled task can be retried, and only while its invoice has no other retry pending")
	})
	t.Run("delete", func(t *testing.T) {
		is := is.New(t)
		e := newEnv(t)
		m := e.createMerchant("Rules Inc")
		running := e.taskIn(m.ID, domain.StatusRunning)
		r := e.api(http.MethodDelete, "/api/tasks/"+string(running.ID), m.Key)
		is.Equal(r.status, http.StatusConflict) // a running task: a conflict
		is.Equal(r.errorMessage(t), "task "+string(running.ID)+": a running task cannot be deleted")

		cancelled := e.taskIn(m.ID, domain.StatusCancelled)
		r = e.api(http.MethodDelete, "/api/tasks/"+string(cancelled.ID), m.Key)
		is.Equal(r.status, http.StatusNoContent)
		is.Equal(len(r.body), 0) // 204 has no body
		r = e.api(http.MethodGet, "/api/tasks/"+string(cancelled.ID), m.Key)
		is.Equal(r.status, http.StatusNotFound) // gone
		is.Equal(r.errorMessage(t), "task "+string(cancelled.ID)+" not found")
	})
}

type statsOut struct {
	ByCurrency map[string]struct {
		FailedAmount    int64   `json:"failed_amount"`
		RecoveredAmount int64   `json:"recovered_amount"`
		RecoveryRate    float64 `json:"recovery_rate"`
	} `json:"by_currency"`
	TasksByStatus map[string]int `json:"tasks_by_status"`
}

// TestStatsJSON: the stats answer lists every status, zeros included, and
// each currency's amounts and rate, for the caller. What the figures are is
// the use case's (app).
func TestStatsJSON(t *testing.T) {
	is := is.New(t)
	e := newEnv(t)
	a, b := e.createMerchant("A"), e.createMerchant("B")
	invoice := stripetest.NewID("in_")
	is.True(e.mustDeliver(paymentFailed(stripetest.NewID("evt_"), a.Account, invoice)).Processed)
	is.True(e.mustDeliver(paymentFailed(stripetest.NewID("evt_"), a.Account, stripetest.NewID("in_"))).Processed)
	is.True(e.mustDeliver(invoiceEvent(domain.EventInvoicePaid, a.Account, invoice, "")).Processed)

	r := e.api(http.MethodGet, "/api/stats", a.Key)
	is.Equal(r.status, http.StatusOK)
	var s statsOut
	r.decode(t, &s)
	is.Equal(s.ByCurrency["usd"].FailedAmount, int64(4000))
	is.Equal(s.ByCurrency["usd"].RecoveredAmount, int64(2000))
	is.Equal(s.ByCurrency["usd"].RecoveryRate, 0.5)
	is.Equal(s.TasksByStatus, map[string]int{"pending": tasksPerFailure, "running": 0, "succeeded": 0, "failed": 0, "cancelled": tasksPerFailure}) // every status, zeros included

	r = e.api(http.MethodGet, "/api/stats", b.Key)
	is.Equal(r.status, http.StatusOK)
	is.True(strings.HasPrefix(string(r.body), `{"by_currency":{},"tasks_by_status":{"cancelled":0,"failed":0,"pending":0,"running":0,"succeeded":0},`)) // the caller's own, empty
}

func TestTaskJSONShape(t *testing.T) {
	is := is.New(t)
	e := newEnv(t)
	m := e.createMerchant("Shape")
	ans := e.mustDeliver(paymentFailed(stripetest.NewID("evt_"), m.Account, "in_shape"))
	is.Equal(len(ans.Tasks), tasksPerFailure)
	r := e.api(http.MethodGet, "/api/tasks", m.Key)
	is.Equal(r.status, http.StatusOK)
	var l struct {
		Tasks      []map[string]any `json:"tasks"`
		NextCursor any              `json:"next_cursor"`
	}
	r.decode(t, &l)
	is.Equal(l.NextCursor, nil) // null on the last page
	is.Equal(len(l.Tasks), tasksPerFailure)
	fields := []string{"id", "merchant_id", "type", "status", "stripe_event_id", "stripe_customer_id",
		"stripe_invoice_id", "stripe_subscription_id", "stripe_charge_id", "stripe_payment_method_id",
		"customer_email", "amount_due", "currency", "hosted_invoice_url", "attempts", "run_at", "last_error",
		"decline_code", "reason", "created_at", "updated_at"}
	for _, task := range l.Tasks {
		is.Equal(len(task), len(fields)) // exactly the documented fields
		for _, f := range fields {
			_, ok := task[f]
			is.True(ok) // every field present
		}
		for _, f := range []string{"run_at", "created_at", "updated_at"} {
			s := task[f].(string)
			ts, err := time.Parse(time.RFC3339Nano, s)
			is.NoErr(err)                      // RFC 3339
			is.True(strings.HasSuffix(s, "Z")) // in UTC
			is.True(!ts.IsZero())
		}
		is.Equal(task["stripe_invoice_id"], "in_shape")
		is.Equal(task["customer_email"], "jenny@example.com")
		is.Equal(task["amount_due"], float64(2000))
	}

	empty := e.createMerchant("Empty")
	r = e.api(http.MethodGet, "/api/tasks", empty.Key)
	is.Equal(strings.TrimSpace(string(r.body)), `{"tasks":[],"next_cursor":null}`) // an empty list, not null
}

// TestKeyManagement: the admin key endpoints' answers, and a revoked key
// refused by the task API. Which keys work after what is the use case's
// (app).
func TestKeyManagement(t *testing.T) {
	is := is.New(t)
	e := newEnv(t)
	m, other := e.createMerchant("Keys"), e.createMerchant("Bystander")
	second := e.issueKey(m.ID)
	is.True(strings.HasPrefix(second.Key, second.Prefix+"_")) // the prefix names the key
	is.True(second.Prefix != m.Prefix)
	is.Equal(e.api(http.MethodGet, "/api/tasks", second.Key).status, http.StatusOK) // the new key works

	admin := []string{"Authorization", "Bearer " + adminToken}
	r := e.do(http.MethodDelete, "/admin/merchants/"+string(m.ID)+"/api-keys/"+m.Prefix, nil, admin...)
	is.Equal(r.status, http.StatusNoContent) // revoked
	is.Equal(len(r.body), 0)
	r = e.api(http.MethodGet, "/api/tasks", m.Key)
	is.Equal(r.status, http.StatusUnauthorized) // the revoked key no longer works
	is.Equal(r.header.Get("WWW-Authenticate"), "Bearer")

	r = e.do(http.MethodDelete, "/admin/merchants/"+string(m.ID)+"/api-keys/"+m.Prefix, nil, admin...)
	is.Equal(r.status, http.StatusNotFound) // revoking twice: no such key
	is.Equal(r.errorMessage(t), "merchant "+string(m.ID)+" has no api key "+m.Prefix)
	r = e.do(http.MethodDelete, "/admin/merchants/"+string(m.ID)+"/api-keys/"+other.Prefix, nil, admin...)
	is.Equal(r.status, http.StatusNotFound) // another merchant's key, through m
	unknown := domain.NewID()
	r = e.do(http.MethodPost, "/admin/merchants/"+unknown+"/api-keys", nil, admin...)
	is.Equal(r.status, http.StatusNotFound) // unknown merchant
	is.Equal(r.errorMessage(t), "merchant "+unknown+" not found")
	r = e.do(http.MethodPost, "/admin/merchants/not-an-id/api-keys", nil, admin...)
	is.Equal(r.status, http.StatusBadRequest) // bad id
	r = e.do(http.MethodDelete, "/admin/merchants/"+string(m.ID)+"/api-keys/nonsense", nil, admin...)
	is.Equal(r.status, http.StatusBadRequest) // not a key prefix
}
