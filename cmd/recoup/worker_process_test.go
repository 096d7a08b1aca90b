package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/recoupdev/recoup/internal/logtest"
	"github.com/recoupdev/recoup/internal/pgtest"
)

// fakeStripe is a Stripe API double that keeps invoices and charges the way
// Stripe does for what the worker uses: a pay request charges the invoice
// once, and a repeat of an idempotency key replays the first answer without
// charging again.
type fakeStripe struct {
	mu      sync.Mutex
	charges map[string]int      // invoice → charges made
	keys    map[string][]string // invoice → idempotency keys of pay requests, in order
	seen    map[string]bool     // idempotency keys answered
	// staleReads makes invoice reads answer "open" even after a charge, as
	// a read racing the charge would: then only the idempotency key can
	// keep a second charge away.
	staleReads bool
	// hold, when set, is called inside the first pay request of an
	// invoice before Stripe decides; it may block.
	hold func(invoice string)
}

func newFakeStripe() *fakeStripe {
	return &fakeStripe{charges: map[string]int{}, keys: map[string][]string{}, seen: map[string]bool{}}
}

func (f *fakeStripe) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1/invoices/")
	if !ok {
		http.Error(w, `{"error": {"type": "invalid_request_error", "message": "no such route"}}`, http.StatusNotFound)
		return
	}
	invoice, action, _ := strings.Cut(rest, "/")
	status := "open"
	switch {
	case r.Method == http.MethodGet && action == "":
		f.mu.Lock()
		if f.charges[invoice] > 0 && !f.staleReads {
			status = "paid"
		}
		f.mu.Unlock()
	case r.Method == http.MethodPost && action == "pay":
		key := r.Header.Get("Idempotency-Key")
		f.mu.Lock()
		first := len(f.keys[invoice]) == 0
		f.keys[invoice] = append(f.keys[invoice], key)
		hold := f.hold
		f.mu.Unlock()
		if first && hold != nil {
			hold(invoice)
		}
		f.mu.Lock()
		if !f.seen[key] {
			f.seen[key] = true
			f.charges[invoice]++
		}
		f.mu.Unlock()
		status = "paid"
	default:
		http.Error(w, `{"error": {"type": "invalid_request_error", "message": "unexpected request"}}`, http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"id": %q, "object": "invoice", "status": %q, "amount_due": 2000, "currency": "usd", "customer_email": "jenny.rosen@example.com"}`, invoice, status)
}

func (f *fakeStripe) snapshot() (charges map[string]int, keys map[string][]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	charges, keys = map[string]int{}, map[string][]string{}
	for k, v := range f.charges {
		charges[k] = v
	}
	for k, v := range f.keys {
		keys[k] = append([]string(nil), v...)
	}
	return charges, keys
}

// startWorker starts `recoup worker` and returns its command.
func startWorker(t *testing.T, env ...string) (*exec.Cmd, *logtest.Buffer) {
	t.Helper()
	cmd := exec.Command(binary, "worker")
	cmd.Env = append(os.Environ(), "STRIPE_API_KEY=sk_test_process", "RECOUP_LOG_FORMAT=json")
	cmd.Env = append(cmd.Env, env...)
	logs := &logtest.Buffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start recoup worker: %v", err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd, logs
}

// terminate sends SIGTERM and expects exit status 0.
func terminate(t *testing.T, cmd *exec.Cmd, logs *logtest.Buffer) {
	t.Helper()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("worker exit after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(40 * time.Second):
		_ = cmd.Process.Kill()
		t.Errorf("worker did not exit within 40 s of SIGTERM")
	}
}

// merchantFor creates a merchant through the command and returns its id.
func merchantFor(t *testing.T, url, account string) string {
	t.Helper()
	out, err := recoupCommand(t, url, "merchant", "create", "--name", "Shop", "--stripe-account", account)
	if err != nil {
		t.Fatalf("merchant create: %v", err)
	}
	var m struct{ ID string }
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("merchant create output: %v", err)
	}
	return m.ID
}

// insertDueRetries adds n retry_payment tasks, due now, on invoices
// in_proc_<i>.
func insertDueRetries(t *testing.T, db *bun.DB, merchant string, n int) {
	t.Helper()
	_, err := db.ExecContext(context.Background(), `
		INSERT INTO tasks (id, merchant_id, type, status, stripe_invoice_id, customer_email, amount_due, currency,
		                   invoice_attempt, run_at, created_at, updated_at)
		SELECT gen_random_uuid(), ?, 'retry_payment', 'pending', 'in_proc_' || i, 'jenny.rosen@example.com', 2000, 'usd',
		       1, now() - interval '1 second', now(), now()
		FROM generate_series(1, ?) AS i`, merchant, n)
	if err != nil {
		t.Fatalf("insert tasks: %v", err)
	}
}

func countTasks(t *testing.T, db *bun.DB, status string) int {
	t.Helper()
	var n int
	if err := db.NewRaw("SELECT count(*) FROM tasks WHERE status = ?", status).Scan(context.Background(), &n); err != nil {
		t.Fatalf("count tasks: %v", err)
	}
	return n
}

// TestTwoWorkerProcessesRunEachTaskOnce: two `recoup worker` processes on
// one database share 1,000 due payment retries; Stripe sees exactly one pay
// request, and one charge, per task.
func TestTwoWorkerProcessesRunEachTaskOnce(t *testing.T) {
	t.Parallel()
	const n = 1000
	url := migratedDatabase(t)
	db := pgtest.Open(t, url)
	insertDueRetries(t, db, merchantFor(t, url, "acct_1Workers"), n)
	fake := newFakeStripe()
	api := httptest.NewServer(fake)
	defer api.Close()

	env := []string{"DATABASE_URL=" + url, "STRIPE_API_BASE=" + api.URL, "RECOUP_WORKER_CONCURRENCY=8",
		"RECOUP_WORKER_POLL=100ms", "RECOUP_METRICS_ADDR=127.0.0.1:0"}
	a, alogs := startWorker(t, env...)
	b, blogs := startWorker(t, env...)
	deadline := time.Now().Add(2 * time.Minute)
	for countTasks(t, db, "succeeded") < n && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	// Each process counts the runs it made: together, every task once.
	ran := succeededRuns(t, alogs) + succeededRuns(t, blogs)
	if ran != n {
		t.Errorf("the workers' metrics count %d succeeded runs; want %d", ran, n)
	}
	terminate(t, a, alogs)
	terminate(t, b, blogs)

	if got := countTasks(t, db, "succeeded"); got != n {
		t.Fatalf("%d of %d tasks succeeded\nworker a:\n%s\nworker b:\n%s", got, n, alogs.String(), blogs.String())
	}
	charges, keys := fake.snapshot()
	for i := 1; i <= n; i++ {
		inv := fmt.Sprintf("in_proc_%d", i)
		if charges[inv] != 1 || len(keys[inv]) != 1 {
			t.Errorf("%s: %d charges from %d pay requests; want exactly one", inv, charges[inv], len(keys[inv]))
		}
	}
	// The start-up line shows no listen address: a worker has none.
	if l := alogs.String(); !strings.Contains(l, `"msg":"recoup worker starting","config":{"storage"`) {
		t.Errorf("the worker's start-up line is not as expected (an addr first?):\n%s", l)
	}
	// Both processes did part of the work.
	for name, logs := range map[string]*logtest.Buffer{"a": alogs, "b": blogs} {
		if !strings.Contains(logs.String(), `"status":"succeeded"`) {
			t.Errorf("worker %s ran no task", name)
		}
	}
}

// succeededRuns scrapes the /metrics of a worker process (its address is in
// its "serving metrics and health" log line) and returns its succeeded retry_payment
// runs.
func succeededRuns(t *testing.T, logs *logtest.Buffer) int {
	t.Helper()
	var addr string
	for _, line := range strings.Split(logs.String(), "\n") {
		var rec struct{ Msg, Addr string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "serving metrics and health" {
			addr = rec.Addr
		}
	}
	if addr == "" {
		t.Fatalf("the worker logged no metrics address:\n%s", logs.String())
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape worker metrics: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	const series = `recoup_task_runs_total{outcome="succeeded",type="retry_payment"} `
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("metric %q: %v", line, err)
			}
			return n
		}
	}
	return 0 // a worker that ran nothing has no such series
}

// TestKilledWorkerTaskIsReclaimedWithTheSameKey: a worker killed with
// SIGKILL in the middle of a payment leaves the task claimable once its
// lease expires; the next worker repeats the payment with the same
// idempotency key, so Stripe charges once even when its invoice read is
// stale.
func TestKilledWorkerTaskIsReclaimedWithTheSameKey(t *testing.T) {
	t.Parallel()
	url := migratedDatabase(t)
	db := pgtest.Open(t, url)
	insertDueRetries(t, db, merchantFor(t, url, "acct_1Killed"), 1)
	fake := newFakeStripe()
	fake.staleReads = true
	entered, release := make(chan struct{}), make(chan struct{})
	fake.hold = func(string) {
		close(entered)
		<-release // Stripe is still deciding when the worker dies
	}
	api := httptest.NewServer(fake)
	defer api.Close()
	defer close(release)

	env := []string{"DATABASE_URL=" + url, "STRIPE_API_BASE=" + api.URL, "RECOUP_WORKER_LEASE=3s", "RECOUP_WORKER_POLL=100ms"}
	first, firstLogs := startWorker(t, env...)
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		t.Fatalf("the first worker never paid:\n%s", firstLogs.String())
	}
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	if got := countTasks(t, db, "running"); got != 1 {
		t.Fatalf("after the kill %d tasks are running; want the one the dead worker held", got)
	}

	second, secondLogs := startWorker(t, env...)
	release <- struct{}{} // Stripe finishes the first request: one charge
	deadline := time.Now().Add(time.Minute)
	for countTasks(t, db, "succeeded") < 1 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	terminate(t, second, secondLogs)

	if got := countTasks(t, db, "succeeded"); got != 1 {
		t.Fatalf("the task was not completed by the second worker:\n%s", secondLogs.String())
	}
	var attempts int
	if err := db.NewRaw("SELECT attempts FROM tasks").Scan(context.Background(), &attempts); err != nil {
		t.Fatal(err)
	}
	charges, keys := fake.snapshot()
	ks := keys["in_proc_1"]
	if attempts != 2 || len(ks) != 2 {
		t.Fatalf("%d claims and %d pay requests; want 2 and 2", attempts, len(ks))
	}
	if ks[0] != ks[1] {
		t.Errorf("the reclaimed run used key %q, the killed one %q; want the same", ks[1], ks[0])
	}
	if charges["in_proc_1"] != 1 {
		t.Errorf("%d charges; want exactly one", charges["in_proc_1"])
	}
}
