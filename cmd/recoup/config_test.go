package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestConfigDefaults(t *testing.T) {
	is := is.New(t)
	c, err := loadConfig(env("STRIPE_WEBHOOK_SECRET", "whsec_a, whsec_b"), true)
	is.NoErr(err)
	is.Equal(c.Addr, ":8080")
	is.Equal(c.WebhookSecrets, []string{"whsec_a", "whsec_b"}) // a comma-separated list, trimmed
	is.Equal(c.LogFormat, "json")
	is.Equal(c.EmailFrom, "recoup@localhost")
	is.Equal(c.WorkerConcurrency, 4)
	is.Equal(c.WorkerPoll, time.Second)
	is.Equal(c.WorkerLease, 5*time.Minute)
	is.Equal(c.EventRetention, 30*24*time.Hour)
	is.Equal(c.Livemode, false)
	is.Equal(c.storageName(), "memory")
	is.Equal(c.PublicURL, "")
	is.Equal(c.ReconcileInterval, time.Hour)
	is.Equal(c.AllowPrivateHooks, false)
}

func TestRecoveryEngineSettings(t *testing.T) {
	is := is.New(t)
	c, err := loadConfig(env("STRIPE_WEBHOOK_SECRET", "whsec_a", "RECOUP_PUBLIC_URL", "https://billing.example.com/",
		"RECOUP_RECONCILE_INTERVAL", "0", "RECOUP_WEBHOOK_ALLOW_PRIVATE", "true"), true)
	is.NoErr(err)
	is.Equal(c.PublicURL, "https://billing.example.com") // without its trailing slash
	is.True(c.ReconcileInterval < 0)                     // 0 turns reconciliation off
	is.True(c.AllowPrivateHooks)
	c, err = loadConfig(env("STRIPE_WEBHOOK_SECRET", "whsec_a", "RECOUP_RECONCILE_INTERVAL", "15m"), true)
	is.NoErr(err)
	is.Equal(c.ReconcileInterval, 15*time.Minute)
}

// A missing or malformed setting stops the process with one line naming the
// variable, exit status 2.
func TestBadSettingsExitTwoNamingTheVariable(t *testing.T) {
	ok := []string{"STRIPE_WEBHOOK_SECRET", "whsec_x"}
	cases := []struct {
		name string
		env  []string
		want string
	}{
		{"no secret", nil, "STRIPE_WEBHOOK_SECRET"},
		{"secret not whsec", []string{"STRIPE_WEBHOOK_SECRET", "sk_live_x"}, "STRIPE_WEBHOOK_SECRET"},
		{"database url", append(ok, "DATABASE_URL", "mysql://x"), "DATABASE_URL"},
		{"log format", append(ok, "RECOUP_LOG_FORMAT", "xml"), "RECOUP_LOG_FORMAT"},
		{"smtp url", append(ok, "RECOUP_SMTP_URL", "http://mail"), "RECOUP_SMTP_URL"},
		{"concurrency", append(ok, "RECOUP_WORKER_CONCURRENCY", "0"), "RECOUP_WORKER_CONCURRENCY"},
		{"poll", append(ok, "RECOUP_WORKER_POLL", "soon"), "RECOUP_WORKER_POLL"},
		{"lease", append(ok, "RECOUP_WORKER_LEASE", "-1m"), "RECOUP_WORKER_LEASE"},
		{"livemode", append(ok, "STRIPE_LIVEMODE", "maybe"), "STRIPE_LIVEMODE"},
		{"api base", append(ok, "STRIPE_API_BASE", "ftp://x"), "STRIPE_API_BASE"},
		{"trust proxy", append(ok, "RECOUP_TRUST_PROXY", "perhaps"), "RECOUP_TRUST_PROXY"},
		{"public url", append(ok, "RECOUP_PUBLIC_URL", "billing.example.com"), "RECOUP_PUBLIC_URL"},
		{"public url with a query", append(ok, "RECOUP_PUBLIC_URL", "https://example.com/?a=1"), "RECOUP_PUBLIC_URL"},
		{"public url with credentials", append(ok, "RECOUP_PUBLIC_URL", "https://u:p@example.com"), "RECOUP_PUBLIC_URL"},
		{"reconcile interval", append(ok, "RECOUP_RECONCILE_INTERVAL", "soon"), "RECOUP_RECONCILE_INTERVAL"},
		{"reconcile interval too short", append(ok, "RECOUP_RECONCILE_INTERVAL", "10s"), "RECOUP_RECONCILE_INTERVAL"},
		{"allow private", append(ok, "RECOUP_WEBHOOK_ALLOW_PRIVATE", "yes please"), "RECOUP_WEBHOOK_ALLOW_PRIVATE"},
		{"weak admin token", append(ok, "RECOUP_ADMIN_TOKEN", "a"), "RECOUP_ADMIN_TOKEN"},
		{"admin token one short", append(ok, "RECOUP_ADMIN_TOKEN", strings.Repeat("x", 31)), "RECOUP_ADMIN_TOKEN"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), []string{"recoup", "serve"}, env(tc.env...), &stdout, &stderr)
			var out bytes.Buffer
			is.Equal(exitCode(err, &out), 2)                                  // bad configuration exits 2
			is.True(strings.Contains(out.String(), tc.want))                  // the line names the variable
			is.Equal(strings.Count(strings.TrimSpace(out.String()), "\n"), 0) // one line
		})
	}
}

