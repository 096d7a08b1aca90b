// Package httpapi is recoup's HTTP adapter: the Stripe webhook endpoint, the
// tenant task API, the admin API and the health endpoints, on net/http with
// method-and-path patterns, JSON in and out and log/slog.
//
// Handlers hold no business rules: they decode and validate the request,
// call a use case of package app, and map its result or error to HTTP in
// one place (errors.go). Every route is listed in routes.go.
//
// # Embedding
//
// NewServer mounts everything at the paths of API.md. The pieces are also
// separate http.Handlers for a service that has its own router:
//
//   - NewWebhookHandler answers POST at whatever path it is mounted on, so it
//     needs no prefix handling: mux.Handle("POST /billing/stripe", h).
//   - NewTaskAPI and NewAdminAPI route on the API.md paths (/api/…,
//     /admin/…). To serve them under a prefix, strip the prefix and keep the
//     API.md path: mux.Handle("/billing/api/", http.StripPrefix("/billing",
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
// a silently different page. Processes that serve the same clients need the
// same key; without one each process draws a random key, and cursors then
// stop working at a restart or on another instance (a client starts the
// walk again).
package httpapi
