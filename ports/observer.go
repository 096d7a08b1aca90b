package ports

import "time"

// Outcomes of a webhook delivery, as an Observer is told them.
const (
	// DeliveryProcessed: the event was applied (its lock taken, its effects
	// written).
	DeliveryProcessed = "processed"
	// DeliveryDuplicate: another delivery of the same event had already
	// taken its lock; nothing changed.
	DeliveryDuplicate = "duplicate"
	// DeliveryIgnored: acknowledged without effect (type not handled, no
	// merchant for the account, the other livemode).
	DeliveryIgnored = "ignored"
	// DeliveryRejected: refused before the use case (bad signature, body
	// not an event, too large).
	DeliveryRejected = "rejected"
	// DeliveryFailed: an error; nothing of the delivery was kept, so
	// Stripe redelivers.
	DeliveryFailed = "failed"
)

// Outcomes of one task run, as an Observer is told them.
const (
	TaskSucceeded = "succeeded"
	// TaskRetry: the run failed and the task is pending again, later.
	TaskRetry     = "retry"
	TaskFailed    = "failed"
	TaskCancelled = "cancelled"
	// TaskConflict: the outcome could not be recorded because the claim no
	// longer held (the lease expired and another worker took the task).
	TaskConflict = "conflict"
	// TaskUnrecorded: the outcome could not be recorded (storage error);
	// the task runs again once its lease expires.
	TaskUnrecorded = "unrecorded"
)

// EventTypeOther is the event type reported for every type the policy does
// not handle, so that a stranger's made-up types cannot grow the set of
// values an Observer sees.
const EventTypeOther = "other"

// EventTypeUnknown is the event type of a delivery rejected before its
// event could be trusted.
const EventTypeUnknown = "unknown"

// Observer is told what the use cases did, for metrics. Every value it
// receives comes from a small fixed set (event types the policy handles or
// EventTypeOther, the outcome constants above, task types): never an event,
// task or merchant id, so an implementation may use them as metric labels.
// Its methods are called on the request's or task's goroutine and must not
// block.
type Observer interface {
	// WebhookDelivery reports one delivery and how long it took to handle.
	WebhookDelivery(eventType, outcome string, took time.Duration)
	// LockWait reports the time spent taking an event's idempotency lock
	// (AttemptEventLock), which includes waiting for a parallel delivery of
	// the same event.
	LockWait(took time.Duration)
	// TaskRun reports one execution of a task by the worker.
	TaskRun(taskType, outcome string, took time.Duration)
	// ReconciledEvent reports one event reconciliation listed and put
	// through the webhook's path, with its outcome (a Delivery…
	// constant: processed, duplicate, ignored, failed).
	ReconciledEvent(outcome string)
	// OutboundEnqueued reports n messages of an outbound event type
	// enqueued for a merchant's endpoints.
	OutboundEnqueued(eventType string, n int)
	// OutboundAttempt reports one attempt to deliver an outbound message
	// and how it ended (an Outbound… constant), with its duration.
	OutboundAttempt(eventType, outcome string, took time.Duration)
}

// Outcomes of one attempt to deliver an outbound message.
const (
	OutboundDelivered = "delivered"
	// OutboundRetry: the attempt failed; the message is tried again later.
	OutboundRetry = "retry"
	// OutboundFailed: the attempt failed and it was the last.
	OutboundFailed = "failed"
)

var _ Observer = NopObserver{}

// NopObserver discards everything: the default when nothing observes.
type NopObserver struct{}

// WebhookDelivery does nothing.
func (NopObserver) WebhookDelivery(string, string, time.Duration) {}

// LockWait does nothing.
func (NopObserver) LockWait(time.Duration) {}

// TaskRun does nothing.
func (NopObserver) TaskRun(string, string, time.Duration) {}

// ReconciledEvent does nothing.
func (NopObserver) ReconciledEvent(string) {}

// OutboundEnqueued does nothing.
func (NopObserver) OutboundEnqueued(string, int) {}

// OutboundAttempt does nothing.
func (NopObserver) OutboundAttempt(string, string, time.Duration) {}
