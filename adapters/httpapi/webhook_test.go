package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/stripetest"
	"github.com/recoupdev/recoup/ports"
)

// deliverAll posts payload n times at once (released together) and returns
// the answers, or the first transport error.
func deliverAll(e *env, payloads [][]byte) ([]response, error) {
	start := make(chan struct{})
	out := make([]response, len(payloads))
	errs := make([]error, len(payloads))
	var wg sync.WaitGroup
	for i, p := range payloads {
		wg.Go(func() {
			<-start
			out[i], errs[i] = e.deliver(p)
		})
	}
	close(start)
	wg.Wait()
	return out, errors.Join(errs...)
}

// TestWebhookParallelDuplicatesProcessOnce is the end-to-end smoke test of
// the idempotency lock over real HTTP: parallel copies of one delivery are
// all acknowledged, one processes the event and the others answer as
// duplicates. The use case's own tests (app) cover the lock in depth.
func TestWebhookParallelDuplicatesProcessOnce(t *testing.T) {
	is := is.New(t)
	e := newEnv(t)
	m := e.createMerchant("Acme")
	evt := stripetest.NewID("evt_")
	payload := paymentFailed(evt, m.Account, stripetest.NewID("in_"))

	answers, err := deliverAll(e, [][]byte{payload, payload, payload, payload, payload})
	is.NoErr(err)

	var tasks []string
	processed := 0
	for _, r := range answers {
		is.Equal(r.status, http.StatusOK) // every delivery is acknowledged
		var a webhookAnswer
		r.decode(t, &a)
		if a.Processed {
			processed++
			tasks = a.Tasks
			is.Equal(a.Action, domain.ActionScheduled) // the first delivery schedules
			continue
		}
		is.Equal(a.Action, domain.ActionIgnored)                          // a duplicate is ignored
		is.True(strings.Contains(a.Reason, "handled by parallel worker")) // the duplicate says why
		is.True(strings.Contains(a.Reason, evt))                          // and names the event
		is.Equal(a.Tasks, nil)                                            // and lists no tasks
	}
	is.Equal(processed, 1)                // exactly one delivery processed the event
	is.Equal(len(tasks), tasksPerFailure) // one failure's plan
	stored := e.tasksOf(m.ID)
	is.Equal(len(stored), tasksPerFailure) // exactly one set of tasks
	for _, st := range stored {
		is.True(slices.Contains(tasks, string(st.ID))) // the answer named the stored tasks
	}
}

// failingStore makes Schedule fail inside units of work while fail is set:
// a failure after the event lock was taken.
type failingStore struct {
	ports.Storage
	fail atomic.Bool
}

var errDiskOnFire = errors.New("disk on fire at /var/lib/secret-path")

func (s *failingStore) InTx(ctx context.Context, fn func(context.Context, ports.Tx) error) error {
	return s.Storage.InTx(ctx, func(ctx context.Context, tx ports.Tx) error {
		return fn(ctx, failingTx{Tx: tx, s: s})
	})
}

type failingTx struct {
	ports.Tx
	s *failingStore
}

func (t failingTx) Tasks() ports.TenantTaskRepository {
	return failingTasks{TenantTaskRepository: t.Tx.Tasks(), s: t.s}
}

type failingTasks struct {
	ports.TenantTaskRepository
	s *failingStore
}

func (r failingTasks) Schedule(ctx context.Context, m domain.MerchantID, tasks []domain.Task) ([]domain.Task, error) {
	if r.s.fail.Load() {
		return nil, errDiskOnFire
	}
	return r.TenantTaskRepository.Schedule(ctx, m, tasks)
}

