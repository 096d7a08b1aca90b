package recoup_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/matryer/is"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/recoupdev/recoup"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/clocktest"
	"github.com/recoupdev/recoup/internal/stripetest"
	"github.com/recoupdev/recoup/ports"
)

// Outbox returns the dying storage's outbox: once the worker is dead, it
// records no delivery attempt.
func (d *dyingStorage) Outbox() ports.Outbox { return dyingOutbox{d.Storage.Outbox(), d} }

type dyingOutbox struct {
	ports.Outbox
	d *dyingStorage
}

func (o dyingOutbox) FinishDelivery(ctx context.Context, id domain.DeliveryID, attempt int, res domain.DeliveryResult) error {
	if o.d.dead.Load() {
		return errDead
	}
	return o.Outbox.FinishDelivery(ctx, id, attempt, res)
}

// receiver is a merchant's webhook endpoint: it checks every message's
// signature with the Standard Webhooks library (not recoup's signer),
// refuses each message's first attempts, and counts, per webhook-id,
// the attempts and how many were in flight at once.
type receiver struct {
	t       *testing.T
	verify  *standardwebhooks.Webhook
	refuse  int          // attempts of each message answered 503 first
	onFirst func(string) // called on a message's first attempt, before it is answered

	mu       sync.Mutex
	attempts map[string]int
	inFlight map[string]int
	maxIn    int
	types    map[string]string // event type by webhook-id
	badSigs  int
}

