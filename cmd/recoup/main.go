// Command recoup is the recoup server: Stripe webhook intake, the tenant task
// API, the admin API and the task worker, with its maintenance subcommands.
// See the README and docs/configuration.md for its configuration.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := runWithInput(ctx, os.Args, os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// usage is the help text of the binary.
const usage = `usage: recoup <command> [flags]

commands:
  serve [--addr A] [--worker=false]   HTTP server (and the task worker, unless --worker=false)
  worker                               the task worker alone (PostgreSQL only)
  migrate up|down|status               schema migrations (PostgreSQL only)
  reconcile [--since 72h]              process the events Stripe could not deliver (PostgreSQL only)
  merchant create --name N --stripe-account acct_…
                                       create a merchant in PostgreSQL, print it with its API key
  dev send-event --type T --account acct_… [--url U] [--invoice in_…] [--attempt N]
                                       send a signed test event to a running server
  version                              version and build info
  help [command]                       this text, or a command's help

Every command answers --help (or -h) with its flags and the environment
variables it reads, with their defaults: recoup serve --help.
`

// usageError is a command-line mistake: exit status 2, like a bad setting.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// run is the whole program, testable: it returns when the command is done or
// ctx is cancelled (SIGTERM). Its standard input is never a terminal.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return runWithInput(ctx, args, getenv, nil, stdout, stderr)
}

// runWithInput is run with a standard input, which the commands that may
// ask a question (migrate down) read when it is a terminal; nil is none.
func runWithInput(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		fmt.Fprint(stderr, usage)
		return &usageError{"no command given"}
	}
	cmd, rest := args[1], args[2:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, getenv, stdout, stderr)
	case "worker":
		return runWorker(ctx, rest, getenv, stdout, stderr)
	case "migrate":
		return runMigrate(ctx, rest, getenv, stdin, stdout, stderr)
	case "merchant":
		return runMerchant(ctx, rest, getenv, stdout, stderr)
	case "reconcile":
		return runReconcile(ctx, rest, getenv, stdout, stderr)
	case "dev":
		return runDev(ctx, rest, getenv, stdout, stderr)
	case "version", "--version", "-version":
		return runVersionCommand(rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 && !isHelp(rest[0]) {
			// recoup help serve = recoup serve --help
			return runWithInput(ctx, append([]string{args[0]}, append(rest, "--help")...), getenv, stdin, stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return &usageError{fmt.Sprintf("unknown command %q", cmd)}
}

// exitCode prints err as one line and chooses the exit status: 2 for bad
// configuration or usage, 1 for any other failure.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "recoup:", err)
	var ce *configError
	var ue *usageError
	if errors.As(err, &ce) || errors.As(err, &ue) {
		return 2
	}
	return 1
}

// newLogger makes the process logger in the configured format.
func newLogger(format string, w io.Writer) *slog.Logger {
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, nil))
	}
	return slog.New(slog.NewJSONHandler(w, nil))
}
