package metrics_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/recoupdev/recoup/adapters/metrics"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// fixedClock is a clock that stands still.
type fixedClock time.Time

func (c fixedClock) Now() time.Time { return time.Time(c) }

// fakeQueue answers Backlog with what the test set; only Backlog is used.
type fakeQueue struct {
	ports.TaskQueue
	mu     sync.Mutex
	count  int
	oldest time.Time
	err    error
	block  bool
}

func (q *fakeQueue) Backlog(ctx context.Context, now time.Time) (int, time.Time, error) {
	q.mu.Lock()
	block, count, oldest, err := q.block, q.count, q.oldest, q.err
	q.mu.Unlock()
	if block {
		<-ctx.Done()
		return 0, time.Time{}, ctx.Err()
	}
	return count, oldest, err
}

// gather returns the registry's families by name.
func gather(t *testing.T, g prometheus.Gatherer) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		out[f.GetName()] = f
	}
	return out
}

// value finds the sample of family name with exactly these label values
// (counter, gauge, or a histogram's count); ok is false if there is none.
func value(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		for _, l := range m.GetLabel() {
			if labels[l.GetName()] != l.GetValue() {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

func TestObserverCounts(t *testing.T) {
	is := is.New(t)
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, metrics.Options{NoRuntime: true})
	is.NoErr(err)

	m.WebhookDelivery(domain.EventInvoicePaid, ports.DeliveryProcessed, 3*time.Millisecond)
	m.WebhookDelivery(domain.EventInvoicePaid, ports.DeliveryProcessed, 4*time.Millisecond)
	m.WebhookDelivery(ports.EventTypeOther, ports.DeliveryIgnored, time.Millisecond)
	m.LockWait(2 * time.Second)
	m.TaskRun(string(domain.TypeRetryPayment), ports.TaskRetry, time.Second)
	m.ObserveRequest("GET /api/tasks", 200, 5*time.Millisecond)

	fams := gather(t, reg)
	v, _ := value(fams, "recoup_webhook_deliveries_total", map[string]string{"event_type": "invoice.paid", "outcome": "processed"})
	is.Equal(v, 2.0)
	v, _ = value(fams, "recoup_webhook_deliveries_total", map[string]string{"event_type": "other", "outcome": "ignored"})
	is.Equal(v, 1.0)
	v, _ = value(fams, "recoup_webhook_duration_seconds", map[string]string{"outcome": "processed"})
	is.Equal(v, 2.0) // two timings
	v, _ = value(fams, "recoup_event_lock_wait_seconds", nil)
	is.Equal(v, 1.0)
	is.Equal(fams["recoup_event_lock_wait_seconds"].GetMetric()[0].GetHistogram().GetSampleSum(), 2.0) // in seconds
	v, _ = value(fams, "recoup_task_runs_total", map[string]string{"type": "retry_payment", "outcome": "retry"})
	is.Equal(v, 1.0)
	v, _ = value(fams, "recoup_task_run_duration_seconds", map[string]string{"type": "retry_payment"})
	is.Equal(v, 1.0)
	v, _ = value(fams, "recoup_http_requests_total", map[string]string{"route": "GET /api/tasks", "code": "200"})
	is.Equal(v, 1.0)
	v, _ = value(fams, "recoup_http_request_duration_seconds", map[string]string{"route": "GET /api/tasks"})
	is.Equal(v, 1.0)

	// Series that alerts watch exist at zero before anything happened.
	v, ok := value(fams, "recoup_webhook_deliveries_total", map[string]string{"event_type": "invoice.payment_failed", "outcome": "failed"})
	is.True(ok)
	is.Equal(v, 0.0)
	_, ok = value(fams, "recoup_task_runs_total", map[string]string{"type": "notify_charge_failed", "outcome": "failed"})
	is.True(ok)
}

func TestLabelsStayBounded(t *testing.T) {
	is := is.New(t)
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, metrics.Options{NoRuntime: true})
	is.NoErr(err)
	for i := range 100 {
		id := strings.Repeat("x", i)
		m.WebhookDelivery("evt_"+id, "outcome_"+id, time.Millisecond)
		m.TaskRun("type_"+id, "outcome_"+id, time.Millisecond)
	}
	fams := gather(t, reg)
	v, _ := value(fams, "recoup_webhook_deliveries_total", map[string]string{"event_type": "other", "outcome": "other"})
	is.Equal(v, 100.0) // unknown values all fall into "other"
	v, _ = value(fams, "recoup_task_runs_total", map[string]string{"type": "other", "outcome": "other"})
	is.Equal(v, 100.0)
	for _, f := range fams {
		is.True(len(f.GetMetric()) < 64) // no family grew a series per value
	}
}

func TestBacklogAtScrapeTime(t *testing.T) {
	is := is.New(t)
	now := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	q := &fakeQueue{}
	reg := prometheus.NewRegistry()
	_, err := metrics.New(reg, metrics.Options{Queue: q, Clock: fixedClock(now), BacklogTimeout: 50 * time.Millisecond, NoRuntime: true})
	is.NoErr(err)

	fams := gather(t, reg)
	v, _ := value(fams, "recoup_tasks_due", nil)
	is.Equal(v, 0.0)
	v, _ = value(fams, "recoup_tasks_due_oldest_age_seconds", nil)
	is.Equal(v, 0.0) // nothing due: age 0

	q.mu.Lock()
	q.count, q.oldest = 7, now.Add(-5*time.Minute)
	q.mu.Unlock()
	fams = gather(t, reg)
	v, _ = value(fams, "recoup_tasks_due", nil)
	is.Equal(v, 7.0) // read at scrape time
	v, _ = value(fams, "recoup_tasks_due_oldest_age_seconds", nil)
	is.Equal(v, 300.0)

	// Storage away: the scrape still serves everything else.
	h := metrics.Handler(reg, slog.New(slog.DiscardHandler))
	for _, fail := range []func(){
		func() { q.err = errors.New("connection refused") },
		func() { q.err, q.block = nil, true },
	} {
		q.mu.Lock()
		fail()
		q.mu.Unlock()
		start := time.Now()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		body, _ := io.ReadAll(w.Body)
		is.Equal(w.Code, http.StatusOK)                                            // a failing backlog does not fail the scrape
		is.True(strings.Contains(string(body), "recoup_webhook_deliveries_total")) // the other metrics are there
		is.True(!strings.Contains(string(body), "recoup_tasks_due "))              // the backlog is left out, not reported as 0
		is.True(time.Since(start) < 10*time.Second)                                // a hanging query is abandoned at the timeout
	}
}

// nopConnector opens no connection: the pool statistics need none.
type nopConnector struct{}

func (nopConnector) Connect(context.Context) (driver.Conn, error) {
	return nil, errors.New("no database")
}
func (nopConnector) Driver() driver.Driver { return nil }

func TestPoolAndRuntimeCollectors(t *testing.T) {
	is := is.New(t)
	db := sql.OpenDB(nopConnector{})
	defer db.Close()
	reg := prometheus.NewRegistry()
	_, err := metrics.New(reg, metrics.Options{DB: db})
	is.NoErr(err)
	fams := gather(t, reg)
	_, ok := value(fams, "go_sql_max_open_connections", map[string]string{"db_name": "recoup"})
	is.True(ok) // the pool's statistics
	_, ok = fams["go_goroutines"]
	is.True(ok) // the Go runtime
	_, ok = fams["process_cpu_seconds_total"]
	is.True(ok) // the process

	_, err = metrics.New(reg, metrics.Options{})
	is.True(err != nil) // a registry holds one set: a second is an error, not a panic
}