func newReceiver(t *testing.T, refuse int) *receiver {
	return &receiver{t: t, refuse: refuse, attempts: map[string]int{}, inFlight: map[string]int{}, types: map[string]string{}}
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	id := r.Header.Get("webhook-id")
	rc.mu.Lock()
	// The timestamp is the test clock's, which runs ahead of the real one.
	if err := rc.verify.VerifyIgnoringTimestamp(body, r.Header); err != nil || id == "" {
		rc.badSigs++
		rc.mu.Unlock()
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	rc.attempts[id]++
	n := rc.attempts[id]
	rc.inFlight[id]++
	rc.maxIn = max(rc.maxIn, rc.inFlight[id])
	var msg struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(body, &msg)
	rc.types[id] = msg.Type
	onFirst := rc.onFirst
	rc.mu.Unlock()
	defer func() {
		rc.mu.Lock()
		rc.inFlight[id]--
		rc.mu.Unlock()
	}()
	time.Sleep(5 * time.Millisecond) // long enough for a second send of the message to overlap, if one were made
	if n == 1 && onFirst != nil {
		onFirst(id)
	}
	if n <= rc.refuse {
		http.Error(w, "try later", http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// TestOutboundWebhooksEndToEnd: the merchant's endpoint, a real HTTP
// server that verifies each signature on its own, refuses every message's
// first two attempts and then accepts. Two delivery workers run at once:
// every message is delivered, under one webhook-id on every attempt, never
// sent twice at the same moment. Then a worker dies after its send was
// answered and before it recorded it: once its lease expires the other
// sends the message again, under the same webhook-id, and records it
// delivered. On both adapters.
func TestOutboundWebhooksEndToEnd(t *testing.T) {
	for name, storage := range clockedStorages {
		t.Run(name, func(t *testing.T) {
			is := is.New(t)
			ctx := t.Context()
			start := time.Now().UTC().Truncate(time.Second)
			clock := clocktest.New(start)
			store := storage(t, clock)
			dying := &dyingStorage{Storage: store}
			opts := func(st ports.Storage) recoup.Options {
				return recoup.Options{Storage: st, Clock: clock, ReconcileInterval: -1, AllowPrivateEndpoints: true}
			}
			first, second := newService(t, opts(dying)), newService(t, opts(store))

			account := stripetest.NewID("acct_")
			m, _, err := second.Merchants().Create(ctx, "Shop", account)
			is.NoErr(err)
			rc := newReceiver(t, 2)
			srv := httptest.NewServer(rc)
			t.Cleanup(srv.Close)
			ep, err := second.Endpoints().Create(ctx, m, srv.URL+"/hooks/recoup", []string{"*"})
			is.NoErr(err)
			rc.verify, err = standardwebhooks.NewWebhook(ep.EncodedSecret())
			is.NoErr(err)

			// Five invoices fail, then are paid: five invoice.recovered.
			recovered := func(n int) {
				for range n {
					inv := stripetest.Invoice{ID: stripetest.NewID("in_"), Customer: "cus_jenny", CustomerEmail: "jenny@example.com",
						AmountDue: 2000, AttemptCount: 1, HostedInvoiceURL: "https://invoice.stripe.com/i/x"}
					paid := inv
					paid.Status, paid.AmountPaid, paid.AttemptCount = "paid", 2000, 2
					for _, ev := range []stripetest.Event{
						{Type: domain.EventInvoicePaymentFailed, Account: account, Created: clock.Now(), Object: inv},
						{Type: domain.EventInvoicePaid, Account: account, Created: clock.Now().Add(time.Minute), Object: paid},
					} {
						rec := httptest.NewRecorder()
						second.WebhookHandler().ServeHTTP(rec, signedEventAt(t, "/", ev.JSON(), clock.Now()))
						is.Equal(rec.Code, http.StatusOK)
					}
				}
			}
			recovered(5)
			deliveries := func() []domain.Delivery {
				t.Helper()
				page, err := second.Endpoints().Deliveries(ctx, m, ep.ID, domain.DeliveryFilter{Limit: domain.MaxPageSize})
				is.NoErr(err)
				return page.Deliveries
			}
			is.Equal(len(deliveries()), 5) // one delivery per message, stored with its change

			// Both workers, at once, round after round, the clock moving
			// past each retry's wait.
			for round := 0; round < 10; round++ {
				var wg sync.WaitGroup
				for _, svc := range []*recoup.Service{first, second} {
					wg.Go(func() {
						if _, err := svc.Deliveries().RunOnce(ctx); err != nil {
							t.Errorf("deliveries: %v", err)
						}
					})
				}
				wg.Wait()
				clock.Add(31 * time.Minute)
			}
			for _, d := range deliveries() {
				is.Equal(d.Status, domain.DeliveryDelivered) // every message delivered
				is.Equal(d.Attempts, 3)                      // after two refusals
				is.Equal(d.LastStatusCode, http.StatusNoContent)
			}
			rc.mu.Lock()
			is.Equal(rc.badSigs, 0)       // every attempt signed right
			is.Equal(rc.maxIn, 1)         // never two sends of one message at once
			is.Equal(len(rc.attempts), 5) // five webhook-ids: one per message, on every attempt
			for id, n := range rc.attempts {
				is.Equal(n, 3)                                          // each seen three times under its id
				is.Equal(rc.types[id], domain.OutboundInvoiceRecovered) // as what it is
			}
			rc.mu.Unlock()

			// The first worker dies as its send is answered.
			rc.mu.Lock()
			rc.refuse, rc.attempts, rc.onFirst = 0, map[string]int{}, func(string) { dying.die() }
			rc.mu.Unlock()
			recovered(1)
			clock.Add(2 * time.Minute) // the message is due from the payment's time, a minute after the failure
			n, err := first.Deliveries().RunOnce(ctx)
			is.NoErr(err)
			is.Equal(n, 1) // it claimed and sent the message
			var pending domain.Delivery
			for _, d := range deliveries() {
				if d.Status != domain.DeliveryDelivered {
					pending = d
				}
			}
			is.True(pending.ID != "") // but nothing recorded the answer
			n, err = second.Deliveries().RunOnce(ctx)
			is.NoErr(err)
			is.Equal(n, 0)             // nobody else sends it while the lease holds
			clock.Add(2 * time.Minute) // past the one-minute lease
			n, err = second.Deliveries().RunOnce(ctx)
			is.NoErr(err)
			is.Equal(n, 1) // then the other worker does
			for _, d := range deliveries() {
				is.Equal(d.Status, domain.DeliveryDelivered)
			}
			rc.mu.Lock()
			defer rc.mu.Unlock()
			is.Equal(len(rc.attempts), 1) // one message, sent twice under one webhook-id: at least once, same id
			for _, n := range rc.attempts {
				is.Equal(n, 2)
			}
			is.Equal(rc.badSigs, 0)
		})
	}
}