// TestWebhookFailureAnswers500: a use case that fails after the lock is
// answered 500 with a generic message, so that Stripe redelivers and the
// cause stays in the log. That nothing is kept and the redelivery succeeds
// is the use case's (app).
func TestWebhookFailureAnswers500(t *testing.T) {
	is := is.New(t)
	var fs *failingStore
	e := newEnv(t, withStore(func(s ports.Storage) ports.Storage {
		fs = &failingStore{Storage: s}
		return fs
	}))
	m := e.createMerchant("Fragile Ltd")
	payload := paymentFailed(stripetest.NewID("evt_"), m.Account, stripetest.NewID("in_"))

	fs.fail.Store(true)
	r, err := e.deliver(payload)
	is.NoErr(err)
	is.Equal(r.status, http.StatusInternalServerError)         // a failed dispatch is a 500
	is.True(!strings.Contains(string(r.body), "disk on fire")) // internal text is not sent
	is.Equal(r.errorMessage(t), "Internal server error")       // a generic message instead

	fs.fail.Store(false)
	is.True(e.mustDeliver(payload).Processed) // and the redelivery is answered as processed
}

func TestWebhookBadInputStoresNothing(t *testing.T) {
	e := newEnv(t)
	m := e.createMerchant("Careful Co")
	// Each delivery is signed as it is built, so that slow runs do not
	// drift towards the tolerance's edge; the edges themselves are the
	// stripe adapter's tests, on a fixed clock.
	sign := func(p []byte, secret string, at time.Time) string { return stripetest.Sign(p, secret, at) }
	mk := func(id string) []byte { return paymentFailed(id, m.Account, stripetest.NewID("in_")) }

	huge := func(id string) []byte {
		p := mk(id)
		pad := strings.Repeat("x", 256<<10)
		return append(p[:len(p)-1], []byte(`,"padding":"`+pad+`"}`)...)
	}

	type delivery struct {
		payload   []byte
		signature string
		chunked   bool // hide the length, so only the reader's limit catches it
	}
	cases := []struct {
		name      string
		build     func(id string) delivery
		status    int
		processed bool   // for 200s
		message   string // part of the error or reason
	}{
		{"no signature", func(id string) delivery { return delivery{payload: mk(id)} }, 400, false, "missing Stripe-Signature"},
		{"wrong secret", func(id string) delivery {
			p := mk(id)
			return delivery{payload: p, signature: sign(p, "whsec_wrong", time.Now())}
		}, 400, false, "no valid signature"},
		{"timestamp too old", func(id string) delivery {
			p := mk(id)
			return delivery{payload: p, signature: sign(p, testSecret, time.Now().Add(-310*time.Second))}
		}, 400, false, "tolerance"},
		{"timestamp too far ahead", func(id string) delivery {
			p := mk(id)
			return delivery{payload: p, signature: sign(p, testSecret, time.Now().Add(310*time.Second))}
		}, 400, false, "tolerance"},
		{"body changed after signing", func(id string) delivery {
			p := mk(id)
			s := sign(p, testSecret, time.Now())
			changed := bytes.Replace(p, []byte(`"amount_due": 2000`), []byte(`"amount_due": 1`), 1)
			if bytes.Equal(changed, p) {
				t.Fatal("the payload has no amount_due of 2000 to change")
			}
			return delivery{payload: changed, signature: s}
		}, 400, false, "no valid signature"},
		{"signed, not JSON", func(id string) delivery {
			p := []byte("event " + id + " is not JSON")
			return delivery{payload: p, signature: sign(p, testSecret, time.Now())}
		}, 400, false, "not a Stripe event"},
		{"malformed signature header", func(id string) delivery {
			return delivery{payload: mk(id), signature: "garbage"}
		}, 400, false, ""},
		{"body over 256 KiB", func(id string) delivery {
			p := huge(id)
			return delivery{payload: p, signature: sign(p, testSecret, time.Now())}
		}, 413, false, "larger than 256 KiB"},
		{"body over 256 KiB, no length", func(id string) delivery {
			p := huge(id)
			return delivery{payload: p, signature: sign(p, testSecret, time.Now()), chunked: true}
		}, 413, false, "larger than 256 KiB"},
		{"unknown account", func(id string) delivery {
			p := paymentFailed(id, "acct_nobodyhere", stripetest.NewID("in_"))
			return delivery{payload: p, signature: sign(p, testSecret, time.Now())}
		}, 200, false, "No merchant for account acct_nobodyhere"},
		// Kept here: the stripe adapter's tests do not show what a handled
		// event without an account decodes to.
		{"no account", func(id string) delivery {
			p := stripetest.Event{ID: id, Type: domain.EventInvoicePaymentFailed, Object: stripetest.Invoice{AttemptCount: 1}}.JSON()
			return delivery{payload: p, signature: sign(p, testSecret, time.Now())}
		}, 200, false, "no connected account"},
	}
	var ids []string
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			id := stripetest.NewID("evt_")
			ids = append(ids, id)
			d := tc.build(id)
			var body io.Reader = bytes.NewReader(d.payload)
			if d.chunked {
				body = io.MultiReader(body) // no Len: sent chunked
			}
			headers := []string{"Content-Type", contentJSON}
			if d.signature != "" {
				headers = append(headers, "Stripe-Signature", d.signature)
			}
			r := e.do(http.MethodPost, "/webhooks/stripe", body, headers...)
			is.Equal(r.status, tc.status) // the status of the contract
			if tc.status == http.StatusOK {
				var a webhookAnswer
				r.decode(t, &a)
				is.Equal(a.Processed, tc.processed)
				is.Equal(a.Action, domain.ActionIgnored)
				is.True(strings.Contains(a.Reason, tc.message)) // the reason says why
				is.Equal(a.Tasks, nil)
				return
			}
			msg := r.errorMessage(t)
			is.True(msg != "")                                     // an error body
			is.True(strings.Contains(msg, tc.message))             // that says what is wrong
			is.True(!strings.Contains(string(r.body), testSecret)) // and holds no secret
		})
	}

	t.Run("admin without or with a wrong token", func(t *testing.T) {
		is := is.New(t)
		account := stripetest.NewID("acct_")
		body := `{"name":"Mallory","stripe_account_id":"` + account + `"}`
		for _, auth := range []string{"", "Bearer wrong-token", "Bearer " + adminToken + "x", "Basic " + adminToken, adminToken} {
			var headers []string
			if auth != "" {
				headers = []string{"Authorization", auth}
			}
			r := e.do(http.MethodPost, "/admin/merchants", strings.NewReader(body), headers...)
			is.Equal(r.status, http.StatusUnauthorized)          // refused
			is.Equal(r.header.Get("WWW-Authenticate"), "Bearer") // with a challenge
		}
		_, err := e.mem.Merchants().MerchantByStripeAccount(context.Background(), account)
		is.True(errors.Is(err, domain.ErrNotFound)) // no merchant was created
	})

	is := is.New(t)
	is.Equal(len(e.tasksOf(m.ID)), 0) // no bad delivery stored a task
	for _, id := range ids {
		is.True(e.eventLockFree(id)) // nor took an event lock
	}
	warnings := 0
	for _, rec := range e.logs.lines(t) {
		if rec["msg"] == "webhook rejected" {
			warnings++
			is.Equal(rec["level"], "WARN")
			is.True(!strings.Contains(fmt.Sprint(rec), testSecret)) // no secret in the log
		}
	}
	is.Equal(warnings, 9) // every refused delivery is logged once
}

