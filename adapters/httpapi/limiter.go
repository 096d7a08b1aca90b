package httpapi

import (
	"container/list"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults of AuthLimitConfig.
const (
	DefaultAuthFailures   = 20
	DefaultAuthWindow     = time.Minute
	DefaultAuthMaxClients = 10000
)

// AuthLimitConfig tunes an AuthLimiter. Zero fields take the defaults.
type AuthLimitConfig struct {
	// MaxFailures is how many failed authentications (401s) a client
	// address may have within Window before its further attempts are
	// refused; negative disables the limiter.
	MaxFailures int
	// Window is counted from an address's first failure; when it is over,
	// the address starts again from zero.
	Window time.Duration
	// MaxClients bounds how many addresses are remembered at once. When it
	// is reached, addresses whose window is over are forgotten first, then
	// the one whose window began longest ago.
	MaxClients int
	// TrustForwardedFor takes the client address from the last entry of
	// X-Forwarded-For, the one the proxy in front of recoup appended. Set
	// it only when every request reaches recoup through such a proxy:
	// otherwise a client picks its own address and escapes the limit.
	// Without it, the address is the connection's (RemoteAddr), which
	// behind a proxy is the proxy's: all clients would then share one
	// allowance.
	TrustForwardedFor bool
	// Now is the clock; nil is time.Now. Tests move it.
	Now func() time.Time
}

// AuthLimiter slows down guessing of API keys and the admin token: once a
// client address has failed to authenticate MaxFailures times within
// Window, its further requests to the task and admin APIs are answered 429
// with Retry-After, before any credential is looked at, until the window is
// over. Other addresses are not affected, and a success does not reset the
// count (so an attacker holding one valid key cannot use it to keep
// guessing). IPv6 clients are counted by /64, the block one subscriber
// usually holds. It is safe for concurrent use, and its memory is bounded
// by MaxClients.
type AuthLimiter struct {
	cfg     AuthLimitConfig
	mu      sync.Mutex
	clients map[string]*list.Element // of *authFailures
	// byAge holds the same entries ordered by the start of their window,
	// oldest first, so that forgetting old ones costs O(1) per entry even
	// when an attacker sprays from more addresses than are remembered.
	byAge list.List
}

type authFailures struct {
	key   string
	since time.Time // first failure of the window
	count int
}

// NewAuthLimiter returns a limiter with cfg's settings.
func NewAuthLimiter(cfg AuthLimitConfig) *AuthLimiter {
	if cfg.MaxFailures == 0 {
		cfg.MaxFailures = DefaultAuthFailures
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultAuthWindow
	}
	if cfg.MaxClients <= 0 {
		cfg.MaxClients = DefaultAuthMaxClients
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &AuthLimiter{cfg: cfg, clients: make(map[string]*list.Element)}
}

func (l *AuthLimiter) disabled() bool { return l == nil || l.cfg.MaxFailures < 0 }

// refused reports whether the request's address is over its allowance and,
// if so, how long until it may try again.
func (l *AuthLimiter) refused(r *http.Request) (time.Duration, bool) {
	if l.disabled() {
		return 0, false
	}
	addr := l.clientKey(r)
	now := l.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.clients[addr]
	if !ok {
		return 0, false
	}
	f := e.Value.(*authFailures)
	end := f.since.Add(l.cfg.Window)
	if !now.Before(end) {
		l.forget(e)
		return 0, false
	}
	if f.count < l.cfg.MaxFailures {
		return 0, false
	}
	return end.Sub(now), true
}

// failed counts a failed authentication of the request's address and
// reports whether that used up its allowance.
func (l *AuthLimiter) failed(r *http.Request) bool {
	if l.disabled() {
		return false
	}
	addr := l.clientKey(r)
	now := l.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	var f *authFailures
	if e, ok := l.clients[addr]; ok {
		f = e.Value.(*authFailures)
		if !now.Before(f.since.Add(l.cfg.Window)) {
			f.since, f.count = now, 0 // a new window
			l.byAge.MoveToBack(e)
		}
	} else {
		l.makeRoom(now)
		f = &authFailures{key: addr, since: now}
		l.clients[addr] = l.byAge.PushBack(f)
	}
	f.count++
	return f.count == l.cfg.MaxFailures
}

// makeRoom is called before an insert: it forgets the addresses whose
// window is over, and if the map is still full, the oldest one.
func (l *AuthLimiter) makeRoom(now time.Time) {
	for e := l.byAge.Front(); e != nil; e = l.byAge.Front() {
		if now.Before(e.Value.(*authFailures).since.Add(l.cfg.Window)) {
			break // ordered by age: the rest are younger
		}
		l.forget(e)
	}
	if len(l.clients) >= l.cfg.MaxClients {
		l.forget(l.byAge.Front())
	}
}

func (l *AuthLimiter) forget(e *list.Element) {
	delete(l.clients, e.Value.(*authFailures).key)
	l.byAge.Remove(e)
}

// clientKey is the address failures are counted under.
func (l *AuthLimiter) clientKey(r *http.Request) string {
	if l.cfg.TrustForwardedFor {
		if vs := r.Header.Values("X-Forwarded-For"); len(vs) > 0 {
			last := vs[len(vs)-1]
			if i := strings.LastIndexByte(last, ','); i >= 0 {
				last = last[i+1:]
			}
			if a, err := netip.ParseAddr(strings.TrimSpace(last)); err == nil {
				return addrKey(a)
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return addrKey(a)
	}
	if len(host) > 64 {
		host = host[:64]
	}
	return host
}

// addrKey counts IPv4 addresses one by one, IPv6 by /64.
func addrKey(a netip.Addr) string {
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, err := a.WithZone("").Prefix(64)
	if err != nil {
		return a.String()
	}
	return p.String()
}

// admit reports whether the request may try to authenticate; if not, it
// has answered 429 with Retry-After, before any credential was looked at.
func (l *AuthLimiter) admit(w http.ResponseWriter, r *http.Request) bool {
	wait, refused := l.refused(r)
	if !refused {
		return true
	}
	secs := int((wait + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
	writeJSON(w, http.StatusTooManyRequests, errorBody{
		Error: fmt.Sprintf("Too many failed authentication attempts from this address; retry in %d s", max(secs, 1)),
	})
	return false
}

// noteFailure counts a failed authentication, logging the moment an
// address is cut off (once per window, not once per refused request, so
// that an attack cannot flood the log).
func (l *AuthLimiter) noteFailure(r *http.Request, log *slog.Logger) {
	if l.failed(r) {
		log.LogAttrs(r.Context(), slog.LevelWarn, "too many failed authentications: address refused for the rest of the window",
			slog.String("client", l.clientKey(r)), slog.Int("failures", l.cfg.MaxFailures),
			slog.Duration("window", l.cfg.Window))
	}
}

// Refused reports whether the request's address is over its allowance
// and, if so, how long until it may try again: for another adapter's
// sign-in (the dashboard), which shares the allowance.
func (l *AuthLimiter) Refused(r *http.Request) (time.Duration, bool) { return l.refused(r) }

// NoteFailure counts a failed authentication of the request's address,
// logging the moment the address is cut off.
func (l *AuthLimiter) NoteFailure(r *http.Request, log *slog.Logger) { l.noteFailure(r, log) }
