package main

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/google/wire"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/uptrace/bun"

	"github.com/recoupdev/recoup/adapters/email"
	"github.com/recoupdev/recoup/adapters/httpapi"
	"github.com/recoupdev/recoup/adapters/metrics"
	"github.com/recoupdev/recoup/adapters/postgres"
	"github.com/recoupdev/recoup/adapters/stripe"
	"github.com/recoupdev/recoup/app"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// service is what `serve` and `worker` run; the wire injectors build it.
type service struct {
	cfg     config
	log     *slog.Logger
	storage ports.Storage
	handler http.Handler
	worker  *app.Worker
}

// runWorker runs the task worker and the lock retention until ctx ends.
func (s *service) runWorker(ctx context.Context) error {
	pruner := app.NewEventPruner(s.storage, s.cfg.EventRetention, ports.SystemClock{}, s.log)
	done := make(chan struct{})
	go func() {
		defer close(done)
		pruner.Run(ctx)
	}()
	err := s.worker.Run(ctx)
	<-done
	return err
}

// workerSet provides the task worker and what it needs, but the storage
// adapter: what `recoup worker` runs.
//
//lint:ignore U1000 used by the wire injectors (wire.go, behind its build tag)
var workerSet = wire.NewSet(
	wire.Bind(new(ports.Clock), new(ports.SystemClock)),
	wire.Struct(new(ports.SystemClock)),
	provideRegistry,
	provideMetrics,
	provideGateway,
	provideNotifier,
	provideWorker,
)

// serverSet adds the HTTP side to workerSet: what `recoup serve` runs.
//
//lint:ignore U1000 used by the wire injectors (wire.go, behind its build tag)
var serverSet = wire.NewSet(
	workerSet,
	wire.Struct(new(service), "*"),
	domain.DefaultPolicy,
	provideLivemode,
	provideWebhookService,
	provideTaskService,
	provideMerchantService,
	provideVerifier,
	wire.Bind(new(ports.WebhookVerifier), new(*stripe.Verifier)),
	provideHandler,
)

func provideLivemode(cfg config) app.Livemode { return app.Livemode(cfg.Livemode) }

// provideRegistry is the process's own metrics registry (never the global
// one), served at /metrics.
func provideRegistry() *prometheus.Registry { return prometheus.NewRegistry() }

// provideMetrics observes the use cases, the HTTP requests, the task
// backlog and, on PostgreSQL, the connection pool (pool is nil on memory).
func provideMetrics(reg *prometheus.Registry, store ports.Storage, clock ports.Clock, pool *sql.DB) (*metrics.Metrics, error) {
	return metrics.New(reg, metrics.Options{Queue: store.Queue(), Clock: clock, DB: pool})
}

// noSQLPool is the pool of the memory storage: none.
func noSQLPool() *sql.DB { return nil }

// postgresPool is the database/sql pool under bun, for its statistics.
func postgresPool(db *bun.DB) *sql.DB { return db.DB }

func provideWebhookService(store ports.Storage, policy domain.Policy, clock ports.Clock, livemode app.Livemode,
	log *slog.Logger, m *metrics.Metrics) *app.WebhookService {
	return app.NewWebhookService(store, policy, clock, livemode, log).WithObserver(m)
}

func provideTaskService(store ports.Storage, clock ports.Clock) *app.TaskService {
	return app.NewTaskService(store.Tasks(), store.Ledger(), clock)
}

func provideMerchantService(store ports.Storage, clock ports.Clock) *app.MerchantService {
	return app.NewMerchantService(store.Merchants(), clock)
}

func provideVerifier(cfg config, log *slog.Logger) (*stripe.Verifier, error) {
	return stripe.NewVerifier(cfg.WebhookSecrets, stripe.WithLogger(log))
}

