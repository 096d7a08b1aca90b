package metrics

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// Namespace prefixes every recoup metric.
const Namespace = "recoup"

// DefaultBacklogTimeout bounds the backlog query of one scrape.
const DefaultBacklogTimeout = time.Second

// Options says what New observes besides the use cases.
type Options struct {
	// Queue, when set, is asked for the due-task backlog at every scrape.
	Queue ports.TaskQueue
	// Clock dates the backlog query; nil is the system clock.
	Clock ports.Clock
	// BacklogTimeout bounds that query; zero is DefaultBacklogTimeout.
	BacklogTimeout time.Duration
	// DB, when set, is the SQL pool whose statistics are exported
	// (go_sql_…{db_name="recoup"}).
	DB *sql.DB
	// NoRuntime leaves out the Go runtime and process collectors, for a
	// registry that has them already.
	NoRuntime bool
}

var _ ports.Observer = (*Metrics)(nil)

// Metrics records what recoup does as Prometheus metrics. It implements
// ports.Observer and the HTTP adapter's RequestObserver; it is safe for
// concurrent use.
type Metrics struct {
	deliveries   *prometheus.CounterVec
	deliveryTime *prometheus.HistogramVec
	lockWait     prometheus.Histogram
	taskRuns     *prometheus.CounterVec
	reconciled   *prometheus.CounterVec
	outbound     *prometheus.CounterVec
	outboundTime *prometheus.HistogramVec
	taskTime     *prometheus.HistogramVec
	requests     *prometheus.CounterVec
	requestTime  *prometheus.HistogramVec
}

