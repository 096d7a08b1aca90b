package httpapi

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/recoupdev/recoup/app"
	"github.com/recoupdev/recoup/ports"
)

// Config is what NewServer needs.
type Config struct {
	Verifier  ports.WebhookVerifier // required
	Webhooks  *app.WebhookService   // required
	Tasks     *app.TaskService      // required
	Merchants *app.MerchantService  // required
	Policies  *app.PolicyService    // required
	// Resolver decides the merchant of a task API request; nil means
	// APIKeyResolver over Merchants.
	Resolver MerchantResolver
	// AdminToken enables the admin API; empty answers 404 there.
	AdminToken string
	// CursorKey authenticates task list cursors; see TaskAPIOptions.
	CursorKey []byte
	// Ready reports whether storage is reachable (its Ping); nil is always
	// ready.
	Ready func(context.Context) error
	// Metrics, when set, is served at GET /metrics.
	Metrics http.Handler
	// Requests, when set, is told about every request (route, status,
	// latency).
	Requests RequestObserver
	// Endpoints, when set, serves /api/webhook-endpoints: the merchants'
	// outbound webhook endpoints and their deliveries.
	Endpoints *app.EndpointService
	// UpdateLinks, when set, serves GET /update/{token}, the customers'
	// update links.
	UpdateLinks *app.UpdateLinkService
	// Dashboard, when set, is served at /dashboard and below (see
	// adapters/dashboard): it sets its own headers and limits its own
	// forms.
	Dashboard http.Handler
	// Observer is told about the webhook deliveries refused before the use
	// case (bad signature, too large): give it the use case's observer, so
	// that one place sees every delivery. nil: nobody.
	Observer ports.Observer
	// AuthLimiter refuses client addresses that fail to authenticate too
	// often, on the task and the admin API alike (one allowance for both);
	// nil means no limit. recoup serve sets one with the default settings.
	AuthLimiter *AuthLimiter
	// Logger receives the adapter's own lines (refused requests, 5xx
	// errors, panics); nil discards. Each line of a request carries its
	// request_id (see NewLogHandler).
	Logger *slog.Logger
}

type server struct {
	cfg     Config
	log     *slog.Logger
	webhook http.Handler
	tasks   http.Handler
	admin   http.Handler
}

// NewServer returns recoup's whole HTTP API at the paths of api/openapi.yaml, with
// JSON answers for unknown paths, wrong methods and panics. Every request
// gets a request id (X-Request-Id), a body limit, a 500 instead of a dead
// connection if a handler panics, and is reported to Config.Requests. It
// panics if a required dependency is missing: that is a wiring mistake,
// found at start.
func NewServer(cfg Config) http.Handler {
	if cfg.Verifier == nil || cfg.Webhooks == nil || cfg.Tasks == nil || cfg.Merchants == nil || cfg.Policies == nil {
		panic("httpapi: NewServer needs Verifier, Webhooks, Tasks, Merchants and Policies")
	}
	s := &server{cfg: cfg, log: withLogHandler(orDiscard(cfg.Logger))}
	resolver := cfg.Resolver
	if resolver == nil {
		resolver = APIKeyResolver{Merchants: cfg.Merchants}
	}
	s.webhook = NewWebhookHandler(cfg.Verifier, cfg.Webhooks, cfg.Observer, s.log)
	s.tasks = NewTaskAPI(cfg.Tasks, resolver, TaskAPIOptions{CursorKey: cfg.CursorKey, Logger: s.log, AuthLimiter: cfg.AuthLimiter,
		Policies: cfg.Policies, Endpoints: cfg.Endpoints})
	s.admin = newAdminAPI(cfg.Merchants, cfg.AdminToken, cfg.AuthLimiter, s.log)
	mux := http.NewServeMux()
	s.routes(mux)
	return s.middleware(recordRoute(mux))
}

// middleware wraps the router, outermost first: the request id (so that
// every later line has it), the observer (so that it sees the panic's 500),
// then the panic handler.
func (s *server) middleware(h http.Handler) http.Handler {
	h = recoverPanics(s.log, h)
	if s.cfg.Requests != nil {
		h = observe(s.cfg.Requests, h)
	}
	return withRequestID(h)
}

func orDiscard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}
