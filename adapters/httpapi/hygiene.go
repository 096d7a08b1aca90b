package httpapi

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"
)

// MaxRequestBody is the largest request body accepted on every route that
// has no limit of its own (the webhook has MaxWebhookBody, the admin API
// MaxAdminBody): no other route needs a body at all.
const MaxRequestBody = 64 << 10

// RequestIDHeader names the request id in requests and answers.
const RequestIDHeader = "X-Request-Id"

// maxRequestIDLen bounds an incoming request id that is kept as it is.
const maxRequestIDLen = 64

// RequestObserver is told about every request NewServer answered, for
// metrics. route is the ServeMux pattern that answered it (for example
// "GET /api/tasks/{id}") or "unmatched": a value from a small fixed set,
// never the request's path.
type RequestObserver interface {
	// ObserveRequest records one answered request.
	ObserveRequest(route string, status int, took time.Duration)
}

type requestIDKey struct{}

// RequestIDFrom returns the id NewServer gave the request ("" outside one).
func RequestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// withRequestID gives every request an id: the caller's X-Request-Id when
// it is a sane one (so that a proxy's id follows the request through), a
// new random one otherwise. The id is in the answer's X-Request-Id and in
// the context, where the log handler of NewLogHandler finds it.
func withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(RequestIDHeader)
		if !validRequestID(id) {
			id = rand.Text()
		}
		w.Header().Set(RequestIDHeader, id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id)))
	})
}

// validRequestID accepts 1 to 64 characters of [A-Za-z0-9._-]: enough for
// UUIDs and the ids of common proxies, nothing that could forge a log line.
func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// NewLogHandler wraps next so that every record logged with a request's
// context carries that request's request_id. Give the use cases a logger
// built on it (the webhook delivery line is logged by the use case, with
// the request's context) and their lines carry the id too. NewServer wraps
// its own logger already.
func NewLogHandler(next slog.Handler) slog.Handler {
	if h, ok := next.(*requestIDHandler); ok {
		return h
	}
	return &requestIDHandler{next: next}
}

type requestIDHandler struct{ next slog.Handler }

func (h *requestIDHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestIDFrom(ctx); id != "" {
		r = r.Clone()
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.next.Handle(ctx, r)
}

func (h *requestIDHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &requestIDHandler{next: h.next.WithAttrs(attrs)}
}

func (h *requestIDHandler) WithGroup(name string) slog.Handler {
	return &requestIDHandler{next: h.next.WithGroup(name)}
}

// withLogHandler returns log with its handler wrapped by NewLogHandler.
func withLogHandler(log *slog.Logger) *slog.Logger {
	if _, ok := log.Handler().(*requestIDHandler); ok {
		return log
	}
	return slog.New(NewLogHandler(log.Handler()))
}

// statusRecorder remembers the status a handler answered, for metrics and
// for the panic handler (which must not write a second status line).
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusRecorder) Flush() {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	// A writer that cannot flush simply answers later; nothing to do.
	_ = http.NewResponseController(s.ResponseWriter).Flush()
}

// recorderOf returns the statusRecorder observe put around w, if any.
func recorderOf(w http.ResponseWriter) *statusRecorder {
	for {
		switch v := w.(type) {
		case *statusRecorder:
			return v
		case interface{ Unwrap() http.ResponseWriter }:
			w = v.Unwrap()
		default:
			return nil
		}
	}
}

// unmatchedRoute is the route label of a request no pattern but a
// catch-all answered (a 404), or a redirect of the router.
const unmatchedRoute = "unmatched"

type routeKey struct{}

// route collects the most specific pattern that answered a request. The
// muxes are nested (NewServer's, then the task or admin API's), each
// working on its own copy of the request; the innermost one writes first.
type route struct{ pattern string }

// recordRoute notes, after mux has answered, which of its patterns matched
// the request, unless a mux nested inside it already did.
func recordRoute(mux http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if rt, ok := r.Context().Value(routeKey{}).(*route); ok && rt.pattern == "" {
				rt.pattern = r.Pattern
			}
		}()
		mux.ServeHTTP(w, r)
	})
}

// observe reports every request to obs with its route and status.
func observe(obs RequestObserver, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		rt := &route{}
		defer func() {
			status := rec.status
			if status == 0 {
				// Nothing written: net/http answers 200 with no body.
				status = http.StatusOK
			}
			name := rt.pattern
			if name == "" || name == "/" || (status >= 300 && status < 400) {
				// The router's own redirects (to a cleaned path, or the
				// path with a slash) report the request's path as their
				// pattern: no label for that. recoup answers no other 3xx.
				name = unmatchedRoute
			}
			obs.ObserveRequest(name, status, time.Since(start))
		}()
		next.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), routeKey{}, rt)))
	})
}

// recoverPanics answers a panicking handler with a JSON 500 and one ERROR
// line with the stack, instead of net/http's dropped connection, and the
// server goes on serving. http.ErrAbortHandler is passed on: it is how a
// handler asks for exactly that dropped connection. If the handler had
// already begun its answer, the connection is dropped too: a 500 can no
// longer be sent, and a truncated answer must not look complete.
func recoverPanics(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := recorderOf(w)
		if rec == nil {
			rec = &statusRecorder{ResponseWriter: w}
			w = rec
		}
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
				panic(v)
			}
			log.LogAttrs(r.Context(), slog.LevelError, "handler panicked",
				slog.String("method", r.Method), slog.String("path", r.URL.Path),
				slog.String("panic", fmt.Sprint(v)), slog.String("stack", string(debug.Stack())))
			if rec.status != 0 {
				panic(http.ErrAbortHandler)
			}
			writeJSON(w, http.StatusInternalServerError, errorBody{Error: "Internal server error"})
		}()
		next.ServeHTTP(w, r)
	})
}

// limitBody refuses a body over limit: at once (413) when its length is
// announced, else when the handler reads past it. Routes that read no body
// are covered too, so that nobody can make the server read megabytes it
// will throw away.
func limitBody(limit int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > limit {
			w.Header().Set("Connection", "close")
			writeErrorStatus(w, http.StatusRequestEntityTooLarge,
				bodyTooLarge(limit))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		next.ServeHTTP(w, r)
	})
}
