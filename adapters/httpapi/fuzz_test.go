package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/recoupdev/recoup/adapters/httpapi"
	"github.com/recoupdev/recoup/adapters/memory"
	"github.com/recoupdev/recoup/adapters/stripe"
	"github.com/recoupdev/recoup/app"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/stripetest"
	"github.com/recoupdev/recoup/ports"
)

// The fuzz targets drive the whole server in process (a recorder, no
// sockets) with fixed ids, keys and clock, so that the seeds committed in
// testdata/fuzz (a real signed event, a real cursor, real task ids) stay
// valid on every run.
const (
	fzSecret     = "whsec_fuzz_http_0123456789"
	fzAccount    = "acct_fuzzhttp"
	fzMerchant   = domain.MerchantID("3c1f6a0e-8b2d-4e7f-9a15-2d4c6e8f0a1b")
	fzOther      = domain.MerchantID("9e8d7c6b-5a49-4382-b716-0f1e2d3c4b5a")
	fzKey        = "rk_fuzzkey1_fuzzsecret0123456789abcdef"
	fzOtherKey   = "rk_fuzzkey2_fuzzsecret9876543210fedcba"
	fzOwnTask    = "11111111-2222-4333-8444-555555555555"
	fzOtherTask  = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
	fzTasksOwned = 5
)

var (
	fzNow       = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	fzCursorKey = []byte("fuzz-cursor-key-0123456789abcdef")
)

type fzClock struct{}

func (fzClock) Now() time.Time { return fzNow }

// fzServer is recoup's whole HTTP API on a memory store holding two
// merchants, the first with fzTasksOwned tasks (fzOwnTask the oldest), the
// other with two, fzOtherTask the oldest.
func fzServer(tb testing.TB) http.Handler {
	tb.Helper()
	ctx := context.Background()
	store := memory.New(fzClock{})
	for _, m := range []struct {
		id      domain.MerchantID
		account string
		key     string
	}{{fzMerchant, fzAccount, fzKey}, {fzOther, "acct_fuzzother", fzOtherKey}} {
		prefix, err := domain.ParseAPIKey(m.key)
		if err != nil {
			tb.Fatalf("key %s: %v", m.key, err)
		}
		err = store.Merchants().CreateMerchant(ctx,
			domain.Merchant{ID: m.id, Name: "Fuzz " + m.account, StripeAccountID: m.account, CreatedAt: fzNow},
			domain.APIKey{MerchantID: m.id, Prefix: prefix, Hash: domain.HashAPIKey(m.key), CreatedAt: fzNow})
		if err != nil {
			tb.Fatalf("create merchant: %v", err)
		}
	}
	task := func(id string, m domain.MerchantID, n int) domain.Task {
		at := fzNow.Add(time.Duration(n) * time.Minute)
		return domain.Task{
			ID: domain.TaskID(id), MerchantID: m, Type: domain.TypeNotifyChargeFailed, Status: domain.StatusPending,
			StripeEventID: "evt_fuzz_" + id[:8], StripeCustomerID: "cus_fuzz", StripeChargeID: "ch_fuzz_" + id[:8],
			CustomerEmail: "jenny@example.com", AmountDue: 1500, Currency: "eur",
			RunAt: at.Add(time.Hour), CreatedAt: at, UpdatedAt: at,
		}
	}
	owned := []domain.Task{task(fzOwnTask, fzMerchant, 0)}
	for i := 1; i < fzTasksOwned; i++ {
		owned = append(owned, task(strings.Replace(fzOwnTask, "1111111", "000000"+string(rune('0'+i)), 1), fzMerchant, i))
	}
	others := []domain.Task{task(fzOtherTask, fzOther, 0), task(strings.Replace(fzOtherTask, "aaaaaaa", "0000000", 1), fzOther, 1)}
	for m, tasks := range map[domain.MerchantID][]domain.Task{fzMerchant: owned, fzOther: others} {
		if _, err := store.Tasks().Schedule(ctx, m, tasks); err != nil {
			tb.Fatalf("schedule: %v", err)
		}
	}
	verifier, err := stripe.NewVerifier([]string{fzSecret}, stripe.WithClock(fzClock{}))
	if err != nil {
		tb.Fatalf("verifier: %v", err)
	}
	var clock ports.Clock = fzClock{}
	return httpapi.NewServer(httpapi.Config{
		Verifier:   verifier,
		Webhooks:   app.NewWebhookService(store, app.WebhookConfig{Clock: clock}),
		Tasks:      app.NewTaskService(store.Tasks(), store.Ledger(), clock),
		Merchants:  app.NewMerchantService(store.Merchants(), clock),
		Policies:   app.NewPolicyService(store.Policies()),
		AdminToken: "fuzz-admin-token",
		CursorKey:  fzCursorKey,
		Ready:      store.Ping,
	})
}

