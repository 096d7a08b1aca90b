package httpapi

import (
	"log/slog"
	"net/http"
	"time"
)

// Timeouts of NewHTTPServer. A client that sends its headers slowly (slow
// loris) is cut off after ReadHeaderTimeout, a slow body after ReadTimeout;
// an answer must be written within WriteTimeout; an idle keep-alive
// connection is closed after IdleTimeout. No answer of recoup takes long:
// the longest is a webhook delivery waiting for a parallel delivery's lock.
const (
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 30 * time.Second
	WriteTimeout      = 30 * time.Second
	IdleTimeout       = 2 * time.Minute
	// MaxHeaderBytes bounds a request's header block; recoup's requests
	// carry a few small headers.
	MaxHeaderBytes = 64 << 10
)

// NewHTTPServer returns an http.Server for h with the timeouts above, and
// net/http's own errors (TLS handshakes, broken connections) logged at
// WARN. The caller sets Addr or calls Serve with a listener, and may set
// BaseContext.
func NewHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(orDiscard(log).Handler(), slog.LevelWarn),
	}
}
