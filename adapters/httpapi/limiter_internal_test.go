package httpapi

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/matryer/is"
)

func limiterRequest(remote string, forwarded ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/api/tasks", nil)
	r.RemoteAddr = remote
	for _, f := range forwarded {
		r.Header.Add("X-Forwarded-For", f)
	}
	return r
}

func TestLimiterClientKey(t *testing.T) {
	plain := NewAuthLimiter(AuthLimitConfig{})
	proxied := NewAuthLimiter(AuthLimitConfig{TrustForwardedFor: true})
	tests := []struct {
		name string
		l    *AuthLimiter
		r    *http.Request
		want string
	}{
		{"ipv4", plain, limiterRequest("192.0.2.7:5555"), "192.0.2.7"},
		{"ipv6 by /64", plain, limiterRequest("[2001:db8:1:2:aaaa::1]:443"), "2001:db8:1:2::/64"},
		{"ipv6 neighbour shares the /64", plain, limiterRequest("[2001:db8:1:2:ffff::9]:443"), "2001:db8:1:2::/64"},
		{"ipv4-mapped ipv6 is ipv4", plain, limiterRequest("[::ffff:192.0.2.7]:80"), "192.0.2.7"},
		{"forwarded-for ignored by default", plain, limiterRequest("10.0.0.1:1", "198.51.100.9"), "10.0.0.1"},
		{"forwarded-for trusted: last entry", proxied, limiterRequest("10.0.0.1:1", "203.0.113.5, 198.51.100.9"), "198.51.100.9"},
		{"forwarded-for trusted: last header", proxied, limiterRequest("10.0.0.1:1", "203.0.113.5", "198.51.100.10"), "198.51.100.10"},
		{"forwarded-for garbage: connection", proxied, limiterRequest("10.0.0.1:1", "not an address"), "10.0.0.1"},
		{"no port", plain, limiterRequest("192.0.2.8"), "192.0.2.8"},
		{"not an address, bounded", plain, limiterRequest(string(make([]byte, 500))), string(make([]byte, 64))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			is.Equal(tt.l.clientKey(tt.r), tt.want)
		})
	}
}

func TestLimiterMemoryIsBounded(t *testing.T) {
	is := is.New(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := NewAuthLimiter(AuthLimitConfig{MaxFailures: 2, Window: time.Minute, MaxClients: 100, Now: func() time.Time { return now }})
	for i := range 1000 {
		l.failed(limiterRequest(fmt.Sprintf("10.0.%d.%d:1", i/256, i%256)))
		now = now.Add(time.Millisecond)
		is.True(len(l.clients) <= 100) // never more addresses than MaxClients
	}
	// The newest addresses are the ones remembered.
	_, ok := l.clients["10.0.3.231"]
	is.True(ok) // the last address is kept
	_, ok = l.clients["10.0.0.0"]
	is.True(!ok) // the oldest went first

	now = now.Add(time.Minute)
	l.failed(limiterRequest("192.0.2.1:1"))
	is.Equal(len(l.clients), 1) // once their windows are over, old entries are swept, not just one evicted
}

func TestLimiterWindow(t *testing.T) {
	is := is.New(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := NewAuthLimiter(AuthLimitConfig{MaxFailures: 3, Window: time.Minute, Now: func() time.Time { return now }})
	r := limiterRequest("192.0.2.1:1")
	is.True(!l.failed(r))
	now = now.Add(50 * time.Second)
	is.True(!l.failed(r))
	_, refused := l.refused(r)
	is.True(!refused)    // two failures: still allowed
	is.True(l.failed(r)) // the third uses the allowance up
	wait, refused := l.refused(r)
	is.True(refused)               // refused now
	is.Equal(wait, 10*time.Second) // until a minute after the first failure
	now = now.Add(10 * time.Second)
	_, refused = l.refused(r)
	is.True(!refused) // and not after that

	var nilLimiter *AuthLimiter
	_, refused = nilLimiter.refused(r)
	is.True(!refused)              // a nil limiter refuses nothing
	is.True(!nilLimiter.failed(r)) // and counts nothing
	off := NewAuthLimiter(AuthLimitConfig{MaxFailures: -1})
	for range 100 {
		off.failed(r)
	}
	_, refused = off.refused(r)
	is.True(!refused) // negative MaxFailures disables it
}
