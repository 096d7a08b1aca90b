// Command embed is an existing Go service — its own router, its own login —
// that runs recoup inside it instead of beside it. recoup is mounted under
// /billing/: Stripe posts to /billing/webhooks/stripe, and the service's
// logged-in users read their failed-payment tasks at /billing/api/tasks
// and see recoup's dashboard at /billing/dashboard/, authenticated by the
// service's own session cookie rather than by recoup's API keys.
//
// The wiring is newBilling and newServer (the marked section below: 32
// lines of code besides comments and blank lines); the rest is the host's
// pretend application. When the host has a database (DATABASE_URL), recoup
// shares the host's own *bun.DB and migrates its tables into it from code,
// into the first schema of the URL's search_path; otherwise recoup keeps
// its data in memory. Environment:
//
//	STRIPE_WEBHOOK_SECRET  whsec_… (required; a comma-separated list rotates)
//	DATABASE_URL           postgres://… (optional; unset: in memory)
//	ADDR                   listen address (default 127.0.0.1:8080)
//
// Try it:
//
//	STRIPE_WEBHOOK_SECRET=whsec_test go run ./examples/embed
//	curl -c jar -d user=alice localhost:8080/login
//	curl -b jar -d account=acct_123 localhost:8080/settings/stripe
//	curl -b jar localhost:8080/billing/api/tasks
//	curl -b jar localhost:8080/billing/dashboard/tasks
package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/recoupdev/recoup"
	"github.com/recoupdev/recoup/adapters/postgres"
	"github.com/recoupdev/recoup/domain"
)

// ---- wiring recoup in (32 lines of code) ----

// newBilling builds recoup on the host's own database, migrating recoup's
// tables into it from code, or in memory when the host has none (db nil).
func newBilling(ctx context.Context, db *bun.DB, secrets string, log *slog.Logger) (*recoup.Service, error) {
	opts := recoup.Options{WebhookSecrets: strings.Split(secrets, ","), Logger: log}
	if db != nil {
		if err := postgres.Migrate(ctx, db); err != nil {
			return nil, err
		}
		opts.Storage = postgres.New(db)
	}
	return recoup.New(opts)
}

// newServer is the host's router, with recoup mounted under /billing/ and
// the host's session deciding which merchant a request acts for.
func newServer(billing *recoup.Service, users *accounts) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", users.handleHome)
	mux.HandleFunc("POST /login", users.handleLogin)
	mux.HandleFunc("POST /settings/stripe", users.requireUser(func(w http.ResponseWriter, r *http.Request, user string) {
		// Onboarding: the user's Stripe connected account becomes a recoup merchant.
		m, _, err := billing.Merchants().Create(r.Context(), user, r.FormValue("account"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		users.connect(user, m.ID)
		w.WriteHeader(http.StatusCreated)
	}))
	billing.Mount(mux, "/billing", recoup.HandlerOptions{Resolver: recoup.ResolverFunc(func(r *http.Request) (domain.Merchant, error) {
		id, ok := users.merchantOf(r)
		if !ok {
			return domain.Merchant{}, fmt.Errorf("%w: log in and connect Stripe first", recoup.ErrUnauthenticated)
		}
		return billing.Storage().Merchants().MerchantByID(r.Context(), id)
	})})
	return mux
}

// ---- end of the wiring ----

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Getenv, os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "embed:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends, then drains requests and the worker's tasks.
// ready, when set, receives the address it listens on.
func run(ctx context.Context, getenv func(string) string, stderr io.Writer, ready chan<- string) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	log := slog.New(slog.NewTextHandler(stderr, nil))
	db, err := openDatabase(ctx, getenv("DATABASE_URL"))
	if err != nil {
		return err
	}
	if db != nil {
		defer db.Close()
	}
	billing, err := newBilling(ctx, db, getenv("STRIPE_WEBHOOK_SECRET"), log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cmp.Or(getenv("ADDR"), "127.0.0.1:8080"))
	if err != nil {
		return err
	}
	if ready != nil {
		ready <- ln.Addr().String()
	}
	srv := &http.Server{Handler: newServer(billing, newAccounts()), ReadHeaderTimeout: 10 * time.Second}
	worker := make(chan error, 1)
	go func() { worker <- billing.RunWorker(ctx) }()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err = <-served:
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		err = srv.Shutdown(shutdown)
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	stop() // the worker finishes its tasks in flight and returns
	return errors.Join(err, <-worker)
}

// ---- the host's own application (pretend) ----

// openDatabase opens the host's own PostgreSQL database, the way the host
// always has (bun over pgx, its own pool settings); an empty url means the
// host runs without one. recoup is handed this *bun.DB and shares it.
func openDatabase(ctx context.Context, url string) (*bun.DB, error) {
	if url == "" {
		return nil, nil
	}
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	db := bun.NewDB(stdlib.OpenDB(*cfg), pgdialect.New())
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("connect to the database: %w", err)
	}
	return db, nil
}

// accounts is the host's login: a session cookie names a user, and a user
// who connected Stripe has a recoup merchant. A real service keeps this in
// its database; the merchant id is one more column of its account table.
type accounts struct {
	mu       sync.RWMutex
	sessions map[string]string            // session token → user
	merchant map[string]domain.MerchantID // user → recoup merchant
}

func newAccounts() *accounts {
	return &accounts{sessions: map[string]string{}, merchant: map[string]domain.MerchantID{}}
}

// handleLogin logs a user in. This pretend service trusts the name it is
// given; a real one checks a password or an identity provider.
func (a *accounts) handleLogin(w http.ResponseWriter, r *http.Request) {
	user := strings.TrimSpace(r.FormValue("user"))
	if user == "" {
		http.Error(w, "user is required", http.StatusBadRequest)
		return
	}
	token := rand.Text()
	a.mu.Lock()
	a.sessions[token] = user
	a.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: "session", Value: token, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	fmt.Fprintf(w, "hello %s\n", user)
}

func (a *accounts) handleHome(w http.ResponseWriter, r *http.Request) {
	user, ok := a.current(r)
	if !ok {
		fmt.Fprintln(w, "welcome, please log in")
		return
	}
	fmt.Fprintf(w, "welcome back, %s\n", user)
}

// current returns the user of the request's session.
func (a *accounts) current(r *http.Request) (string, bool) {
	c, err := r.Cookie("session")
	if err != nil {
		return "", false
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	user, ok := a.sessions[c.Value]
	return user, ok
}

// requireUser runs h for a logged-in user and answers 401 otherwise.
func (a *accounts) requireUser(h func(w http.ResponseWriter, r *http.Request, user string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		user, ok := a.current(r)
		if !ok {
			http.Error(w, "log in first", http.StatusUnauthorized)
			return
		}
		h(w, r, user)
	}
}

// connect records the recoup merchant of a user's Stripe account.
func (a *accounts) connect(user string, id domain.MerchantID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.merchant[user] = id
}

// merchantOf returns the recoup merchant of the request's user.
func (a *accounts) merchantOf(r *http.Request) (domain.MerchantID, bool) {
	user, ok := a.current(r)
	if !ok {
		return "", false
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	id, ok := a.merchant[user]
	return id, ok
}