func TestWebhookSecretRotation(t *testing.T) {
	is := is.New(t)
	e := newEnv(t, withSecrets("whsec_old_secret", "whsec_new_secret"))
	m := e.createMerchant("Rotating LLC")
	for _, secret := range []string{"whsec_old_secret", "whsec_new_secret"} {
		p := paymentFailed(stripetest.NewID("evt_"), m.Account, stripetest.NewID("in_"))
		r, err := e.deliverSigned(p, stripetest.Sign(p, secret, time.Now()))
		is.NoErr(err)
		is.Equal(r.status, http.StatusOK) // either secret is accepted
		var a webhookAnswer
		r.decode(t, &a)
		is.True(a.Processed)
	}
	p := paymentFailed(stripetest.NewID("evt_"), m.Account, stripetest.NewID("in_"))
	r, err := e.deliverSigned(p, stripetest.Sign(p, "whsec_retired", time.Now()))
	is.NoErr(err)
	is.Equal(r.status, http.StatusBadRequest) // a secret not configured is not
	is.Equal(len(e.tasksOf(m.ID)), 2*tasksPerFailure)
}

func TestWebhookUnhandledType(t *testing.T) {
	is := is.New(t)
	e := newEnv(t)
	m := e.createMerchant("Quiet Co")
	p := stripetest.Event{Type: "customer.created", Account: m.Account, Object: map[string]any{"id": "cus_new", "object": "customer"}}.JSON()
	r, err := e.deliver(p)
	is.NoErr(err)
	is.Equal(r.status, http.StatusOK)
	var a map[string]any
	r.decode(t, &a)
	is.Equal(a["processed"], true)
	is.Equal(a["action"], "ignored")
	is.Equal(a["reason"], "Event type customer.created not handled")
	_, hasTasks := a["tasks"]
	is.True(!hasTasks) // an ignored event lists no tasks
}

