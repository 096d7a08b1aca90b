package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/adapters/httpapi"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/stripetest"
)

// hyServe serves h with the production http.Server of NewHTTPServer, with
// its timeouts changed by tune (to keep the test short), on a loopback
// port; it returns the address.
func hyServe(t *testing.T, h http.Handler, tune func(*http.Server)) string {
	t.Helper()
	srv := httpapi.NewHTTPServer(h, slog.New(slog.DiscardHandler))
	tune(srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

func TestNewHTTPServerHasTimeouts(t *testing.T) {
	is := is.New(t)
	srv := httpapi.NewHTTPServer(http.NotFoundHandler(), nil)
	is.Equal(srv.ReadHeaderTimeout, 5*time.Second) // slow headers are cut off
	is.Equal(srv.ReadTimeout, 30*time.Second)      // slow bodies are cut off
	is.Equal(srv.WriteTimeout, 30*time.Second)     // slow readers are cut off
	is.Equal(srv.IdleTimeout, 2*time.Minute)       // idle connections are closed
	is.True(srv.MaxHeaderBytes > 0 && srv.MaxHeaderBytes <= 1<<20)
	is.True(srv.ErrorLog != nil) // net/http's errors reach the log
}

// slowClient sends msg one byte per interval on a fresh connection until
// the server closes it. It returns how many bytes it sent before it saw
// the connection closed, and what the server answered (if anything).
func slowClient(addr string, msg string, interval time.Duration) (sent int, answer string, err error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, "", err
	}
	defer conn.Close()
	closed := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(conn) // returns when the server closes
		closed <- string(b)
	}()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for sent < len(msg) {
		select {
		case answer = <-closed:
			return sent, answer, nil
		case <-tick.C:
		}
		if _, err := conn.Write([]byte{msg[sent]}); err != nil {
			// The server's close reached us as a reset.
			return sent, <-closed, nil
		}
		sent++
	}
	// Everything sent: the server did not cut us off. Give it the chance to
	// answer, so that the test can show what happened.
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	return sent, <-closed, nil
}

func TestSlowLorisIsCutOffWhileOthersAreServed(t *testing.T) {
	is := is.New(t)
	e := newObEnv(t, obOptions{})
	addr := hyServe(t, e.handler, func(s *http.Server) { s.ReadHeaderTimeout = 1500 * time.Millisecond })

	// Headers that would take over a minute at one byte a second.
	header := "GET /healthz HTTP/1.1\r\nHost: recoup.test\r\nUser-Agent: slow-loris/1.0 (one byte a second)\r\n\r\n"
	type result struct {
		sent   int
		answer string
		err    error
	}
	slow := make(chan result, 1)
	go func() {
		sent, answer, err := slowClient(addr, header, time.Second)
		slow <- result{sent, answer, err}
	}()

	// Meanwhile, other clients are answered.
	client := &http.Client{Timeout: 5 * time.Second}
	answered := 0
	var res result
wait:
	for {
		select {
		case res = <-slow:
			break wait
		default:
		}
		r, err := client.Get("http://" + addr + "/healthz")
		is.NoErr(err) // another client is served while the slow one hangs on
		r.Body.Close()
		is.Equal(r.StatusCode, http.StatusOK)
		answered++
		time.Sleep(50 * time.Millisecond)
	}
	is.NoErr(res.err)
	is.True(res.sent < len(header))                  // the server closed the connection before the headers were complete
	is.True(!strings.Contains(res.answer, "200 OK")) // and never served the slow request
	is.True(answered > 0)                            // other clients were served meanwhile
	t.Logf("slow client cut off after %d of %d header bytes; %d other requests answered meanwhile", res.sent, len(header), answered)
}

