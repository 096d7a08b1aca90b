package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/recoupdev/recoup/adapters/httpapi"
)

// drainTimeout bounds the drain on SIGTERM. The server's own timeouts (a
// slow client cannot hold a connection) are httpapi.NewHTTPServer's.
const drainTimeout = 30 * time.Second

var serveHelp = cmdHelp{
	usage: "recoup serve [--addr A] [--worker=false]",
	about: `
The HTTP server: the Stripe webhook (POST /webhooks/stripe), the tenant task
API (/api/…), the merchant dashboard (/dashboard/, signed in with an API
key), the admin API (/admin/…, with RECOUP_ADMIN_TOKEN), /healthz, /readyz
and /metrics. It runs the task worker in the same process unless
--worker=false. Without DATABASE_URL everything is kept in memory and lost
at exit; with it, serve refuses to start on a database with pending
migrations (run recoup migrate up first). SIGTERM or Ctrl-C drains the
requests and tasks in flight, then exits 0.`,
	env:      serveEnv,
	required: []string{"STRIPE_WEBHOOK_SECRET"},
}

func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	addr := fs.String("addr", "", "listen address, host:port (default: RECOUP_ADDR, else :8080)")
	withWorker := fs.Bool("worker", true, "run the task worker in this process")
	if ok, err := parseFlags(fs, serveHelp, args, stdout, stderr); !ok {
		return err
	}
	if *addr != "" {
		if err := checkListenAddr(*addr); err != nil {
			return &usageError{"serve: --addr " + err.Error()}
		}
		// --addr stands in for RECOUP_ADDR, which is then not read at all.
		env := getenv
		getenv = func(name string) string {
			if name == "RECOUP_ADDR" {
				return *addr
			}
			return env(name)
		}
	}
	cfg, err := loadConfig(getenv, true)
	if err != nil {
		return err
	}
	log := newLogger(cfg.LogFormat, stderr)
	svc, cleanup, err := buildService(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer cleanup()

	log.Info("recoup starting", "config", cfg)
	if cfg.DatabaseURL == "" {
		log.Warn("storage is in memory: nothing survives a restart; set DATABASE_URL for PostgreSQL")
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	if svc.handlers.ops != nil {
		stop, err := serveOps(svc, log)
		if err != nil {
			ln.Close()
			return err
		}
		defer stop()
	}
	srv := httpapi.NewHTTPServer(svc.handlers.public, log)
	srv.BaseContext = func(net.Listener) context.Context { return context.WithoutCancel(ctx) }
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String())

	// The worker gets its own context: on SIGTERM it stops claiming and
	// finishes what it runs, while the HTTP server drains.
	workerCtx, stopWorker := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWorker()
	var workerDone chan error // nil without a worker: never ready in select
	if *withWorker {
		workerDone = make(chan error, 1)
		go func() { workerDone <- svc.runWorker(workerCtx) }()
	}

	select {
	case err := <-serveErr:
		stopWorker()
		if workerDone != nil {
			<-workerDone
		}
		return fmt.Errorf("http server: %w", err)
	case err := <-workerDone:
		// The worker returns on its own only when it cannot go on.
		drainCtx, cancel := context.WithTimeout(context.Background(), drainTimeout)
		defer cancel()
		return errors.Join(fmt.Errorf("worker stopped: %w", err), srv.Shutdown(drainCtx))
	case <-ctx.Done():
	}

	log.Info("shutting down: draining requests and tasks")
	drainCtx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	stopWorker()
	shutdownErr := srv.Shutdown(drainCtx)
	var workerErr error
	if workerDone != nil {
		workerErr = <-workerDone
	}
	if err := errors.Join(shutdownErr, workerErr); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

var workerHelp = cmdHelp{
	usage: "recoup worker",
	about: `
The task worker alone, apart from the HTTP servers (run those with
recoup serve --worker=false): it claims due tasks from PostgreSQL, runs them
(payment retries on Stripe, customer emails) and prunes old idempotency
locks; it also delivers the merchants' outbound webhooks and, with
STRIPE_API_KEY, reconciles the events Stripe could not deliver every
RECOUP_RECONCILE_INTERVAL. Run as many as the backlog needs. It serves no
HTTP unless RECOUP_METRICS_ADDR is set. It needs the webhook secret only
with RECOUP_PUBLIC_URL (to sign update links). SIGTERM or Ctrl-C lets the
tasks in flight finish, then exits 0.`,
	env:      workerEnv,
	required: []string{"DATABASE_URL"},
}

func runWorker(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	if ok, err := parseFlags(fs, workerHelp, args, stdout, stderr); !ok {
		return err
	}
	cfg, err := loadConfig(getenv, false)
	if err != nil {
		return err
	}
	if cfg.DatabaseURL == "" {
		return &configError{"DATABASE_URL", "is required by recoup worker (a worker apart from the server needs shared storage)"}
	}
	if cfg.PublicURL != "" && len(cfg.WebhookSecrets) == 0 {
		return &configError{"STRIPE_WEBHOOK_SECRET", "is required by recoup worker when RECOUP_PUBLIC_URL is set (update links are signed with keys derived from it)"}
	}
	// The worker listens on nothing but RECOUP_METRICS_ADDR: RECOUP_ADDR
	// means nothing to it, and its start-up line does not show it.
	cfg.Addr = ""
	log := newLogger(cfg.LogFormat, stderr)
	svc, cleanup, err := newPostgresWorker(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer cleanup()
	log.Info("recoup worker starting", "config", cfg)
	if svc.handlers.ops != nil {
		stop, err := serveOps(svc, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	if err := svc.runWorker(ctx); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	log.Info("stopped")
	return nil
}

// serveOps serves the operational endpoints (metrics, health, readiness)
// on RECOUP_METRICS_ADDR until the returned stop is called.
func serveOps(svc *service, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", svc.cfg.MetricsAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on RECOUP_METRICS_ADDR %s: %w", svc.cfg.MetricsAddr, err)
	}
	srv := httpapi.NewHTTPServer(svc.handlers.ops, log)
	go srv.Serve(ln)
	log.Info("serving metrics and health", "addr", ln.Addr().String())
	return func() { srv.Close() }, nil
}
