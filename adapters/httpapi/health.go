package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"time"
)

// ReadyTimeout bounds one readiness check.
const ReadyTimeout = 2 * time.Second

type statusJSON struct {
	Status string `json:"status"`
}

// NewHealthHandler answers 200 {"status":"ok"} whenever the process can
// answer at all: it checks nothing else, so that an orchestrator does not
// restart a healthy process because its database is briefly away.
func NewHealthHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, statusJSON{Status: "ok"})
	})
}

// NewReadyHandler answers 200 when ready (typically the storage's Ping)
// succeeds within ReadyTimeout, else 503. A nil ready is always ready.
// Failures are logged at WARN; a nil logger discards.
func NewReadyHandler(ready func(context.Context) error, log *slog.Logger) http.Handler {
	log = orDiscard(log)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ready != nil {
			ctx, cancel := context.WithTimeout(r.Context(), ReadyTimeout)
			defer cancel()
			if err := ready(ctx); err != nil {
				log.LogAttrs(r.Context(), slog.LevelWarn, "not ready", slog.String("error", err.Error()))
				writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "storage unreachable"})
				return
			}
		}
		writeJSON(w, http.StatusOK, statusJSON{Status: "ok"})
	})
}
