// Package httpapi is recoup's HTTP adapter: the Stripe webhook endpoint, the
// tenant task API (with the merchant's policy and outbound webhook
// endpoints), the admin API and the health endpoints, on net/http with
// method-and-path patterns, JSON in and out and log/slog.
//
// Handlers hold no business rules: they decode and validate the request,
// call a use case of package app, and map its result or error to HTTP in
// one place (errors.go). Every route is listed in routes.go.
//
// # Embedding
//
// NewServer mounts everything at the paths of api/openapi.yaml. The pieces are also
// separate http.Handlers for a service that has its own router:
//
//   - NewWebhookHandler answers POST at whatever path it is mounted on, so it
//     needs no prefix handling: mux.Handle("POST /billing/stripe", h).
//   - NewTaskAPI and NewAdminAPI route on the documented paths (/api/…,
//     /admin/…). To serve them under a prefix, strip the prefix and keep the
//     documented path: mux.Handle("/billing/api/", http.StripPrefix("/billing",
//     tasks)) serves GET /billing/api/tasks. Mount it with a method-less
//     pattern like this one, so that the task API answers wrong methods
//     itself (405); note that Go's ServeMux refuses such a pattern beside a
//     host's "GET /" catch-all (register "GET /{$}" for a home page instead).
//
// The task API decides which merchant a request acts for through a
// MerchantResolver. The default, APIKeyResolver, reads recoup's merchant API
// keys; an embedder plugs in its own (session, JWT, mTLS) instead. Whatever
// the resolver, the tenant rules stay in the use cases: every task use case
// takes the resolved merchant and scopes its storage query to it.
//
// # Cursors
//
// The task list's next_cursor is opaque: a position (creation time, task
// id) authenticated with an HMAC under Config.CursorKey and bound to the
// merchant, so a forged, truncated or borrowed cursor is a 400 rather than
// a silently different page. An endpoint's deliveries are paged the same
// way, their cursors bound to the merchant and the endpoint. Processes that serve the same clients need the
// same key; without one each process draws a random key, and cursors then
// stop working at a restart or on another instance (a client starts the
// walk again).
//
// # Request hygiene
//
// NewServer gives every request an id: a sane incoming X-Request-Id (1 to
// 64 characters of A-Z a-z 0-9 . _ -) is kept, anything else is replaced by
// a random one; the id is sent back in X-Request-Id and put in the context.
// A logger whose handler is wrapped by NewLogHandler adds it as request_id
// to every line logged with that context, the use cases' lines included
// (cmd/recoup wraps the process logger). A panicking handler is answered
// 500 {"error": "Internal server error"} with one ERROR line holding the
// panic and the stack, and the server goes on; if the answer had already
// begun, the connection is dropped instead so that the truncated answer
// does not pass for a whole one. Every route has a body limit: the webhook
// MaxWebhookBody (256 KiB), the admin API MaxAdminBody (64 KiB), everything
// else MaxRequestBody (64 KiB); an announced length over it is refused 413
// before a byte is read. NewHTTPServer is the http.Server to run it with:
// ReadHeaderTimeout 5 s (a slow-loris client is cut off), ReadTimeout 30 s,
// WriteTimeout 30 s, IdleTimeout 2 min, headers up to 64 KiB.
//
// # Failed authentication
//
// Given an AuthLimiter (Config.AuthLimiter; recoup serve sets one), the
// task API and the admin API count failed authentications (401s: missing,
// malformed, unknown or revoked API keys, wrong admin tokens) per client
// address. After 20 failures within one minute (counted from the first) an
// address gets 429 with Retry-After on both APIs until that minute is
// over, before its credentials are even looked at; other addresses are not
// affected, and a success does not reset the count. IPv6 addresses are
// counted by /64. At most 10,000 addresses are remembered: past that,
// addresses whose minute is over are forgotten, then the oldest. The client
// address is the connection's; behind a reverse proxy set
// AuthLimitConfig.TrustForwardedFor so that the last X-Forwarded-For entry
// (the one the proxy appended) counts instead, and only then: a client
// reaching recoup directly could otherwise choose its own address.
//
// # Metrics
//
// Config.Metrics is served at GET /metrics; Config.Requests is told the
// route (the ServeMux pattern that answered, such as "GET /api/tasks/{id}",
// or "unmatched"), status and latency of every request. Webhook deliveries
// refused before the use case (bad signature, too large) are reported as
// rejected to the webhook service's ports.Observer. Package
// adapters/metrics implements both.
package httpapi