func TestWebhookAnswerShape(t *testing.T) {
	is := is.New(t)
	e := newEnv(t)
	m := e.createMerchant("Shape Inc")
	invoice := stripetest.NewID("in_")
	r, err := e.deliver(paymentFailed(stripetest.NewID("evt_"), m.Account, invoice))
	is.NoErr(err)
	is.Equal(r.status, http.StatusOK)
	is.Equal(r.header.Get("Content-Type"), "application/json; charset=utf-8")
	var a map[string]any
	r.decode(t, &a)
	is.Equal(len(a), 3) // processed, action, tasks; no empty reason
	is.Equal(a["processed"], true)
	is.Equal(a["action"], domain.ActionScheduled)
	is.Equal(len(a["tasks"].([]any)), tasksPerFailure)

	first := a["tasks"].([]any)

	// The same failure under another event id is processed and re-plans
	// the invoice: its one pending retry is rescheduled, under the same
	// id, and the emails are not repeated.
	r, err = e.deliver(paymentFailed(stripetest.NewID("evt_"), m.Account, invoice))
	is.NoErr(err)
	is.Equal(r.status, http.StatusOK)
	clear(a)
	r.decode(t, &a)
	is.Equal(a["action"], domain.ActionScheduled)
	again := a["tasks"].([]any)
	is.Equal(len(again), 1)                   // the retry alone
	is.True(slices.Contains(first, again[0])) // the same task

	r = e.do(http.MethodGet, "/webhooks/stripe", nil)
	is.Equal(r.status, http.StatusMethodNotAllowed) // only POST
	is.Equal(r.header.Get("Allow"), http.MethodPost)
}

// unavailableStore fails the merchant lookup as an unreachable database.
type unavailableStore struct{ ports.Storage }

func (s unavailableStore) Merchants() ports.MerchantDirectory {
	return unavailableDirectory{s.Storage.Merchants()}
}

type unavailableDirectory struct{ ports.MerchantDirectory }

func (unavailableDirectory) MerchantByStripeAccount(context.Context, string) (domain.Merchant, error) {
	return domain.Merchant{}, fmt.Errorf("dial tcp 10.0.0.7:5432: %w", domain.ErrUnavailable)
}

func TestWebhookStorageUnavailable(t *testing.T) {
	is := is.New(t)
	e := newEnv(t, withStore(func(s ports.Storage) ports.Storage { return unavailableStore{s} }))
	r, err := e.deliver(paymentFailed(stripetest.NewID("evt_"), "acct_any", stripetest.NewID("in_")))
	is.NoErr(err)
	is.Equal(r.status, http.StatusServiceUnavailable)      // Stripe will redeliver
	is.True(!strings.Contains(string(r.body), "10.0.0.7")) // no internals in the answer
}

