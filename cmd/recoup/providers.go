package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/google/wire"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/uptrace/bun"

	"github.com/recoupdev/recoup"
	"github.com/recoupdev/recoup/adapters/email"
	"github.com/recoupdev/recoup/adapters/httpapi"
	"github.com/recoupdev/recoup/adapters/memory"
	"github.com/recoupdev/recoup/adapters/metrics"
	"github.com/recoupdev/recoup/adapters/postgres"
	"github.com/recoupdev/recoup/adapters/stripe"
	"github.com/recoupdev/recoup/app"
	"github.com/recoupdev/recoup/ports"
)

// service is what `serve` and `worker` run: recoup.New's Service, the one
// composition embedders use too, with the binary's HTTP handlers around
// it. The wire injectors build it.
type service struct {
	cfg      config
	log      *slog.Logger
	recoup   *recoup.Service
	handlers handlers
}

// handlers are what a process listens with.
type handlers struct {
	// public is `serve`'s API on RECOUP_ADDR; nil for `worker`.
	public http.Handler
	// ops serves /metrics, /healthz and /readyz on RECOUP_METRICS_ADDR;
	// nil when that is unset (`serve` then has /metrics on its API).
	ops http.Handler
}

// runWorker runs the task worker and the lock retention until ctx ends.
func (s *service) runWorker(ctx context.Context) error { return s.recoup.RunWorker(ctx) }

// coreSet is recoup.New with the binary's adapters chosen by the
// configuration; the storage comes from memorySet or postgresSet.
//
//lint:ignore U1000 used by the wire injectors (wire.go, behind its build tag)
var coreSet = wire.NewSet(
	provideRegistry,
	provideMetrics,
	provideGateway,
	provideNotifier,
	provideOptions,
	recoup.New,
	wire.Struct(new(service), "*"),
)

// memorySet is the embedded in-memory storage.
//
//lint:ignore U1000 used by the wire injectors (wire.go, behind its build tag)
var memorySet = wire.NewSet(newMemoryStore, wire.Bind(new(ports.Storage), new(*memory.Store)), noSQLPool)

// postgresSet is the PostgreSQL storage.
//
//lint:ignore U1000 used by the wire injectors (wire.go, behind its build tag)
var postgresSet = wire.NewSet(openPostgres, postgresPool, wire.Bind(new(bun.IDB), new(*bun.DB)),
	postgres.New, wire.Bind(new(ports.Storage), new(*postgres.Store)))

func newMemoryStore() *memory.Store { return memory.New(nil) }

// noSQLPool is the pool of the memory storage: none.
func noSQLPool() *sql.DB { return nil }

// postgresPool is the database/sql pool under bun, for its statistics.
func postgresPool(db *bun.DB) *sql.DB { return db.DB }

// provideRegistry is the process's own metrics registry (never the global
// one).
func provideRegistry() *prometheus.Registry { return prometheus.NewRegistry() }

// provideMetrics observes the use cases, the HTTP requests, the task
// backlog and, on PostgreSQL, the connection pool (pool is nil on memory).
func provideMetrics(reg *prometheus.Registry, store ports.Storage, pool *sql.DB) (*metrics.Metrics, error) {
	return metrics.New(reg, metrics.Options{Queue: store.Queue(), DB: pool})
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
	if ue, ok := errors.AsType[*email.URLError](err); ok {
		return nil, &configError{"RECOUP_SMTP_URL", ue.Reason}
	}
	if err != nil {
		return nil, err
	}
	smtp.From = cfg.EmailFrom
	n, err := email.NewSMTPNotifier(smtp, log)
	if err != nil {
		return nil, &configError{"RECOUP_EMAIL_FROM", fmt.Sprintf("%q is not an email address", cfg.EmailFrom)}
	}
	return n, nil
}

// provideOptions is the configuration as recoup.New takes it.
func provideOptions(cfg config, store ports.Storage, gateway ports.PaymentGateway, notifier ports.Notifier,
	log *slog.Logger, m *metrics.Metrics) recoup.Options {
	return recoup.Options{
		Storage:        store,
		WebhookSecrets: cfg.WebhookSecrets,
		// Only `worker` runs without a secret (`serve` requires one).
		NoWebhook:      len(cfg.WebhookSecrets) == 0,
		Livemode:       cfg.Livemode,
		Gateway:        gateway,
		Notifier:       notifier,
		Logger:         log,
		Observer:       m,
		Worker:         app.WorkerConfig{Concurrency: cfg.WorkerConcurrency, Poll: cfg.WorkerPoll, Lease: cfg.WorkerLease},
		EventRetention: cfg.EventRetention,
		PublicURL:      cfg.PublicURL,
		// RECOUP_RECONCILE_INTERVAL=0 is "off", a negative interval here.
		ReconcileInterval:     cfg.ReconcileInterval,
		AllowPrivateEndpoints: cfg.AllowPrivateHooks,
	}
}

// provideServeHandlers is `serve`'s HTTP: the whole API, with the limiter
// of failed authentications (httpapi's defaults: 20 failures a minute per
// client address), and the operational endpoints. With RECOUP_METRICS_ADDR
// set, /metrics moves to that listener and leaves the public one.
func provideServeHandlers(cfg config, svc *recoup.Service, reg *prometheus.Registry, m *metrics.Metrics, log *slog.Logger) handlers {
	opts := recoup.HandlerOptions{
		AdminToken:  cfg.AdminToken,
		Requests:    m,
		AuthLimiter: httpapi.NewAuthLimiter(httpapi.AuthLimitConfig{TrustForwardedFor: cfg.TrustProxy}),
	}
	h := handlers{}
	if cfg.MetricsAddr == "" {
		opts.Metrics = metrics.Handler(reg, log)
	} else {
		h.ops = opsHandler(svc, reg, log)
	}
	h.public = svc.Handler(opts)
	return h
}

// provideWorkerHandlers is `worker`'s HTTP: only the operational
// endpoints, and only when RECOUP_METRICS_ADDR names where.
func provideWorkerHandlers(cfg config, svc *recoup.Service, reg *prometheus.Registry, log *slog.Logger) handlers {
	if cfg.MetricsAddr == "" {
		return handlers{}
	}
	return handlers{ops: opsHandler(svc, reg, log)}
}

// opsHandler serves what a scraper and an orchestrator ask of a process:
// its metrics (task runs are counted where they run), liveness and
// readiness.
func opsHandler(svc *recoup.Service, reg *prometheus.Registry, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.Handler(reg, log))
	mux.Handle("GET /healthz", httpapi.NewHealthHandler())
	mux.Handle("GET /readyz", httpapi.NewReadyHandler(svc.Storage().Ping, log))
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
