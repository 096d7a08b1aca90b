package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/uptrace/bun"

	"github.com/recoupdev/recoup/adapters/postgres"
	"github.com/recoupdev/recoup/app"
	"github.com/recoupdev/recoup/ports"
)

func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) != 1 || (args[0] != "up" && args[0] != "down" && args[0] != "status") {
		return &usageError{"usage: recoup migrate up|down|status"}
	}
	db, err := connectPostgres(ctx, getenv, "recoup migrate")
	if err != nil {
		return err
	}
	defer db.Close()
	switch args[0] {
	case "up":
		if err := postgres.Migrate(ctx, db); err != nil {
			return err
		}
	case "down":
		if err := postgres.Rollback(ctx, db); err != nil {
			return err
		}
	}
	applied, pending, err := postgres.MigrationStatus(ctx, db)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "applied: %d\n", len(applied))
	for _, m := range applied {
		fmt.Fprintf(stdout, "  %s\n", m)
	}
	fmt.Fprintf(stdout, "pending: %d\n", len(pending))
	for _, m := range pending {
		fmt.Fprintf(stdout, "  %s\n", m)
	}
	return nil
}

// connectPostgres opens DATABASE_URL for a maintenance command.
func connectPostgres(ctx context.Context, getenv func(string) string, command string) (*bun.DB, error) {
	cfg, err := loadConfig(getenv, false)
	if err != nil {
		return nil, err
	}
	if cfg.DatabaseURL == "" {
		return nil, &configError{"DATABASE_URL", "is required by " + command + " (it works on PostgreSQL only)"}
	}
	db, err := postgres.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("connect to DATABASE_URL: %w", err)
	}
	return db, nil
}

func runMerchant(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return &usageError{"usage: recoup merchant create --name N --stripe-account acct_…"}
	}
	fs := flag.NewFlagSet("merchant create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "the merchant's name")
	account := fs.String("stripe-account", "", "the merchant's Stripe connected account (acct_…)")
	if err := fs.Parse(args[1:]); err != nil {
		return &usageError{err.Error()}
	}
	if strings.TrimSpace(*name) == "" || *account == "" {
		return &usageError{"usage: recoup merchant create --name N --stripe-account acct_…"}
	}
	db, err := connectPostgres(ctx, getenv, "recoup merchant create")
	if err != nil {
		return err
	}
	defer db.Close()
	merchants := app.NewMerchantService(postgres.New(db).Merchants(), ports.SystemClock{})
	m, key, err := merchants.Create(ctx, *name, *account)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(map[string]string{
		"id": string(m.ID), "name": m.Name, "stripe_account_id": m.StripeAccountID,
		"api_key": key.Plain, "api_key_prefix": key.Prefix,
	})
}