// fzServe runs one request through h and checks what every answer of the
// API must be: below 500, and JSON with an "error" when it is an error.
func fzServe(t *testing.T, h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	r.RemoteAddr = "192.0.2.1:1234"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code >= 500 {
		t.Fatalf("%s %s: status %d, body %s", r.Method, r.URL, w.Code, w.Body)
	}
	if w.Code >= 400 {
		var e struct {
			Error *string `json:"error"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == nil || *e.Error == "" {
			t.Fatalf("%s %s: status %d without a JSON error: %s", r.Method, r.URL, w.Code, w.Body)
		}
	}
	return w
}

// fzWebhookSeeds are deliveries for the fuzz merchant: every handled type,
// an unknown one, and bodies that are not events. The events are minimal
// (stripetest's MinimalJSON): complete ones give the fuzzer so much new
// coverage to minimize that it hardly gets to mutate.
func fzWebhookSeeds() [][]byte {
	ev := func(id, typ string, obj any) []byte {
		return stripetest.Event{ID: id, Type: typ, Account: fzAccount, Created: fzNow, Object: obj}.MinimalJSON()
	}
	inv := stripetest.Invoice{ID: "in_fuzzhttp", Customer: "cus_fuzz", CustomerEmail: "jenny@example.com", AmountDue: 2000, AttemptCount: 1, Subscription: "sub_fuzz"}
	return [][]byte{
		ev("evt_fuzzhttp_failed", domain.EventInvoicePaymentFailed, inv),
		ev("evt_fuzzhttp_action", domain.EventInvoicePaymentActionRequired, inv),
		ev("evt_fuzzhttp_paid", domain.EventInvoicePaid, inv),
		ev("evt_fuzzhttp_charge", domain.EventChargeFailed, stripetest.Charge{ID: "ch_fuzzhttp", Customer: "cus_fuzz", Amount: 900}),
		ev("evt_fuzzhttp_sub", domain.EventCustomerSubscriptionDeleted, stripetest.Subscription{ID: "sub_fuzz", Customer: "cus_fuzz"}),
		ev("evt_fuzzhttp_other", "customer.created", map[string]any{"object": "customer", "id": "cus_fuzz"}),
		stripetest.Event{ID: "evt_fuzzhttp_stranger", Type: domain.EventInvoicePaymentFailed, Account: "acct_nobody", Created: fzNow, Object: inv}.MinimalJSON(),
		stripetest.Event{ID: "evt_fuzzhttp_platform", Type: domain.EventInvoicePaymentFailed, Created: fzNow, Object: inv}.MinimalJSON(),
		stripetest.Event{ID: "evt_fuzzhttp_live", Type: domain.EventInvoicePaymentFailed, Account: fzAccount, Livemode: true, Created: fzNow, Object: inv}.MinimalJSON(),
		[]byte(`{"id":"evt_fuzzhttp_nodata","object":"event","type":"invoice.paid","account":"` + fzAccount + `"}`),
		[]byte(`not json`),
		{},
	}
}

// FuzzWebhookHandler posts arbitrary bodies and Stripe-Signature headers
// to the webhook; when sign is set the target signs the body itself, so
// that mutations get past the signature to the decoder, the policy and the
// storage. No delivery may answer 5xx or panic.
func FuzzWebhookHandler(f *testing.F) {
	for _, p := range fzWebhookSeeds() {
		f.Add(p, "", true)
		f.Add(p, stripetest.Sign(p, fzSecret, fzNow), false)
	}
	good := fzWebhookSeeds()[0]
	for _, h := range []string{"", "garbage", "t=1,v1=00", "t=" + "1767323045" + ",v1=" + strings.Repeat("a", 64), stripetest.Sign(good, "whsec_wrong", fzNow)} {
		f.Add(good, h, false)
	}
	h := fzServer(f)
	f.Fuzz(func(t *testing.T, payload []byte, header string, sign bool) {
		if sign {
			header = stripetest.Sign(payload, fzSecret, fzNow)
		}
		r := httptest.NewRequest(http.MethodPost, "/webhooks/stripe", bytes.NewReader(payload))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Stripe-Signature", header)
		w := fzServe(t, h, r)
		switch w.Code {
		case http.StatusOK:
			var a struct {
				Processed *bool   `json:"processed"`
				Action    *string `json:"action"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil || a.Processed == nil || a.Action == nil {
				t.Fatalf("200 without processed and action: %s", w.Body)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("webhook answered %d: %s", w.Code, w.Body)
		}
	})
}

// fzListURL is GET /api/tasks with the given query parameters (empty ones
// left out).
func fzListURL(cursor, status, limit string) string {
	q := url.Values{}
	for k, v := range map[string]string{"cursor": cursor, "status": status, "limit": limit} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return "/api/tasks?" + q.Encode()
}

