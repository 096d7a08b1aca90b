package main

import (
	"cmp"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// config is recoup's configuration, read from the environment (see
// docs/configuration.md).
type config struct {
	Addr              string
	DatabaseURL       string
	WebhookSecrets    []string
	StripeAPIKey      string
	StripeAPIBase     string
	AdminToken        string
	LogFormat         string
	SMTPURL           string
	EmailFrom         string
	WorkerConcurrency int
	WorkerPoll        time.Duration
	WorkerLease       time.Duration
	EventRetention    time.Duration
	Livemode          bool
	TrustProxy        bool
	MetricsAddr       string
	PublicURL         string
	ReconcileInterval time.Duration // negative: off
	AllowPrivateHooks bool
}

// minAdminToken is the shortest admin token accepted: the admin API can
// create merchants and their keys, so its token must resist guessing.
const minAdminToken = 32

// configError is a missing or malformed setting: the process stops at start
// with one line naming the variable, exit status 2.
type configError struct {
	Var string
	Msg string
}

func (e *configError) Error() string { return e.Var + ": " + e.Msg }

// loadConfig reads the environment through getenv. needSecret is false for
// the subcommands that never receive webhooks.
func loadConfig(getenv func(string) string, needSecret bool) (config, error) {
	c := config{
		Addr:         or(getenv("RECOUP_ADDR"), ":8080"),
		DatabaseURL:  getenv("DATABASE_URL"),
		StripeAPIKey: getenv("STRIPE_API_KEY"),
		AdminToken:   getenv("RECOUP_ADMIN_TOKEN"),
		LogFormat:    or(getenv("RECOUP_LOG_FORMAT"), "json"),
		SMTPURL:      getenv("RECOUP_SMTP_URL"),
		EmailFrom:    or(getenv("RECOUP_EMAIL_FROM"), "recoup@localhost"),
		MetricsAddr:  getenv("RECOUP_METRICS_ADDR"),
	}
	if err := checkListenAddr(c.Addr); err != nil {
		return c, &configError{"RECOUP_ADDR", err.Error()}
	}
	for _, s := range strings.Split(getenv("STRIPE_WEBHOOK_SECRET"), ",") {
		if s = strings.TrimSpace(s); s != "" {
			if !strings.HasPrefix(s, "whsec_") {
				return c, &configError{"STRIPE_WEBHOOK_SECRET", "each secret must start with whsec_"}
			}
			c.WebhookSecrets = append(c.WebhookSecrets, s)
		}
	}
	if needSecret && len(c.WebhookSecrets) == 0 {
		return c, &configError{"STRIPE_WEBHOOK_SECRET", "is required (the webhook endpoint's signing secret, whsec_…; a comma-separated list during rotation)"}
	}
	if c.AdminToken != "" && len(c.AdminToken) < minAdminToken {
		return c, &configError{"RECOUP_ADMIN_TOKEN", fmt.Sprintf("must be at least %d characters (for instance: openssl rand -hex 32)", minAdminToken)}
	}
	if c.DatabaseURL != "" {
		if u, err := url.Parse(c.DatabaseURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			return c, &configError{"DATABASE_URL", "must be a postgres:// URL"}
		}
	}
	if base := getenv("STRIPE_API_BASE"); base != "" {
		if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return c, &configError{"STRIPE_API_BASE", "must be an http(s) URL"}
		}
		c.StripeAPIBase = strings.TrimRight(base, "/")
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		return c, &configError{"RECOUP_LOG_FORMAT", "must be json or text"}
	}
	if c.SMTPURL != "" {
		if u, err := url.Parse(c.SMTPURL); err != nil || (u.Scheme != "smtp" && u.Scheme != "smtps") || u.Hostname() == "" {
			return c, &configError{"RECOUP_SMTP_URL", "must be smtp://user:pass@host:port or smtps://…"}
		}
	}
	var err error
	if c.WorkerConcurrency, err = intVar(getenv, "RECOUP_WORKER_CONCURRENCY", 4, 1, 1024); err != nil {
		return c, err
	}
	if c.WorkerPoll, err = durationVar(getenv, "RECOUP_WORKER_POLL", time.Second); err != nil {
		return c, err
	}
	if c.WorkerLease, err = durationVar(getenv, "RECOUP_WORKER_LEASE", 5*time.Minute); err != nil {
		return c, err
	}
	if c.EventRetention, err = durationVar(getenv, "RECOUP_EVENT_RETENTION", 30*24*time.Hour); err != nil {
		return c, err
	}
	if v := getenv("STRIPE_LIVEMODE"); v != "" {
		if c.Livemode, err = strconv.ParseBool(v); err != nil {
			return c, &configError{"STRIPE_LIVEMODE", "must be true or false"}
		}
	}
	if v := getenv("RECOUP_TRUST_PROXY"); v != "" {
		if c.TrustProxy, err = strconv.ParseBool(v); err != nil {
			return c, &configError{"RECOUP_TRUST_PROXY", "must be true or false"}
		}
	}
	if v := getenv("RECOUP_PUBLIC_URL"); v != "" {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
			u.RawQuery != "" || u.Fragment != "" {
			return c, &configError{"RECOUP_PUBLIC_URL", "must be the deployment's external base URL, such as https://billing.example.com"}
		}
		c.PublicURL = strings.TrimSuffix(v, "/")
	}
	c.ReconcileInterval = time.Hour
	if v := getenv("RECOUP_RECONCILE_INTERVAL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || (d > 0 && d < time.Minute) {
			return c, &configError{"RECOUP_RECONCILE_INTERVAL", "must be a duration of at least 1m, such as 1h, or 0 to turn reconciliation off"}
		}
		c.ReconcileInterval = cmp.Or(d, -1)
	}
	if v := getenv("RECOUP_WEBHOOK_ALLOW_PRIVATE"); v != "" {
		if c.AllowPrivateHooks, err = strconv.ParseBool(v); err != nil {
			return c, &configError{"RECOUP_WEBHOOK_ALLOW_PRIVATE", "must be true or false"}
		}
	}
	return c, nil
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func intVar(getenv func(string) string, name string, def, lo, hi int) (int, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, &configError{name, fmt.Sprintf("must be a whole number from %d to %d", lo, hi)}
	}
	return n, nil
}

