package main

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"
)

// TestEnvTableMatchesLoadConfig: the table that the help texts print names
// exactly the variables loadConfig reads, with the defaults it applies.
func TestEnvTableMatchesLoadConfig(t *testing.T) {
	is := is.New(t)
	var read []string
	getenv := func(name string) string {
		read = append(read, name)
		if name == "STRIPE_WEBHOOK_SECRET" {
			return "whsec_x"
		}
		return ""
	}
	c, err := loadConfig(getenv, true)
	is.NoErr(err)
	var names []string
	for _, v := range envVars {
		names = append(names, v.Name)
	}
	slices.Sort(read)
	read = slices.Compact(read)
	slices.Sort(names)
	is.Equal(read, names) // the table lists what loadConfig reads, no more, no less

	// What each variable is when unset, in the table's notation.
	effective := map[string]string{
		"RECOUP_ADDR":                  c.Addr,
		"DATABASE_URL":                 unsetIfEmpty(c.DatabaseURL),
		"STRIPE_API_KEY":               unsetIfEmpty(c.StripeAPIKey),
		"STRIPE_LIVEMODE":              strconv.FormatBool(c.Livemode),
		"RECOUP_ADMIN_TOKEN":           unsetIfEmpty(c.AdminToken),
		"RECOUP_LOG_FORMAT":            c.LogFormat,
		"RECOUP_SMTP_URL":              unsetIfEmpty(c.SMTPURL),
		"RECOUP_EMAIL_FROM":            c.EmailFrom,
		"RECOUP_WORKER_CONCURRENCY":    strconv.Itoa(c.WorkerConcurrency),
		"RECOUP_METRICS_ADDR":          unsetIfEmpty(c.MetricsAddr),
		"RECOUP_TRUST_PROXY":           strconv.FormatBool(c.TrustProxy),
		"RECOUP_PUBLIC_URL":            unsetIfEmpty(c.PublicURL),
		"RECOUP_WEBHOOK_ALLOW_PRIVATE": strconv.FormatBool(c.AllowPrivateHooks),
	}
	durations := map[string]time.Duration{
		"RECOUP_WORKER_POLL": c.WorkerPoll, "RECOUP_WORKER_LEASE": c.WorkerLease, "RECOUP_EVENT_RETENTION": c.EventRetention,
		"RECOUP_RECONCILE_INTERVAL": c.ReconcileInterval,
	}
	for _, v := range envVars {
		switch {
		case v.Name == "STRIPE_WEBHOOK_SECRET":
			is.Equal(v.Default, "required")
			_, err := loadConfig(env(), true)
			var ce *configError
			is.True(errors.As(err, &ce) && ce.Var == v.Name) // unset, it stops serve
		case v.Name == "STRIPE_API_BASE":
			is.Equal(v.Default, "Stripe's")
			is.Equal(c.StripeAPIBase, "") // unset: stripe-go's own base URL
		case durations[v.Name] != 0:
			d, err := time.ParseDuration(v.Default)
			is.NoErr(err)
			is.Equal(d, durations[v.Name]) // the table's default is loadConfig's
		default:
			want, ok := effective[v.Name]
			is.True(ok)               // the test knows every variable
			is.Equal(v.Default, want) // the table's default is loadConfig's
		}
	}
}

func unsetIfEmpty(s string) string {
	if s == "" {
		return "unset"
	}
	return s
}

func TestListenAddrChecked(t *testing.T) {
	good := []string{":8080", "127.0.0.1:9090", "localhost:0", "[::1]:8080", ":65535", "0.0.0.0:80"}
	bad := []string{"8080", "localhost", ":http", ":65536", ":-1", ":+80", "127.0.0.1:", "[::1:8080", "::1:8080"}
	for _, a := range good {
		if err := checkListenAddr(a); err != nil {
			t.Errorf("%q refused: %v", a, err)
		}
	}
	for _, a := range bad {
		if checkListenAddr(a) == nil {
			t.Errorf("%q accepted", a)
		}
	}
}

// An invalid RECOUP_ADDR stops every command at start, before anything
// runs: exit status 2, one line naming the variable, nothing logged.
func TestBadRecoupAddrExitsTwo(t *testing.T) {
	for _, args := range [][]string{{"serve"}, {"dev", "send-event", "--account", "acct_1"}} {
		t.Run(args[0], func(t *testing.T) {
			is := is.New(t)
			var stdout, stderr, out bytes.Buffer
			err := run(context.Background(), append([]string{"recoup"}, args...),
				env("STRIPE_WEBHOOK_SECRET", "whsec_x", "RECOUP_ADDR", "localhost:99999"), &stdout, &stderr)
			is.Equal(exitCode(err, &out), 2)
			is.True(strings.HasPrefix(out.String(), "recoup: RECOUP_ADDR: ")) // the line names the variable
			is.Equal(strings.Count(out.String(), "\n"), 1)                    // one line
			is.Equal(stderr.String(), "")                                     // and nothing was logged before it
		})
	}
}

func TestBadAddrFlagExitsTwo(t *testing.T) {
	is := is.New(t)
	var stdout, stderr, out bytes.Buffer
	err := run(context.Background(), []string{"recoup", "serve", "--addr", "nonsense"}, env("STRIPE_WEBHOOK_SECRET", "whsec_x"), &stdout, &stderr)
	is.Equal(exitCode(err, &out), 2)
	is.True(strings.Contains(out.String(), "--addr")) // the line names the flag
	is.Equal(stderr.String(), "")
}

// --addr stands in for RECOUP_ADDR, which then does not matter.
func TestAddrFlagOverridesABadRecoupAddr(t *testing.T) {
	is := is.New(t)
	c, err := loadConfig(env("STRIPE_WEBHOOK_SECRET", "whsec_x", "RECOUP_ADDR", "bad"), true)
	is.True(err != nil) // alone it is refused
	_ = c
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // serve stops at once
	var stdout, stderr bytes.Buffer
	err = run(ctx, []string{"recoup", "serve", "--addr", "127.0.0.1:0"},
		env("STRIPE_WEBHOOK_SECRET", "whsec_x", "RECOUP_ADDR", "bad"), &stdout, &stderr)
	is.NoErr(err) // with --addr it starts (and stops, its context being done)
}
