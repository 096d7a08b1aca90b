package httpapi_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/recoupdev/recoup/adapters/httpapi"
	"github.com/recoupdev/recoup/adapters/memory"
	"github.com/recoupdev/recoup/adapters/metrics"
	"github.com/recoupdev/recoup/adapters/stripe"
	"github.com/recoupdev/recoup/app"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/clocktest"
	"github.com/recoupdev/recoup/ports"
)

// obOutageStore fails every unit of work while down is set, as a database
// that went away between two statements would.
type obOutageStore struct {
	ports.Storage
	down atomic.Bool
}

func (s *obOutageStore) InTx(ctx context.Context, fn func(context.Context, ports.Tx) error) error {
	if s.down.Load() {
		return fmt.Errorf("%w: test outage", domain.ErrUnavailable)
	}
	return s.Storage.InTx(ctx, fn)
}

// obNotifier counts the emails the worker sends.
type obNotifier struct{ sent atomic.Int32 }

func (n *obNotifier) Notify(context.Context, domain.Notification) error {
	n.sent.Add(1)
	return nil
}

// obEnv is a whole recoup HTTP API as cmd/recoup composes it: metrics on
// a registry of its own, request ids in the logs, an optional limiter.
type obEnv struct {
	t        testing.TB
	clock    *clocktest.Clock
	mem      *memory.Store
	store    *obOutageStore
	reg      *prometheus.Registry
	metrics  *metrics.Metrics
	webhooks *app.WebhookService
	worker   *app.Worker // without a payment gateway
	notifier *obNotifier
	handler  http.Handler
	srv      *httptest.Server
	logs     *syncBuffer
	log      *slog.Logger
	env      *env // the shared helpers (deliver, createMerchant…) over srv
}

type obOptions struct {
	ready    func(context.Context) error
	resolver httpapi.MerchantResolver
	metrics  http.Handler // replaces the /metrics handler
	limiter  *httpapi.AuthLimiter
}

func newObEnv(t testing.TB, o obOptions) *obEnv {
	t.Helper()
	clock := clocktest.New(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC))
	mem := memory.New(clock)
	store := &obOutageStore{Storage: mem}
	logs := &syncBuffer{}
	log := slog.New(httpapi.NewLogHandler(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, metrics.Options{Queue: store.Queue(), Clock: clock})
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	verifier, err := stripe.NewVerifier([]string{testSecret}, stripe.WithLogger(log))
	if err != nil {
		t.Fatalf("verifier: %v", err)
	}
	webhooks := app.NewWebhookService(store, app.WebhookConfig{Clock: clock, Logger: log, Observer: m})
	notifier := &obNotifier{}
	worker, err := app.NewWorker(app.WorkerConfig{}, app.WorkerPorts{Storage: store, Notifier: notifier, Clock: clock, Logger: log, Observer: m})
	if err != nil {
		t.Fatalf("worker: %v", err)
	}
	metricsHandler := o.metrics
	if metricsHandler == nil {
		metricsHandler = metrics.Handler(reg, log)
	}
	h := httpapi.NewServer(httpapi.Config{
		Verifier:    verifier,
		Webhooks:    webhooks,
		Tasks:       app.NewTaskService(store.Tasks(), store.Ledger(), clock),
		Merchants:   app.NewMerchantService(store.Merchants(), clock),
		Policies:    app.NewPolicyService(store.Policies()),
		Resolver:    o.resolver,
		AdminToken:  adminToken,
		Ready:       o.ready,
		Metrics:     metricsHandler,
		Requests:    m,
		Observer:    m,
		AuthLimiter: o.limiter,
		Logger:      log,
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	e := &env{t: t, mem: mem, store: store, srv: srv, logs: logs, secrets: []string{testSecret}}
	return &obEnv{t: t, clock: clock, mem: mem, store: store, reg: reg, metrics: m, webhooks: webhooks,
		worker: worker, notifier: notifier, handler: h, srv: srv, logs: logs, log: log, env: e}
}
