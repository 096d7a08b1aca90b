package httpapi_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/recoupdev/recoup/adapters/httpapi"
)

// BenchmarkRequestChain measures what the request hygiene and metrics add
// to a request: GET /healthz through NewServer (request id, metrics, panic
// guard, body limit, router) against the bare health handler.
func BenchmarkRequestChain(b *testing.B) {
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{
		{"bare", httpapi.NewHealthHandler()},
		{"server", newObEnv(b, obOptions{}).handler},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				bc.h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/healthz", nil))
				if w.Code != http.StatusOK {
					b.Fatalf("status %d", w.Code)
				}
			}
		})
	}
}

// BenchmarkAuthLimiterUnderSpray measures a failed authentication while
// an attacker sprays from more addresses than the limiter remembers, so
// that every failure evicts: the worst case of its memory bound.
func BenchmarkAuthLimiterUnderSpray(b *testing.B) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := httpapi.NewAuthLimiter(httpapi.AuthLimitConfig{Now: func() time.Time { return now }})
	e := newObEnv(b, obOptions{limiter: l})
	reqs := make([]*http.Request, 2*httpapi.DefaultAuthMaxClients)
	for i := range reqs {
		r := httptest.NewRequest(http.MethodGet, "/api/tasks", nil)
		r.RemoteAddr = fmt.Sprintf("10.%d.%d.%d:1234", i>>16&255, i>>8&255, i&255)
		r.Header.Set("Authorization", "Bearer rk_bad_key")
		reqs[i] = r
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		w := httptest.NewRecorder()
		e.handler.ServeHTTP(w, reqs[i%len(reqs)])
		if w.Code != http.StatusUnauthorized {
			b.Fatalf("status %d", w.Code)
		}
		i++
	}
	b.ReportMetric(float64(httpapi.DefaultAuthMaxClients), "addresses_kept")
}