// TestWebhookBodiesInTurn sends deliveries of very different sizes, with
// and without a length, one after the other, so that body buffers are
// reused across them: each must be read and decoded as itself.
func TestWebhookBodiesInTurn(t *testing.T) {
	e := newEnv(t)
	m := e.createMerchant("Busy Co")
	padded := func(p []byte, n int) []byte {
		// One more member in the object's metadata: still a valid event.
		i := bytes.Index(p, []byte(`"metadata": {}`))
		if i < 0 {
			t.Fatal("the event has no empty metadata to pad")
		}
		pad := []byte(`"metadata": {"pad": "` + strings.Repeat("p", n) + `"}`)
		return slices.Concat(p[:i], pad, p[i+len(`"metadata": {}`):])
	}
	for _, d := range []struct {
		pad     int
		chunked bool
	}{{100 << 10, false}, {0, false}, {40 << 10, true}, {0, true}, {100 << 10, true}, {0, false}, {0, false}} {
		is := is.New(t)
		invoice := stripetest.NewID("in_")
		p := padded(paymentFailed(stripetest.NewID("evt_"), m.Account, invoice), d.pad)
		var body io.Reader = bytes.NewReader(p)
		if d.chunked {
			body = io.MultiReader(body) // no Len: sent chunked
		}
		r := e.do(http.MethodPost, "/webhooks/stripe", body, "Content-Type", contentJSON, "Stripe-Signature", stripetest.Sign(p, testSecret, time.Now()))
		is.Equal(r.status, http.StatusOK)
		var a webhookAnswer
		r.decode(t, &a)
		is.True(a.Processed)
		is.Equal(len(a.Tasks), tasksPerFailure)
		n := 0
		for _, task := range e.tasksOf(m.ID) {
			if task.StripeInvoiceID == invoice {
				n++
			}
		}
		is.Equal(n, tasksPerFailure) // the delivery's tasks are for its own invoice
	}
}

// TestWebhookHopelessHeaderAnsweredBeforeBody: a delivery whose
// Stripe-Signature can never be accepted is answered 400 while its body is
// still unsent, so a stranger cannot hold a connection open by announcing
// a body and sending it slowly. The connection is then closed.
func TestWebhookHopelessHeaderAnsweredBeforeBody(t *testing.T) {
	e := newEnv(t)
	m := e.createMerchant("Patient Co")
	p := paymentFailed(stripetest.NewID("evt_"), m.Account, stripetest.NewID("in_"))
	for name, header := range map[string]string{
		"missing":   "",
		"malformed": "garbage",
		"two t":     "t=" + fmt.Sprint(time.Now().Unix()) + "," + stripetest.Sign(p, testSecret, time.Now().Add(-time.Hour)),
		"too old":   stripetest.Sign(p, testSecret, time.Now().Add(-time.Hour)),
		"too new":   stripetest.Sign(p, testSecret, time.Now().Add(time.Hour)),
	} {
		t.Run(name, func(t *testing.T) {
			is := is.New(t)
			conn, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
			is.NoErr(err)
			defer conn.Close()
			req := "POST /webhooks/stripe HTTP/1.1\r\nHost: recoup\r\nContent-Type: application/json\r\n" +
				fmt.Sprintf("Content-Length: %d\r\n", len(p))
			if header != "" {
				req += "Stripe-Signature: " + header + "\r\n"
			}
			_, err = io.WriteString(conn, req+"\r\n") // the headers, and not a byte of the body
			is.NoErr(err)
			// A server that waited for the body would never answer; the
			// deadline only ends the test in that case.
			is.NoErr(conn.SetReadDeadline(time.Now().Add(10 * time.Second)))
			res, err := http.ReadResponse(bufio.NewReader(conn), nil)
			is.NoErr(err) // answered without the body
			defer res.Body.Close()
			is.Equal(res.StatusCode, http.StatusBadRequest)
			is.True(res.Close) // and the connection closed
		})
	}
	is := is.New(t)
	is.Equal(len(e.tasksOf(m.ID)), 0) // and nothing was stored
}