// provideGateway returns nil without STRIPE_API_KEY: the worker then records
// payment retries as failed with a clear error and still sends emails.
func provideGateway(cfg config) ports.PaymentGateway {
	if cfg.StripeAPIKey == "" {
		return nil
	}
	return stripe.NewGateway(stripe.GatewayConfig{APIKey: cfg.StripeAPIKey, APIBase: cfg.StripeAPIBase})
}

// provideNotifier sends email over SMTP when RECOUP_SMTP_URL is set, and
// writes it to the log otherwise.
func provideNotifier(cfg config, log *slog.Logger) (ports.Notifier, error) {
	if cfg.SMTPURL == "" {
		return email.NewLogNotifier(log), nil
	}
	smtp, err := email.ParseSMTPURL(cfg.SMTPURL)
	if err != nil {
		return nil, &configError{"RECOUP_SMTP_URL", strings.TrimPrefix(err.Error(), domain.ErrInvalid.Error()+": ")}
	}
	smtp.From = cfg.EmailFrom
	return email.NewSMTPNotifier(smtp, log)
}

func provideWorker(cfg config, store ports.Storage, gateway ports.PaymentGateway, notifier ports.Notifier, clock ports.Clock,
	log *slog.Logger, m *metrics.Metrics) (*app.Worker, error) {
	w, err := app.NewWorker(app.WorkerConfig{
		Concurrency: cfg.WorkerConcurrency, Poll: cfg.WorkerPoll, Lease: cfg.WorkerLease,
	}, store.Queue(), store.Merchants(), gateway, notifier, clock, log)
	if err != nil {
		return nil, err
	}
	return w.WithObserver(m), nil
}

// provideHandler is the whole HTTP API, with /metrics and the limiter of
// failed authentications (httpapi's defaults: 20 failures a minute per
// client address).
func provideHandler(cfg config, verifier ports.WebhookVerifier, webhooks *app.WebhookService,
	tasks *app.TaskService, merchants *app.MerchantService, store ports.Storage, log *slog.Logger,
	reg *prometheus.Registry, m *metrics.Metrics) http.Handler {
	return httpapi.NewServer(httpapi.Config{
		Verifier: verifier, Webhooks: webhooks, Tasks: tasks, Merchants: merchants,
		AdminToken: cfg.AdminToken, CursorKey: httpapi.CursorKeyFromSecrets(cfg.WebhookSecrets), Ready: store.Ping, Logger: log,
		Metrics: metrics.Handler(reg, log), Requests: m,
		AuthLimiter: httpapi.NewAuthLimiter(httpapi.AuthLimitConfig{TrustForwardedFor: cfg.TrustProxy}),
	})
}

// provideWorkerHandler is what a `recoup worker` process serves on
// RECOUP_METRICS_ADDR: its metrics (task runs are counted where they run)
// and liveness.
func provideWorkerHandler(reg *prometheus.Registry, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.Handler(reg, log))
	mux.Handle("GET /healthz", httpapi.NewHealthHandler())
	return mux
}

// openPostgres connects to DATABASE_URL and refuses a schema with pending
// migrations, naming the command that applies them.
func openPostgres(ctx context.Context, cfg config) (*bun.DB, func(), error) {
	db, err := postgres.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to DATABASE_URL: %w", err)
	}
	pending, err := postgres.PendingMigrations(ctx, db)
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("read migration status: %w", err)
	}
	if len(pending) > 0 {
		db.Close()
		return nil, nil, fmt.Errorf("the database has %d pending migration(s) (%s): run `recoup migrate up` first", len(pending), strings.Join(pending, ", "))
	}
	return db, func() { db.Close() }, nil
}

// buildService composes the server on the storage the configuration names.
// Its lines of a request carry the request's id.
func buildService(ctx context.Context, cfg config, log *slog.Logger) (*service, func(), error) {
	log = slog.New(httpapi.NewLogHandler(log.Handler()))
	if cfg.DatabaseURL == "" {
		return newMemoryService(cfg, log)
	}
	return newPostgresService(ctx, cfg, log)
}