func TestSlowBodyIsCutOff(t *testing.T) {
	is := is.New(t)
	e := newObEnv(t, obOptions{})
	addr := hyServe(t, e.handler, func(s *http.Server) { s.ReadTimeout = 1500 * time.Millisecond })

	body := strings.Repeat("x", 100)
	msg := fmt.Sprintf("POST /webhooks/stripe HTTP/1.1\r\nHost: recoup.test\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	conn, err := net.Dial("tcp", addr)
	is.NoErr(err)
	defer conn.Close()
	head := msg[:len(msg)-len(body)]
	_, err = conn.Write([]byte(head)) // the headers arrive at once
	is.NoErr(err)
	closed := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(conn)
		closed <- string(b)
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	sent := 0
	var answer string
send:
	for sent < len(body) {
		select {
		case answer = <-closed:
			break send
		case <-tick.C:
		}
		if _, err := conn.Write([]byte{body[sent]}); err != nil {
			answer = <-closed
			break
		}
		sent++
	}
	is.True(sent < len(body)) // the server stopped waiting for the body
	if answer != "" {
		// Whatever it answered, it was not a delivery it accepted.
		status, err := http.ReadResponse(bufio.NewReader(strings.NewReader(answer)), nil)
		is.NoErr(err)
		is.True(status.StatusCode >= 400) // a slow body is refused
	}
}

func TestHandlerPanicIsA500AndTheServerGoesOn(t *testing.T) {
	var panicking atomic.Bool
	e := newObEnv(t, obOptions{
		// The readiness check is a dependency NewServer calls from a
		// handler: a panic there goes through the whole middleware chain.
		ready: func(context.Context) error {
			if panicking.Load() {
				panic("storage driver bug")
			}
			return nil
		},
		// A resolver that panics when told to: the task API's handler chain.
		resolver: httpapi.MerchantResolverFunc(func(r *http.Request) (domain.Merchant, error) {
			panic(fmt.Sprintf("resolver bug at %s", r.URL.Path))
		}),
	})

	t.Run("readiness", func(t *testing.T) {
		is := is.New(t)
		panicking.Store(true)
		r := e.env.with(t).do(http.MethodGet, "/readyz", nil, "X-Request-Id", "panic-req-1")
		is.Equal(r.status, http.StatusInternalServerError)                    // a panic answers 500
		is.Equal(r.errorMessage(t), "Internal server error")                  // with the usual JSON error
		is.Equal(r.header.Get("X-Request-Id"), "panic-req-1")                 // and the request id
		is.True(strings.HasPrefix(r.header.Get("Content-Type"), contentJSON)) // as JSON

		panicking.Store(false)
		r = e.env.with(t).do(http.MethodGet, "/readyz", nil)
		is.Equal(r.status, http.StatusOK) // the next request works

		var found []map[string]any
		for _, l := range e.logs.lines(t) {
			if l["msg"] == "handler panicked" && l["request_id"] == "panic-req-1" {
				found = append(found, l)
			}
		}
		is.Equal(len(found), 1)                                                  // one log line per panic
		is.Equal(found[0]["level"], "ERROR")                                     // at ERROR
		is.Equal(found[0]["panic"], "storage driver bug")                        // with the panic
		is.True(strings.Contains(fmt.Sprint(found[0]["stack"]), "hygiene_test")) // and the stack down to the culprit
	})

	t.Run("task API", func(t *testing.T) {
		is := is.New(t)
		for range 3 {
			r := e.env.with(t).do(http.MethodGet, "/api/tasks", nil)
			is.Equal(r.status, http.StatusInternalServerError) // every panicking request is a 500, none kills the server
		}
		r := e.env.with(t).do(http.MethodGet, "/healthz", nil)
		is.Equal(r.status, http.StatusOK) // the server still serves
	})
}

func TestPanicAfterAnswerBegunDropsTheConnection(t *testing.T) {
	is := is.New(t)
	e := newObEnv(t, obOptions{metrics: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "# half of an answer\n")
		panic("collector bug")
	})})
	_, err := e.env.send(http.MethodGet, "/metrics", nil)
	is.True(err != nil) // the truncated answer is not passed off as complete
	r := e.env.do(http.MethodGet, "/healthz", nil)
	is.Equal(r.status, http.StatusOK) // and the server goes on
	n := 0
	for _, l := range e.logs.lines(t) {
		if l["msg"] == "handler panicked" {
			n++
		}
	}
	is.Equal(n, 1) // logged once
}

func TestRequestIDs(t *testing.T) {
	e := newObEnv(t, obOptions{})
	tests := []struct {
		name  string
		given string
		kept  bool
	}{
		{"none given", "", false},
		{"uuid kept", "0b7c6e1e-3f5a-4a8e-9f0e-1c2d3e4f5a6b", true},
		{"proxy id kept", "req_01HZX.abc-DEF", true},
		{"64 characters kept", strings.Repeat("a", 64), true},
		{"65 characters replaced", strings.Repeat("a", 65), false},
		{"spaces replaced", "two words", false},
		{"log forging replaced", "x\",\"level\":\"ERROR", false},
		{"non-ASCII replaced", "réq", false},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			var headers []string
			if tt.given != "" {
				headers = []string{"X-Request-Id", tt.given}
			}
			for _, path := range []string{"/healthz", "/no/such/path", "/api/tasks"} {
				r := e.env.with(t).do(http.MethodGet, path, nil, headers...)
				id := r.header.Get("X-Request-Id")
				is.True(id != "")      // every answer has a request id
				is.True(len(id) <= 64) // a sane one
				if tt.kept {
					is.Equal(id, tt.given) // a sane incoming id is kept
				} else {
					is.True(id != tt.given) // anything else is replaced
					is.True(!seen[id])      // by a fresh id
					seen[id] = true
				}
			}
		})
	}
}