// fzCursor returns the real next_cursor of the first page of limit tasks.
func fzCursor(tb testing.TB, h http.Handler, key string, limit int) string {
	tb.Helper()
	r := httptest.NewRequest(http.MethodGet, fzListURL("", "", string(rune('0'+limit))), nil)
	r.Header.Set("Authorization", "Bearer "+key)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var page struct {
		NextCursor *string `json:"next_cursor"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &page); err != nil || w.Code != http.StatusOK || page.NextCursor == nil {
		tb.Fatalf("first page: %d %s", w.Code, w.Body)
	}
	return *page.NextCursor
}

// FuzzTaskListCursor pages the task list with arbitrary cursors (and
// status and limit values), with a valid merchant key: the answer is 200
// with only the caller's tasks, or 400; never 5xx.
func FuzzTaskListCursor(f *testing.F) {
	h := fzServer(f)
	real := fzCursor(f, h, fzKey, 2)
	foreign := fzCursor(f, h, fzOtherKey, 1)
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	for _, c := range []string{
		real, real[:len(real)-1], real[:len(real)/2], real + "A", real + "=",
		flip(real, 0), flip(real, 5), flip(real, len(real)-1), strings.ToUpper(real),
		foreign, "", "null", "A", strings.Repeat("A", len(real)), strings.Repeat("_", len(real)),
		"%00", "\x00", strings.Repeat("A", 4096),
	} {
		f.Add(c, "", "")
	}
	f.Add(real, "pending", "1")
	f.Add(real, "all", "200")
	f.Add("", "bogus", "0")
	f.Add("", "", "201")
	f.Add("", "", "-1")
	f.Add("", "", "+5")
	f.Add("", "", "99999999999999999999")
	f.Fuzz(func(t *testing.T, cursor, status, limit string) {
		r := httptest.NewRequest(http.MethodGet, fzListURL(cursor, status, limit), nil)
		r.Header.Set("Authorization", "Bearer "+fzKey)
		w := fzServe(t, h, r)
		switch w.Code {
		case http.StatusOK:
			var page struct {
				Tasks []struct {
					MerchantID string `json:"merchant_id"`
				} `json:"tasks"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &page); err != nil {
				t.Fatalf("200 is not a task list: %s", w.Body)
			}
			for _, task := range page.Tasks {
				if task.MerchantID != string(fzMerchant) {
					t.Fatalf("cursor %q listed another merchant's task: %s", cursor, w.Body)
				}
			}
		case http.StatusBadRequest:
		default:
			t.Fatalf("cursor %q status %q limit %q: answered %d: %s", cursor, status, limit, w.Code, w.Body)
		}
	})
}

// FuzzTaskByID reads a task by an arbitrary path segment with a valid
// merchant key: 200 only for the caller's own task, 403 only for the other
// merchant's, 404 for any other UUID, 400 for anything that is not a UUID
// (or 404 when net/http does not route it to the task at all).
func FuzzTaskByID(f *testing.F) {
	for _, s := range []string{
		fzOwnTask, strings.ToUpper(fzOwnTask), fzOtherTask, "00000000-0000-0000-0000-000000000000",
		fzOwnTask[:35], fzOwnTask + "0", strings.ReplaceAll(fzOwnTask, "-", ""), "{" + fzOwnTask + "}",
		"not-a-task", "", ".", "..", "%2F", "a/b", " ", "\x00", strings.Repeat("9", 37), "1 OR 1=1",
	} {
		f.Add(s)
	}
	h := fzServer(f)
	f.Fuzz(func(t *testing.T, id string) {
		r := httptest.NewRequest(http.MethodGet, "/api/tasks/"+url.PathEscape(id), nil)
		r.Header.Set("Authorization", "Bearer "+fzKey)
		w := fzServe(t, h, r)
		_, parseErr := domain.ParseTaskID(id)
		want := []int{http.StatusBadRequest}
		switch {
		case strings.EqualFold(id, fzOwnTask):
			want = []int{http.StatusOK}
		case strings.EqualFold(id, fzOtherTask):
			want = []int{http.StatusForbidden}
		case parseErr == nil:
			want = []int{http.StatusNotFound}
		case id == "":
			want = []int{http.StatusNotFound} // /api/tasks/ is no route
		case id == "." || id == "..":
			// net/http cleans dot segments out of the path and redirects.
			want = []int{http.StatusMovedPermanently, http.StatusTemporaryRedirect, http.StatusPermanentRedirect}
		case strings.Contains(id, "/"):
			// An encoded slash: net/http's mux may not route the path to
			// {id} at all (found by the fuzzer: "/" alone is a 404).
			want = []int{http.StatusBadRequest, http.StatusNotFound}
		}
		for _, s := range want {
			if w.Code == s {
				return
			}
		}
		t.Fatalf("GET /api/tasks/%s: status %d, want one of %v: %s", url.PathEscape(id), w.Code, want, w.Body)
	})
}
