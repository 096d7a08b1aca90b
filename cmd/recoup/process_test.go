package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/recoupdev/recoup/internal/logtest"
	"github.com/recoupdev/recoup/internal/stripetest"
)

// binary is the recoup command built once for the process tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "recoup-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "recoup")
	// -buildvcs=true: in a git checkout the binary records its commit
	// (TestVersionFromVCS), even where GOFLAGS turns stamping off.
	build := exec.Command("go", "build", "-race", "-buildvcs=true", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build recoup:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const testSecret = "whsec_recoup_process_test"
const adminToken = "process-test-admin-token-of-32-characters"

// process is a running `recoup` child.
type process struct {
	t    *testing.T
	cmd  *exec.Cmd
	base string // http://127.0.0.1:port
	logs *logtest.Buffer
	done chan error
}

// startServe starts `recoup serve` on a free port with env added to the
// test settings and waits until it listens.
func startServe(t *testing.T, env []string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(os.Environ(), "STRIPE_WEBHOOK_SECRET="+testSecret, "RECOUP_ADMIN_TOKEN="+adminToken, "RECOUP_LOG_FORMAT=json")
	cmd.Env = append(cmd.Env, env...)
	pr, pw := io.Pipe()
	p := &process{t: t, cmd: cmd, logs: &logtest.Buffer{}, done: make(chan error, 1)}
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatalf("start recoup: %v", err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.logs.Write([]byte(line + "\n"))
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" {
				addr <- rec.Addr
			}
		}
	}()
	go func() {
		err := cmd.Wait()
		pw.Close()
		p.done <- err
	}()
	select {
	case a := <-addr:
		p.base = "http://" + a
	case err := <-p.done:
		t.Fatalf("recoup serve exited at start: %v\n%s", err, p.logs.String())
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("recoup serve did not listen in time:\n%s", p.logs.String())
	}
	t.Cleanup(func() { p.stop() })
	return p
}

// stop sends SIGTERM and returns the exit error (nil: exit status 0).
func (p *process) stop() error {
	if p.cmd.ProcessState != nil {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(40 * time.Second):
		_ = p.cmd.Process.Kill()
		return fmt.Errorf("no exit within 40 s of SIGTERM")
	}
}

// webhookAnswer is the JSON of a webhook answer.
type webhookAnswer struct {
	Processed bool     `json:"processed"`
	Action    string   `json:"action"`
	Reason    string   `json:"reason"`
	Tasks     []string `json:"tasks"`
	Error     string   `json:"error"`
}

// deliver posts a signed event and returns the status and answer.
func deliver(t *testing.T, base string, payload []byte) (int, webhookAnswer) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/webhooks/stripe", bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Stripe-Signature", stripetest.Sign(payload, testSecret, time.Now()))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("deliver: %v", err)
		return 0, webhookAnswer{}
	}
	defer resp.Body.Close()
	var a webhookAnswer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Errorf("webhook answer is not JSON: %v", err)
	}
	return resp.StatusCode, a
}

// createMerchant uses the admin API and returns the merchant's API key.
func createMerchant(t *testing.T, base, account string) string {
	t.Helper()
	body := fmt.Sprintf(`{"name": "Shop %s", "stripe_account_id": %q}`, account, account)
	req, _ := http.NewRequest(http.MethodPost, base+"/admin/merchants", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("create merchant: %v", err)
	}
	defer resp.Body.Close()
	var m struct {
		APIKey string `json:"api_key"`
	}
	if resp.StatusCode != http.StatusCreated || json.NewDecoder(resp.Body).Decode(&m) != nil {
		t.Fatalf("create merchant: status %d", resp.StatusCode)
	}
	return m.APIKey
}

func getStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func failedInvoiceEvent(account string) []byte {
	return stripetest.Event{Type: "invoice.payment_failed", Account: account, Object: stripetest.Invoice{
		Customer: stripetest.NewID("cus_"), CustomerEmail: "jenny.rosen@example.com",
		AmountDue: 2000, Currency: "usd", AttemptCount: 1, HostedInvoiceURL: "https://invoice.stripe.com/i/x",
	}}.JSON()
}

