package httpapi_test

import (
	"bytes"
	"context"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/stripetest"
)

// mtSnapshot is one scrape of /metrics: every sample by name and labels.
type mtSnapshot map[string]float64

// mtScrape reads /metrics over HTTP and flattens it: counters and gauges
// by `name{label="value",…}`, histograms as their _count and _sum.
func mtScrape(t *testing.T, e *obEnv) mtSnapshot {
	t.Helper()
	r := e.env.with(t).do(http.MethodGet, "/metrics", nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", r.status, r.body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(r.body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, r.body)
	}
	out := mtSnapshot{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			key := name + mtLabels(m.GetLabel())
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[key] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[key] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[name+"_count"+mtLabels(m.GetLabel())] = float64(m.GetHistogram().GetSampleCount())
				out[name+"_sum"+mtLabels(m.GetLabel())] = m.GetHistogram().GetSampleSum()
			}
		}
	}
	return out
}

func mtLabels(ls []*dto.LabelPair) string {
	if len(ls) == 0 {
		return ""
	}
	parts := make([]string, 0, len(ls))
	for _, l := range ls {
		parts = append(parts, l.GetName()+"="+`"`+l.GetValue()+`"`)
	}
	slices.Sort(parts)
	return "{" + strings.Join(parts, ",") + "}"
}

// sum adds every sample of name (across labels).
func (s mtSnapshot) sum(name string) float64 {
	total := 0.0
	for k, v := range s {
		if k == name || strings.HasPrefix(k, name+"{") {
			total += v
		}
	}
	return total
}

