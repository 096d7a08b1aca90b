package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/recoupdev/recoup/app"
)

var reconcileHelp = cmdHelp{
	usage: "recoup reconcile [--since 72h]",
	about: `
Lists, for every merchant, the events of the handled types that Stripe
could not deliver to the webhook, created in the last --since (at most 30
days) on its connected account, and puts each through the webhook's own
path: an event already processed is a duplicate and changes nothing, and a
webhook that arrives after it is a duplicate too. Prints one JSON line
{"merchants", "listed", "processed", "duplicates", "ignored", "failed"} and
exits 0 when failed is 0, else 1. recoup worker does the same every
RECOUP_RECONCILE_INTERVAL.`,
	env:      reconcileEnv,
	required: []string{"DATABASE_URL", "STRIPE_API_KEY"},
}

func runReconcile(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("reconcile", flag.ContinueOnError)
	since := fs.Duration("since", 72*time.Hour, "how far back to look (at most 720h)")
	if ok, err := parseFlags(fs, reconcileHelp, args, stdout, stderr); !ok {
		return err
	}
	if *since <= 0 || *since > app.MaxReconcileWindow {
		return &usageError{"reconcile: --since must be more than 0 and at most 720h (30 days)"}
	}
	cfg, err := loadConfig(getenv, false)
	if err != nil {
		return err
	}
	if cfg.DatabaseURL == "" {
		return &configError{"DATABASE_URL", "is required by recoup reconcile (the merchants and processed events are in PostgreSQL)"}
	}
	if cfg.StripeAPIKey == "" {
		return &configError{"STRIPE_API_KEY", "is required by recoup reconcile (it lists the events on Stripe)"}
	}
	cfg.Addr, cfg.MetricsAddr = "", ""
	log := newLogger(cfg.LogFormat, stderr)
	svc, cleanup, err := newPostgresWorker(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer cleanup()
	res, err := svc.recoup.Reconcile(ctx, *since)
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	line, err := json.Marshal(res)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s\n", line)
	if res.Failed > 0 {
		return &plainError{msg: fmt.Sprintf("reconcile: %d failed (see the log)", res.Failed)}
	}
	return nil
}
