package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/recoupdev/recoup/internal/pgtest"
	"github.com/recoupdev/recoup/internal/stripetest"
)

// recoupCommand runs a maintenance subcommand to its end and returns stdout.
func recoupCommand(t *testing.T, databaseURL string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "DATABASE_URL="+databaseURL, "STRIPE_WEBHOOK_SECRET="+testSecret)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String(), fmt.Errorf("%v: %s", err, stderr.String())
	}
	return stdout.String(), nil
}

// migratedDatabase makes a fresh database with recoup's schema through the
// `recoup migrate up` command.
func migratedDatabase(t *testing.T) string {
	t.Helper()
	url := pgtest.NewDatabase(t)
	out, err := recoupCommand(t, url, "migrate", "up")
	if err != nil {
		t.Fatalf("recoup migrate up: %v", err)
	}
	if !strings.Contains(out, "pending: 0") {
		t.Fatalf("after migrate up, status says:\n%s", out)
	}
	return url
}

func TestServeRefusesPendingMigrations(t *testing.T) {
	url := pgtest.NewDatabase(t)
	cmd := exec.Command(binary, "serve", "--addr", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+url, "STRIPE_WEBHOOK_SECRET="+testSecret)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("serve started on an unmigrated database")
	}
	if !strings.Contains(string(out), "recoup migrate up") {
		t.Errorf("the refusal does not name the command to run:\n%s", out)
	}
}

func TestMigrateAndMerchantCreateCommands(t *testing.T) {
	url := migratedDatabase(t)
	out, err := recoupCommand(t, url, "merchant", "create", "--name", "Acme", "--stripe-account", "acct_1Cmd")
	if err != nil {
		t.Fatalf("merchant create: %v", err)
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("merchant create printed no JSON: %v\n%s", err, out)
	}
	if m["id"] == "" || !strings.HasPrefix(m["api_key"], m["api_key_prefix"]+"_") || m["stripe_account_id"] != "acct_1Cmd" {
		t.Errorf("merchant create printed %v", m)
	}
	if _, err := recoupCommand(t, url, "merchant", "create", "--name", "Again", "--stripe-account", "acct_1Cmd"); err == nil {
		t.Errorf("a second merchant on one Stripe account was created")
	}
	out, err = recoupCommand(t, url, "migrate", "down", "--yes")
	if err != nil || !strings.Contains(out, "applied: 0") {
		t.Errorf("migrate down: %v\n%s", err, out)
	}
}

// TestTwoProcessesShareOneDatabase: two `recoup serve` processes on one
// database receive a storm of duplicate deliveries, split between them;
// each event's effects are applied exactly once.
func TestTwoProcessesShareOneDatabase(t *testing.T) {
	url := migratedDatabase(t)
	a := startServe(t, []string{"DATABASE_URL=" + url}, "--worker=false")
	b := startServe(t, []string{"DATABASE_URL=" + url}, "--worker=false")
	createMerchant(t, a.base, "acct_1Storm")

	const events, duplicates = 20, 10
	type outcome struct {
		event     int
		status    int
		processed bool
		reason    string
	}
	results := make(chan outcome, events*duplicates)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for e := 0; e < events; e++ {
		payload := failedInvoiceEvent("acct_1Storm")
		for d := 0; d < duplicates; d++ {
			base := a.base
			if d%2 == 1 {
				base = b.base
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				status, ans := deliver(t, base, payload)
				results <- outcome{e, status, ans.Processed, ans.Reason}
			}()
		}
	}
	close(start)
	wg.Wait()
	close(results)

	processed := make([]int, events)
	for r := range results {
		if r.status != http.StatusOK {
			t.Errorf("event %d: status %d", r.event, r.status)
			continue
		}
		if r.processed {
			processed[r.event]++
		} else if !strings.Contains(r.reason, "handled by parallel worker") {
			t.Errorf("event %d: duplicate reason %q", r.event, r.reason)
		}
	}
	for e, n := range processed {
		if n != 1 {
			t.Errorf("event %d processed %d times, want exactly once", e, n)
		}
	}
	db := pgtest.Open(t, url)
	var tasks, locks int
	ctx := context.Background()
	if err := db.NewRaw("SELECT count(*) FROM tasks").Scan(ctx, &tasks); err != nil {
		t.Fatal(err)
	}
	if err := db.NewRaw("SELECT count(*) FROM processed_events").Scan(ctx, &locks); err != nil {
		t.Fatal(err)
	}
	// Each invoice.payment_failed (attempt 1, no Stripe retry) makes the
	// default policy's plan: a notice, two reminders and a payment retry.
	if tasks != 4*events || locks != events {
		t.Errorf("%d tasks and %d locks; want %d and %d", tasks, locks, 4*events, events)
	}
}

// proxy is a TCP proxy between recoup and PostgreSQL that a test can cut.
type proxy struct {
	t      *testing.T
	ln     net.Listener
	target string
	mu     sync.Mutex
	open   bool
	conns  []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, ln: ln, target: target, open: true}
	go p.accept()
	t.Cleanup(func() { ln.Close(); p.cut() })
	return p
}