// TestServeOnMemoryAndSIGTERM: the default binary starts on the in-memory
// storage, saying so, handles an event, and exits 0 on SIGTERM.
func TestServeOnMemoryAndSIGTERM(t *testing.T) {
	p := startServe(t, nil)
	if !strings.Contains(p.logs.String(), "nothing survives a restart") {
		t.Errorf("the server does not say that memory storage keeps nothing")
	}
	createMerchant(t, p.base, "acct_1Memory")
	status, a := deliver(t, p.base, failedInvoiceEvent("acct_1Memory"))
	if status != http.StatusOK || !a.Processed || len(a.Tasks) != 4 {
		t.Errorf("first delivery: status %d, answer %+v; want 200, processed with 4 tasks (a notice, two reminders, a retry)", status, a)
	}
	if got := getStatus(t, p.base+"/healthz"); got != http.StatusOK {
		t.Errorf("/healthz: %d", got)
	}
	if got := getStatus(t, p.base+"/dashboard/signin"); got != http.StatusOK {
		t.Errorf("/dashboard/signin: %d; the binary serves the dashboard", got)
	}
	if err := p.stop(); err != nil {
		t.Errorf("SIGTERM: %v; want exit status 0\n%s", err, p.logs.String())
	}
	if strings.Contains(p.logs.String(), testSecret) || strings.Contains(p.logs.String(), adminToken) {
		t.Errorf("a secret was logged")
	}
}

// TestSIGTERMDrainsInFlightRequests: a request in flight when SIGTERM
// arrives is answered before the process exits 0.
func TestSIGTERMDrainsInFlightRequests(t *testing.T) {
	p := startServe(t, nil)
	createMerchant(t, p.base, "acct_1Drain")
	payload := failedInvoiceEvent("acct_1Drain")

	// Send the headers and half the body, signal, then finish the body: the
	// server must still answer it.
	conn, err := net.Dial("tcp", strings.TrimPrefix(p.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nStripe-Signature: %s\r\nContent-Length: %d\r\n\r\n",
		stripetest.Sign(payload, testSecret, time.Now()), len(payload))
	half := len(payload) / 2
	conn.Write(payload[:half])
	time.Sleep(200 * time.Millisecond) // the request is in flight in the server
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(200 * time.Millisecond)
	conn.Write(payload[half:])
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("in-flight request was not answered: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("in-flight request: status %d, want 200", resp.StatusCode)
	}
	if err := p.stop(); err != nil {
		t.Errorf("exit after drain: %v\n%s", err, p.logs.String())
	}
}

// TestServeWakesTheWorker: `recoup serve` is the composition embedders use
// (recoup.New), so a delivery that schedules a task due now wakes the
// in-process worker: the payment-failed email goes out long before the
// worker's next poll, an hour away.
func TestServeWakesTheWorker(t *testing.T) {
	p := startServe(t, []string{"RECOUP_WORKER_POLL=1h"})
	key := createMerchant(t, p.base, "acct_1Wake")
	// The worker's first claim, at start, finds nothing: the only way to
	// run the task before an hour is the wake.
	time.Sleep(200 * time.Millisecond)
	status, a := deliver(t, p.base, failedInvoiceEvent("acct_1Wake"))
	if status != http.StatusOK || len(a.Tasks) != 4 {
		t.Fatalf("delivery: status %d, answer %+v", status, a)
	}
	deadline := time.Now().Add(30 * time.Second) // a small fraction of the hour
	for {
		req, _ := http.NewRequest(http.MethodGet, p.base+"/api/tasks?status=succeeded", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var page struct {
			Tasks []struct {
				Type string `json:"type"`
			} `json:"tasks"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err == nil && len(page.Tasks) == 1 && page.Tasks[0].Type == "notify_payment_failed" {
			return // the email task ran
		}
		if time.Now().After(deadline) {
			t.Fatalf("the task due now did not run within 30 s with an hour's poll: the worker was not woken\n%s", p.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestServeMetricsOnTheirOwnListener: with RECOUP_METRICS_ADDR, `serve`
// serves metrics, health and readiness there, and /metrics leaves the
// public listener (health and readiness stay, for load balancers).
func TestServeMetricsOnTheirOwnListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opsAddr := ln.Addr().String()
	ln.Close()
	p := startServe(t, []string{"RECOUP_METRICS_ADDR=" + opsAddr})
	ops := "http://" + opsAddr
	for _, c := range []struct {
		url  string
		want int
	}{
		{ops + "/metrics", http.StatusOK},
		{ops + "/healthz", http.StatusOK},
		{ops + "/readyz", http.StatusOK},
		{p.base + "/metrics", http.StatusNotFound},
		{p.base + "/healthz", http.StatusOK},
		{p.base + "/readyz", http.StatusOK},
	} {
		if got := getStatus(t, c.url); got != c.want {
			t.Errorf("GET %s: %d, want %d", c.url, got, c.want)
		}
	}
	resp, err := http.Get(ops + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "recoup_webhook_deliveries_total") {
		t.Errorf("the metrics listener does not serve recoup's metrics")
	}
}