func TestAdminTokenOfThirtyTwoCharacters(t *testing.T) {
	is := is.New(t)
	c, err := loadConfig(env("STRIPE_WEBHOOK_SECRET", "whsec_x", "RECOUP_ADMIN_TOKEN", strings.Repeat("x", 32)), true)
	is.NoErr(err) // 32 characters are enough
	is.Equal(len(c.AdminToken), 32)
}

func TestUnknownCommandIsUsageError(t *testing.T) {
	is := is.New(t)
	var stdout, stderr, out bytes.Buffer
	err := run(context.Background(), []string{"recoup", "frobnicate"}, env(), &stdout, &stderr)
	is.Equal(exitCode(err, &out), 2)
	is.True(strings.Contains(stderr.String(), "usage: recoup")) // the usage is shown
}

func TestReconcileNeedsPostgresAndAStripeKey(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"no database", nil, []string{"STRIPE_API_KEY", "sk_test_x"}, "DATABASE_URL"},
		{"no key", nil, []string{"DATABASE_URL", "postgres://localhost/x"}, "STRIPE_API_KEY"},
		{"since zero", []string{"--since", "0s"}, nil, "--since"},
		{"since past 30 days", []string{"--since", "721h"}, nil, "--since"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			var stdout, stderr, out bytes.Buffer
			err := run(context.Background(), append([]string{"recoup", "reconcile"}, tc.args...), env(tc.env...), &stdout, &stderr)
			is.Equal(exitCode(err, &out), 2)                 // a mistake of set-up
			is.True(strings.Contains(out.String(), tc.want)) // says which
			is.Equal(stdout.Len(), 0)                        // and prints no result
		})
	}
}

func TestWorkerWithPublicURLNeedsTheSecret(t *testing.T) {
	is := is.New(t)
	var stdout, stderr, out bytes.Buffer
	err := run(context.Background(), []string{"recoup", "worker"},
		env("DATABASE_URL", "postgres://localhost/x", "RECOUP_PUBLIC_URL", "https://billing.example.com"), &stdout, &stderr)
	is.Equal(exitCode(err, &out), 2)
	is.True(strings.Contains(out.String(), "STRIPE_WEBHOOK_SECRET")) // update links are signed with it
}

func TestWorkerNeedsPostgres(t *testing.T) {
	is := is.New(t)
	var stdout, stderr, out bytes.Buffer
	err := run(context.Background(), []string{"recoup", "worker"}, env(), &stdout, &stderr)
	is.Equal(exitCode(err, &out), 2)
	is.True(strings.Contains(out.String(), "DATABASE_URL"))
}

func TestEffectiveConfigRedactsSecrets(t *testing.T) {
	is := is.New(t)
	c, err := loadConfig(env(
		"STRIPE_WEBHOOK_SECRET", "whsec_topsecret",
		"STRIPE_API_KEY", "sk_test_topsecret",
		"RECOUP_ADMIN_TOKEN", "admintopsecret-admintopsecret-admin",
		"DATABASE_URL", "postgres://u:dbtopsecret@db:5432/recoup?sslmode=disable",
		"RECOUP_SMTP_URL", "smtp://u:smtptopsecret@mail:587",
	), true)
	is.NoErr(err)
	got := c.LogValue().String()
	is.True(!strings.Contains(got, "topsecret")) // no secret is logged
	is.True(strings.Contains(got, "db:5432"))    // but the rest of the URL is
}

// The worker's start-up line shows no listen address: it has none (its
// metrics address is metrics_addr).
func TestWorkerConfigLogHasNoAddr(t *testing.T) {
	is := is.New(t)
	c, err := loadConfig(env(), false)
	is.NoErr(err)
	is.True(strings.Contains(c.LogValue().String(), "addr=:8080")) // serve shows its address
	c.Addr = ""                                                    // as runWorker does
	is.True(!strings.Contains(c.LogValue().String(), " addr="))    // the worker shows none
	is.True(!strings.HasPrefix(c.LogValue().String(), "[addr="))
}