func (p *proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if !p.open {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		go func() { io.Copy(up, c); up.Close() }()
		go func() { io.Copy(c, up); c.Close() }()
	}
}

// cut closes every proxied connection and refuses new ones.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.open = false
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.open = true
}

// TestPostgresOutage: with PostgreSQL unreachable the webhook answers 503 and
// /readyz 503, nothing is half-written; once it is back, the redelivery
// succeeds without restarting recoup.
func TestPostgresOutage(t *testing.T) {
	url := migratedDatabase(t)
	host, port := pgHostPort(t, url)
	px := newProxy(t, net.JoinHostPort(host, port))
	proxied := strings.Replace(url, net.JoinHostPort(host, port), px.ln.Addr().String(), 1)

	p := startServe(t, []string{"DATABASE_URL=" + proxied}, "--worker=false")
	createMerchant(t, p.base, "acct_1Outage")
	if got := getStatus(t, p.base+"/readyz"); got != http.StatusOK {
		t.Fatalf("/readyz before the outage: %d", got)
	}

	px.cut()
	payload := failedInvoiceEvent("acct_1Outage")
	status, ans := deliver(t, p.base, payload)
	if status != http.StatusServiceUnavailable {
		t.Errorf("webhook during the outage: %d %+v; want 503", status, ans)
	}
	if got := getStatus(t, p.base+"/readyz"); got != http.StatusServiceUnavailable {
		t.Errorf("/readyz during the outage: %d; want 503", got)
	}

	db := pgtest.Open(t, url)
	var kept int
	if err := db.NewRaw("SELECT (SELECT count(*) FROM tasks) + (SELECT count(*) FROM processed_events)").Scan(context.Background(), &kept); err != nil {
		t.Fatal(err)
	}
	if kept != 0 {
		t.Errorf("%d rows of the failed delivery were kept", kept)
	}

	px.restore()
	status, ans = deliver(t, p.base, payload)
	if status != http.StatusOK || !ans.Processed || len(ans.Tasks) != 4 {
		t.Errorf("redelivery after the outage: %d %+v; want 200, processed, 4 tasks", status, ans)
	}
	if got := getStatus(t, p.base+"/readyz"); got != http.StatusOK {
		t.Errorf("/readyz after the outage: %d", got)
	}
}

func pgHostPort(t *testing.T, databaseURL string) (string, string) {
	t.Helper()
	rest := databaseURL[strings.Index(databaseURL, "@")+1:]
	hostport := rest[:strings.IndexAny(rest, "/?")]
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatalf("database URL %q: %v", databaseURL, err)
	}
	return host, port
}

// TestReconcileCommand: recoup reconcile processes an event Stripe could
// not deliver, prints its counts as one JSON line and exits 0; run again,
// the event is a duplicate.
func TestReconcileCommand(t *testing.T) {
	url := migratedDatabase(t)
	if _, err := recoupCommand(t, url, "merchant", "create", "--name", "Acme", "--stripe-account", "acct_1Reconcile"); err != nil {
		t.Fatalf("merchant create: %v", err)
	}
	api := stripetest.NewAPI(t)
	api.AddEvent("acct_1Reconcile", failedInvoiceEvent("acct_1Reconcile"), false)
	api.AddEvent("acct_1Reconcile", failedInvoiceEvent("acct_1Reconcile"), true) // delivered: not listed

	reconcile := func() map[string]int {
		t.Helper()
		cmd := exec.Command(binary, "reconcile", "--since", "24h")
		cmd.Env = append(os.Environ(), "DATABASE_URL="+url, "STRIPE_API_KEY=sk_test_reconcile", "STRIPE_API_BASE="+api.URL())
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("recoup reconcile: %v\n%s", err, stderr.String())
		}
		if strings.Count(stdout.String(), "\n") != 1 {
			t.Fatalf("recoup reconcile printed more than one line:\n%s", stdout.String())
		}
		var counts map[string]int
		if err := json.Unmarshal(stdout.Bytes(), &counts); err != nil {
			t.Fatalf("recoup reconcile printed no JSON: %v\n%s", err, stdout.String())
		}
		return counts
	}
	want := map[string]int{"merchants": 1, "listed": 1, "processed": 1, "duplicates": 0, "ignored": 0, "failed": 0}
	if got := reconcile(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("first run: %v; want %v", got, want)
	}
	want["processed"], want["duplicates"] = 0, 1
	if got := reconcile(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("second run: %v; want %v", got, want)
	}
	db := pgtest.Open(t, url)
	var tasks int
	if err := db.NewRaw("SELECT count(*) FROM tasks").Scan(context.Background(), &tasks); err != nil {
		t.Fatal(err)
	}
	if tasks != 4 {
		t.Errorf("%d tasks; want the 4 of one failure", tasks)
	}
}
