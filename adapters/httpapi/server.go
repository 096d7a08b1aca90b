package httpapi

import (
	"context"
	"errors"
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
	// Logger receives the adapter's own lines (refused requests, 5xx
	// errors); nil discards.
	Logger *slog.Logger
}

type server struct {
	cfg     Config
	log     *slog.Logger
	webhook http.Handler
	tasks   http.Handler
	admin   http.Handler
}

// NewServer returns recoup's whole HTTP API at the paths of API.md, with
// JSON answers for unknown paths, wrong methods and panics. It panics if a
// required dependency is missing: that is a wiring mistake, found at start.
func NewServer(cfg Config) http.Handler {
	if cfg.Verifier == nil || cfg.Webhooks == nil || cfg.Tasks == nil || cfg.Merchants == nil {
		panic("httpapi: NewServer needs Verifier, Webhooks, Tasks and Merchants")
	}
	s := &server{cfg: cfg, log: orDiscard(cfg.Logger)}
	resolver := cfg.Resolver
	if resolver == nil {
		resolver = APIKeyResolver{Merchants: cfg.Merchants}
	}
	s.webhook = NewWebhookHandler(cfg.Verifier, cfg.Webhooks, s.log)
	s.tasks = NewTaskAPI(cfg.Tasks, resolver, TaskAPIOptions{CursorKey: cfg.CursorKey, Logger: s.log})
	s.admin = NewAdminAPI(cfg.Merchants, cfg.AdminToken, s.log)
	mux := http.NewServeMux()
	s.routes(mux)
	return recoverPanics(s.log, mux)
}

// recoverPanics answers a panicking handler with a JSON 500 and logs it,
// instead of net/http's dropped connection.
func recoverPanics(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
				panic(v)
			}
			log.LogAttrs(r.Context(), slog.LevelError, "handler panicked",
				slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("panic", v))
			writeJSON(w, http.StatusInternalServerError, errorBody{Error: "Internal server error"})
		}()
		next.ServeHTTP(w, r)
	})
}

func orDiscard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}
