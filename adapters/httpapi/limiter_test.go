package httpapi_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/adapters/httpapi"
	"github.com/recoupdev/recoup/internal/clocktest"
)

// lmClient sends requests from a given loopback address, so that the
// server sees another client (Linux routes all of 127.0.0.0/8 to the
// loopback interface).
type lmClient struct {
	t    testing.TB
	base string
	c    *http.Client
}

func newLMClient(t testing.TB, base, ip string) *lmClient {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &lmClient{t: t, base: base, c: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

func (c *lmClient) do(method, path, token string, body []byte) response {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := c.c.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

func TestFailedKeysAreLimitedPerAddress(t *testing.T) {
	is := is.New(t)
	clock := clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	limiter := httpapi.NewAuthLimiter(httpapi.AuthLimitConfig{Now: clock.Now})
	e := newObEnv(t, obOptions{limiter: limiter})
	acme := e.env.createMerchant("Acme")
	attacker := newLMClient(t, e.srv.URL, "127.0.0.2")
	other := newLMClient(t, e.srv.URL, "127.0.0.3")

	statuses := map[int]int{}
	for i := range 50 {
		r := attacker.do(http.MethodGet, "/api/tasks", "rk_guess_"+strings.Repeat("x", i), nil)
		statuses[r.status]++
		if r.status == http.StatusTooManyRequests {
			is.Equal(r.header.Get("Retry-After"), "60")                     // until the window (1 min from the first failure) is over
			is.True(strings.Contains(r.errorMessage(t), "Too many failed")) // a JSON error that says why
		}
	}
	is.Equal(statuses[http.StatusUnauthorized], httpapi.DefaultAuthFailures)       // the first 20 failures are answered 401
	is.Equal(statuses[http.StatusTooManyRequests], 50-httpapi.DefaultAuthFailures) // every later attempt 429

	r := attacker.do(http.MethodGet, "/api/tasks", acme.Key, nil)
	is.Equal(r.status, http.StatusTooManyRequests) // refused before the key is even looked at: a right guess is not revealed

	r = attacker.do(http.MethodPost, "/admin/merchants", adminToken, []byte(`{}`))
	is.Equal(r.status, http.StatusTooManyRequests) // the admin API shares the allowance: no second set of guesses there

	r = other.do(http.MethodGet, "/api/tasks", acme.Key, nil)
	is.Equal(r.status, http.StatusOK) // another address is unaffected
	r = other.do(http.MethodGet, "/api/tasks", "rk_wrong_key", nil)
	is.Equal(r.status, http.StatusUnauthorized) // and has its own allowance

	clock.Add(45 * time.Second)
	r = attacker.do(http.MethodGet, "/api/tasks", acme.Key, nil)
	is.Equal(r.status, http.StatusTooManyRequests) // still inside the window
	is.Equal(r.header.Get("Retry-After"), "15")    // which ends in 15 s

	clock.Add(15 * time.Second)
	r = attacker.do(http.MethodGet, "/api/tasks", acme.Key, nil)
	is.Equal(r.status, http.StatusOK) // after the window a valid key from that address works again
	r = attacker.do(http.MethodGet, "/api/tasks", "rk_wrong_key", nil)
	is.Equal(r.status, http.StatusUnauthorized) // and failures are counted from zero

	warned := 0
	for _, l := range e.logs.lines(t) {
		if strings.HasPrefix(l["msg"].(string), "too many failed authentications") {
			warned++
			is.Equal(l["client"], "127.0.0.2") // names the address
		}
	}
	is.Equal(warned, 1) // one line when the address is cut off, not one per refused request
}

func TestFailedAdminTokensAreLimited(t *testing.T) {
	is := is.New(t)
	clock := clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	limiter := httpapi.NewAuthLimiter(httpapi.AuthLimitConfig{MaxFailures: 3, Window: 10 * time.Second, Now: clock.Now})
	e := newObEnv(t, obOptions{limiter: limiter})
	attacker := newLMClient(t, e.srv.URL, "127.0.0.4")
	body := []byte(`{"name":"Evil","stripe_account_id":"acct_evil"}`)
	var got []int
	for range 5 {
		got = append(got, attacker.do(http.MethodPost, "/admin/merchants", "guess", body).status)
	}
	is.Equal(got, []int{401, 401, 401, 429, 429}) // refused after 3 failures
	r := attacker.do(http.MethodPost, "/admin/merchants", adminToken, body)
	is.Equal(r.status, http.StatusTooManyRequests) // even with the right token, until the window ends
	clock.Add(10 * time.Second)
	r = attacker.do(http.MethodPost, "/admin/merchants", adminToken, body)
	is.Equal(r.status, http.StatusCreated) // then the right token works
}

func TestWithoutLimiterNothingIsRefused(t *testing.T) {
	is := is.New(t)
	e := newObEnv(t, obOptions{})
	c := newLMClient(t, e.srv.URL, "127.0.0.5")
	for range 30 {
		is.Equal(c.do(http.MethodGet, "/api/tasks", "rk_bad_key", nil).status, http.StatusUnauthorized) // no limiter configured: always 401
	}
}
