//go:build browser

package browser

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/recoupdev/recoup/internal/logtest"
	"github.com/recoupdev/recoup/internal/pgtest"
	"github.com/recoupdev/recoup/internal/stripetest"
)

const (
	webhookSecret = "whsec_recoup_browser_test"
	adminToken    = "browser-test-admin-token-of-32-characters"
)

// buildRecoup builds the recoup command into dir, with the race detector
// (the packages are then those `make test` already compiled).
func buildRecoup(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "recoup")
	build := exec.Command("go", "build", "-race", "-o", bin, "github.com/recoupdev/recoup/cmd/recoup")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build recoup: %v\n%s", err, out)
	}
	return bin
}

// migratedDatabase makes a fresh PostgreSQL database (internal/pgtest) and
// gives it recoup's schema with `recoup migrate up`, as an operator would.
func migratedDatabase(t *testing.T, binary string) string {
	t.Helper()
	url := pgtest.NewDatabase(t)
	migrate := exec.Command(binary, "migrate", "up")
	migrate.Env = append(os.Environ(), "DATABASE_URL="+url)
	if out, err := migrate.CombinedOutput(); err != nil {
		t.Fatalf("recoup migrate up: %v\n%s", err, out)
	}
	return url
}

// server is a running `recoup serve`.
type server struct {
	base string // http://127.0.0.1:port
	logs *logtest.Buffer
}

// startServe starts `recoup serve` on a free loopback port with the test's
// secrets and env, waits until it listens, and stops it with SIGTERM when
// the test ends; its log is then saved as recoup.log beside the
// screenshots.
func startServe(t *testing.T, binary string, env ...string) *server {
	t.Helper()
	cmd := exec.Command(binary, "serve", "--addr", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "STRIPE_WEBHOOK_SECRET="+webhookSecret, "RECOUP_ADMIN_TOKEN="+adminToken,
		"RECOUP_LOG_FORMAT=json")
	cmd.Env = append(cmd.Env, env...)
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatalf("start recoup serve: %v", err)
	}
	s := &server{logs: &logtest.Buffer{}}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			s.logs.Write([]byte(line + "\n"))
			var rec struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" {
				addr <- rec.Addr
			}
		}
	}()
	done := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		pw.Close()
		done <- err
	}()
	select {
	case a := <-addr:
		s.base = "http://" + a
	case err := <-done:
		t.Fatalf("recoup serve exited at start: %v\n%s", err, s.logs.String())
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		t.Fatalf("recoup serve did not listen within a minute:\n%s", s.logs.String())
	}
	// Made now, so that without -artifacts its removal (a cleanup of its
	// own) comes after the one below that writes into it.
	logFile := filepath.Join(t.ArtifactDir(), "recoup.log")
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("recoup serve after SIGTERM: %v", err)
			}
		case <-time.After(time.Minute):
			_ = cmd.Process.Kill()
			t.Errorf("recoup serve did not stop within a minute of SIGTERM")
		}
		if err := os.WriteFile(logFile, []byte(s.logs.String()), 0o644); err != nil {
			t.Errorf("save the server log: %v", err)
		}
	})
	return s
}

// request sends a request with a bearer token and a JSON body (nil: none),
// checks its status and decodes the answer into out (nil: ignored).
func (s *server) request(t *testing.T, method, path, token string, body any, want int, out any) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.base+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s; want %d", method, path, resp.StatusCode, raw, want)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v\n%s", method, path, err, raw)
		}
	}
}

// createMerchant makes a merchant on the Stripe account through the admin
// API and returns its API key.
func (s *server) createMerchant(t *testing.T, name, account string) string {
	t.Helper()
	var m struct {
		APIKey string `json:"api_key"`
	}
	s.request(t, http.MethodPost, "/admin/merchants", adminToken,
		map[string]string{"name": name, "stripe_account_id": account}, http.StatusCreated, &m)
	return m.APIKey
}

