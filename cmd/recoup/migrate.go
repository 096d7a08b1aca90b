package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/uptrace/bun"

	"github.com/recoupdev/recoup/adapters/postgres"
	"github.com/recoupdev/recoup/app"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

var migrateHelp = cmdHelp{
	usage: "recoup migrate up|down|status",
	about: `
Schema migrations, on PostgreSQL only; the SQL is embedded in the binary.

  up       apply every pending migration, naming each one applied
  down     roll back the last group of migrations applied together; this
           drops their tables and all the data in them, so it asks first:
           pass --yes (or answer yes at the prompt on a terminal)
  status   list the migrations applied and pending

Each prints the status (applied and pending migrations) at the end.
recoup migrate <up|down|status> --help says more.`,
	env:      databaseEnv,
	required: databaseEnv,
}

var migrateSubHelp = map[string]cmdHelp{
	"up": {
		usage: "recoup migrate up",
		about: `
Applies every pending migration to the first schema of DATABASE_URL's
search_path, as one group, and names each migration applied ("nothing to
apply" when the schema is up to date), then prints the status. Migrators
started at the same time run one after the other. Run it once per release,
before the new servers start: they refuse a database with pending
migrations.`,
		env: databaseEnv, required: databaseEnv,
	},
	"down": {
		usage: "recoup migrate down --yes",
		about: `
Rolls back the last group of migrations applied together (what the last
recoup migrate up applied). Rolling back drops what those migrations
created: their tables, with every row in them, and their indexes; rolling
back the initial schema drops every recoup table, so every merchant, API key,
task and idempotency lock is lost. It cannot be undone.

It first names the migrations it would roll back. Without --yes it asks for
confirmation when its standard input is a terminal, and otherwise refuses
(exit status 2) without changing anything.`,
		env: databaseEnv, required: databaseEnv,
	},
	"status": {
		usage: "recoup migrate status",
		about: `
Lists the migrations applied to the database and those pending, oldest
first. It only reads.`,
		env: databaseEnv, required: databaseEnv,
	},
}

func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 && isHelp(args[0]) {
		migrateHelp.write(stdout, nil)
		return nil
	}
	if len(args) == 0 {
		fmt.Fprintf(stderr, "usage: %s\n", migrateHelp.usage)
		return &usageError{"migrate: which one? up, down or status"}
	}
	sub := args[0]
	h, ok := migrateSubHelp[sub]
	if !ok {
		fmt.Fprintf(stderr, "usage: %s\n", migrateHelp.usage)
		return &usageError{fmt.Sprintf("migrate: unknown command %q (up, down or status)", sub)}
	}
	fs := flag.NewFlagSet("migrate "+sub, flag.ContinueOnError)
	var yes bool
	if sub == "down" {
		fs.BoolVar(&yes, "yes", false, "roll back without asking: the tables of the migrations rolled back, and their data, are dropped")
	}
	if ok, err := parseFlags(fs, h, args[1:], stdout, stderr); !ok {
		return err
	}
	db, err := connectPostgres(ctx, getenv, "recoup migrate")
	if err != nil {
		return err
	}
	defer db.Close()
	switch sub {
	case "up":
		applied, err := postgres.ApplyMigrations(ctx, db)
		if err != nil {
			return err
		}
		if len(applied) == 0 {
			fmt.Fprintln(stdout, "nothing to apply: the schema is up to date")
		} else {
			fmt.Fprintf(stdout, "applied %d migration(s):\n", len(applied))
			printNames(stdout, applied)
		}
	case "down":
		group, err := postgres.LastMigrationGroup(ctx, db)
		if err != nil {
			return err
		}
		if len(group) == 0 {
			fmt.Fprintln(stdout, "nothing to roll back: no migration is applied")
			break
		}
		warnRollback(stderr, group)
		if !yes {
			if !isTerminal(stdin) {
				return &usageError{"migrate down: refused without --yes; nothing was changed"}
			}
			fmt.Fprint(stderr, "Type yes to roll back: ")
			answer, _ := bufio.NewReader(stdin).ReadString('\n')
			if strings.TrimSpace(answer) != "yes" {
				return &usageError{"migrate down: not confirmed; nothing was changed"}
			}
		}
		rolledBack, err := postgres.RollbackMigrations(ctx, db)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "rolled back %d migration(s):\n", len(rolledBack))
		printNames(stdout, rolledBack)
	}
	applied, pending, err := postgres.MigrationStatus(ctx, db)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "applied: %d\n", len(applied))
	printNames(stdout, applied)
	fmt.Fprintf(stdout, "pending: %d\n", len(pending))
	printNames(stdout, pending)
	return nil
}

func printNames(w io.Writer, names []string) {
	for _, n := range names {
		fmt.Fprintf(w, "  %s\n", n)
	}
}