func TestMetricsAfterScriptedDeliveries(t *testing.T) {
	is := is.New(t)
	e := newObEnv(t, obOptions{})
	acme := e.env.createMerchant("Acme")
	before := mtScrape(t, e)

	for _, name := range []string{
		"go_goroutines", "process_open_fds",
		`recoup_tasks_due`, `recoup_tasks_due_oldest_age_seconds`,
		`recoup_webhook_deliveries_total{event_type="invoice.payment_failed",outcome="failed"}`,
		`recoup_task_runs_total{outcome="failed",type="retry_payment"}`,
	} {
		_, ok := before[name]
		is.True(ok) // the series alerts watch exist from the start
	}
	is.Equal(before[`recoup_tasks_due`], 0.0) // nothing due yet

	// The script.
	evt := stripetest.NewID("evt_")
	// The failure happens on the test's clock: the retry is planned a
	// day after it.
	first := stripetest.Event{ID: evt, Type: domain.EventInvoicePaymentFailed, Account: acme.Account, Created: e.clock.Now(),
		Object: stripetest.Invoice{ID: stripetest.NewID("in_"), Customer: "cus_jenny", CustomerEmail: "jenny@example.com",
			AmountDue: 2000, AttemptCount: 1, Subscription: "sub_jenny"}}.JSON()
	is.Equal(e.env.mustDeliver(first).Action, domain.ActionScheduled) // processed
	is.Equal(e.env.mustDeliver(first).Processed, false)               // duplicate
	unhandled := stripetest.Event{ID: stripetest.NewID("evt_"), Type: "customer.created", Account: acme.Account,
		Object: stripetest.Invoice{ID: stripetest.NewID("in_")}}.JSON()
	is.Equal(e.env.mustDeliver(unhandled).Action, domain.ActionIgnored) // ignored, type "other"
	noMerchant := paymentFailed(stripetest.NewID("evt_"), "acct_nobody", stripetest.NewID("in_"))
	is.Equal(e.env.mustDeliver(noMerchant).Processed, false) // ignored: no merchant for the account
	r, err := e.env.deliverSigned(first, "t=1,v1=deadbeef")
	is.NoErr(err)
	is.Equal(r.status, http.StatusBadRequest) // rejected
	e.store.down.Store(true)
	r, err = e.env.deliver(paymentFailed(stripetest.NewID("evt_"), acme.Account, stripetest.NewID("in_")))
	is.NoErr(err)
	e.store.down.Store(false)
	is.Equal(r.status, http.StatusServiceUnavailable) // failed
	is.Equal(e.env.api(http.MethodGet, "/api/tasks", acme.Key).status, http.StatusOK)
	is.Equal(e.env.api(http.MethodGet, "/api/tasks/"+domain.NewID(), acme.Key).status, http.StatusNotFound)
	is.Equal(e.env.api(http.MethodGet, "/api/tasks", "rk_bad_key").status, http.StatusUnauthorized)
	is.Equal(e.env.do(http.MethodGet, "/no/such/"+stripetest.NewID("path_"), nil).status, http.StatusNotFound)
	e.clock.Add(90 * time.Second) // the notification has been due for 90 s

	after := mtScrape(t, e)
	delta := func(key string) float64 { return after[key] - before[key] }

	deliveries := map[string]float64{
		`{event_type="invoice.payment_failed",outcome="processed"}`: 1,
		`{event_type="invoice.payment_failed",outcome="duplicate"}`: 1,
		`{event_type="other",outcome="ignored"}`:                    1,
		`{event_type="invoice.payment_failed",outcome="ignored"}`:   1,
		`{event_type="unknown",outcome="rejected"}`:                 1,
		`{event_type="invoice.payment_failed",outcome="failed"}`:    1,
	}
	for labels, want := range deliveries {
		is.Equal(delta("recoup_webhook_deliveries_total"+labels), want) // each delivery counted once, by type and outcome
	}
	is.Equal(after.sum("recoup_webhook_deliveries_total")-before.sum("recoup_webhook_deliveries_total"), 6.0)             // and nothing else
	is.Equal(after.sum("recoup_webhook_duration_seconds_count")-before.sum("recoup_webhook_duration_seconds_count"), 6.0) // every delivery is timed, the rejected one too
	is.Equal(delta("recoup_event_lock_wait_seconds_count"), 2.0)                                                          // the lock was taken twice (processed, duplicate)
	is.True(delta("recoup_event_lock_wait_seconds_sum") > 0)

	requests := map[string]float64{
		`{code="200",route="/webhooks/stripe"}`:    4,
		`{code="400",route="/webhooks/stripe"}`:    1,
		`{code="503",route="/webhooks/stripe"}`:    1,
		`{code="200",route="GET /api/tasks"}`:      1,
		`{code="404",route="GET /api/tasks/{id}"}`: 1,
		`{code="401",route="/api/"}`:               1, // refused before the task API's router
		`{code="404",route="unmatched"}`:           1,
		`{code="200",route="GET /metrics"}`:        1, // the first scrape
	}
	for labels, want := range requests {
		is.Equal(delta("recoup_http_requests_total"+labels), want) // each request counted by route and status
	}
	is.Equal(delta(`recoup_http_request_duration_seconds_count{route="/webhooks/stripe"}`), 6.0)
	for k := range maps.Keys(after) {
		if strings.HasPrefix(k, "recoup_") {
			is.True(!strings.Contains(k, "path_"))         // no label carries a request path
			is.True(!strings.Contains(k, evt))             // nor an event id
			is.True(!strings.Contains(k, string(acme.ID))) // nor a merchant id
		}
	}

	is.Equal(after[`recoup_tasks_due`], 1.0)                     // the notification is due (the retry in a day, the reminders later)
	is.Equal(after[`recoup_tasks_due_oldest_age_seconds`], 90.0) // since 90 s

	// The worker runs the notification; then, a day later, the retry,
	// which fails for good without a payment gateway.
	n, err := e.worker.RunOnce(context.Background())
	is.NoErr(err)
	is.Equal(n, 1)
	is.Equal(e.notifier.sent.Load(), int32(1))
	e.clock.Add(25 * time.Hour)
	n, err = e.worker.RunOnce(context.Background())
	is.NoErr(err)
	is.Equal(n, 1)
	ran := mtScrape(t, e)
	runs := func(key string) float64 { return ran[key] - after[key] }
	is.Equal(runs(`recoup_task_runs_total{outcome="succeeded",type="notify_payment_failed"}`), 1.0) // the email went out
	is.Equal(runs(`recoup_task_runs_total{outcome="failed",type="retry_payment"}`), 1.0)            // the retry failed
	is.Equal(ran.sum("recoup_task_runs_total")-after.sum("recoup_task_runs_total"), 2.0)            // two runs, nothing else
	is.Equal(runs(`recoup_task_run_duration_seconds_count{type="notify_payment_failed"}`), 1.0)
	is.Equal(ran[`recoup_tasks_due`], 0.0)                    // nothing due any more
	is.Equal(ran[`recoup_tasks_due_oldest_age_seconds`], 0.0) // so no age
}
