// Package metrics is recoup's Prometheus adapter: it implements
// ports.Observer (webhook deliveries, idempotency lock waits, task runs)
// and the HTTP adapter's request hook, reads the due-task backlog at scrape
// time, and exposes the database pool and the Go runtime.
//
// Every collector is registered on the prometheus.Registerer given to New,
// never on the global registry, so that several servers (and tests) in one
// process do not share counters. Handler serves a registry as Prometheus
// text.
//
// # Metrics
//
//	recoup_webhook_deliveries_total{event_type,outcome}   counter
//	recoup_webhook_duration_seconds{outcome}              histogram
//	recoup_event_lock_wait_seconds                        histogram
//	recoup_task_runs_total{type,outcome}                  counter
//	recoup_task_run_duration_seconds{type}                histogram
//	recoup_reconcile_events_total{outcome}                counter
//	recoup_outbound_messages_total{event_type,outcome}    counter
//	recoup_outbound_delivery_duration_seconds{event_type} histogram
//	recoup_tasks_due                                      gauge, read at scrape
//	recoup_tasks_due_oldest_age_seconds                   gauge, read at scrape
//	recoup_http_requests_total{route,code}                counter
//	recoup_http_request_duration_seconds{route}           histogram
//	go_sql_*{db_name="recoup"}                            the PostgreSQL pool
//	go_*, process_*                                       runtime and process
//
// Labels take values from small fixed sets only: event_type is a type the
// dunning policy handles, "other" (any other type) or "unknown" (a delivery
// rejected before its event could be trusted); outcome is one of the
// ports.Delivery… or ports.Task… constants; type is a task type; route is
// the ServeMux pattern that answered ("unmatched" for none), code the HTTP
// status. No label ever carries an event, task or merchant id. Values
// outside those sets are counted as "other".
package metrics