// New creates recoup's collectors and registers them on reg. It fails only
// if reg already holds collectors of the same names.
func New(reg prometheus.Registerer, opts Options) (*Metrics, error) {
	m := &Metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "webhook_deliveries_total",
			Help: "Stripe webhook deliveries by event type and outcome (processed, duplicate, ignored, rejected, failed).",
		}, []string{"event_type", "outcome"}),
		deliveryTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "webhook_duration_seconds",
			Help:    "Time to handle one webhook delivery in the use case (lock, effects, commit), by outcome.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"outcome"}),
		lockWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "event_lock_wait_seconds",
			Help:    "Time spent taking an event's idempotency lock, including waiting for a parallel delivery of the same event.",
			Buckets: []float64{.0001, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		taskRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "task_runs_total",
			Help: "Task executions by type and outcome (succeeded, retry, failed, cancelled, conflict, unrecorded).",
		}, []string{"type", "outcome"}),
		reconciled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "reconcile_events_total",
			Help: "Undelivered Stripe events that reconciliation listed and put through the webhook's path, by outcome (processed, duplicate, ignored, failed).",
		}, []string{"outcome"}),
		outbound: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "outbound_messages_total",
			Help: "Messages to merchants' webhook endpoints by event type and outcome: enqueued (first handed to a sender), then each attempt delivered, retry or failed.",
		}, []string{"event_type", "outcome"}),
		outboundTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "outbound_delivery_duration_seconds",
			Help:    "Time of one attempt to deliver a message to a merchant's endpoint, by event type.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"event_type"}),
		taskTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "task_run_duration_seconds",
			Help:    "Time of one task execution (Stripe and email calls included), by type.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"type"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "http_requests_total",
			Help: "HTTP requests by route (the ServeMux pattern that answered, or unmatched) and status code.",
		}, []string{"route", "code"}),
		requestTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "http_request_duration_seconds",
			Help:    "HTTP request latency by route.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"}),
	}
	cs := []prometheus.Collector{m.deliveries, m.deliveryTime, m.lockWait, m.taskRuns, m.reconciled, m.outbound, m.outboundTime, m.taskTime, m.requests, m.requestTime}
	if opts.Queue != nil {
		cs = append(cs, newBacklogCollector(opts.Queue, opts.Clock, opts.BacklogTimeout))
	}
	if opts.DB != nil {
		cs = append(cs, collectors.NewDBStatsCollector(opts.DB, Namespace))
	}
	if !opts.NoRuntime {
		cs = append(cs, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	m.initSeries()
	return m, nil
}

// initSeries creates the series that alerts watch at zero, so that a rate
// over them exists before the first failure.
func (m *Metrics) initSeries() {
	for _, t := range handledEventTypes {
		for _, o := range []string{ports.DeliveryProcessed, ports.DeliveryDuplicate, ports.DeliveryIgnored, ports.DeliveryFailed} {
			m.deliveries.WithLabelValues(t, o)
		}
	}
	m.deliveries.WithLabelValues(ports.EventTypeOther, ports.DeliveryIgnored)
	m.deliveries.WithLabelValues(ports.EventTypeUnknown, ports.DeliveryRejected)
	for _, t := range taskTypes {
		for o := range taskOutcomes {
			m.taskRuns.WithLabelValues(t, o)
		}
	}
	for _, o := range []string{ports.DeliveryProcessed, ports.DeliveryDuplicate, ports.DeliveryIgnored, ports.DeliveryFailed} {
		m.reconciled.WithLabelValues(o)
	}
	for _, t := range domain.OutboundEventTypes {
		for o := range outboundOutcomes {
			m.outbound.WithLabelValues(t, o)
		}
	}
}

const outboundEnqueued = "enqueued"

var outboundOutcomes = set(outboundEnqueued, ports.OutboundDelivered, ports.OutboundRetry, ports.OutboundFailed)

var outboundTypeLabels = set(domain.OutboundEventTypes...)

var handledEventTypes = []string{
	domain.EventInvoicePaymentFailed, domain.EventInvoicePaymentActionRequired,
	domain.EventCustomerSubscriptionDeleted, domain.EventChargeFailed,
	domain.EventInvoicePaid, domain.EventInvoiceVoided, domain.EventInvoiceMarkedUncollectible,
	domain.EventCustomerUpdated, domain.EventPaymentMethodAttached, domain.EventCustomerSourceExpiring,
}

var taskTypes = func() []string {
	out := make([]string, len(domain.TaskTypes))
	for i, t := range domain.TaskTypes {
		out[i] = string(t)
	}
	return out
}()

var deliveryOutcomes = set(ports.DeliveryProcessed, ports.DeliveryDuplicate, ports.DeliveryIgnored, ports.DeliveryRejected, ports.DeliveryFailed)

var taskOutcomes = set(ports.TaskSucceeded, ports.TaskRetry, ports.TaskFailed, ports.TaskCancelled, ports.TaskConflict, ports.TaskUnrecorded)

var eventTypeLabels = set(append([]string{ports.EventTypeOther, ports.EventTypeUnknown}, handledEventTypes...)...)

var taskTypeLabels = set(taskTypes...)

func set(values ...string) map[string]bool {
	m := make(map[string]bool, len(values))
	for _, v := range values {
		m[v] = true
	}
	return m
}

// bounded returns v if it is one of the known values, else "other": the
// last guard against a caller putting an unbounded value in a label.
func bounded(v string, known map[string]bool) string {
	if known[v] {
		return v
	}
	return ports.EventTypeOther
}

// WebhookDelivery counts one delivery and its time.
func (m *Metrics) WebhookDelivery(eventType, outcome string, took time.Duration) {
	outcome = bounded(outcome, deliveryOutcomes)
	m.deliveries.WithLabelValues(bounded(eventType, eventTypeLabels), outcome).Inc()
	m.deliveryTime.WithLabelValues(outcome).Observe(took.Seconds())
}

// LockWait records the time one idempotency lock took.
func (m *Metrics) LockWait(took time.Duration) { m.lockWait.Observe(took.Seconds()) }

// TaskRun counts one task execution and its time.
func (m *Metrics) TaskRun(taskType, outcome string, took time.Duration) {
	taskType = bounded(taskType, taskTypeLabels)
	m.taskRuns.WithLabelValues(taskType, bounded(outcome, taskOutcomes)).Inc()
	m.taskTime.WithLabelValues(taskType).Observe(took.Seconds())
}

// OutboundEnqueued counts messages handed to a sender for the first time.
func (m *Metrics) OutboundEnqueued(eventType string, n int) {
	m.outbound.WithLabelValues(bounded(eventType, outboundTypeLabels), outboundEnqueued).Add(float64(n))
}

// OutboundAttempt counts one delivery attempt by outcome and times it.
func (m *Metrics) OutboundAttempt(eventType, outcome string, took time.Duration) {
	t := bounded(eventType, outboundTypeLabels)
	m.outbound.WithLabelValues(t, bounded(outcome, outboundOutcomes)).Inc()
	m.outboundTime.WithLabelValues(t).Observe(took.Seconds())
}

// ReconciledEvent counts one reconciled event by outcome.
func (m *Metrics) ReconciledEvent(outcome string) {
	m.reconciled.WithLabelValues(bounded(outcome, deliveryOutcomes)).Inc()
}

// ObserveRequest counts one HTTP request answered by route with status.
// The route must come from a fixed set (the router's patterns): it is the
// HTTP adapter's job to pass nothing else.
func (m *Metrics) ObserveRequest(route string, status int, took time.Duration) {
	m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	m.requestTime.WithLabelValues(route).Observe(took.Seconds())
}

// Handler serves g's metrics as Prometheus text. A collector that fails
// (the backlog query when storage is away) is logged at WARN and left out
// of that scrape; the other metrics are still served.
func Handler(g prometheus.Gatherer, log *slog.Logger) http.Handler {
	opts := promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}
	if log != nil {
		opts.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	}
	return promhttp.HandlerFor(g, opts)
}

// backlogCollector asks the queue for the due backlog at scrape time, so the
// gauges are as fresh as the scrape and cost nothing between scrapes.
type backlogCollector struct {
	queue   ports.TaskQueue
	clock   ports.Clock
	timeout time.Duration
	due     *prometheus.Desc
	oldest  *prometheus.Desc
}

func newBacklogCollector(q ports.TaskQueue, clock ports.Clock, timeout time.Duration) *backlogCollector {
	if clock == nil {
		clock = ports.SystemClock{}
	}
	if timeout <= 0 {
		timeout = DefaultBacklogTimeout
	}
	return &backlogCollector{
		queue: q, clock: clock, timeout: timeout,
		due: prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "tasks_due"),
			"Tasks due now and not yet claimed by a worker (pending, or running with an expired lease).", nil, nil),
		oldest: prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "tasks_due_oldest_age_seconds"),
			"How long the oldest due task has been due; 0 when none is.", nil, nil),
	}
}

func (c *backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.due
	ch <- c.oldest
}

func (c *backlogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	now := c.clock.Now()
	count, oldest, err := c.queue.Backlog(ctx, now)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("task backlog: no answer within %s: %w", c.timeout, err)
		} else {
			err = fmt.Errorf("task backlog: %w", err)
		}
		ch <- prometheus.NewInvalidMetric(c.due, err)
		return
	}
	age := 0.0
	if count > 0 && !oldest.IsZero() && now.After(oldest) {
		age = now.Sub(oldest).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(c.due, prometheus.GaugeValue, float64(count))
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age)
}