// deliver posts the event to the Stripe webhook, signed, and expects it
// processed.
func (s *server) deliver(t *testing.T, payload []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.base+"/webhooks/stripe", bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Stripe-Signature", stripetest.Sign(payload, webhookSecret, time.Now()))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("deliver: %v", err)
	}
	defer resp.Body.Close()
	var a struct {
		Processed bool   `json:"processed"`
		Error     string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil || resp.StatusCode != http.StatusOK || !a.Processed {
		t.Fatalf("delivery answered %d %+v (%v); want 200, processed", resp.StatusCode, a, err)
	}
}

// task is a task as the API renders it (the fields the tests read).
type task struct {
	ID          string    `json:"id"`
	Type        string    `json:"type"`
	Status      string    `json:"status"`
	Reason      string    `json:"reason"`
	DeclineCode string    `json:"decline_code"`
	Invoice     string    `json:"stripe_invoice_id"`
	Attempts    int       `json:"attempts"`
	RunAt       time.Time `json:"run_at"`
}

// tasks lists the merchant's tasks of a status ("" for all), every page.
func (s *server) tasks(t *testing.T, key, status string) []task {
	t.Helper()
	var all []task
	cursor := ""
	for {
		path := "/api/tasks?limit=200"
		if status != "" {
			path += "&status=" + status
		}
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		var page struct {
			Tasks      []task  `json:"tasks"`
			NextCursor *string `json:"next_cursor"`
		}
		s.request(t, http.MethodGet, path, key, nil, http.StatusOK, &page)
		all = append(all, page.Tasks...)
		if page.NextCursor == nil {
			return all
		}
		cursor = *page.NextCursor
	}
}

// task reads one of the merchant's tasks.
func (s *server) task(t *testing.T, key, id string) task {
	t.Helper()
	var got task
	s.request(t, http.MethodGet, "/api/tasks/"+id, key, nil, http.StatusOK, &got)
	return got
}

// settle waits until the worker is idle: no task running and none pending
// that is due. The server's worker polls rarely in these tests and runs
// only when a delivery wakes it, so what the pages show then stays put.
func (s *server) settle(t *testing.T, key string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		busy := false
		for _, task := range s.tasks(t, key, "") { // one snapshot: a claim moves a task from one status to the other
			busy = busy || task.Status == "running" || task.Status == "pending" && !task.RunAt.After(time.Now())
		}
		if !busy {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the worker did not finish the due tasks within a minute:\n%s", s.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// money is a figure of /api/stats for one currency.
type money struct {
	FailedAmount    int64   `json:"failed_amount"`
	RecoveredAmount int64   `json:"recovered_amount"`
	RecoveryRate    float64 `json:"recovery_rate"`
}

// stats is the answer of GET /api/stats.
type stats struct {
	ByCurrency    map[string]money `json:"by_currency"`
	TasksByStatus map[string]int   `json:"tasks_by_status"`
	From          string           `json:"from"`
	To            string           `json:"to"`
	Series        []struct {
		Date            string `json:"date"`
		Currency        string `json:"currency"`
		FailedAmount    int64  `json:"failed_amount"`
		RecoveredAmount int64  `json:"recovered_amount"`
	} `json:"series"`
	ByDeclineCode map[string]struct {
		FailedInvoices    int `json:"failed_invoices"`
		RecoveredInvoices int `json:"recovered_invoices"`
	} `json:"by_decline_code"`
	BySource map[string]int `json:"by_source"`
}

func (s *server) stats(t *testing.T, key string) stats {
	t.Helper()
	var st stats
	s.request(t, http.MethodGet, "/api/stats", key, nil, http.StatusOK, &st)
	return st
}

// policy is the merchant's policy as the API renders it, kept whole so
// that a test changes one field and puts the rest back as it was.
type policy map[string]any

func (s *server) policy(t *testing.T, key string) policy {
	t.Helper()
	var p policy
	s.request(t, http.MethodGet, "/api/policy", key, nil, http.StatusOK, &p)
	return p
}

// apiError is what the API answers to a bad request.
func (s *server) apiError(t *testing.T, method, path, key string, body any, want int) string {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	s.request(t, method, path, key, body, want, &e)
	if e.Error == "" {
		t.Fatalf("%s %s answered %d without an error message", method, path, want)
	}
	return e.Error
}
