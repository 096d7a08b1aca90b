package main

// envVar is one environment variable recoup reads. The table below is the
// one list: every command's --help prints its rows, and the tests check it
// against loadConfig (the same names, the same defaults) and against the
// configuration reference in docs/configuration.md.
type envVar struct {
	Name    string
	Default string // as written in help and docs: a value, "unset", "required" or "Stripe's"
	Meaning string // one line
}

var envVars = []envVar{
	{"RECOUP_ADDR", ":8080", "listen address, host:port (serve --addr overrides it)"},
	{"DATABASE_URL", "unset", "PostgreSQL, postgres://… (serve without it keeps everything in memory)"},
	{"STRIPE_WEBHOOK_SECRET", "required", "the endpoint's signing secret(s), whsec_…, comma-separated during a rotation"},
	{"STRIPE_API_KEY", "unset", "platform secret key for payment retries; unset: they fail, emails still go out"},
	{"STRIPE_API_BASE", "Stripe's", "base URL of the Stripe API (e.g. a stripe-mock)"},
	{"STRIPE_LIVEMODE", "false", "which events count; events of the other mode are acknowledged and ignored"},
	{"RECOUP_ADMIN_TOKEN", "unset", "enables the admin API; unset: /admin answers 404"},
	{"RECOUP_LOG_FORMAT", "json", "json or text"},
	{"RECOUP_SMTP_URL", "unset", "smtp://user:pass@host:port or smtps://…; unset: emails are written to the log"},
	{"RECOUP_EMAIL_FROM", "recoup@localhost", "sender of customer emails"},
	{"RECOUP_WORKER_CONCURRENCY", "4", "tasks run at once per process (1–1024)"},
	{"RECOUP_WORKER_POLL", "1s", "longest wait before due work is noticed"},
	{"RECOUP_WORKER_LEASE", "5m", "how long a claimed task stays with its worker"},
	{"RECOUP_METRICS_ADDR", "unset", "address serving /metrics, /healthz and /readyz apart from the API"},
	{"RECOUP_TRUST_PROXY", "false", "count failed logins by the last X-Forwarded-For address (behind a proxy only)"},
	{"RECOUP_EVENT_RETENTION", "720h", "how long idempotency locks are kept before hourly pruning"},
	{"RECOUP_PUBLIC_URL", "unset", "external base URL (https://…): emails' update links; https: Secure dashboard cookies"},
	{"RECOUP_RECONCILE_INTERVAL", "1h", "how often the worker reconciles undelivered Stripe events; 0 turns it off"},
	{"RECOUP_WEBHOOK_ALLOW_PRIVATE", "false", "let merchants' webhook endpoints be on loopback or private addresses"},
}

// The variables each command reads, by name (all of them are checked at
// start: loadConfig refuses a malformed one whichever command runs).
var (
	serveEnv = []string{
		"RECOUP_ADDR", "DATABASE_URL", "STRIPE_WEBHOOK_SECRET", "STRIPE_API_KEY", "STRIPE_API_BASE",
		"STRIPE_LIVEMODE", "RECOUP_ADMIN_TOKEN", "RECOUP_LOG_FORMAT", "RECOUP_SMTP_URL", "RECOUP_EMAIL_FROM",
		"RECOUP_WORKER_CONCURRENCY", "RECOUP_WORKER_POLL", "RECOUP_WORKER_LEASE", "RECOUP_TRUST_PROXY",
		"RECOUP_EVENT_RETENTION", "RECOUP_METRICS_ADDR", "RECOUP_PUBLIC_URL", "RECOUP_RECONCILE_INTERVAL",
		"RECOUP_WEBHOOK_ALLOW_PRIVATE",
	}
	workerEnv = []string{
		"DATABASE_URL", "STRIPE_API_KEY", "STRIPE_API_BASE", "RECOUP_LOG_FORMAT", "RECOUP_SMTP_URL",
		"RECOUP_EMAIL_FROM", "RECOUP_WORKER_CONCURRENCY", "RECOUP_WORKER_POLL", "RECOUP_WORKER_LEASE",
		"RECOUP_METRICS_ADDR", "RECOUP_EVENT_RETENTION", "STRIPE_WEBHOOK_SECRET", "RECOUP_PUBLIC_URL",
		"RECOUP_RECONCILE_INTERVAL", "RECOUP_WEBHOOK_ALLOW_PRIVATE",
	}
	reconcileEnv = []string{"DATABASE_URL", "STRIPE_API_KEY", "STRIPE_API_BASE", "STRIPE_LIVEMODE", "RECOUP_LOG_FORMAT"}
	databaseEnv  = []string{"DATABASE_URL"}
	devEnv       = []string{"STRIPE_WEBHOOK_SECRET", "RECOUP_ADDR"}
)

// lookupEnvVar returns the table's row for name.
func lookupEnvVar(name string) (envVar, bool) {
	for _, v := range envVars {
		if v.Name == name {
			return v, true
		}
	}
	return envVar{}, false
}
