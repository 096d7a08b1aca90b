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

func runServe(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "listen address (overrides RECOUP_ADDR)")
	withWorker := fs.Bool("worker", true, "run the task worker in this process")
	if err := fs.Parse(args); err != nil {
		return &usageError{err.Error()}
	}
	cfg, err := loadConfig(getenv, true)
	if err != nil {
		return err
	}
	if *addr != "" {
		cfg.Addr = *addr
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

func runWorker(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return &usageError{err.Error()}
	}
	cfg, err := loadConfig(getenv, false)
	if err != nil {
		return err
	}
	if cfg.DatabaseURL == "" {
		return &configError{"DATABASE_URL", "is required by recoup worker (a worker apart from the server needs shared storage)"}
	}
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