func TestRequestIDOnEveryLogLineOfTheRequest(t *testing.T) {
	is := is.New(t)
	e := newObEnv(t, obOptions{})

	// The admin API logs the creation; the request id comes along.
	body := []byte(`{"name":"Acme","stripe_account_id":"acct_reqid"}`)
	r := e.env.do(http.MethodPost, "/admin/merchants", bytes.NewReader(body),
		"Authorization", "Bearer "+adminToken, "Content-Type", contentJSON, "X-Request-Id", "req-admin-1")
	is.Equal(r.status, http.StatusCreated)

	// The webhook's delivery line is the use case's; it carries the id too.
	evt := stripetest.NewID("evt_")
	payload := paymentFailed(evt, "acct_reqid", stripetest.NewID("in_"))
	r = e.env.do(http.MethodPost, "/webhooks/stripe", bytes.NewReader(payload), "Content-Type", contentJSON,
		"Stripe-Signature", stripetest.Sign(payload, testSecret, time.Now()), "X-Request-Id", "req-hook-1")
	is.Equal(r.status, http.StatusOK)
	is.Equal(r.header.Get("X-Request-Id"), "req-hook-1")

	// A refused delivery: the adapter's own WARN line.
	r = e.env.do(http.MethodPost, "/webhooks/stripe", bytes.NewReader(payload), "Content-Type", contentJSON,
		"Stripe-Signature", "t=1,v1=00", "X-Request-Id", "req-bad-1")
	is.Equal(r.status, http.StatusBadRequest)

	// An unauthenticated admin request: the adapter's refusal line.
	r = e.env.do(http.MethodPost, "/admin/merchants", nil, "Authorization", "Bearer wrong", "X-Request-Id", "req-admin-2")
	is.Equal(r.status, http.StatusUnauthorized)

	byID := map[string][]string{}
	for _, l := range e.logs.lines(t) {
		id, _ := l["request_id"].(string)
		byID[id] = append(byID[id], fmt.Sprint(l["msg"]))
		if l["event_id"] == evt {
			is.Equal(id, "req-hook-1") // every line about the event carries its request's id
		}
	}
	is.Equal(byID["req-admin-1"], []string{"merchant created"})
	is.Equal(byID["req-hook-1"], []string{"webhook delivery"})
	is.Equal(byID["req-bad-1"], []string{"webhook rejected"})
	is.Equal(byID["req-admin-2"], []string{"admin request refused"})
}

func TestLogHandlerWithoutRequest(t *testing.T) {
	is := is.New(t)
	var buf bytes.Buffer
	h := httpapi.NewLogHandler(slog.NewJSONHandler(&buf, nil))
	is.Equal(httpapi.NewLogHandler(h), h) // wrapping twice adds nothing
	log := slog.New(h).With("component", "worker")
	log.InfoContext(context.Background(), "no request here")
	is.True(!strings.Contains(buf.String(), "request_id")) // lines outside a request have no request_id
	is.True(strings.Contains(buf.String(), `"component":"worker"`))
}

func TestBodyLimitOnEveryRoute(t *testing.T) {
	e := newObEnv(t, obOptions{})
	m := e.env.createMerchant("Acme")
	big := bytes.Repeat([]byte("x"), httpapi.MaxRequestBody+1)
	tests := []struct {
		method, path string
		headers      []string
	}{
		{http.MethodGet, "/healthz", nil},
		{http.MethodGet, "/readyz", nil},
		{http.MethodGet, "/metrics", nil},
		{http.MethodGet, "/no/such/path", nil},
		{http.MethodGet, "/api/tasks", []string{"Authorization", "Bearer " + m.Key}},
		{http.MethodPost, "/api/tasks/" + domain.NewID() + "/retry", []string{"Authorization", "Bearer " + m.Key}},
		{http.MethodPost, "/admin/merchants", []string{"Authorization", "Bearer " + adminToken}},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			is := is.New(t)
			r := e.env.with(t).do(tt.method, tt.path, bytes.NewReader(big), tt.headers...)
			is.Equal(r.status, http.StatusRequestEntityTooLarge) // a body over the limit is refused
			is.Equal(r.errorMessage(t), "request body larger than 64 KiB")
		})
	}
	t.Run("webhook keeps its own limit", func(t *testing.T) {
		is := is.New(t)
		r := e.env.with(t).do(http.MethodPost, "/webhooks/stripe", bytes.NewReader(big), "Stripe-Signature", "t=1,v1=00")
		is.Equal(r.status, http.StatusBadRequest) // 64 KiB is still fine for the webhook (then its signature fails)
		r = e.env.with(t).do(http.MethodPost, "/webhooks/stripe", bytes.NewReader(make([]byte, httpapi.MaxWebhookBody+1)))
		is.Equal(r.status, http.StatusRequestEntityTooLarge) // over 256 KiB it is not
	})
}