// warnRollback says what migrate down is about to drop.
func warnRollback(w io.Writer, group []string) {
	fmt.Fprintf(w, "recoup migrate down rolls back %d migration(s), the last group applied together:\n", len(group))
	printNames(w, group)
	fmt.Fprintln(w, "and drops what they created: their tables, with every row in them, and their indexes.")
	for _, n := range group {
		if strings.HasSuffix(n, "_initial_schema") {
			fmt.Fprintln(w, "This includes the initial schema: every recoup table goes, and with it every")
			fmt.Fprintln(w, "merchant, API key, task and idempotency lock. It cannot be undone.")
			return
		}
	}
	fmt.Fprintln(w, "It cannot be undone.")
}

// isTerminal reports whether in is an interactive terminal (a character
// device other than the null device).
func isTerminal(in io.Reader) bool {
	f, ok := in.(*os.File)
	if !ok || f == nil {
		return false
	}
	st, err := f.Stat()
	if err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	if null, err := os.Stat(os.DevNull); err == nil && os.SameFile(st, null) {
		return false
	}
	return true
}

// connectPostgres opens DATABASE_URL for a maintenance command.
func connectPostgres(ctx context.Context, getenv func(string) string, command string) (*bun.DB, error) {
	cfg, err := postgresConfig(getenv, command)
	if err != nil {
		return nil, err
	}
	db, err := postgres.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("connect to DATABASE_URL: %w", err)
	}
	return db, nil
}

// postgresConfig is the configuration of a command that works on
// PostgreSQL only.
func postgresConfig(getenv func(string) string, command string) (config, error) {
	cfg, err := loadConfig(getenv, false)
	if err != nil {
		return cfg, err
	}
	if cfg.DatabaseURL == "" {
		return cfg, &configError{"DATABASE_URL", "is required by " + command + " (it works on PostgreSQL only)"}
	}
	return cfg, nil
}

var merchantHelp = cmdHelp{
	usage: "recoup merchant create --name N --stripe-account acct_…",
	about: `
Merchants, directly in PostgreSQL (the admin API, POST /admin/merchants,
does the same over HTTP).

  create   create a merchant bound to a Stripe connected account and print
           it as JSON with its first API key (shown once)

recoup merchant create --help says more.`,
	env:      databaseEnv,
	required: databaseEnv,
}

var merchantCreateHelp = cmdHelp{
	usage: "recoup merchant create --name N --stripe-account acct_…",
	about: `
Creates a merchant bound to a Stripe connected account and prints it as JSON
with its API key: {"id", "name", "stripe_account_id", "api_key",
"api_key_prefix"}. The key is shown only this once; recoup keeps its SHA-256
hash. An account can be bound to one merchant only. It refuses a database
with pending migrations (run recoup migrate up first).`,
	env:      databaseEnv,
	required: databaseEnv,
}

func runMerchant(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && isHelp(args[0]) {
		merchantHelp.write(stdout, nil)
		return nil
	}
	if len(args) == 0 || args[0] != "create" {
		fmt.Fprintf(stderr, "usage: %s\n", merchantHelp.usage)
		if len(args) == 0 {
			return &usageError{"merchant: which one? create"}
		}
		return &usageError{fmt.Sprintf("merchant: unknown command %q", args[0])}
	}
	fs := flag.NewFlagSet("merchant create", flag.ContinueOnError)
	name := fs.String("name", "", "the merchant's name (1 to 200 characters)")
	account := fs.String("stripe-account", "", "the merchant's Stripe connected account (acct_…)")
	if ok, err := parseFlags(fs, merchantCreateHelp, args[1:], stdout, stderr); !ok {
		return err
	}
	if strings.TrimSpace(*name) == "" || *account == "" {
		fmt.Fprintf(stderr, "usage: %s\n", merchantCreateHelp.usage)
		return &usageError{"merchant create: --name and --stripe-account are required"}
	}
	cfg, err := postgresConfig(getenv, "recoup merchant create")
	if err != nil {
		return err
	}
	db, closeDB, err := openPostgres(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeDB()
	merchants := app.NewMerchantService(postgres.New(db).Merchants(), ports.SystemClock{})
	m, key, err := merchants.Create(ctx, *name, *account)
	if err != nil {
		return merchantCreateError(err, *account)
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(map[string]string{
		"id": string(m.ID), "name": m.Name, "stripe_account_id": m.StripeAccountID,
		"api_key": key.Plain, "api_key_prefix": key.Prefix,
	})
}

// merchantCreateError words a failed creation as the admin API's answer
// does: a bound account is a conflict in the same words, bad input a
// usage error (exit status 2) with the same message.
func merchantCreateError(err error, account string) error {
	switch {
	case errors.Is(err, domain.ErrConflict):
		return &plainError{msg: accountBoundMessage(account), err: err}
	case errors.Is(err, domain.ErrInvalid):
		return &usageError{"merchant create: " + err.Error()}
	}
	return err
}

// accountBoundMessage is what POST /admin/merchants answers with 409.
func accountBoundMessage(account string) string {
	return fmt.Sprintf("stripe account %s is already bound to a merchant", strings.TrimSpace(account))
}

// plainError shows msg alone, and keeps err for errors.Is.
type plainError struct {
	msg string
	err error
}

func (e *plainError) Error() string { return e.msg }
func (e *plainError) Unwrap() error { return e.err }
