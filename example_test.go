package recoup_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/recoupdev/recoup"
	"github.com/recoupdev/recoup/adapters/postgres"
	"github.com/recoupdev/recoup/domain"
)

// exampleSecret is the webhook signing secret of the examples.
const exampleSecret = "whsec_example"

// invoiceFailed is a Stripe invoice.payment_failed event on a connected
// account, as Stripe posts it (trimmed to the fields recoup reads). Stripe
// will retry the payment itself (next_payment_attempt is set), so recoup
// only emails the customer.
func invoiceFailed(account string) []byte {
	return fmt.Appendf(nil, `{"id": "evt_%d", "object": "event", "api_version": "2023-10-16",
		"account": %q, "type": "invoice.payment_failed", "livemode": false, "created": %d,
		"data": {"object": {"id": "in_1", "object": "invoice", "customer": "cus_1",
			"customer_email": "jenny@example.com", "amount_due": 2000, "currency": "usd",
			"attempt_count": 1, "next_payment_attempt": %d, "status": "open"}}}`,
		time.Now().UnixNano(), account, time.Now().Unix(), time.Now().Add(72*time.Hour).Unix())
}

// signed posts payload to path as Stripe would, signed with exampleSecret.
func signed(path string, payload []byte) *http.Request {
	sig := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: exampleSecret, Timestamp: time.Now()})
	r := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(payload))
	r.Header.Set("Stripe-Signature", sig.Header)
	return r
}

// Example embeds recoup in a host service: the host's mux, the host's own
// login deciding the merchant, recoup mounted under /billing/.
func Example() {
	ctx := context.Background()
	billing, err := recoup.New(recoup.Options{WebhookSecrets: []string{exampleSecret}}) // storage in memory
	if err != nil {
		log.Fatal(err)
	}
	// Onboarding: the host binds its customer's Stripe connected account
	// to a recoup merchant and keeps the merchant's id.
	shop, _, err := billing.Merchants().Create(ctx, "Jenny's shop", "acct_jenny")
	if err != nil {
		log.Fatal(err)
	}
	sessions := map[string]domain.MerchantID{"session-jenny": shop.ID} // the host's login

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "host home") })
	billing.Mount(mux, "/billing", recoup.HandlerOptions{
		Resolver: recoup.ResolverFunc(func(r *http.Request) (domain.Merchant, error) {
			id, ok := sessions[r.Header.Get("X-Session")]
			if !ok {
				return domain.Merchant{}, fmt.Errorf("%w: log in first", recoup.ErrUnauthenticated)
			}
			return billing.Storage().Merchants().MerchantByID(r.Context(), id)
		}),
	})

	// Stripe posts the event under the prefix...
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, signed("/billing/webhooks/stripe", invoiceFailed("acct_jenny")))
	fmt.Println("webhook:", rec.Code)

	// ...and the host's logged-in user reads the tasks it made.
	req := httptest.NewRequest(http.MethodGet, "/billing/api/tasks", nil)
	req.Header.Set("X-Session", "session-jenny")
	rec = httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	fmt.Println("tasks:", rec.Code, strings.Count(rec.Body.String(), `"type":"notify_payment_failed"`), "notify_payment_failed")

	rec = httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/billing/api/tasks", nil))
	fmt.Println("no session:", rec.Code)
	// Output:
	// webhook: 200
	// tasks: 200 1 notify_payment_failed
	// no session: 401
}

// ExampleService_TaskAPI mounts the pieces one by one, for a host whose
// mux is laid out its own way: the webhook at a path of its choice, and
// the task API with recoup's own merchant API keys (a nil resolver).
func ExampleService_TaskAPI() {
	ctx := context.Background()
	billing, err := recoup.New(recoup.Options{WebhookSecrets: []string{exampleSecret}})
	if err != nil {
		log.Fatal(err)
	}
	_, key, err := billing.Merchants().Create(ctx, "Jenny's shop", "acct_jenny")
	if err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.Handle("POST /hooks/stripe", billing.WebhookHandler())
	// The task API routes on /api/…: strip the prefix in front of it.
	mux.Handle("/billing/api/", http.StripPrefix("/billing", billing.TaskAPI(nil)))

	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, signed("/hooks/stripe", invoiceFailed("acct_jenny")))
	fmt.Println("webhook:", rec.Code)

	req := httptest.NewRequest(http.MethodGet, "/billing/api/stats", nil)
	req.Header.Set("Authorization", "Bearer "+key.Plain)
	rec = httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	var stats struct {
		ByCurrency    json.RawMessage `json:"by_currency"`
		TasksByStatus json.RawMessage `json:"tasks_by_status"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &stats); err != nil {
		log.Fatal(err)
	}
	fmt.Println("stats:", rec.Code, string(stats.ByCurrency), string(stats.TasksByStatus))
	// Output:
	// webhook: 200
	// stats: 200 {"usd":{"failed_amount":2000,"recovered_amount":0,"recovery_rate":0}} {"cancelled":0,"failed":0,"pending":3,"running":0,"succeeded":0}
}

// printNotifier stands in for an email service: a Notifier is one method.
type printNotifier struct{}

func (printNotifier) Notify(_ context.Context, n domain.Notification) error {
	fmt.Printf("email %s to %s: %d %s\n", n.Type, n.To, n.Amount, n.Currency)
	return nil
}

// ExampleService_Worker runs the task worker by hand, with a notifier of
// the caller's own. RunWorker is the long-running loop.
func ExampleService_Worker() {
	ctx := context.Background()
	billing, err := recoup.New(recoup.Options{WebhookSecrets: []string{exampleSecret}, Notifier: printNotifier{}})
	if err != nil {
		log.Fatal(err)
	}
	if _, _, err := billing.Merchants().Create(ctx, "Jenny's shop", "acct_jenny"); err != nil {
		log.Fatal(err)
	}
	billing.WebhookHandler().ServeHTTP(httptest.NewRecorder(), signed("/", invoiceFailed("acct_jenny")))

	ran, err := billing.Worker().RunOnce(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("tasks run:", ran)
	// Output:
	// email notify_payment_failed to jenny@example.com: 2000 usd
	// tasks run: 1
}

// ExampleNew_postgres runs recoup on the host's own PostgreSQL database.
// postgres.New takes any bun.IDB, so an application that already has a
// *bun.DB hands it over; Migrate applies recoup's migrations from code,
// into the first schema of the connection's search_path.
func ExampleNew_postgres() {
	ctx := context.Background()
	// Or your application's own *bun.DB. ?search_path=recoup keeps recoup's
	// tables in a schema of their own (CREATE SCHEMA recoup first).
	db, err := postgres.Open(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	if err := postgres.Migrate(ctx, db); err != nil {
		log.Fatal(err)
	}
	billing, err := recoup.New(recoup.Options{
		Storage:        postgres.New(db),
		WebhookSecrets: strings.Split(os.Getenv("STRIPE_WEBHOOK_SECRET"), ","),
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		if err := billing.RunWorker(ctx); err != nil {
			log.Print(err)
		}
	}()
	log.Fatal(http.ListenAndServe("localhost:8080", billing.Handler(recoup.HandlerOptions{})))
}