func durationVar(getenv func(string) string, name string, def time.Duration) (time.Duration, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, &configError{name, "must be a positive duration such as 1s, 5m or 720h"}
	}
	return d, nil
}

// LogValue is the effective configuration with every secret redacted, for
// the start-up log line.
func (c config) LogValue() slog.Value {
	redact := func(s string) string {
		if s == "" {
			return ""
		}
		return "[redacted]"
	}
	var attrs []slog.Attr
	if c.Addr != "" { // none for recoup worker
		attrs = append(attrs, slog.String("addr", c.Addr))
	}
	return slog.GroupValue(append(attrs,
		slog.String("storage", c.storageName()),
		slog.String("database_url", redactURL(c.DatabaseURL)),
		slog.Int("webhook_secrets", len(c.WebhookSecrets)),
		slog.String("stripe_api_key", redact(c.StripeAPIKey)),
		slog.String("stripe_api_base", c.StripeAPIBase),
		slog.Bool("admin_api", c.AdminToken != ""),
		slog.String("log_format", c.LogFormat),
		slog.String("smtp_url", redactURL(c.SMTPURL)),
		slog.String("email_from", c.EmailFrom),
		slog.Int("worker_concurrency", c.WorkerConcurrency),
		slog.String("worker_poll", c.WorkerPoll.String()),
		slog.String("worker_lease", c.WorkerLease.String()),
		slog.String("event_retention", c.EventRetention.String()),
		slog.Bool("livemode", c.Livemode),
		slog.Bool("trust_proxy", c.TrustProxy),
		slog.String("metrics_addr", c.MetricsAddr),
		slog.String("public_url", c.PublicURL),
		slog.String("reconcile_interval", max(c.ReconcileInterval, 0).String()),
		slog.Bool("webhook_allow_private", c.AllowPrivateHooks),
	)...)
}

func (c config) storageName() string {
	if c.DatabaseURL == "" {
		return "memory"
	}
	return "postgres"
}

// redactURL hides a URL's password, in its user part or its query (and the
// whole value if it does not parse, since it might be a secret).
func redactURL(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil {
		return "[redacted]"
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// checkListenAddr checks a listen address before anything starts: host:port
// (the host may be empty, a name, an IPv4 or a bracketed IPv6 address),
// with a numeric port from 0 to 65535 (0: any free port).
func checkListenAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("must be host:port, such as :8080 or 127.0.0.1:8080 (got %q)", addr)
	}
	n, err := strconv.Atoi(port)
	if port == "" || strings.Trim(port, "0123456789") != "" || err != nil || n > 65535 {
		return fmt.Errorf("the port must be a number from 0 to 65535 (got %q)", addr)
	}
	return nil
}
